"""The discrete-event engine: a heap of timestamped events on a virtual clock.

Events at the same instant are handed out together (``batch``), in the order they were pushed,
so a driver can apply every change of an instant before it decides (one scheduling cycle per
instant, as the live loop batches wake-ups). Nothing here reads a wall clock.
"""

from __future__ import annotations

import heapq
from typing import Any


class Events:
    def __init__(self) -> None:
        self._heap: list[tuple[float, int, str, Any]] = []
        self._seq = 0
        self.now = 0.0
        self.processed = 0

    def __len__(self) -> int:
        return len(self._heap)

    def push(self, at: float, kind: str, payload: Any = None) -> None:
        if at < self.now:
            raise ValueError(f"event {kind} at {at} is in the past (now {self.now})")
        self._seq += 1
        heapq.heappush(self._heap, (at, self._seq, kind, payload))

    def next_time(self) -> float | None:
        return self._heap[0][0] if self._heap else None

    def batch(self) -> list[tuple[str, Any]]:
        """Every event of the earliest instant, which becomes ``now``."""
        heap = self._heap
        at = heap[0][0]
        self.now = at
        out = []
        while heap and heap[0][0] == at:
            _, _, kind, payload = heapq.heappop(heap)
            out.append((kind, payload))
        self.processed += len(out)
        return out

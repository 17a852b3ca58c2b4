"""Runtime estimates from history: a job whose spec gives no runtime estimate is expected to run
as long as the median of its user's latest succeeded jobs (EASY backfill, ``hyperion explain``).
Kept by the live store (``store.objects.ClusterState``) and by the simulator alike."""

from __future__ import annotations

from collections import deque

RUNTIME_HISTORY = 20  # succeeded jobs per (team, user) kept


class RuntimeHistory:
    def __init__(self) -> None:
        self.runs: dict[tuple[str, str], deque[float]] = {}
        self._median: dict[tuple[str, str], float] = {}  # cached, dropped when a run is recorded

    def record(self, team: str, user: str, seconds: float) -> None:
        key = (team, user)
        if key not in self.runs:
            self.runs[key] = deque(maxlen=RUNTIME_HISTORY)
        self.runs[key].append(max(0.0, seconds))
        self._median.pop(key, None)

    def estimate(self, team: str, user: str) -> float | None:
        """The median runtime of the user's latest succeeded jobs, if any (O(1) between records:
        drivers ask it for every pending job at every cycle)."""
        key = (team, user)
        median = self._median.get(key)
        if median is None:
            runs = self.runs.get(key)
            if not runs:
                return None
            median = self._median[key] = sorted(runs)[len(runs) // 2]
        return median

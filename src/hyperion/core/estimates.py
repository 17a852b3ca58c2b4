"""Runtime estimates from history: a job whose spec gives no runtime estimate is expected to run
as long as the median of its user's latest succeeded jobs (EASY backfill, ``hyperion explain``).
Kept by the live store (``store.objects.ClusterState``) and by the simulator alike."""

from __future__ import annotations

from collections import deque

RUNTIME_HISTORY = 20  # succeeded jobs per (team, user) kept


class RuntimeHistory:
    def __init__(self) -> None:
        self.runs: dict[tuple[str, str], deque[float]] = {}

    def record(self, team: str, user: str, seconds: float) -> None:
        key = (team, user)
        if key not in self.runs:
            self.runs[key] = deque(maxlen=RUNTIME_HISTORY)
        self.runs[key].append(max(0.0, seconds))

    def estimate(self, team: str, user: str) -> float | None:
        """The median runtime of the user's latest succeeded jobs, if any."""
        runs = self.runs.get((team, user))
        if not runs:
            return None
        ordered = sorted(runs)
        return ordered[len(ordered) // 2]

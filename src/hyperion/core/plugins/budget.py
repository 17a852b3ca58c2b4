"""Admission by budget: a team's pending job waits while its expected cost does not fit what is
left of its budgets this period (``core.budget``; the snapshot's ``budgets`` and ``prices``).

Extension point ``gate(job, cycle) -> str | None``: a reason the job is not considered in this
cycle at all (evictions would not help: the verdict is UNRESOLVABLE). What the team's running jobs
are still expected to use, and what this cycle already placed for it, count against what is left.
``wake_at``: the end of the period of a budget that holds a job which a fresh period could admit
(the driver runs a cycle then).
"""

from __future__ import annotations

from hyperion.core import budget
from hyperion.core.framework import plugin
from hyperion.model import JobView


@plugin("budget")
class Budget:
    def __init__(self) -> None:
        self._cycle_id: int | None = None
        self._committed: dict[str, tuple[float, float]] = {}
        self._counted = 0  # jobs of ``cycle.placed_now`` already in ``_committed``
        self._holding: set[str] = set()  # budget names that held a job this cycle

    def _prepare(self, cycle) -> None:
        if self._cycle_id != id(cycle):
            snap = cycle.snapshot
            self._cycle_id = id(cycle)
            self._committed = budget.committed(snap.running, snap.now, snap.prices)
            self._counted = 0
            self._holding = set()
        placed = cycle.placed_now
        if self._counted < len(placed):
            snap = cycle.snapshot
            for team, (usd, gpu_h) in budget.committed(placed[self._counted:], snap.now, snap.prices).items():
                a, b = self._committed.get(team, (0.0, 0.0))
                self._committed[team] = (a + usd, b + gpu_h)
            self._counted = len(placed)

    def gate(self, job: JobView, cycle) -> str | None:
        budgets = cycle.snapshot.budgets
        if not budgets or not any(b.team == job.team for b in budgets):
            return None
        self._prepare(cycle)
        snap = cycle.snapshot
        r = job.per_replica
        why = budget.check(job.team, r.gpus * job.replicas, r.cpus_milli * job.replicas, job.gpu_type,
                           job.runtime_estimate_s, budgets, snap.prices,
                           committed=self._committed.get(job.team, (0.0, 0.0)))
        if why is not None and budget.check(job.team, r.gpus * job.replicas, r.cpus_milli * job.replicas, job.gpu_type,
                                            job.runtime_estimate_s, budgets, snap.prices, whole=True) is None:
            # a fresh period may admit it (a job that exceeds a whole budget waits for a person)
            self._holding.update(b.name for b in budgets if b.team == job.team)
        return why

    def wake_at(self, cycle) -> float | None:
        if self._cycle_id != id(cycle) or not self._holding:
            return None
        ends = [b.period_end for b in cycle.snapshot.budgets if b.name in self._holding]
        return min(ends) if ends else None

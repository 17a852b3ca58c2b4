"""The bookkeeping between consecutive scheduling cycles, shared by every driver of
``schedule`` (the live scheduler loop and the simulator), so both decide alike.

A driver builds a snapshot (with ``holds``, the holds of the latest cycle), calls ``plan``,
applies the plan and calls ``settled`` with the node views it left behind and its versions.

Glossary:
- *full cycle*: offers every pending job; runs when free capacity, running jobs or queue
  definitions changed since the last cycle, or ``idle_interval`` passed since the last full one.
- *incremental cycle* (``Profile.incremental``): offers only the jobs not offered since the last
  full cycle (the others were just found not to fit on unchanged capacity), with the holds the
  latest cycle made.
- *versions*: whatever a driver counts to tell "running jobs or queues changed" (any tuple).
- *history*: each queue's and queue user's decayed past usage (``core.fairshare``), accrued
  from the usage held between calls of ``accrue``.
"""

from __future__ import annotations

from dataclasses import replace

from hyperion.core.cycle import schedule
from hyperion.core.fairshare import accrue
from hyperion.core.framework import Profile
from hyperion.model import Hold, Plan, Snapshot, Verdict


class Rounds:
    def __init__(self, profile: Profile, idle_interval: float,
                 history: dict[str, dict[str, float]] | None = None, accrued_at: float | None = None) -> None:
        self.profile = profile
        self.idle_interval = idle_interval
        self.cycles = 0
        self.holds: tuple[Hold, ...] = ()
        self.verdicts: dict[str, Verdict] = {}  # pending job -> its latest verdict
        self.order: tuple[str, ...] = ()        # pending jobs in the order the latest cycles took them
        self.history: dict[str, dict[str, float]] = history or {}
        self.accrued_at = accrued_at
        self._left: tuple | None = None  # the node views the last cycle left (identity: "unchanged")
        self._versions: tuple = ()
        self._seen: set[str] = set()     # pending jobs offered since the last full cycle
        self._last_full = float("-inf")

    def accrue(self, now: float, usage) -> None:
        """Fold the usage held since the last call into the decayed history."""
        if self.accrued_at is not None and now > self.accrued_at:
            self.history = accrue(self.history, usage, now - self.accrued_at, self.profile.option("half_life_s"))
        self.accrued_at = now

    def plan(self, snap: Snapshot, versions: tuple, clock: float, full: bool = False) -> Plan | None:
        """One cycle on ``snap`` (``clock``: the driver's monotonic time for ``idle_interval``;
        ``full``: offer every job whatever changed), or None when it has no job to offer."""
        if not snap.pending:
            self.idle()
            return None
        full = (full or not self.profile.incremental or self._left is not snap.nodes or versions != self._versions
                or clock - self._last_full >= self.idle_interval)
        if full:  # every job is offered again; a preemptor keeps its nomination until its turn
            offered = {j.id for j in snap.pending}
            snap = replace(snap, holds=tuple(h for h in snap.holds if h.kind == "nomination" and h.job_id in offered))
        else:
            snap = replace(snap, pending=tuple(j for j in snap.pending if j.id not in self._seen))
            if not snap.pending:
                return None
        plan = schedule(snap, self.profile)
        self.cycles += 1
        self.holds = plan.holds
        if full:
            self.verdicts = dict(plan.verdicts)
            self._seen = set(plan.verdicts)
            self.order = plan.order
            self._last_full = clock
        else:
            self.verdicts.update(plan.verdicts)
            self._seen.update(plan.verdicts)
            self.order += plan.order
        return plan

    def idle(self) -> None:
        """No job is pending: the next job to come is new to every cycle."""
        self._seen.clear()

    def settled(self, nodes: tuple, versions: tuple) -> None:
        """The driver applied the last plan: ``nodes`` are the node views it left (the very tuple
        its next snapshot carries while no node changes) and ``versions`` its versions now."""
        self._left = nodes
        self._versions = versions

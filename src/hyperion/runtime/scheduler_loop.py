"""The scheduler loop and its actuator.

Each cycle: snapshot -> ``core.schedule`` -> commit the assignments in one guarded transaction
-> tell the agents to start the tasks. The loop runs when woken (a submission, an exit, a node
joining) and at least every ``idle_interval`` seconds, so verdicts stay fresh.

With an ``incremental`` profile, a cycle in which free capacity is what the previous cycle left
offers only the jobs that arrived since (the others were just found not to fit); a full cycle
runs whenever capacity changed and at least every ``idle_interval``.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace

from hyperion.api.agents import AgentHub
from hyperion.api.service import ControlService
from hyperion.core import Explanation, Profile, explain, lifecycle, schedule
from hyperion.model import Plan
from hyperion.runtime.snapshotter import Snapshotter

log = logging.getLogger("hyperion.scheduler")


class SchedulerLoop:
    def __init__(self, service: ControlService, hub: AgentHub, profile: Profile, idle_interval: float = 1.0,
                 min_interval: float = 0.005) -> None:
        self.service = service
        self.hub = hub
        self.profile = profile
        self.snapshotter = Snapshotter(service.state)
        self.idle_interval = idle_interval
        self.min_interval = min_interval  # batches bursts of wake-ups into one cycle
        self._wake = asyncio.Event()
        self._left: tuple | None = None  # the node views the last cycle left behind (kept snapshots
        # return the very same tuple while no node changed, so identity says "capacity unchanged")
        self._seen: set[str] = set()     # pending jobs the last cycle considered
        self._last_full = float("-inf")
        self.cycles = 0
        self.placed = 0
        service.wake = self._wake.set
        service.explainer = self.explain

    def cycle(self, monotonic: float = 0.0) -> int:
        state = self.service.state
        if not state.pending:
            self._seen.clear()
            return 0
        snap = self.snapshotter.snapshot(self.service.clock.now(), seed=self.cycles)
        full = (not self.profile.incremental or self._left is not snap.nodes
                or monotonic - self._last_full >= self.idle_interval)
        if not full:
            snap = replace(snap, pending=tuple(j for j in snap.pending if j.id not in self._seen))
            if not snap.pending:
                return 0
        plan = schedule(snap, self.profile)
        self.cycles += 1
        jobs = [lifecycle.assign(state.jobs[a.job_id], a.placements) for a in plan.assignments]
        state.update_jobs(jobs)
        if full:
            self.service.verdicts = dict(plan.verdicts)
            self._seen = set(plan.verdicts)
            self._last_full = monotonic
        else:
            self.service.verdicts.update(plan.verdicts)
            self._seen.update(plan.verdicts)
        for job in jobs:
            self.hub.start(job)
        self.placed += len(jobs)
        self._left = self.snapshotter.nodes()[0] if jobs else snap.nodes
        return len(jobs)

    def explain(self, job_id: str) -> Explanation | None:
        """Explain a pending job on a fresh snapshot, with the verdicts of the last full cycle."""
        snap = self.snapshotter.snapshot(self.service.clock.now(), seed=self.cycles, with_running=True)
        return explain(snap, self.profile, Plan((), self.service.verdicts), job_id)

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                await asyncio.wait_for(self._wake.wait(), self.idle_interval)
            except TimeoutError:
                pass
            self._wake.clear()
            try:
                self.cycle(loop.time())
            except Exception:
                log.exception("scheduling cycle failed; retrying on the next wake-up")
            await asyncio.sleep(self.min_interval)  # let submissions and reports in before the next cycle


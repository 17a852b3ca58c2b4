"""The scheduler loop and its actuator.

Each cycle: snapshot -> ``core.schedule`` -> commit the assignments in one guarded transaction
-> tell the agents to start the tasks. The loop runs when woken (a submission, an exit, a node
joining) and at least every ``idle_interval`` seconds, so verdicts stay fresh.
"""

from __future__ import annotations

import asyncio
import logging

from hyperion.api.agents import AgentHub
from hyperion.api.service import ControlService
from hyperion.core import Profile, lifecycle, schedule
from hyperion.runtime.snapshotter import Snapshotter

log = logging.getLogger("hyperion.scheduler")


class SchedulerLoop:
    def __init__(self, service: ControlService, hub: AgentHub, profile: Profile, idle_interval: float = 1.0) -> None:
        self.service = service
        self.hub = hub
        self.profile = profile
        self.snapshotter = Snapshotter(service.state)
        self.idle_interval = idle_interval
        self._wake = asyncio.Event()
        self.cycles = 0
        self.placed = 0
        service.wake = self._wake.set

    def cycle(self) -> int:
        state = self.service.state
        if not state.pending:
            return 0
        snap = self.snapshotter.snapshot(self.service.clock.now(), seed=self.cycles)
        plan = schedule(snap, self.profile)
        self.cycles += 1
        jobs = [lifecycle.assign(state.jobs[a.job_id], a.placements) for a in plan.assignments]
        state.update_jobs(jobs)
        self.service.verdicts = dict(plan.verdicts)
        for job in jobs:
            self.hub.start(job)
        self.placed += len(jobs)
        return len(jobs)

    async def run(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self._wake.wait(), self.idle_interval)
            except TimeoutError:
                pass
            self._wake.clear()
            try:
                self.cycle()
            except Exception:
                log.exception("scheduling cycle failed; retrying on the next wake-up")
            await asyncio.sleep(0)  # let submissions and reports in before the next cycle

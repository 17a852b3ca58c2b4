"""The scheduler loop and its actuator.

Each cycle: snapshot -> ``core.schedule`` -> commit the assignments in one guarded transaction
-> tell the agents to start the tasks. The loop runs when woken (a submission, an exit, a node
joining) and at least every ``idle_interval`` seconds, so verdicts stay fresh.

With an ``incremental`` profile, a cycle in which free capacity, running jobs and queue
definitions are what the previous cycle left offers only the jobs that arrived since (the others
were just found not to fit), with the holds (reservations) the last full cycle made; a full cycle
runs whenever any of those changed and at least every ``idle_interval``.

Evictions in a plan are applied like cancellations: the job becomes PREEMPTED in the same commit
as the cycle's assignments, its agents are told to stop its ranks (they get the job's grace
period to checkpoint), and when every rank has exited it is PENDING again in its queue.

The loop also keeps each queue's (and each queue user's) decayed usage history for fair share
(``core.fairshare.accrue``), from the resources held at each cycle, and saves it to the store
every minute, so a restart keeps it (the time it was down accrues what was held then).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace

from hyperion.api.agents import AgentHub
from hyperion.api.service import ControlService
from hyperion.core import Explanation, Profile, explain, lifecycle, schedule
from hyperion.core.fairshare import accrue
from hyperion.model import Hold, Plan
from hyperion.runtime.snapshotter import Snapshotter

log = logging.getLogger("hyperion.scheduler")

HISTORY = "fair-share-history"
SAVE_HISTORY_EVERY = 60.0  # seconds; a crash forgets at most this much of the usage history


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
        self._versions: tuple = ()  # (running views, queue definitions) at the last cycle
        self._holds: tuple[Hold, ...] = ()
        self._order: tuple[str, ...] = ()
        saved = service.state.get_record(HISTORY) or {}
        self.history: dict[str, dict[str, float]] = saved.get("history", {})
        self._accrued_at: float | None = saved.get("at")
        self._saved_at = self._accrued_at or float("-inf")
        self.cycles = 0
        self.placed = 0
        self.evicted = 0
        service.wake = self._wake.set
        service.explainer = self.explain
        service.scheduler_stats = lambda: {"cycles": self.cycles, "placed": self.placed, "evicted": self.evicted}

    def _accrue(self, now: float) -> None:
        if self._accrued_at is not None and now > self._accrued_at:
            usage = {**self.service.state.queue_usage, **self.service.state.user_usage}
            self.history = accrue(self.history, usage, now - self._accrued_at, self.profile.option("half_life_s"))
        self._accrued_at = now
        if now - self._saved_at >= SAVE_HISTORY_EVERY:
            self.service.state.put_record(HISTORY, {"at": now, "history": self.history})
            self._saved_at = now

    def cycle(self, monotonic: float = 0.0) -> int:
        state = self.service.state
        now = self.service.clock.now()
        self._accrue(now)
        if not state.pending:
            self._seen.clear()
            return 0
        snap = self.snapshotter.snapshot(now, seed=self.cycles, history=self.history, holds=self._holds)
        versions = (self.snapshotter.running_version, state.queues_version)
        full = (not self.profile.incremental or self._left is not snap.nodes or versions != self._versions
                or monotonic - self._last_full >= self.idle_interval)
        if full:
            snap = replace(snap, holds=())
        else:
            snap = replace(snap, pending=tuple(j for j in snap.pending if j.id not in self._seen))
            if not snap.pending:
                return 0
        plan = schedule(snap, self.profile)
        self.cycles += 1
        jobs = [lifecycle.assign(state.jobs[a.job_id], a.placements) for a in plan.assignments]
        stops = [lifecycle.preempt(state.jobs[e.job_id], f"{e.reason} (scheduling cycle {self.cycles})")
                 for e in plan.evictions]
        state.update_jobs(jobs + [job for job, _ in stops])
        self._holds = plan.holds
        if full:
            self.service.verdicts = dict(plan.verdicts)
            self._seen = set(plan.verdicts)
            self._order = plan.order
            self._last_full = monotonic
        else:
            self.service.verdicts.update(plan.verdicts)
            self._seen.update(plan.verdicts)
            self._order += plan.order
        for job in jobs:
            self.hub.start(job)
        for job, placements in stops:
            self.hub.stop(job, placements, job.reason)
        self.placed += len(jobs)
        self.evicted += len(stops)
        self._left = self.snapshotter.nodes()[0] if jobs else snap.nodes
        self.snapshotter.running()  # fold this cycle's own writes in, so they do not count as a change
        self._versions = (self.snapshotter.running_version, state.queues_version)
        return len(jobs)

    def explain(self, job_id: str) -> Explanation | None:
        """Explain a pending job on a fresh snapshot, with the verdicts, order and reservations of
        the last cycles."""
        snap = self.snapshotter.snapshot(self.service.clock.now(), seed=self.cycles, history=self.history)
        return explain(snap, self.profile, Plan((), self.service.verdicts, holds=self._holds, order=self._order), job_id)

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


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
period to checkpoint), and when every rank has exited it is PENDING again in its queue. A
``handover`` eviction (the fast path) goes with its preemptor's start: the agent freezes the
victim, starts the urgent job on its GPUs, then lets the victim checkpoint and stop.

The loop also keeps each queue's (and each queue user's) decayed usage history for fair share
(``core.fairshare.accrue``), from the resources held at each cycle, and saves it to the store
every minute, so a restart keeps it (the time it was down accrues what was held then).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from hyperion.api.agents import AgentHub
from hyperion.api.service import ControlService
from hyperion.core import Explanation, Profile, budget, explain, lifecycle
from hyperion.core.explain import explain_many
from hyperion.core.rounds import Rounds
from hyperion.model import Plan
from hyperion.runtime.snapshotter import Snapshotter

log = logging.getLogger("hyperion.scheduler")

HISTORY = "fair-share-history"
SAVE_HISTORY_EVERY = 60.0  # seconds; a crash forgets at most this much of the usage history
BURST_EVERY_S = 1.0  # seconds between checks for jobs to burst (each explains the candidates on a snapshot)


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
        saved = service.state.get_record(HISTORY) or {}
        self.rounds = Rounds(profile, idle_interval, saved.get("history", {}), saved.get("at"))
        self._saved_at = self.rounds.accrued_at or float("-inf")
        self.placed = 0
        self.evicted = 0
        self._held: set[str] = set()  # jobs whose budget hold has been told as an event
        self._burst_at = float("-inf")  # the next check for jobs to burst (ControlService.burst)
        service.wake = self._wake.set
        service.explainer = self.explain
        service.commitments = lambda now, prices: budget.committed(self.snapshotter.running(), now, prices)
        service.pending_order = lambda: self.rounds.order  # the dashboard's queue view, with:
        service.explain_many = self.explain_many
        service.scheduler_stats = lambda: {"cycles": self.cycles, "placed": self.placed, "evicted": self.evicted}
        self.after_cycle: list[Callable[[], None]] = []  # told after each cycle that decided (the autoscaler)

    @property
    def cycles(self) -> int:
        return self.rounds.cycles

    @property
    def history(self) -> dict[str, dict[str, float]]:
        return self.rounds.history

    def _accrue(self, now: float) -> None:
        state = self.service.state
        self.rounds.accrue(now, {**state.queue_usage, **state.user_usage})
        if now - self._saved_at >= SAVE_HISTORY_EVERY:
            state.put_record(HISTORY, {"at": now, "history": self.rounds.history})
            self._saved_at = now

    def cycle(self, monotonic: float = 0.0) -> int:
        state = self.service.state
        now = self.service.clock.now()
        self._accrue(now)
        rounds = self.rounds
        if not state.pending:
            rounds.idle()
            return 0
        started = time.perf_counter()
        self.service.redecide_due()  # federated jobs whose delay ended: decided again before this cycle
        if now >= self._burst_at:  # jobs waiting too long in a queueing member's queue: burst elsewhere
            self._burst_at = now + BURST_EVERY_S
            candidates = self.service.burst_candidates()
            if candidates:
                self.service.burst(self.explain_many(candidates))
        snap = self._snapshot(now, holds=rounds.holds)
        plan = rounds.plan(snap, self._versions(), monotonic)
        if plan is None:
            return 0
        self.service.verdicts = rounds.verdicts
        self._note_held(plan)
        views = {j.id: j for j in snap.pending} if plan.assignments else {}
        jobs = [lifecycle.assign(state.jobs[a.job_id], a.placements, estimate=views[a.job_id].runtime_estimate_s, at=now)
                for a in plan.assignments]
        stops = [lifecycle.preempt(state.jobs[e.job_id], f"{e.reason} (scheduling cycle {rounds.cycles})",
                                   handover=e.handover) for e in plan.evictions]
        state.update_jobs(jobs + [job for job, _ in stops])
        handed: dict[str, list] = {}  # preemptor -> the victims it takes over on the fast path
        for e, stop in zip(plan.evictions, stops, strict=True):
            if e.handover:
                handed.setdefault(e.preemptor, []).append(stop)
        for job in jobs:
            self.hub.start(job, handed.get(job.id, ()))
        for e, (job, placements) in zip(plan.evictions, stops, strict=True):
            if not e.handover:
                self.hub.stop(job, placements, job.reason)
            self.service.events.emit("handover" if e.handover else "preempted",
                                     f"job {job.id} preempted for {e.preemptor}: {e.reason}", job=job.id, team=job.team)
        self.placed += len(jobs)
        self.evicted += len(stops)
        left = self.snapshotter.nodes()[0] if jobs else snap.nodes
        self.snapshotter.running()  # fold this cycle's own writes in, so they do not count as a change
        rounds.settled(left, self._versions())
        self._instrument(plan, jobs, stops, now, time.perf_counter() - started)
        for listener in self.after_cycle:
            listener()
        return len(jobs)

    def _instrument(self, plan: Plan, placed: list, stops: list, now: float, seconds: float) -> None:
        """Report the cycle to ``/metrics``: its duration, what it placed, whom it preempted."""
        instruments = self.service.instruments
        instruments.cycle(seconds)
        for job in placed:
            instruments.placed(job, now)
        for e, (job, _) in zip(plan.evictions, stops, strict=True):
            instruments.preempted(job, e.handover, now)

    def _versions(self) -> tuple:
        """What a full cycle must follow a change of: who runs where, queues, budgets and prices."""
        return (self.snapshotter.running_version, self.service.state.queues_version, self.service.accountant.version)

    def _snapshot(self, now: float, holds: tuple = ()):
        accountant = self.service.accountant
        budgets = accountant.views(now)
        return self.snapshotter.snapshot(now, seed=self.rounds.cycles, history=self.rounds.history, holds=holds,
                                         budgets=budgets, prices=accountant.prices() if budgets else None)

    def _note_held(self, plan: Plan) -> None:
        """An event the first time a job is held for its team's budget (not at every cycle)."""
        state = self.service.state
        for job_id, verdict in plan.verdicts.items():
            if verdict.plugin == "budget" and job_id not in self._held:
                self._held.add(job_id)
                job = state.jobs[job_id]
                self.service.events.emit("budget-held", f"job {job_id} held: {verdict.reasons[0]}", job=job_id, team=job.team)
        if len(self._held) > 1024:
            self._held = {j for j in self._held if j in state.pending}

    def explain(self, job_id: str) -> Explanation | None:
        """Explain a pending job on a fresh snapshot, with the verdicts, order and reservations of
        the last cycles."""
        rounds = self.rounds
        snap = self._snapshot(self.service.clock.now())
        return explain(snap, self.profile, Plan((), rounds.verdicts, holds=rounds.holds, order=rounds.order), job_id)

    def explain_many(self, job_ids) -> dict[str, Explanation]:
        """``explain`` for many pending jobs on one snapshot (a page of the dashboard's queue view)."""
        rounds = self.rounds
        snap = self._snapshot(self.service.clock.now())
        return explain_many(snap, self.profile, Plan((), rounds.verdicts, holds=rounds.holds, order=rounds.order), job_ids)

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


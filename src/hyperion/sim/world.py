"""The simulated world: a cluster of nodes, the trace's jobs, and the scheduling cycles that place
them, on virtual time.

The world builds the same ``Snapshot`` the live snapshotter builds (node views with their
``NodeIndex`` updated in place of rebuilt, pending and running views, queue usage kept
incrementally, decayed fair-share history) and runs the same ``core.rounds.Rounds`` the live
scheduler loop runs, so a cycle here decides what the live cycle would. It applies each plan by
changing its own state and pushing events:

- ``arrive``: a trace job is submitted (one that no node pool could ever host is counted
  unplaceable and dropped);
- ``finish``: an attempt ran its remaining work (runtime scales with the GPU type's speed; a
  restarted attempt first spends the restart cost);
- ``stopped``: an evicted job's grace period ended: it stops, keeps the work of its last
  checkpoint (every ``checkpoint_interval`` of run time) and is pending again. A job handed
  over to an urgent job (the fast path, ``Evict.handover``) is frozen and releases its resources
  at once; it is pending again when its grace period ends;
- ``down`` / ``up``: a node fails (exponential, ``mtbf``) or is reclaimed (spot series), and its
  jobs stop at once; it comes back after ``repair`` or when the series says available;
- ``sample``: metrics samples; ``cycle``: a scheduling tick when ``schedule_interval`` > 0.

Glossary: *work* is measured in seconds on the trace's GPUs (the reference type); a job on a
GPU ``speed`` times faster does ``speed`` seconds of work per second.
"""

from __future__ import annotations

import math
import random
from dataclasses import replace

from hyperion.core.budget import period_bounds
from hyperion.core.estimates import RuntimeHistory
from hyperion.core.framework import Profile
from hyperion.core.rounds import Rounds
from hyperion.model import JobView, NodeView, Resources, RunningView, Snapshot
from hyperion.model.cost import BudgetView
from hyperion.model.nodeindex import NodeIndex
from hyperion.model.queue import demand
from hyperion.sim.cluster import ClusterModel
from hyperion.sim.engine import Events
from hyperion.sim.metrics import Collector
from hyperion.sim.result import PolicyResult
from hyperion.sim.traces.base import Trace, TraceJob

IDLE_INTERVAL = 60.0  # virtual seconds: a full cycle at least this often while jobs wait


class SimJob:
    __slots__ = ("tj", "id", "queue", "per_replica", "replicas", "gpus", "work_left", "attempt", "attained",
                 "view", "started_at", "run_start", "speed", "ranks", "first_start", "stopping", "estimate",
                 "enqueued_at", "pending_s")

    def __init__(self, tj: TraceJob, per_replica: Resources, replicas: int) -> None:
        self.tj = tj
        self.id = tj.id
        self.queue = tj.team
        self.per_replica = per_replica
        self.replicas = replicas
        self.gpus = per_replica.gpus * replicas
        self.work_left = tj.duration_s
        self.attempt = 0
        self.attained = 0.0
        self.view: JobView | None = None
        self.started_at = 0.0
        self.run_start = 0.0
        self.speed = 1.0
        self.ranks: list[int] = []  # node positions of the current attempt's ranks
        self.first_start: float | None = None
        self.enqueued_at = 0.0  # when it last became pending
        self.pending_s = 0.0    # time pending before its earlier attempts
        self.stopping = False
        self.estimate: float | None = None


def shape(tj: TraceJob, node_gpus: int) -> tuple[Resources, int]:
    """Per-replica resources and replica count: a job wider than the widest node is split into
    equal ranks of the largest size that divides its GPU count and fits a node (unless it must
    run on one node: then it stays whole, and unplaceable)."""
    if tj.gpus <= node_gpus or node_gpus <= 0 or tj.one_node:
        return Resources(tj.gpus, tj.cpus_milli, tj.memory), 1
    g = next(d for d in range(node_gpus, 0, -1) if tj.gpus % d == 0)
    n = tj.gpus // g
    return Resources(g, math.ceil(tj.cpus_milli / n), math.ceil(tj.memory / n)), n


class World:
    def __init__(self, trace: Trace, cluster: ClusterModel, profile: Profile, *, oracle: bool = False,
                 seed: int = 0, start_epoch: float | None = None) -> None:
        self.trace = trace
        self.cluster = cluster
        self.workload = cluster.workload
        self.profile = profile
        self.oracle = oracle
        self.rng = random.Random(seed)
        self.events = Events()
        self.rounds = Rounds(profile, cluster.schedule_interval_s or IDLE_INTERVAL)
        self.history = RuntimeHistory()
        start = trace.start if start_epoch is None else start_epoch
        weights = {name: q.weight for name, q in cluster.queues.items()}
        self.metrics = Collector(cluster, start or 0.0, weights)
        # nodes
        self.views: list[NodeView] = []
        self.pool_of: list[int] = []
        for p, pool in enumerate(cluster.pools):
            cap = Resources(pool.gpus, pool.cpus_milli, pool.memory)
            for k in range(pool.count):
                self.views.append(NodeView(f"{pool.name}-{k + 1}", pool.gpu_type, cap, cap, tuple(range(pool.gpus))))
                self.pool_of.append(p)
            self.metrics.pool_changed(p, 0.0, up=pool.count * pool.gpus)
        self.position = {v.id: i for i, v in enumerate(self.views)}
        self._nodes = tuple(self.views)
        self._index = NodeIndex.build(self._nodes)
        self._changed: set[int] = set()
        self.node_jobs: list[set[str]] = [set() for _ in self.views]
        self.down: set[int] = set()
        # jobs
        self.pending: dict[str, SimJob] = {}
        self.running: dict[str, SimJob] = {}
        self.rviews: dict[str, RunningView] = {}
        self.handed: dict[str, int] = {}  # job id -> attempt handed over to an urgent job, still stopping
        self.running_version = 0
        self.usage: dict[str, dict[str, int]] = {}
        self.user_usage: dict[str, dict[str, int]] = {}
        self.held: dict[str, int] = {}     # team -> GPUs of its running jobs
        self.waiting: dict[str, int] = {}  # team -> GPUs of its pending jobs
        self.remaining = 0
        self.unplaceable = 0
        self.cycles_placed = 0
        self._progress = 0  # arrive/finish/stopped events in the heap
        self._cycle_at: float | None = None
        self._wake_at: float | None = None  # the latest plan's ``wake_at``, when still ahead
        # budgets: USD per second of each running attempt; ended attempts per team that may still
        # overlap a current budget period (start, end, USD/s, GPUs); USD per GPU-hour by GPU type
        self._rate: dict[str, float] = {}
        self._ended: dict[str, list[tuple[float, float, float, int]]] = {}
        self.prices: dict[str, float] = {"cpu": 0.0}
        for pool in cluster.pools:
            if pool.gpus:
                self.prices[pool.gpu_type] = max(self.prices.get(pool.gpu_type, 0.0), pool.cost_per_gpu_hour)
        widest: dict[str | None, int] = {None: max((p.gpus for p in cluster.pools), default=0)}
        for p in cluster.pools:  # a job asking for a GPU type is split for the nodes of that type
            widest[p.gpu_type] = max(widest.get(p.gpu_type, 0), p.gpus)
        for tj in trace.jobs:
            r, n = shape(tj, widest.get(tj.gpu_type, 0))
            job = SimJob(tj, r, n)
            if not self._placeable(job):
                self.unplaceable += 1
                continue
            self.remaining += 1
            self._push(tj.submit_s, "arrive", job)
        self._seed_node_events()
        if self.remaining:
            self.events.push(0.0, "sample")

    # ---- set-up -----------------------------------------------------------------------------
    def _placeable(self, job: SimJob) -> bool:
        want = job.tj.gpu_type
        per_type: dict[str, int] = {}
        for pool in self.cluster.pools:
            if (want is None or pool.gpu_type == want) and job.per_replica.fits_in(
                    Resources(pool.gpus, pool.cpus_milli, pool.memory)):
                per_type[pool.gpu_type] = per_type.get(pool.gpu_type, 0) + pool.count * max(1, pool.gpus // max(1, job.per_replica.gpus))
        return any(slots >= job.replicas for slots in per_type.values())

    def _seed_node_events(self) -> None:
        self._offsets: dict[int, float] = {}  # spot node -> where in its series it starts
        for i, p in enumerate(self.pool_of):
            pool = self.cluster.pools[p]
            if pool.spot is not None:
                self._offsets[i] = self.rng.uniform(0, pool.spot.duration_s)
                self._spot_next(i, 0.0, first=True)
            elif pool.mtbf_s:
                self.events.push(self.rng.expovariate(1.0 / pool.mtbf_s), "down", i)

    def _spot_next(self, i: int, now: float, first: bool = False) -> None:
        """Push spot node ``i``'s next outage from ``now`` on (its series read cyclically from its
        offset): a ``down`` event carrying when the outage ends."""
        series = self.cluster.pools[self.pool_of[i]].spot
        period = series.duration_s
        outages = series.outages()
        if not outages or period <= 0:
            return
        base = now - ((now + self._offsets[i]) % period)  # sim time at which the series' lap began
        for lap in range(3):
            for a, b in outages:
                start, end = base + lap * period + a, base + lap * period + b
                if end > now and (start > now or first):
                    if b == period and outages[0][0] == 0 < outages[0][1] < period:
                        end += outages[0][1]  # the series is read cyclically: it runs on into the next lap's first
                    self.events.push(max(start, now), "down", (i, end))
                    return

    def _push(self, at: float, kind: str, payload) -> None:
        if kind in ("arrive", "finish", "stopped"):
            self._progress += 1
        self.events.push(at, kind, payload)

    # ---- the snapshot -----------------------------------------------------------------------
    def nodes(self) -> tuple[tuple[NodeView, ...], NodeIndex]:
        if self._changed:
            new = tuple(self.views)
            self._index = self._index.updated(self._nodes, new, self._changed)
            self._nodes = new
            self._changed = set()
        return self._nodes, self._index

    def pending_views(self) -> tuple[JobView, ...]:
        """Pending views; a job's runtime estimate follows its user's history as it grows (as the
        live snapshotter's does)."""
        if self.oracle:
            return tuple(j.view for j in self.pending.values())
        estimate = self.history.estimate
        views = []
        for j in self.pending.values():
            if estimate(j.tj.team, j.tj.user) != j.estimate:
                j.view = self._job_view(j)
            views.append(j.view)
        return tuple(views)

    def snapshot(self, now: float) -> Snapshot:
        nodes, index = self.nodes()
        budgets = self._budget_views(now)
        return Snapshot(now, self.rounds.cycles, nodes, self.pending_views(), index,
                        tuple(self.rviews.values()), self.cluster.queues,
                        {q: dict(u) for q, u in self.usage.items()}, self.rounds.history, self.rounds.holds,
                        budgets, self.prices if budgets else {})

    # ---- budgets ------------------------------------------------------------------------------
    def _budget_views(self, now: float) -> tuple[BudgetView, ...]:
        """Each budget with what its team spent in the current period: the cost (pool price per
        GPU-hour) and GPU-hours of ended attempts and of running ones up to now (as the live meter)."""
        if not self.cluster.budgets:
            return ()
        out = []
        oldest: dict[str, float] = {}
        epoch = self.metrics.start_epoch  # periods are UTC days/weeks/months of the trace's dates
        for b in self.cluster.budgets:
            start, end = (t - epoch for t in period_bounds(b.period, epoch + now))
            oldest[b.team] = min(oldest.get(b.team, start), start)
            usd = gpu_s = 0.0
            spans = [(s, e, rate, g) for s, e, rate, g in self._ended.get(b.team, ())]
            spans += [(j.started_at, now, self._rate[j.id], j.gpus) for j in self.running.values() if j.tj.team == b.team]
            for s, e, rate, g in spans:
                overlap = max(0.0, min(e, end) - max(s, start))
                usd += overlap * rate
                gpu_s += overlap * g
            out.append(BudgetView(b.name, b.team, b.period, start, end, b.usd, b.gpu_hours, usd, gpu_s / 3600.0, b.action,
                                  epoch))
        for team, start in oldest.items():  # attempts that ended before every current period count no more
            spans = self._ended.get(team)
            if spans and spans[0][1] < start:
                self._ended[team] = [x for x in spans if x[1] >= start]
        return tuple(out)

    def _job_view(self, job: SimJob) -> JobView:
        tj = job.tj
        est = job.work_left if self.oracle else self.history.estimate(tj.team, tj.user)
        job.estimate = est
        return JobView(job.id, tj.team, job.queue, tj.priority, 0, tj.submit_s, job.per_replica, job.replicas,
                       job.replicas, tj.gpu_type, est, tj.user, job.attained)

    # ---- node changes -----------------------------------------------------------------------
    def _take(self, i: int, r: Resources, gpus: tuple[int, ...]) -> None:
        v = self.views[i]
        taken = set(gpus)
        self.views[i] = NodeView(v.id, v.gpu_type, v.capacity, v.free - r,
                                 tuple(g for g in v.free_gpus if g not in taken), v.schedulable, v.labels)
        self._changed.add(i)

    def _give(self, i: int, r: Resources, gpus: tuple[int, ...]) -> None:
        v = self.views[i]
        self.views[i] = NodeView(v.id, v.gpu_type, v.capacity, v.free + r, tuple(sorted(v.free_gpus + gpus)),
                                 v.schedulable, v.labels)
        self._changed.add(i)

    def _schedulable(self, i: int, ok: bool) -> None:
        v = self.views[i]
        self.views[i] = NodeView(v.id, v.gpu_type, v.capacity, v.free, v.free_gpus, ok, v.labels)
        self._changed.add(i)

    def _charge(self, job: SimJob, gpu_type: str, sign: int) -> None:
        tj = job.tj
        q = self.usage.setdefault(job.queue, {})
        u = self.user_usage.setdefault(f"{job.queue}/{tj.user}", {})
        for key, amount in demand(job.per_replica, gpu_type):
            q[key] = q.get(key, 0) + sign * amount * job.replicas
            u[key] = u.get(key, 0) + sign * amount * job.replicas

    # ---- job lifecycle ----------------------------------------------------------------------
    def arrive(self, job: SimJob, now: float) -> None:
        self._progress -= 1
        self.metrics.submitted_job(job.tj.team, now)
        self._enqueue(job, now)

    def _enqueue(self, job: SimJob, now: float) -> None:
        job.enqueued_at = now
        job.view = self._job_view(job)
        self.pending[job.id] = job
        self.waiting[job.tj.team] = self.waiting.get(job.tj.team, 0) + job.gpus

    def start(self, job: SimJob, placements, now: float) -> None:
        del self.pending[job.id]
        job.view = None
        team = job.tj.team
        self.waiting[team] -= job.gpus
        self.held[team] = self.held.get(team, 0) + job.gpus
        job.ranks = []
        for p in placements:
            i = self.position[p.node_id]
            self._take(i, job.per_replica, p.gpu_indices)
            job.ranks.append(i)
            self.node_jobs[i].add(job.id)
            self.metrics.pool_changed(self.pool_of[i], now, busy=job.per_replica.gpus)
        gpu_type = self.views[job.ranks[0]].gpu_type
        job.attempt += 1
        restart = self.workload.restart_cost_s if job.attempt > 1 else 0.0
        job.speed = self.workload.speedup(gpu_type)
        job.started_at, job.run_start = now, now + restart
        job.stopping = False
        job.pending_s += now - job.enqueued_at
        if job.first_start is None:
            job.first_start = now
            self.metrics.started_first(team, job.tj.submit_s, now)
        self._push(job.run_start + job.work_left / job.speed, "finish", (job, job.attempt))
        est = restart + job.work_left / job.speed if self.oracle else job.estimate
        if self.cluster.budgets:  # USD per second of this attempt, for the teams' budgets
            self._rate[job.id] = sum(self.cluster.pools[self.pool_of[i]].cost_per_gpu_hour * job.per_replica.gpus
                                     for i in job.ranks) / 3600.0
        self.rviews[job.id] = RunningView(job.id, team, job.queue, job.tj.priority, job.per_replica,
                                          tuple((p.node_id, p.gpu_indices) for p in placements), gpu_type, now, est,
                                          0, None, False, job.tj.user, job.attained)
        self.running[job.id] = job
        self.running_version += 1
        self._charge(job, gpu_type, +1)

    def _release(self, job: SimJob, now: float, lost_gpu_s: float, cause: str | None) -> None:
        view = self.rviews.pop(job.id)
        del self.running[job.id]
        self.running_version += 1
        self._charge(job, view.gpu_type, -1)
        team = job.tj.team
        self.held[team] -= job.gpus
        by_pool: dict[int, int] = {}
        for (_, gpus), i in zip(view.placements, job.ranks, strict=True):
            self._give(i, job.per_replica, gpus)
            self.node_jobs[i].discard(job.id)
            p = self.pool_of[i]
            by_pool[p] = by_pool.get(p, 0) + job.per_replica.gpus
            self.metrics.pool_changed(p, now, busy=-job.per_replica.gpus)
        share = lost_gpu_s / job.gpus if job.gpus else 0.0
        for k, (p, gpus) in enumerate(sorted(by_pool.items())):
            self.metrics.attempt_ended(team, p, gpus, job.started_at, now, share * gpus,
                                       cause if k == 0 else None)
        job.attained += job.gpus * (now - job.started_at)
        job.ranks = []
        rate = self._rate.pop(job.id, None)
        if rate is not None:
            self._ended.setdefault(team, []).append((job.started_at, now, rate, job.gpus))

    def finish(self, job: SimJob, attempt: int, now: float) -> None:
        self._progress -= 1
        if job.attempt != attempt or job.id not in self.running:
            return  # an attempt that was stopped before it could finish
        restart = job.run_start - job.started_at
        self._release(job, now, job.gpus * restart, None)
        job.work_left = 0.0
        self.history.record(job.tj.team, job.tj.user, now - job.started_at)
        self.metrics.finished(job.tj.team, job.tj.submit_s, now, job.pending_s)
        self.remaining -= 1

    def evict(self, job_id: str, now: float) -> None:
        """The scheduler evicted the job: it stops when its grace period ends."""
        job = self.running[job_id]
        job.stopping = True
        self.rviews[job_id] = replace(self.rviews[job_id], preempting=True)
        self.running_version += 1
        self._push(now + self.workload.preemption_grace_s, "stopped", (job, job.attempt))

    def hand_over(self, job_id: str, now: float) -> None:
        """The fast path: the scheduler gave the job's resources to an urgent job. The job is frozen
        (it makes no more progress) and released now; it is back in its queue when its grace
        period (its checkpoint) ends."""
        job = self.running[job_id]
        if not job.stopping:
            self._push(now + self.workload.preemption_grace_s, "stopped", (job, job.attempt))
        self._stop_attempt(job, now, "scheduler")
        self.handed[job.id] = job.attempt

    def stopped(self, job: SimJob, attempt: int, now: float, cause: str = "scheduler") -> None:
        if cause == "scheduler":
            self._progress -= 1
        if self.handed.get(job.id) == attempt:  # released at the hand-over; its checkpoint is done
            del self.handed[job.id]
            self._enqueue(job, now)
            return
        if job.attempt != attempt or job.id not in self.running:
            return  # it finished during its grace period
        self._stop_attempt(job, now, cause)
        self._enqueue(job, now)

    def _stop_attempt(self, job: SimJob, now: float, cause: str) -> None:
        """End the running attempt; it keeps the work of its last periodic checkpoint."""
        interval = self.workload.checkpoint_interval_s
        ran = max(0.0, now - job.run_start)
        saved = math.floor(ran / interval) * interval
        job.work_left = max(0.0, job.work_left - saved * job.speed)
        self._release(job, now, job.gpus * (now - job.started_at - saved), cause)

    def node_down(self, i: int, now: float, up_at: float | None) -> None:
        if i in self.down:
            return
        for job_id in sorted(self.node_jobs[i]):
            job = self.running[job_id]
            self.stopped(job, job.attempt, now, cause="node")
        self.down.add(i)
        self._schedulable(i, False)
        pool = self.cluster.pools[self.pool_of[i]]
        self.metrics.pool_changed(self.pool_of[i], now, up=-pool.gpus)
        self.events.push(up_at if up_at is not None else now + pool.repair_s, "up", i)

    def node_up(self, i: int, now: float) -> None:
        self.down.discard(i)
        self._schedulable(i, True)
        pool = self.cluster.pools[self.pool_of[i]]
        self.metrics.pool_changed(self.pool_of[i], now, up=pool.gpus)
        if pool.mtbf_s and pool.spot is None:
            self.events.push(now + self.rng.expovariate(1.0 / pool.mtbf_s), "down", i)

    # ---- the loop ---------------------------------------------------------------------------
    def cycle(self, now: float, full: bool = False) -> None:
        rounds = self.rounds
        usage = {**self.usage, **self.user_usage}
        rounds.accrue(now, usage)
        if not self.pending:
            rounds.idle()
            return
        plan = rounds.plan(self.snapshot(now), (self.running_version,), now, full)
        if plan is None:
            return
        self._wake_at = plan.wake_at if plan.wake_at is not None and plan.wake_at > now else None
        if self._wake_at is not None:  # the plan may change then with nothing else happening
            self.events.push(self._wake_at, "wake", self._wake_at)
        for e in plan.evictions:  # hand-overs free what the plan's assignments take
            if e.handover:
                self.hand_over(e.job_id, now)
        for a in plan.assignments:
            self.start(self.pending[a.job_id], a.placements, now)
        for e in plan.evictions:
            if not e.handover:
                self.evict(e.job_id, now)
        self.cycles_placed += bool(plan.assignments)
        rounds.settled(self.nodes()[0], (self.running_version,))

    def result(self, policy: str, wall_s: float) -> PolicyResult:
        """What the run measured, with the world's own counts (jobs never placed or never started,
        scheduling cycles)."""
        return self.metrics.result(policy, self.events.now, wall_s, self.events.processed, {
            "jobs_unfinished": float(self.remaining), "jobs_unplaceable": float(self.unplaceable),
            "cycles": float(self.rounds.cycles)})

    def _done(self) -> bool:
        if self.remaining <= 0:
            return True
        # nothing left that could change anything: jobs still pending can never start (a cycle
        # still due, with schedule_interval > 0, may yet start them)
        # (nor a wake-up: a budget's next period may admit held jobs)
        return (self._progress == 0 and not self.running and not self.down and self._cycle_at is None
                and self._wake_at is None)

    def step(self) -> bool:
        """Process the events of the next instant and schedule; False when the run is over."""
        if not self.events or self._done():
            return False
        changed = False
        now = self.events.next_time()
        for kind, payload in self.events.batch():
            if kind == "arrive":
                self.arrive(payload, now)
            elif kind == "finish":
                self.finish(payload[0], payload[1], now)
            elif kind == "stopped":
                self.stopped(payload[0], payload[1], now)
            elif kind == "down":
                if isinstance(payload, tuple):
                    self.node_down(payload[0], now, payload[1])
                else:
                    self.node_down(payload, now, None)
            elif kind == "up":
                self.node_up(payload, now)
                if payload in self._offsets:
                    self._spot_next(payload, now)
            elif kind == "sample":
                self.metrics.sample(now, len(self.pending), self.held, self.waiting)
                if self.remaining > 0:
                    self.events.push(now + self.cluster.sample_interval_s, "sample")
                continue
            elif kind == "cycle":
                self._cycle_at = None
                self.cycle(now)
                continue
            elif kind == "wake":
                if payload == self._wake_at:  # not superseded by a later cycle's plan
                    self.cycle(now, full=True)
                continue
            changed = True
        if changed:
            interval = self.cluster.schedule_interval_s
            if interval <= 0:
                self.cycle(now)
            elif self._cycle_at is None:
                self._cycle_at = math.ceil(now / interval) * interval
                self.events.push(self._cycle_at, "cycle")
        return True

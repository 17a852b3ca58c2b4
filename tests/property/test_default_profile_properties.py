"""Properties of ``schedule`` with the default profile (quota, fair share, preemption, backfill)
over random clusters, queues, running and pending jobs, under the default options and a few
other option combinations (drawn with the example, so every test covers all of them).

A generated ``World`` is a plain description (node builders, running-job builders, pending-job
builders, queue specs, carried holds) from which snapshots are built, so a test can rebuild the
cluster without some running jobs or with only some pending jobs.
"""

from __future__ import annotations

import dataclasses
from collections import Counter, defaultdict
from dataclasses import dataclass

from hypothesis import example, given, settings
from hypothesis import strategies as st

from hyperion.core import PROFILES, schedule
from hyperion.core.framework import Profile
from hyperion.core.ledger import Ledger
from hyperion.model import Hold, JobView, NodeView, Plan, Priority, QueueSpec, Resources, Snapshot, VerdictCode
from hyperion.model.queue import demand, gpu_key
from hyperion.testing.builders import JobBuilder, NodeBuilder, RunningBuilder, a_job, a_node, a_queue, a_snapshot
from hyperion.testing.checks import assert_no_overcommit

GiB = 2**30
NOW = 1000.0
GPU_TYPES = ("A100", "H100")
GPU_KEYS = tuple(gpu_key(t) for t in GPU_TYPES)
INF = float("inf")
FIRST_FIT = PROFILES["first-fit"]()

OPTION_SETS: tuple[dict, ...] = (
    {},
    {"victim_order": "cheapest-first"},
    {"reclaim_priority": "lower"},
    {"reclaim_priority": "any"},
    {"cross_queue_class_preemption": "never"},
    {"cross_queue_class_preemption": "latency-critical"},
    {"share_basis": "borrowed", "share_order": "after-admission"},
    {"lend_while_pending": False},
    {"victim_order": "cheapest-first", "reclaim_priority": "lower", "cross_queue_class_preemption": "never",
     "share_basis": "borrowed", "share_order": "after-admission", "lend_while_pending": False},
)
PROFILE_LIST = tuple(PROFILES["default"](**o) for o in OPTION_SETS)
profiles = st.sampled_from(PROFILE_LIST)  # shrinks towards the plain default profile
BATCH, LC, ULL = Priority.BATCH, Priority.LATENCY_CRITICAL, Priority.ULTRA_LOW_LATENCY
CLASSES = st.sampled_from([BATCH, BATCH, BATCH, LC, ULL])
BUSY_RUNNING = st.sampled_from([BATCH, BATCH, BATCH, LC])
BUSY_PENDING = st.sampled_from([BATCH, LC, LC, ULL])
ONLY_BATCH = st.just(BATCH)
RUNNING_RUNTIMES = st.none() | st.sampled_from([50.0, 200.0, 300.0, 1000.0, 3000.0])


@dataclass(frozen=True)
class World:
    nodes: tuple[NodeBuilder, ...]
    queues: tuple[QueueSpec, ...]
    running: tuple[RunningBuilder, ...]
    pending: tuple[JobBuilder, ...]
    holds: tuple[Hold, ...] = ()
    history: tuple[tuple[str, tuple[tuple[str, float], ...]], ...] = ()

    def snapshot(self, drop: frozenset[str] | set[str] = frozenset(), pending: tuple[JobBuilder, ...] | None = None,
                 holds: tuple[Hold, ...] | None = None) -> Snapshot:
        """The snapshot of this world, without the running jobs named in ``drop``."""
        return a_snapshot(nodes=self.nodes, pending=self.pending if pending is None else pending, now=NOW, seed=7,
                          running=[r for r in self.running if r.job.id not in drop], queues=self.queues,
                          history={k: dict(v) for k, v in self.history},
                          holds=self.holds if holds is None else holds)


@st.composite
def worlds(draw) -> World:
    # nodes: 1-6, two GPU types, 0-8 GPUs, a few cordoned
    nodes = []
    for i in range(draw(st.integers(1, 6))):
        n = (a_node(f"n{i}").gpus(draw(st.sampled_from([4, 8, 8]) | st.integers(0, 8))).gpu_type(draw(st.sampled_from(GPU_TYPES)))
             .cpus(draw(st.sampled_from([8, 32, 64, 64]))).memory(draw(st.sampled_from([64, 128, 512])) * GiB))
        if draw(st.integers(0, 9)) == 0:
            n = n.unschedulable()
        nodes.append(n)

    # queues: 0-3, maybe all in one cohort, random GPU quotas, limits and weights
    names = [f"q{i}" for i in range(draw(st.sampled_from([0, 1, 2, 2, 3, 3])))]
    # a contended cohort: q0 runs on what it borrows from q1, whose jobs are pending (reclaim)
    contended = len(names) >= 2 and draw(st.integers(0, 2)) == 0
    cohort = "lab" if contended else draw(st.sampled_from([None, "lab", "lab", "mixed"]))
    queues = []
    for k, name in enumerate(names):
        q = a_queue(name).weight(draw(st.sampled_from([1.0, 1.0, 2.0, 3.0])))
        if cohort == "lab" or (cohort == "mixed" and k % 2 == 0):
            q = q.cohort("lab")
        if contended and k < 2:  # q0 small, q1 large
            per_type = {t: draw(st.integers(0, 2) if k == 0 else st.integers(2, 12)) for t in GPU_TYPES}
            q = q.gpus(**per_type)
            if k == 0 and draw(st.booleans()):
                q = q.borrowing_limit(**{t: draw(st.integers(4, 16)) for t in per_type})
        elif draw(st.integers(0, 4)):  # mostly with a GPU quota; else unlimited
            per_type = {t: draw(st.integers(0, 8)) for t in GPU_TYPES if draw(st.booleans()) or t == "A100"}
            q = q.gpus(**per_type)
            if draw(st.booleans()):
                q = q.borrowing_limit(**{t: draw(st.integers(0, 4)) for t in per_type})
            if draw(st.booleans()):
                q = q.lending_limit(**{t: draw(st.integers(0, n)) for t, n in per_type.items()})
        queues.append(q.build())
    queue_names = names + ["default"]
    running_queues = ["q0", "q0", "q0", "q1"] if contended else queue_names
    pending_queues = ["q1", "q1", "q0", "default"] if contended else queue_names

    # running jobs, placed on nodes of one GPU type; those that do not fit are dropped. In a busy
    # world the cluster is fuller and pending jobs outrank running ones (preemption); in a
    # backfill world every job is batch, most have runtime estimates and pending jobs are small
    mode = draw(st.sampled_from(["mixed", "busy", "backfill"]))
    busy, backfill = mode == "busy", mode == "backfill"
    running_classes, pending_classes = {"busy": (BUSY_RUNNING, BUSY_PENDING), "backfill": (ONLY_BATCH, ONLY_BATCH)}.get(
        mode, (CLASSES, CLASSES))
    running_runtimes = st.sampled_from([200.0, 300.0, 1000.0]) if backfill else RUNNING_RUNTIMES
    free = {n.id: [n.gpus_, n.cpus_milli_, n.memory_] for n in nodes}
    running = []
    for i in range(draw(st.integers(6 if busy or backfill else 0, 12))):
        job = (a_job(f"r{i}").gpus(draw(st.sampled_from([0, 1, 2, 2, 4, 4, 8]))).cpus(draw(st.integers(1, 8)))
               .memory(draw(st.integers(1, 16)) * GiB).queue(draw(st.sampled_from(running_queues)))
               .priority(draw(running_classes), draw(st.integers(0, 2)))
               .runtime(draw(running_runtimes))
               .user(draw(st.sampled_from(["u0", "u1"]))))
        t = draw(st.sampled_from(GPU_TYPES))
        of_type = [n.id for n in nodes if n.gpu_type_ == t]  # cordoned nodes too: cordoning does not stop jobs
        if not of_type:
            continue
        on = draw(st.lists(st.sampled_from(of_type), min_size=1, max_size=3))  # a gang may have ranks on one node
        r = job.per_replica
        need: Counter[str] = Counter(on)
        if not all(free[n][0] >= r.gpus * c and free[n][1] >= r.cpus_milli * c and free[n][2] >= r.memory * c
                   for n, c in need.items()):
            continue
        for n, c in need.items():
            free[n][0] -= r.gpus * c
            free[n][1] -= r.cpus_milli * c
            free[n][2] -= r.memory * c
        started = draw(st.sampled_from([0.0, 500.0, 900.0, 990.0, NOW]) | st.none() | st.floats(0, NOW))
        checkpoint = None if started is None else draw(st.none() | st.floats(started, NOW))
        running.append(job.replicas(len(on)).running_on(*on, started=started, checkpoint=checkpoint,
                                                        preempting=not backfill and draw(st.integers(0, 4)) == 0))

    # pending jobs
    pending = []
    for i in range(draw(st.integers(4 if backfill else 1, 10))):
        replicas = draw(st.integers(1, 2 if backfill else 4))
        gpus = draw(st.sampled_from([1, 1, 2, 4] if backfill else [0, 1, 1, 2, 2, 4, 8]))
        job = (a_job(f"p{i}").gpus(gpus).cpus(draw(st.integers(1, 4) | st.integers(1, 16)))
               .memory(draw(st.integers(1, 16) | st.integers(1, 64)) * GiB).queue(draw(st.sampled_from(pending_queues)))
               .priority(draw(pending_classes), draw(st.integers(0, 2)))
               .gpu_type(draw(st.sampled_from([None, None, *GPU_TYPES])))
               .runtime(draw(st.sampled_from([30.0, 100.0, 100.0, 500.0, 2000.0]) | st.none()))
               .submitted(float(draw(st.integers(0, 20)))).user(draw(st.sampled_from(["", "u0", "u1"]))))
        job = job.replicas(replicas)
        if draw(st.booleans()):
            job = dataclasses.replace(job, min_available_=draw(st.integers(1, replicas)))
        pending.append(job)

    # a hold carried from an earlier cycle, for a job not pending now
    holds = []
    if not backfill and draw(st.integers(0, 3)) == 0:  # (a carried hold stops the cycle making one)
        on = draw(st.lists(st.sampled_from([n.id for n in nodes]), min_size=1, max_size=2, unique=True))
        amounts = tuple((n, Resources(draw(st.integers(0, 4)), draw(st.integers(0, 8)) * 1000, draw(st.integers(0, 32)) * GiB))
                        for n in on)
        holds.append(Hold("carried", draw(st.none() | st.sampled_from([NOW + 100.0, NOW + 1000.0])), amounts))

    history = []
    if draw(st.booleans()):
        for name in queue_names:
            history.append((name, (("gpus/A100", float(draw(st.integers(0, 10**6)))),)))
            history.append((f"{name}/u0", (("gpus/A100", float(draw(st.integers(0, 10**6)))),)))
    return World(tuple(nodes), tuple(queues), tuple(running), tuple(pending), tuple(holds), tuple(history))


# ---- helpers ----------------------------------------------------------------------------------
def jobs_of(snapshot: Snapshot) -> dict[str, JobView]:
    return {j.id: j for j in snapshot.pending}


def add(usage: dict, queue: str, r: Resources, gpu_type: str, sign: int = 1) -> None:
    for key, amount in demand(r, gpu_type):
        usage[queue][key] += sign * amount


def usage_before(snapshot: Snapshot) -> dict[str, dict[str, int]]:
    """What the running jobs that are not being stopped hold, per queue and key."""
    usage: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for v in snapshot.running:
        if not v.preempting:
            for _ in v.placements:
                add(usage, v.queue, v.per_replica, v.gpu_type)
    return usage


def usage_after(snapshot: Snapshot, plan: Plan) -> dict[str, dict[str, int]]:
    """Usage once the plan is applied: running jobs not stopping nor evicted, plus assignments."""
    usage = usage_before(snapshot)
    gone = {e.job_id for e in plan.evictions}
    for v in snapshot.running:
        if v.id in gone:
            for _ in v.placements:
                add(usage, v.queue, v.per_replica, v.gpu_type, -1)
    nodes, jobs = {n.id: n for n in snapshot.nodes}, jobs_of(snapshot)
    for a in plan.assignments:
        job = jobs[a.job_id]
        for p in a.placements:
            add(usage, job.queue, job.per_replica, nodes[p.node_id].gpu_type)
    return usage


limit_of = Ledger.limit  # nominal + borrowing limit (no cohort: nominal); None: not governed


def guaranteed(snapshot: Snapshot, profile: Profile) -> dict[str, dict[str, int]]:
    """Per queue and listed key, the part of the nominal quota that is not lent this cycle."""
    keep = set() if profile.option("lend_while_pending") else {j.queue for j in snapshot.pending}
    return {name: {k: (v if name in keep else spec.guaranteed_of(k)) for k, v in spec.nominal}
            for name, spec in snapshot.queues.items()}


def pools(snapshot: Snapshot, profile: Profile) -> dict[str, dict[str, int]]:
    g = guaranteed(snapshot, profile)
    out: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for name, spec in snapshot.queues.items():
        if spec.cohort:
            for k, v in spec.nominal:
                out[spec.cohort][k] += v - g[name][k]
    return out


def pool_used(snapshot: Snapshot, profile: Profile, usage, cohort: str, key: str) -> int:
    g = guaranteed(snapshot, profile)
    return sum(max(0, usage[name][key] - g[name].get(key, 0)) for name, spec in snapshot.queues.items()
               if spec.cohort == cohort and spec.nominal_of(key) is not None)


def quota_never_holds(snapshot: Snapshot, profile: Profile, job: JobView) -> bool:
    """The job's queue could never hold ``min_available`` replicas on any GPU type it may use."""
    spec = snapshot.queues.get(job.queue)
    if spec is None or not job.per_replica.gpus:
        return False
    types = [job.gpu_type] if job.gpu_type else sorted({n.gpu_type for n in snapshot.nodes if n.schedulable})
    pool, g = pools(snapshot, profile), guaranteed(snapshot, profile)

    def never(t: str) -> bool:
        key = gpu_key(t)
        cap = limit_of(spec, key)
        if cap is None:
            return False
        if spec.cohort:
            cap = min(cap, g[job.queue].get(key, 0) + pool[spec.cohort][key])
        return job.per_replica.gpus * job.min_available > cap

    return bool(types) and all(never(t) for t in types)


def fits_empty(job: JobView, node: NodeView) -> bool:
    return job.per_replica.fits_in(node.capacity) and (not job.gpu_type or node.gpu_type == job.gpu_type)


def ends_by(job: JobView, until: float | None) -> bool:
    """Whether a hold until ``until`` lets the job take held resources."""
    return until is not None and job.runtime_estimate_s is not None and NOW + job.runtime_estimate_s <= until


# ---- properties ---------------------------------------------------------------------------------
@settings(max_examples=200, deadline=None)
@given(worlds(), profiles)
def test_no_node_is_over_committed_and_gpus_are_free_and_distinct(world: World, profile: Profile):
    snapshot = world.snapshot()
    assert_no_overcommit(snapshot, schedule(snapshot, profile))


@settings(max_examples=200, deadline=None)
@given(worlds(), profiles)
def test_gangs_are_all_or_nothing_on_allowed_nodes(world: World, profile: Profile):
    snapshot = world.snapshot()
    plan = schedule(snapshot, profile)
    by_id, jobs = {n.id: n for n in snapshot.nodes}, jobs_of(snapshot)
    for a in plan.assignments:
        job = jobs[a.job_id]
        assert job.min_available <= len(a.placements) <= job.replicas, (job, a)
        assert sorted(p.rank for p in a.placements) == list(range(len(a.placements)))
        types = {by_id[p.node_id].gpu_type for p in a.placements}
        assert len(types) == 1, f"{job.id} spans GPU types {types}"
        assert not job.gpu_type or types == {job.gpu_type}
        assert all(by_id[p.node_id].schedulable for p in a.placements)


@settings(max_examples=200, deadline=None)
@given(worlds(), profiles)
def test_quota_holds_after_the_plan(world: World, profile: Profile):
    """Each governed key of each queue ends within nominal + borrowing limit, and each cohort's
    lent total within its pool, unless it was already above before the cycle (and then it does
    not grow)."""
    snapshot = world.snapshot()
    plan = schedule(snapshot, profile)
    before, after = usage_before(snapshot), usage_after(snapshot, plan)
    for name, spec in snapshot.queues.items():
        for key in GPU_KEYS:
            limit = limit_of(spec, key)
            if limit is not None:
                assert after[name][key] <= max(before[name][key], limit), (name, key, before[name][key], after[name][key], limit)
    pool = pools(snapshot, profile)
    for cohort in {s.cohort for s in snapshot.queues.values() if s.cohort}:
        for key in GPU_KEYS:
            was, now = (pool_used(snapshot, profile, u, cohort, key) for u in (before, after))
            assert now <= max(was, pool[cohort][key]), (cohort, key, was, now, pool[cohort][key])


@settings(max_examples=250, deadline=None)
@given(worlds(), profiles)
def test_evictions_follow_the_class_and_reclaim_rules(world: World, profile: Profile):
    snapshot = world.snapshot()
    plan = schedule(snapshot, profile)
    running, jobs = {v.id: v for v in snapshot.running}, jobs_of(snapshot)
    assigned = {a.job_id for a in plan.assignments}
    ids = [e.job_id for e in plan.evictions]
    assert len(ids) == len(set(ids)), f"a job evicted twice: {ids}"
    # an upper bound of what each queue holds at any moment of the cycle: what it held, plus all
    # it is assigned, plus what its preemptors (those waiting only on jobs already stopping too)
    # reserve (up to all replicas, on either GPU type)
    most = usage_before(snapshot)
    nodes = {n.id: n for n in snapshot.nodes}
    for a in plan.assignments:
        job = jobs[a.job_id]
        for p in a.placements:
            add(most, job.queue, job.per_replica, nodes[p.node_id].gpu_type)
    for pid in {e.preemptor for e in plan.evictions} | {k for k, v in plan.verdicts.items() if v.plugin == "preemption"}:
        job = jobs[pid]
        for t in GPU_TYPES:
            add(most, job.queue, job.per_replica.scaled(job.replicas), t)

    def may_borrow(queue: str) -> bool:
        spec = snapshot.queues.get(queue)
        return bool(spec and spec.cohort) and any(
            spec.nominal_of(k) is not None and most[queue][k] > spec.nominal_of(k) for k in GPU_KEYS)

    cross = {"ultra-low-latency": Priority.ULTRA_LOW_LATENCY, "latency-critical": Priority.LATENCY_CRITICAL,
             "never": None}[profile.option("cross_queue_class_preemption")]
    for e in plan.evictions:
        assert e.job_id in running, f"evicted {e.job_id} is not running"
        v = running[e.job_id]
        assert not v.preempting or e.handover, f"{v.id} was already being stopped"
        p = jobs[e.preemptor]
        if e.handover:  # the fast path: placed on its victims' resources in this very plan
            assert p.id in assigned and p.priority >= Priority.ULTRA_LOW_LATENCY, e
        else:
            assert e.preemptor not in assigned, e
            assert p.id in plan.verdicts and "preemption: waiting" in plan.verdicts[p.id].reasons[-1]
        if v.preempting:  # already being stopped (for another job): taking over what it frees stops no one,
            continue      # so the class and queue rules of choosing victims do not apply
        cohort = snapshot.queues[p.queue].cohort if p.queue in snapshot.queues else None
        same_cohort = cohort is not None and v.queue in snapshot.queues and snapshot.queues[v.queue].cohort == cohort
        rule = profile.option("reclaim_priority")
        if v.priority > p.priority:  # only by reclaim with "any" (documented as breaking the class rule)
            assert rule == "any", f"{p.id} ({p.priority.label}) evicted higher-class {v.id} ({v.priority.label})"
            assert v.queue != p.queue and same_cohort and may_borrow(v.queue), e
        elif v.priority == p.priority:  # only by reclaim
            assert rule != "lower", e
            assert v.queue != p.queue and same_cohort and may_borrow(v.queue), e
        elif v.queue != p.queue:  # lower class of another queue: a borrower, or class preemption across quota
            assert may_borrow(v.queue) or (cross is not None and p.priority >= cross), e


@settings(max_examples=150, deadline=None)
@given(worlds(), profiles)
def test_no_preemption_in_vain(world: World, profile: Profile):
    """Each preemptor, alone on the cluster without the jobs this plan evicts and those already
    stopping, is placed. (Without every evicted job, not only its own victims: the cycle gives
    back the quota of every job it chose to evict, and a later preemptor may count on the quota
    an earlier one's victims free beyond what that one reserves.)"""
    snapshot = world.snapshot()
    plan = schedule(snapshot, profile)
    gone = {e.job_id for e in plan.evictions} | {v.id for v in snapshot.running if v.preempting}
    builders = {b.id: b for b in world.pending}
    for pid in dict.fromkeys(e.preemptor for e in plan.evictions):
        alone = world.snapshot(drop=gone, pending=(builders[pid],), holds=())
        again = schedule(alone, profile)
        assert [a.job_id for a in again.assignments] == [pid], (pid, gone, again.verdicts)


def after(snapshot: Snapshot, plan: Plan) -> tuple[NodeView, ...]:
    """The nodes once the plan is applied and its victims (and the jobs already stopping) have
    stopped: running jobs that stay and the plan's assignments hold their resources."""
    jobs = jobs_of(snapshot)
    gone = {e.job_id for e in plan.evictions} | {v.id for v in snapshot.running if v.preempting}
    taken: dict[str, list[tuple[Resources, tuple[int, ...]]]] = defaultdict(list)
    for v in snapshot.running:
        if v.id not in gone:
            for n, g in v.placements:
                taken[n].append((v.per_replica, g))
    for a in plan.assignments:
        for p in a.placements:
            taken[p.node_id].append((jobs[a.job_id].per_replica, p.gpu_indices))
    nodes = []
    for n in snapshot.nodes:
        free, busy = n.capacity, set()
        for r, g in taken[n.id]:
            free, busy = free - r, busy | set(g)
        nodes.append(NodeView(n.id, n.gpu_type, n.capacity, free, tuple(i for i in range(n.capacity.gpus) if i not in busy),
                              n.schedulable, n.labels))
    return tuple(nodes)


# regressions: p evicts v to make room for 8 GPUs, counting on the 4 free ones, which q (after p)
# took; p1 and p2 both counted on the same 4 free GPUs (each evicting a job of its own)
ROOM_TAKEN = World(nodes=(a_node("n0").gpus(8),), queues=(),
                   running=(a_job("v").gpus(4).running_on("n0", started=0.0),),
                   pending=(a_job("p").gpus(8).priority(LC), a_job("q").gpus(4).priority(LC).submitted(5)))
ROOM_SHARED = World(nodes=(a_node("n0").gpus(8),), queues=(),
                    running=(a_job("v1").gpus(2).running_on("n0", started=0.0), a_job("v2").gpus(2).running_on("n0", started=0.0)),
                    pending=(a_job("p1").gpus(6).priority(LC), a_job("p2").gpus(6).priority(LC).submitted(5)))


@settings(max_examples=150, deadline=None)
@example(ROOM_TAKEN, PROFILE_LIST[0])
@given(worlds(), profiles)
def test_preemptors_fit_once_the_plan_is_applied_and_victims_stopped(world: World, profile: Profile):
    """The next cycle's view: the plan's assignments run, its victims have stopped; each
    preemptor alone then fits (first fit: capacity only)."""
    snapshot = world.snapshot()
    plan = schedule(snapshot, profile)
    nodes, jobs = after(snapshot, plan), jobs_of(snapshot)
    for pid in dict.fromkeys(e.preemptor for e in plan.evictions if not e.handover):  # others are placed
        again = schedule(Snapshot(NOW, 0, nodes, (jobs[pid],)), FIRST_FIT)
        assert [a.job_id for a in again.assignments] == [pid], (pid, plan.assignments, plan.evictions)


@settings(max_examples=200, deadline=None)
@example(ROOM_SHARED, PROFILE_LIST[0])
@given(worlds(), profiles)
def test_nominations_fit_together_beside_the_assignments(world: World, profile: Profile):
    """A nomination holds free capacity a preemptor counts on besides its victims: on every node,
    what the snapshot has free less the plan's assignments covers all nominations at once (two
    preemptors never count on the same free GPUs)."""
    snapshot = world.snapshot()
    plan = schedule(snapshot, profile)
    preemptors = {e.preemptor for e in plan.evictions}
    free, jobs = {n.id: n.free for n in snapshot.nodes}, jobs_of(snapshot)
    handed = {e.job_id for e in plan.evictions if e.handover}
    for v in snapshot.running:  # what the fast path's victims held went to their preemptors
        if v.id in handed:
            for node_id, _ in v.placements:
                free[node_id] = free[node_id] + v.per_replica
    for a in plan.assignments:
        for p in a.placements:
            free[p.node_id] = free[p.node_id] - jobs[a.job_id].per_replica
    nominated: dict[str, Resources] = defaultdict(Resources)
    for h in plan.holds:
        if h.kind == "nomination":
            assert h.job_id in jobs and h.job_id not in {a.job_id for a in plan.assignments}, h
            assert h.job_id in preemptors or "preemption: waiting" in plan.verdicts[h.job_id].reasons[-1], h
            for node_id, amount in h.amounts:
                nominated[node_id] = nominated[node_id] + amount
    for node_id, amount in nominated.items():
        assert amount.fits_in(free[node_id]), f"{node_id}: {amount} nominated, {free[node_id]} left free"


@settings(max_examples=200, deadline=None)
@given(worlds(), profiles)
def test_every_pending_job_has_one_outcome_and_unresolvable_is_honest(world: World, profile: Profile):
    snapshot = world.snapshot()
    plan = schedule(snapshot, profile)
    assigned = [a.job_id for a in plan.assignments]
    assert len(assigned) == len(set(assigned))
    assert not set(assigned) & set(plan.verdicts)
    assert set(assigned) | set(plan.verdicts) == set(jobs_of(snapshot))
    assert sorted(plan.order) == sorted(jobs_of(snapshot))
    jobs = jobs_of(snapshot)
    for job_id, verdict in plan.verdicts.items():
        assert verdict.code in (VerdictCode.UNSCHEDULABLE, VerdictCode.UNRESOLVABLE)
        assert verdict.reasons
        job = jobs[job_id]
        hostable = any(fits_empty(job, n) for n in snapshot.nodes)
        if not hostable:
            assert verdict.code is VerdictCode.UNRESOLVABLE, (job, verdict)
        if verdict.code is VerdictCode.UNRESOLVABLE:
            assert not hostable or quota_never_holds(snapshot, profile, job), (job, verdict)


@settings(max_examples=150, deadline=None)
@given(worlds(), profiles, st.randoms(use_true_random=False))
def test_same_snapshot_gives_the_same_plan_whatever_the_listing_order(world: World, profile: Profile, rnd):
    snapshot = world.snapshot()
    plan = schedule(snapshot, profile)
    assert schedule(snapshot, profile) == plan
    pending, running, queues = list(snapshot.pending), list(snapshot.running), list(snapshot.queues.items())
    rnd.shuffle(pending)
    rnd.shuffle(running)
    rnd.shuffle(queues)
    shuffled = dataclasses.replace(snapshot, pending=tuple(pending), running=tuple(running), queues=dict(queues))
    again = schedule(shuffled, profile)
    assert again.assignments == plan.assignments
    assert again.evictions == plan.evictions
    assert again.holds == plan.holds
    assert again.order == plan.order
    assert {k: v.code for k, v in again.verdicts.items()} == {k: v.code for k, v in plan.verdicts.items()}


@settings(max_examples=200, deadline=None)
@given(worlds(), profiles)
def test_jobs_that_would_delay_a_reservation_never_take_held_resources(world: World, profile: Profile):
    """After the last replica placed on a node by a job a hold applies to (one considered after
    the hold was made whose runtime estimate does not end by the hold's ``until``), that node
    still has at least the held amount free."""
    snapshot = world.snapshot()
    plan = schedule(snapshot, profile)
    by_id, jobs = {n.id: n for n in snapshot.nodes}, jobs_of(snapshot)
    rank = {job_id: k for k, job_id in enumerate(plan.order)}
    running = {v.id: v for v in snapshot.running}
    handed: dict[tuple[str, str], Resources] = defaultdict(Resources)  # (preemptor, node): what its victims freed
    for e in plan.evictions:
        if e.handover:
            for node_id, _ in running[e.job_id].placements:
                handed[e.preemptor, node_id] = handed[e.preemptor, node_id] + running[e.job_id].per_replica
    for hold in plan.holds:
        start = rank.get(hold.job_id, -1)  # carried holds apply to every job of the cycle
        for node_id, amount in hold.amounts:
            free, checked = by_id[node_id].free, None
            for a in plan.assignments:
                job = jobs[a.job_id]
                free = free + handed.get((a.job_id, node_id), Resources())
                for p in a.placements:
                    if p.node_id != node_id:
                        continue
                    free = free - job.per_replica
                    if rank[a.job_id] > start and not ends_by(job, hold.until):
                        checked = (job.id, free)
            if checked is not None:
                assert amount.fits_in(checked[1]), f"{checked[0]} left {checked[1]} on {node_id}, held {amount} for {hold}"


@settings(max_examples=200, deadline=None)
@given(worlds(), profiles)
def test_a_reserved_job_fits_at_its_reserved_time(world: World, profile: Profile):
    """At ``until`` (running jobs ending by then, jobs being stopped or evicted, and assignments
    ending by then all gone), the reserved job fits (first fit, quota ignored). ``until`` None
    means once every job placed before the reservation has ended, estimate or not; jobs placed
    after it still hold theirs."""
    snapshot = world.snapshot()
    plan = schedule(snapshot, profile)
    jobs = jobs_of(snapshot)
    rank = {job_id: k for k, job_id in enumerate(plan.order)}
    gone = {e.job_id for e in plan.evictions}
    for hold in plan.holds:
        if hold.job_id not in jobs or hold.kind != "reservation":
            continue  # carried: the job is not in this snapshot; nominations: see above
        until = INF if hold.until is None else hold.until
        job = jobs[hold.job_id]
        taken: dict[str, list[tuple[Resources, tuple[int, ...]]]] = defaultdict(list)
        for v in snapshot.running:
            end = INF if v.expected_end is None else max(v.expected_end, NOW)
            if v.preempting or v.id in gone or end <= until:
                continue
            for n, g in v.placements:
                taken[n].append((v.per_replica, g))
        for a in plan.assignments:
            j = jobs[a.job_id]
            end = INF if j.runtime_estimate_s is None else NOW + j.runtime_estimate_s
            if end <= until and rank[a.job_id] < rank[job.id]:
                continue  # placed before the reservation was made, and gone by then
            if end <= until and hold.until is not None:
                continue  # backfilled: ends by the reserved start
            for p in a.placements:
                taken[p.node_id].append((j.per_replica, p.gpu_indices))
        nodes = []
        for n in snapshot.nodes:
            free, busy = n.capacity, set()
            for r, g in taken[n.id]:
                free, busy = free - r, busy | set(g)
            nodes.append(NodeView(n.id, n.gpu_type, n.capacity, free,
                                  tuple(i for i in range(n.capacity.gpus) if i not in busy), n.schedulable, n.labels))
        then = schedule(Snapshot(until if until != INF else NOW, 0, tuple(nodes), (job,)), FIRST_FIT)
        assert [a.job_id for a in then.assignments] == [job.id], (hold, then.verdicts)

"""Properties of ``schedule`` with the first-fit profile over random clusters and queues: no
over-commit, gangs all-or-nothing, one outcome per job, determinism, filters respected, honest
UNRESOLVABLE verdicts, and the ``incremental`` promise of the profile."""

from __future__ import annotations

from collections import defaultdict

from hypothesis import given, settings
from hypothesis import strategies as st

from hyperion.core import PROFILES, schedule
from hyperion.model import JobView, NodeView, Plan, Priority, Snapshot, VerdictCode
from hyperion.testing.builders import a_job, a_node
from hyperion.testing.checks import assert_no_overcommit

GiB = 2**30
GPU_TYPES = ("A100", "H100")
FIRST_FIT = PROFILES["first-fit"]()


# Flat tuples of integers, turned into views afterwards: several times faster to generate than
# one draw per field, which keeps the whole file well under 20 s. Half the nodes start empty, so
# that jobs compete for room rather than mostly finding none.
#   node: (gpus, cpus, memory GiB, free-GPU bitmask, % cpus used, % memory used, gpu type, schedulable unless 0)
EMPTY_OR = st.just(0) | st.integers(0, 100)
NODE = st.tuples(st.integers(0, 8), st.integers(1, 64), st.integers(1, 256), st.just(255) | st.integers(0, 255),
                 EMPTY_OR, EMPTY_OR, st.integers(0, 1), st.integers(0, 3))
#   job: (replicas, priority, priority_value, submitted_at, gpus, half-cpus, memory GiB, gpu type or none)
JOB = st.tuples(st.integers(1, 4), st.integers(0, 2), st.integers(0, 3), st.integers(0, 20),
                st.sampled_from([0, 1, 1, 2, 2, 4]) | st.integers(0, 8), st.integers(0, 16), st.integers(0, 64),
                st.integers(0, 2))


def node_view(i: int, t: tuple[int, ...]) -> NodeView:
    gpus, cpus, mem, mask, cpu_pct, mem_pct, gpu_type, sched = t
    node = (a_node(f"n{i:02}").gpus(gpus).gpu_type(GPU_TYPES[gpu_type]).cpus(cpus).memory(mem * GiB)
            .busy_gpus(*(g for g in range(gpus) if not mask >> g & 1))
            .used(cpus=cpus * cpu_pct / 100, memory=mem * GiB * mem_pct // 100))
    return (node if sched else node.unschedulable()).build_view()


def job_view(i: int, t: tuple[int, ...]) -> JobView:
    replicas, priority, value, at, gpus, half_cpus, mem, gpu_type = t
    return (a_job(f"j{i:02}").gang(replicas).priority(Priority(priority), value).submitted(float(at))
            .gpus(gpus).cpus(half_cpus / 2).memory(mem * GiB).gpu_type((None, *GPU_TYPES)[gpu_type]).view())


snapshots = st.builds(
    lambda ns, js, now, seed: Snapshot(float(now), seed, tuple(node_view(i, t) for i, t in enumerate(ns)),
                                       tuple(job_view(i, t) for i, t in enumerate(js))),
    st.integers(1, 12).flatmap(lambda n: st.lists(NODE, min_size=n, max_size=n)),
    st.integers(1, 40).flatmap(lambda n: st.lists(JOB, min_size=n, max_size=n)),
    st.integers(0, 10**6), st.integers(0, 2**32))


def first_fit(snapshot: Snapshot) -> Plan:
    return schedule(snapshot, FIRST_FIT)


def fits_empty(job: JobView, node: NodeView) -> bool:
    return job.per_replica.fits_in(node.capacity) and (not job.gpu_type or node.gpu_type == job.gpu_type)


@settings(max_examples=250, deadline=None)
@given(snapshots)
def test_no_node_is_over_committed_and_gpus_are_free_and_distinct(snapshot: Snapshot):
    assert_no_overcommit(snapshot, first_fit(snapshot))


@settings(max_examples=250, deadline=None)
@given(snapshots)
def test_gangs_are_all_or_nothing(snapshot: Snapshot):
    plan = first_fit(snapshot)
    jobs_by_id = {j.id: j for j in snapshot.pending}
    for a in plan.assignments:
        assert sorted(p.rank for p in a.placements) == list(range(jobs_by_id[a.job_id].replicas))


@settings(max_examples=250, deadline=None)
@given(snapshots)
def test_every_pending_job_has_exactly_one_outcome(snapshot: Snapshot):
    plan = first_fit(snapshot)
    assigned = [a.job_id for a in plan.assignments]
    assert len(assigned) == len(set(assigned))
    assert not set(assigned) & set(plan.verdicts)
    assert set(assigned) | set(plan.verdicts) == {j.id for j in snapshot.pending}
    for verdict in plan.verdicts.values():
        assert verdict.code in (VerdictCode.UNSCHEDULABLE, VerdictCode.UNRESOLVABLE)
        assert verdict.reasons


@settings(max_examples=150, deadline=None)
@given(snapshots, st.randoms(use_true_random=False))
def test_same_snapshot_gives_the_same_plan_whatever_the_listing_order(snapshot: Snapshot, rnd):
    plan = first_fit(snapshot)
    assert first_fit(snapshot) == plan
    shuffled = list(snapshot.pending)
    rnd.shuffle(shuffled)
    assert first_fit(Snapshot(snapshot.now, snapshot.seed, snapshot.nodes, tuple(shuffled))) == plan


@settings(max_examples=250, deadline=None)
@given(snapshots)
def test_filters_hold_no_unschedulable_node_no_other_gpu_type(snapshot: Snapshot):
    plan = first_fit(snapshot)
    by_id = {n.id: n for n in snapshot.nodes}
    jobs_by_id = {j.id: j for j in snapshot.pending}
    for a in plan.assignments:
        job = jobs_by_id[a.job_id]
        for p in a.placements:
            node = by_id[p.node_id]
            assert node.schedulable
            assert not job.gpu_type or node.gpu_type == job.gpu_type


@settings(max_examples=250, deadline=None)
@given(snapshots)
def test_unresolvable_means_no_node_could_ever_host_one_replica(snapshot: Snapshot):
    plan = first_fit(snapshot)
    jobs_by_id = {j.id: j for j in snapshot.pending}
    for job_id, verdict in plan.verdicts.items():
        job = jobs_by_id[job_id]
        hostable = any(fits_empty(job, n) for n in snapshot.nodes)
        assert (verdict.code is VerdictCode.UNRESOLVABLE) == (not hostable), (job, verdict)


@settings(max_examples=150, deadline=None)
@given(snapshots)
def test_incremental_rejected_jobs_still_do_not_fit_in_what_is_left(snapshot: Snapshot):
    """The profile says it is ``incremental``: a job it turned down cannot fit while free capacity
    is unchanged, so none of the turned-down jobs fits on the leftovers of the plan."""
    plan = first_fit(snapshot)
    jobs_by_id = {j.id: j for j in snapshot.pending}
    taken: dict[str, list] = defaultdict(list)
    for a in plan.assignments:
        for p in a.placements:
            taken[p.node_id].append((jobs_by_id[a.job_id].per_replica, p.gpu_indices))
    left = []
    for n in snapshot.nodes:
        free, gpus = n.free, set(n.free_gpus)
        for r, indices in taken[n.id]:
            free, gpus = free - r, gpus - set(indices)
        left.append(NodeView(n.id, n.gpu_type, n.capacity, free, tuple(sorted(gpus)), n.schedulable, n.labels))
    leftovers = tuple(left)
    for job in snapshot.pending:
        if job.id in plan.verdicts:  # alone, so nothing else it is queued with can hide a leak
            again = first_fit(Snapshot(snapshot.now, snapshot.seed, leftovers, (job,)))
            assert again.assignments == (), f"{job.id} fits in what is left: {again.assignments}"
            assert again.verdicts[job.id].code is plan.verdicts[job.id].code

"""The scheduling framework with the first-fit profile: where jobs land, in which order, why the
others wait (typed verdicts with reasons), gangs all-or-nothing, determinism, and profile checks."""

from __future__ import annotations

import math

import pytest

from hyperion.core import PROFILES, ProfileError, build_profile, schedule
from hyperion.model import Plan, Priority, Snapshot, VerdictCode
from hyperion.testing.builders import a_job, a_node, a_snapshot

UNSCHEDULABLE, UNRESOLVABLE = VerdictCode.UNSCHEDULABLE, VerdictCode.UNRESOLVABLE
ULL, LC, BATCH = Priority.ULTRA_LOW_LATENCY, Priority.LATENCY_CRITICAL, Priority.BATCH


def first_fit(snapshot: Snapshot) -> Plan:
    return schedule(snapshot, PROFILES["first-fit"]())


def outcome(plan: Plan) -> dict[str, object]:
    """job id -> node ids by rank when assigned, else its verdict code."""
    out: dict[str, object] = {a.job_id: tuple(p.node_id for p in sorted(a.placements, key=lambda p: p.rank))
                              for a in plan.assignments}
    out.update({job_id: v.code for job_id, v in plan.verdicts.items()})
    return out


# ---- where jobs land -----------------------------------------------------------------------
# (case, nodes, pending jobs, expected outcome per job)
PLACEMENT_CASES = [
    ("fits on the only node",
     [a_node("n1").gpus(8)], [a_job("a").gpus(4)], {"a": ("n1",)}),
    ("first fit: the first node with room",
     [a_node("n1").gpus(8).busy_gpus(0, 1, 2, 3, 4, 5, 6), a_node("n2").gpus(8)], [a_job("a").gpus(2)],
     {"a": ("n2",)}),
    ("no room now, but the node could host it when empty",
     [a_node("n1").gpus(8).busy_gpus(0, 1, 2, 3, 4, 5)], [a_job("a").gpus(4)], {"a": UNSCHEDULABLE}),
    ("too many GPUs for any node even when empty",
     [a_node("n1").gpus(8), a_node("n2").gpus(4)], [a_job("a").gpus(9)], {"a": UNRESOLVABLE}),
    ("too much memory for any node even when empty",
     [a_node("n1").memory("64Gi")], [a_job("a").memory("65Gi")], {"a": UNRESOLVABLE}),
    ("cpus exhausted by running tasks",
     [a_node("n1").cpus(8).used(cpus=7)], [a_job("a").cpus(2)], {"a": UNSCHEDULABLE}),
    ("no nodes at all",
     [], [a_job("a").gpus(1)], {"a": UNRESOLVABLE}),
    ("gpu type filter picks the matching node",
     [a_node("n1").gpu_type("A100"), a_node("n2").gpu_type("H100")], [a_job("a").gpus(1).gpu_type("H100")],
     {"a": ("n2",)}),
    ("gpu type nobody has",
     [a_node("n1").gpu_type("A100")], [a_job("a").gpus(1).gpu_type("H100")], {"a": UNRESOLVABLE}),
    ("no gpu type asked: any type will do",
     [a_node("n1").gpu_type("H100")], [a_job("a").gpus(1)], {"a": ("n1",)}),
    ("an unschedulable node is skipped",
     [a_node("n1").unschedulable(), a_node("n2")], [a_job("a").gpus(1)], {"a": ("n2",)}),
    ("only an unschedulable node: waits (it may come back)",
     [a_node("n1").unschedulable()], [a_job("a").gpus(1)], {"a": UNSCHEDULABLE}),
    ("a gang of 3 spread over nodes",
     [a_node("n1").gpus(4), a_node("n2").gpus(4), a_node("n3").gpus(4)], [a_job("g").gpus(4).gang(3)],
     {"g": ("n1", "n2", "n3")}),
    ("a gang packs a node before moving on",
     [a_node("n1").gpus(8), a_node("n2").gpus(8)], [a_job("g").gpus(4).gang(3)], {"g": ("n1", "n1", "n2")}),
    ("a gang that cannot be placed whole is not placed at all",
     [a_node("n1").gpus(4), a_node("n2").gpus(4)], [a_job("g").gpus(4).gang(3)], {"g": UNSCHEDULABLE}),
    ("CPU-only job on GPU-less node",
     [a_node("n1").gpus(0).gpu_type("")], [a_job("a").cpus(4)], {"a": ("n1",)}),
    ("second job takes what the first left",
     [a_node("n1").gpus(8)], [a_job("a").gpus(6).submitted(1), a_job("b").gpus(2).submitted(2),
                              a_job("c").gpus(1).submitted(3)],
     {"a": ("n1",), "b": ("n1",), "c": UNSCHEDULABLE}),
]


@pytest.mark.parametrize(("nodes", "jobs", "expected"), [c[1:] for c in PLACEMENT_CASES],
                         ids=[c[0] for c in PLACEMENT_CASES])
def test_placement(nodes, jobs, expected):
    plan = first_fit(a_snapshot(nodes=nodes, pending=jobs))
    assert outcome(plan) == expected


# ---- why a job waits -----------------------------------------------------------------------
# (case, nodes, job, reasons that must all appear in the verdict)
REASON_CASES = [
    ("per-node reasons, counted",
     [a_node("n1").gpu_type("A100"), a_node("n2").gpu_type("A100"), a_node("n3").gpu_type("H100").busy_gpus(*range(7))],
     a_job("a").gpus(2).gpu_type("H100"),
     {"2 node(s): gpu type A100 is not H100", "1 node(s): insufficient gpus"}),
    ("cordoned node next to a node with room of the wrong type",
     [a_node("n1").unschedulable(), a_node("n2").gpu_type("H100")], a_job("a").gpus(1).gpu_type("A100"),
     {"1 node(s): node not ready or cordoned", "1 node(s): gpu type H100 is not A100"}),
    ("no node has that much free anywhere",
     [a_node("n1").gpus(8).busy_gpus(0, 1, 2, 3, 4, 5)], a_job("a").gpus(4), {"1 node(s): insufficient gpus"}),
    ("several resources short",
     [a_node("n1").cpus(2).memory("1Gi")], a_job("a").cpus(4).memory("2Gi"),
     {"1 node(s): insufficient cpus, memory", "no node is large enough for one replica even when empty"}),
    ("no nodes registered",
     [], a_job("a").gpus(1), {"no nodes registered"}),
    ("no nodes registered, even for an empty request",
     [], a_job("a").cpus(0).memory(0), {"no nodes registered"}),
    ("gang shortfall is explained",
     [a_node("n1").gpus(4), a_node("n2").gpus(4)], a_job("g").gpus(4).gang(3), {"gang of 3: only 2 replica(s) fit now"}),
]


@pytest.mark.parametrize(("nodes", "job", "reasons"), [c[1:] for c in REASON_CASES], ids=[c[0] for c in REASON_CASES])
def test_verdict_reasons(nodes, job, reasons):
    plan = first_fit(a_snapshot(nodes=nodes, pending=[job]))
    assert plan.assignments == ()
    verdict = plan.verdicts[job.id]
    assert reasons <= set(verdict.reasons), verdict.reasons
    assert verdict.plugin == "node-fit"


def test_a_cordoned_node_with_room_is_explained_as_cordoned():
    plan = first_fit(a_snapshot(nodes=[a_node("n1").unschedulable()], pending=[a_job("a").gpus(1)]))
    assert "1 node(s): node not ready or cordoned" in plan.verdicts["a"].reasons
    assert not any("insufficient" in r for r in plan.verdicts["a"].reasons)


def test_unschedulable_verdict_does_not_claim_the_job_is_too_big():
    plan = first_fit(a_snapshot(nodes=[a_node("n1").gpus(8).busy_gpus(0, 1, 2, 3, 4, 5)], pending=[a_job("a").gpus(4)]))
    assert not any("even when empty" in r for r in plan.verdicts["a"].reasons)


# ---- gangs and GPU indices -----------------------------------------------------------------
def test_partial_gang_is_rolled_back_so_a_later_job_gets_the_gpus():
    # g is first in the queue and fits 2 of its 3 ranks; "big" needs every GPU of both nodes
    nodes = [a_node("n1").gpus(4), a_node("n2").gpus(4)]
    g = a_job("g").gpus(4).gang(3).priority(LC)
    big = a_job("big").gpus(4).gang(2)
    plan = first_fit(a_snapshot(nodes=nodes, pending=[g, big]))
    assert outcome(plan) == {"g": UNSCHEDULABLE, "big": ("n1", "n2")}
    placements = plan.assignments[0].placements
    assert [p.gpu_indices for p in placements] == [(0, 1, 2, 3), (0, 1, 2, 3)]


# (case, node, jobs in queue order, expected GPU indices per (job, rank))
GPU_INDEX_CASES = [
    ("consecutive jobs take disjoint indices",
     a_node("n1").gpus(8), [a_job(f"j{i}").gpus(2).submitted(i) for i in range(4)],
     {("j0", 0): (0, 1), ("j1", 0): (2, 3), ("j2", 0): (4, 5), ("j3", 0): (6, 7)}),
    ("busy indices are never handed out",
     a_node("n1").gpus(8).busy_gpus(0, 2, 4, 6), [a_job("a").gpus(3)], {("a", 0): (1, 3, 5)}),
    ("ranks of a gang on one node get disjoint indices",
     a_node("n1").gpus(8), [a_job("g").gpus(2).gang(4)], {("g", 0): (0, 1), ("g", 1): (2, 3), ("g", 2): (4, 5), ("g", 3): (6, 7)}),
    ("a CPU-only job gets no GPU",
     a_node("n1").gpus(8), [a_job("a").gpus(0)], {("a", 0): ()}),
]


@pytest.mark.parametrize(("node", "jobs", "expected"), [c[1:] for c in GPU_INDEX_CASES], ids=[c[0] for c in GPU_INDEX_CASES])
def test_gpu_indices(node, jobs, expected):
    plan = first_fit(a_snapshot(nodes=[node], pending=jobs))
    got = {(a.job_id, p.rank): p.gpu_indices for a in plan.assignments for p in a.placements}
    assert got == expected


# ---- queue order ---------------------------------------------------------------------------
# One node with room for exactly one of the jobs: the winner shows the order.
# (case, jobs as listed in the snapshot, the job that gets the node)
ORDER_CASES = [
    ("ultra-low-latency before batch even if submitted later",
     [a_job("batch").priority(BATCH).submitted(0), a_job("ull").priority(ULL).submitted(10)], "ull"),
    ("latency-critical before batch",
     [a_job("batch").priority(BATCH).submitted(0), a_job("lc").priority(LC).submitted(10)], "lc"),
    ("ultra-low-latency before latency-critical",
     [a_job("lc").priority(LC).submitted(0), a_job("ull").priority(ULL).submitted(10)], "ull"),
    ("higher priority_value first within a class",
     [a_job("low").priority(LC, 1).submitted(0), a_job("high").priority(LC, 5).submitted(10)], "high"),
    ("class beats priority_value",
     [a_job("batch").priority(BATCH, 100), a_job("lc").priority(LC, 0)], "lc"),
    ("FIFO within the same priority",
     [a_job("late").submitted(2.0), a_job("early").submitted(1.0)], "early"),
    ("same priority and time: by id",
     [a_job("b").submitted(1.0), a_job("a").submitted(1.0)], "a"),
]


@pytest.mark.parametrize(("jobs", "winner"), [c[1:] for c in ORDER_CASES], ids=[c[0] for c in ORDER_CASES])
def test_queue_order(jobs, winner):
    jobs = [j.gpus(8) for j in jobs]
    plan = first_fit(a_snapshot(nodes=[a_node("n1").gpus(8)], pending=jobs))
    assert [a.job_id for a in plan.assignments] == [winner]
    assert set(plan.verdicts) == {j.id for j in jobs} - {winner}


def test_a_big_job_that_waits_does_not_block_smaller_ones_behind_it():
    # greedy, no reservations: documented by the profile's ``incremental`` flag
    jobs = [a_job("big").gpus(8).priority(ULL), a_job("small").gpus(2)]
    plan = first_fit(a_snapshot(nodes=[a_node("n1").gpus(8).busy_gpus(0)], pending=jobs))
    assert outcome(plan) == {"big": UNSCHEDULABLE, "small": ("n1",)}


# ---- determinism ---------------------------------------------------------------------------
def busy_cluster() -> Snapshot:
    nodes = [a_node(f"n{i}").gpus(8).gpu_type("A100" if i % 2 else "H100").busy_gpus(*range(i % 4)) for i in range(6)]
    jobs = [a_job(f"j{i:02}").gpus(i % 5).replicas(1 + i % 3).gpu_type(("A100", "H100", None)[i % 3])
            .priority(Priority(i % 3), i % 4).submitted(float(i % 7)) for i in range(30)]
    return a_snapshot(nodes=nodes, pending=jobs, now=100.0, seed=7)


def test_same_snapshot_gives_identical_plan():
    first = first_fit(busy_cluster())
    assert first.assignments and first.verdicts  # the scenario exercises both outcomes
    assert first_fit(busy_cluster()) == first
    assert first_fit(busy_cluster()) == first_fit(busy_cluster())


def test_plan_does_not_depend_on_the_order_pending_jobs_are_listed():
    snap = busy_cluster()
    reversed_snap = Snapshot(snap.now, snap.seed, snap.nodes, tuple(reversed(snap.pending)))
    assert first_fit(reversed_snap) == first_fit(snap)


# ---- profiles ------------------------------------------------------------------------------
def test_first_fit_profile():
    profile = PROFILES["first-fit"]()
    assert profile.plugins == ("priority-fifo", "budget", "federation", "node-fit")
    assert profile.incremental
    assert [p.name for p in profile.serving("sort_key")] == ["priority-fifo"]
    assert [p.name for p in profile.serving("filter")] == ["federation", "node-fit"]
    assert profile.serving("score") == []


# (case, plugins, weights, words the message must contain)
PROFILE_ERRORS = [
    ("unknown plugin", ["priority-fifo", "no-such-plugin"], None, ["'bad'", "no-such-plugin", "known:", "node-fit"]),
    ("weight for a plugin not enabled", ["priority-fifo"], {"node-fit": 1.0}, ["'bad'", "'node-fit'", "does not enable"]),
    ("negative weight", ["node-fit"], {"node-fit": -1.0}, ["'bad'", "'node-fit'", ">= 0", "-1.0"]),
    ("NaN weight", ["node-fit"], {"node-fit": math.nan}, ["'node-fit'", ">= 0", "nan"]),
]


@pytest.mark.parametrize(("plugins", "weights", "words"), [c[1:] for c in PROFILE_ERRORS], ids=[c[0] for c in PROFILE_ERRORS])
def test_build_profile_rejects(plugins, weights, words):
    with pytest.raises(ProfileError) as err:
        build_profile("bad", plugins, weights)
    for word in words:
        assert word in str(err.value)


def test_profile_error_is_a_value_error():
    assert issubclass(ProfileError, ValueError)


def test_build_profile_accepts_zero_weight():
    profile = build_profile("ok", ["priority-fifo", "node-fit"], {"node-fit": 0.0})
    assert profile.weights == {"node-fit": 0.0}
    assert [type(p).name for p in profile.instances] == ["priority-fifo", "node-fit"]

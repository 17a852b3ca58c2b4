"""explain(): queue position, who is ahead, and the estimated start with what it assumes."""

from __future__ import annotations

import pytest

from hyperion.core import PROFILES, explain, schedule
from hyperion.model import Priority, Resources, RunningView
from hyperion.testing.builders import a_job, a_node, a_snapshot

FF = PROFILES["first-fit"]()


def running(job_id: str, gpus: int, started: float | None, estimate: float | None, gpu_type: str = "A100") -> RunningView:
    return RunningView(job_id, "t", "default", Priority.BATCH, Resources(gpus), (("n1", tuple(range(gpus))),), gpu_type,
                       started, estimate)


def explained(nodes, pending, run=(), job_id="me", now=100.0):
    snap = a_snapshot(nodes=nodes, pending=pending, now=now)
    snap = type(snap)(snap.now, snap.seed, snap.nodes, snap.pending, running=tuple(run))
    return explain(snap, FF, schedule(snap, FF), job_id)


def test_position_and_who_is_ahead_follow_the_scheduling_order():
    pending = [a_job("old").gpus(8).submitted(1), a_job("me").gpus(8).submitted(3),
               a_job("urgent").gpus(8).submitted(5).priority(Priority.ULTRA_LOW_LATENCY)]
    e = explained([a_node("n1").gpus(8).busy_gpus(*range(8))], pending)
    assert (e.position, e.pending) == (3, 3)
    assert [j.id for j in e.ahead] == ["urgent", "old"]
    assert e.verdict is not None and e.verdict.reasons


@pytest.mark.parametrize("run, start, basis", [
    ([running("r1", 8, 0.0, 300.0), running("r2", 8, 0.0, 200.0)], 300.0, "runtime estimates"),
    ([running("r1", 8, 0.0, None), running("r2", 8, 0.0, 200.0)], None, "running job r1 has no runtime estimate"),
    ([running("r1", 8, 0.0, 300.0, gpu_type="H100"), running("r2", 8, 0.0, 200.0), running("r3", 8, 0.0, 250.0)],
     250.0, "runtime estimates"),
])
def test_estimated_start_from_running_jobs_estimates(run, start, basis):
    # 16 A100 GPUs all busy; "old" (8) is ahead of "me" (8): both fit once 16 GPUs are free
    nodes = [a_node("n1").gpus(8).busy_gpus(*range(8)), a_node("n2").gpus(8).busy_gpus(*range(8)),
             a_node("h").gpu_type("H100").gpus(8).busy_gpus(*range(8))]
    pending = [a_job("old").gpus(8).gpu_type("A100").submitted(1), a_job("me").gpus(8).gpu_type("A100").submitted(2)]
    e = explained(nodes, pending, run)
    assert e.estimated_start == start
    assert basis in e.estimate_basis


def test_a_job_that_fits_now_starts_now_and_one_too_big_never():
    assert explained([a_node("n1").gpus(8)], [a_job("me").gpus(2)]).estimated_start == 100.0
    e = explained([a_node("n1").gpus(8)], [a_job("me").gpus(8).replicas(2)])
    assert e.estimated_start is None and "cluster has 8" in e.estimate_basis


def test_unknown_job_is_not_explained():
    assert explained([a_node("n1")], [a_job("x")], job_id="nope") is None


def _walk(snap, job, ahead):
    """The estimate spelled out job by job (``explain_many`` works it out once per GPU kind)."""
    competes = lambda a, b: a is None or b is None or a == b
    need = job.per_replica.gpus * job.replicas
    wanted = sum(j.per_replica.gpus * j.replicas for j in ahead if competes(j.gpu_type, job.gpu_type))
    nodes = [n for n in snap.nodes if n.schedulable and competes(n.gpu_type, job.gpu_type)]
    free, total = sum(n.free.gpus for n in nodes), sum(n.capacity.gpus for n in nodes)
    if need == 0:
        return snap.now
    if need > total:
        return None
    if free >= wanted + need:
        return snap.now
    for r in sorted((r for r in snap.running if competes(r.gpu_type, job.gpu_type)),
                    key=lambda r: (r.expected_end is None, r.expected_end or 0.0, r.id)):
        if r.expected_end is None:
            return None
        free += r.gpus
        if free >= wanted + need:
            return max(snap.now, r.expected_end)
    return None


@pytest.mark.parametrize("seed", range(40))
def test_explain_many_agrees_with_explain_and_with_the_walk(seed):
    import random

    from hyperion.core.explain import explain_many

    rng = random.Random(seed)
    nodes, run = [], []
    for i in range(rng.randint(1, 5)):
        nodes.append(a_node(f"n{i}").gpu_type(rng.choice(["A100", "H100"])).gpus(8))
        left = 8
        while left and rng.random() < 0.7:
            g = rng.choice([x for x in (1, 2, 4, 8) if x <= left])
            left -= g
            run.append(a_job(f"r{i}-{left}").gpus(g).runtime(rng.choice([None, 50.0, 300.0]))
                       .running_on(f"n{i}", started=rng.choice([0.0, 10.0])))
    pending = []
    for k in range(rng.randint(1, 12)):
        j = a_job(f"j{k}").gpus(rng.choice([0, 1, 2, 4, 8])).replicas(rng.choice([1, 2, 3])).submitted(k)
        pending.append(j.gpu_type(rng.choice(["A100", "H100"])) if rng.random() < 0.4 else j)
    snap = a_snapshot(nodes=nodes, pending=pending, now=100.0, running=run)
    plan = schedule(snap, FF)
    ids = [j.id for j in snap.pending]
    many = explain_many(snap, FF, plan, [*ids, "nope"])
    assert set(many) == set(ids)
    for job_id in ids:
        e = many[job_id]
        assert e == explain(snap, FF, plan, job_id)
        if not e.estimate_basis.startswith("reserved"):
            job = next(j for j in snap.pending if j.id == job_id)
            assert e.estimated_start == _walk(snap, job, e.ahead)


def test_a_routed_job_counts_only_its_members_nodes_running_jobs_and_queue():
    from dataclasses import replace

    from hyperion.core.explain import explain_many

    # member "a": one full 8-GPU node whose job ends at 500; member "b": one free 8-GPU node
    nodes = [a_node("n1").gpus(8).busy_gpus(*range(8)).labels(**{"hyperion.io/cluster": "a"}),
             a_node("n2").gpus(8).labels(**{"hyperion.io/cluster": "b"})]
    snap = a_snapshot(nodes=nodes, pending=[a_job("ahead").gpus(8).submitted(1), a_job("me").gpus(8).submitted(2)],
                      now=100.0)
    pending = tuple(replace(j, cluster="a") for j in snap.pending)
    snap = type(snap)(snap.now, snap.seed, snap.nodes, pending, running=(running("r1", 8, 0.0, 400.0),))
    e = explain_many(snap, FF, schedule(snap, FF), ["me", "ahead"])
    # "ahead" starts when r1 ends on member a (b's free GPUs do not count); "me" after that is unknown
    assert e["ahead"].estimated_start == 400.0
    assert e["me"].estimated_start is None and "more than running jobs will free" in e["me"].estimate_basis
    unrouted = type(snap)(snap.now, snap.seed, snap.nodes, (replace(pending[0], cluster=None),),
                          running=snap.running)
    assert explain_many(unrouted, FF, schedule(unrouted, FF), ["ahead"])["ahead"].estimated_start == 100.0


@pytest.mark.parametrize("plugin, code, start_after, waits", [
    ("node-fit", "unschedulable", None, True),
    ("backfill", "unresolvable", None, True),
    ("federation", "unresolvable", None, True),  # its member has no node yet
    ("federation", "unresolvable", 200.0, False),  # it waits for a later hour
    ("federation", "unresolvable", 50.0, True),
    ("quota", "unresolvable", None, False),
    ("budget", "unresolvable", None, False),
    ("node-fit", "skip", None, False),
])
def test_waits_for_capacity(plugin, code, start_after, waits):
    from hyperion.core.explain import waits_for_capacity
    from hyperion.model import Verdict, VerdictCode
    from hyperion.model.federation import Routing

    routed = Routing("onprem", "default", 0.0, start_after=start_after)
    assert waits_for_capacity(Verdict(VerdictCode(code), ("why",), plugin), routed, 100.0) is waits
    assert waits_for_capacity(None, routed, 100.0) is False
    # a job routed nowhere is never held by the federation gate for capacity
    assert waits_for_capacity(Verdict(VerdictCode.UNRESOLVABLE, ("why",), "federation"), None, 100.0) is False

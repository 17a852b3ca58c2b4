"""The live snapshotter keeps node views and the node index between cycles; whatever happened in
between, its snapshot equals one built from scratch."""

from __future__ import annotations

from dataclasses import replace

from hyperion.core import PROFILES, lifecycle, schedule
from hyperion.core.ledger import usage_of
from hyperion.model import NodeState
from hyperion.runtime.snapshotter import Snapshotter
from hyperion.store import MemoryStore
from hyperion.store.objects import ClusterState
from hyperion.testing.builders import a_job, a_node


def fresh(state: ClusterState):
    return Snapshotter(state).snapshot(0.0, 0)


def same(a, b) -> None:
    assert a.nodes == b.nodes
    assert {t: [list(x) for x in bs] for t, bs in a.node_index.buckets.items() if any(bs)} == \
           {t: [list(x) for x in bs] for t, bs in b.node_index.buckets.items() if any(bs)}
    assert a.node_index.unschedulable == b.node_index.unschedulable
    assert {v.id: v for v in a.running} == {v.id: v for v in b.running}
    nonzero = lambda u: {q: {k: v for k, v in row.items() if v} for q, row in u.items() if any(row.values())}  # noqa: E731
    assert nonzero(a.usage) == nonzero(b.usage) == nonzero(usage_of(a.running))


def test_kept_snapshot_equals_a_fresh_one_through_placements_exits_cordons_and_loss():
    state = ClusterState(MemoryStore())
    for i, t in enumerate(["A100", "A100", "H100"]):
        state.put_node(a_node(f"n{i}").gpus(4).gpu_type(t).build())
    kept = Snapshotter(state)
    profile = PROFILES["first-fit"]()
    for k in range(6):
        state.create_job(a_job(f"j{k}").gpus(1 + k % 3).submitted(float(k)).build())
    snap = kept.snapshot(0.0, 0)
    same(snap, fresh(state))

    plan = schedule(snap, profile)  # place what fits
    state.update_jobs(lifecycle.assign(state.jobs[a.job_id], a.placements) for a in plan.assignments)
    same(kept.snapshot(0.0, 0), fresh(state))

    victim = state.jobs[plan.assignments[1].job_id]  # preempted: still holds its GPUs, as leaving
    victim, _ = lifecycle.preempt(victim, "for a test")
    state.update_jobs([victim])
    snap = kept.snapshot(0.0, 0)
    same(snap, fresh(state))
    assert [v.preempting for v in snap.running if v.id == victim.id] == [True]

    done = plan.assignments[0]  # one job's ranks exit: its GPUs come back
    job = state.jobs[done.job_id]
    for p in job.placements:
        job, _ = lifecycle.task_exited(job, job.attempt, p.rank, 0, 1.0)
    state.update_jobs([job])
    same(kept.snapshot(0.0, 0), fresh(state))

    state.put_node(replace(state.nodes["n1"], cordoned=True))
    same(kept.snapshot(0.0, 0), fresh(state))
    assert not [n for n in kept.snapshot(0.0, 0).nodes if n.id == "n1"][0].schedulable

    state.put_node(replace(state.nodes["n2"], state=NodeState.NOT_READY))
    snap = kept.snapshot(0.0, 0)
    same(snap, fresh(state))
    assert [n.id for n in snap.nodes] == ["n0", "n1"]

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

"""The simulated world, end to end (``experiment.run``) and step by step (``World``): placement and
runtime scaling, FIFO vs oracle SJF, gang shapes and unplaceable jobs, checkpoint/restart
accounting on node failures, LAS preemption, spot outages, seeding, termination.

Every expected number is worked out by hand in the test from the cluster and trace it builds."""

from __future__ import annotations

import math

import pytest

from hyperion.core.framework import PROFILES
from hyperion.model.queue import QueueSpec, gpu_key
from hyperion.providers.grid import constant
from hyperion.sim.cluster import ClusterModel, Pool, WorkloadModel
from hyperion.sim.energy import PowerModel
from hyperion.sim.experiment import run
from hyperion.sim.policies import Policy, policy
from hyperion.sim.result import PolicyResult
from hyperion.sim.traces.base import Trace, TraceJob
from hyperion.sim.traces.skypilot_spot import SpotSeries
from hyperion.sim.world import World, shape

FIFO, SJF = policy("fifo"), policy("sjf")
LAS = Policy("las", PROFILES["las"](las_threshold_gpu_h=0.01))  # level 1 from 36 GPU-seconds on


# ---- builders -----------------------------------------------------------------------------------
def job(id: str, submit: float = 0.0, duration: float = 100.0, gpus: int = 1, **kw) -> TraceJob:
    return TraceJob(id, submit, duration, gpus, **kw)


def pool(name: str = "n", count: int = 1, gpus: int = 8, gpu_type: str = "A100", price: float = 0.0, **kw) -> Pool:
    return Pool(name, count, gpu_type, gpus, 64_000, 512 * 2**30, price, **kw)


def cluster(*pools: Pool, queues: dict | None = None, schedule_interval: float = 0.0, sample_interval: float = 600.0,
            **workload) -> ClusterModel:
    pools = pools or (pool(),)
    power = PowerModel({p.gpu_type: 400.0 for p in pools})
    return ClusterModel("test", pools, queues or {}, power, constant(0.0, "gCO2/kWh"), WorkloadModel(**workload),
                        sample_interval, schedule_interval)


def trace(jobs) -> Trace:
    return Trace("test", tuple(sorted(jobs, key=lambda j: (j.submit_s, j.id))))


def simulate(jobs, cl: ClusterModel, pol: Policy = FIFO, seed: int = 0) -> PolicyResult:
    return run(trace(jobs), cl, pol, seed=seed)


def world(jobs, cl: ClusterModel, pol: Policy = FIFO, seed: int = 0) -> World:
    return World(trace(jobs), cl, pol.profile, oracle=pol.oracle, seed=seed)


def advance(w: World, until: float) -> None:
    """Process every instant up to and including ``until``."""
    while (t := w.events.next_time()) is not None and t <= until and w.step():
        pass


def finish(w: World) -> PolicyResult:
    while w.step():
        pass
    return w.metrics.result("test", w.events.now, 0.0, w.events.processed)


def same(a: dict[str, float], b: dict[str, float]) -> bool:
    """Equal metrics, NaN equal to NaN."""
    return a.keys() == b.keys() and all(a[k] == b[k] or (math.isnan(a[k]) and math.isnan(b[k])) for k in a)


# ---- one job on an empty cluster ------------------------------------------------------------------
@pytest.mark.parametrize("gpu_type, jct", [
    ("V100", 1000.0),  # the reference type: the trace's duration
    ("A100", 500.0),   # twice as fast
    ("H100", 250.0),   # four times
    ("T4", 1000.0),    # no speed given: as fast as the reference
])
def test_single_job_starts_at_once_and_runtime_scales_with_speed(gpu_type: str, jct: float) -> None:
    cl = cluster(pool(gpu_type=gpu_type), reference_gpu_type="V100", speed={"V100": 2.0, "A100": 4.0, "H100": 8.0})
    r = simulate([job("j", submit=50.0, duration=1000.0, gpus=4)], cl)
    assert r.queue_delay_s == (0.0,)
    assert r.jct_s == (pytest.approx(jct),)
    assert r.metrics["jobs_finished"] == 1 and r.metrics["jobs_unfinished"] == 0
    assert r.metrics["makespan_s"] == pytest.approx(jct)
    assert r.metrics["gpu_hours_lost"] == 0 and r.metrics["preemptions"] == r.metrics["interruptions"] == 0


@pytest.mark.parametrize("interval, wait", [(0.0, 0.0), (10.0, 5.0), (7.0, 2.0)])
def test_schedule_interval_starts_a_job_on_the_next_tick(interval: float, wait: float) -> None:
    # submitted at 5: with ticks every 10 s it starts at 10, every 7 s at 7
    r = simulate([job("j", submit=5.0, duration=100.0)], cluster(schedule_interval=interval))
    assert r.metrics["jobs_finished"] == 1, "the run must not end while a cycle is still due"
    assert r.queue_delay_s == (wait,)
    assert r.jct_s == (wait + 100.0,)


# ---- ordering -------------------------------------------------------------------------------------
@pytest.mark.parametrize("pol, jct_s, waits", [
    # a runs 0-100; FIFO: b 100-150 (JCT 149), c 150-160 (158)
    (FIFO, (100.0, 149.0, 158.0), (0.0, 99.0, 148.0)),
    # SJF with true runtimes: c (10 s) before b (50 s): c 100-110 (108), b 110-160 (159)
    (SJF, (100.0, 108.0, 159.0), (0.0, 98.0, 109.0)),
])
def test_fifo_and_oracle_sjf_on_one_gpu(pol: Policy, jct_s: tuple, waits: tuple) -> None:
    jobs = [job("a", 0.0, 100.0), job("b", 1.0, 50.0), job("c", 2.0, 10.0)]
    r = simulate(jobs, cluster(pool(gpus=1)), pol)
    assert r.jct_s == jct_s  # in finish order
    assert r.queue_delay_s == waits  # in first-start order
    assert r.metrics["jct_mean_s"] == pytest.approx(sum(jct_s) / 3)
    assert r.metrics["makespan_s"] == 160.0
    assert r.metrics["utilisation"] == 1.0
    assert r.metrics["pending_mean_s"] == pytest.approx(sum(waits) / 3)  # no requeue: pending = first wait


def test_pending_time_counts_the_wait_after_an_eviction_which_the_queueing_delay_does_not() -> None:
    # A (0-?) crosses level 1 at 36 GPU-s; B (arrived at 20) evicts it then: A stops at 36 + grace,
    # waits for B (10 s) and resumes. A's queueing delay is 0; its pending time is B's run.
    r = simulate([job("A", 0.0, 1000.0), job("B", 20.0, 10.0)], cluster(pool(gpus=1)), LAS)
    assert r.metrics["preemptions"] == 1
    assert max(r.queue_delay_s) < r.metrics["pending_mean_s"] * 2
    assert r.metrics["pending_mean_s"] > r.metrics["queue_delay_mean_s"]


# ---- gang shapes, unplaceable jobs, termination ----------------------------------------------------
@pytest.mark.parametrize("gpus, node_gpus, per_replica, replicas", [
    (4, 8, 4, 1), (8, 8, 8, 1), (16, 8, 8, 2), (12, 8, 6, 2), (24, 8, 8, 3), (13, 8, 1, 13), (0, 8, 0, 1), (5, 0, 5, 1),
])
def test_shape_splits_wide_jobs_into_equal_ranks(gpus: int, node_gpus: int, per_replica: int, replicas: int) -> None:
    r, n = shape(job("j", gpus=gpus, cpus_milli=24_000, memory=3 * 2**30), node_gpus)
    assert (r.gpus, n) == (per_replica, replicas)
    assert (r.cpus_milli, r.memory) == (math.ceil(24_000 / n), math.ceil(3 * 2**30 / n))


@pytest.mark.parametrize("gpus, free_left", [(16, (0, 0)), (12, (2, 2))])
def test_gang_runs_one_rank_per_node(gpus: int, free_left: tuple) -> None:
    w = world([job("g", duration=300.0, gpus=gpus)], cluster(pool(count=2, gpus=8)))
    advance(w, 0.0)
    g = w.running["g"]
    assert (g.per_replica.gpus, g.replicas, sorted(g.ranks)) == (gpus // 2, 2, [0, 1])
    assert tuple(len(v.free_gpus) for v in w.views) == free_left
    r = finish(w)
    assert r.jct_s == (300.0,)
    assert r.metrics["utilisation"] == pytest.approx(gpus / 16)
    assert [len(v.free_gpus) for v in w.views] == [8, 8]


@pytest.mark.parametrize("bad", [
    job("bad", gpus=24),                      # wider than the two 8-GPU nodes together
    job("bad", gpus=1, gpu_type="H100"),      # no pool has the type
    job("bad", gpus=1, cpus_milli=100_000),   # more CPUs than a node has
])
def test_unplaceable_job_is_counted_and_the_run_ends(bad: TraceJob) -> None:
    w = world([bad, job("ok", submit=10.0, duration=50.0)], cluster(pool(count=2, gpus=8)))
    assert (w.unplaceable, w.remaining) == (1, 1)
    r = finish(w)
    assert r.jct_s == (50.0,)
    assert w.remaining == 0 and not w.pending


def test_only_unplaceable_jobs_end_the_run_at_once() -> None:
    r = simulate([job("bad", gpus=1, gpu_type="H100")], cluster())
    assert (r.metrics["jobs_unplaceable"], r.metrics["jobs_finished"], r.metrics["jobs_unfinished"]) == (1, 0, 0)


def test_typed_wide_job_is_split_for_the_nodes_of_its_type() -> None:
    # 8 V100s fit two 4-GPU V100 nodes, even though a wider (A100) node exists
    cl = cluster(pool("a", gpus=8, gpu_type="A100"), pool("v", count=2, gpus=4, gpu_type="V100"))
    w = world([job("v8", duration=100.0, gpus=8, gpu_type="V100")], cl)
    assert w.unplaceable == 0
    advance(w, 0.0)
    assert (w.running["v8"].replicas, sorted(w.running["v8"].ranks)) == (2, [1, 2])
    assert finish(w).jct_s == (100.0,)


def test_run_ends_when_pending_jobs_can_never_start() -> None:
    # the queue's nominal GPU quota is 0 and it has no cohort to borrow from: never admitted
    queues = {"capped": QueueSpec("capped", nominal=((gpu_key("A100"), 0),))}
    jobs = [job("blocked", team="capped"), job("ok", submit=5.0, duration=20.0)]
    r = simulate(jobs, cluster(queues=queues))
    assert (r.metrics["jobs_finished"], r.metrics["jobs_unfinished"], r.metrics["jobs_unplaceable"]) == (1, 1, 0)
    assert r.jct_s == (20.0,)


# ---- checkpoint / restart on node failures ------------------------------------------------------------
# One 2-GPU node, one 2-GPU job of 1000 s of reference work; checkpoints every 300 s of run time,
# a restart costs 60 s. Each outage (down, up) is injected with ``node_down`` between steps.
@pytest.mark.parametrize("speed, outages, jct, lost_gpu_s", [
    # ran 700, saved 600: 400 left after 800 + 60; lost 2*100 + 2*60 (restart)
    (1.0, [(700.0, 800.0)], 800 + 60 + 400, 2 * 100 + 2 * 60),
    # before the first checkpoint: nothing saved
    (1.0, [(200.0, 800.0)], 800 + 60 + 1000, 2 * 200 + 2 * 60),
    # twice as fast: 300 s run saved = 600 work, 400 work = 200 s left
    (2.0, [(450.0, 800.0)], 800 + 60 + 200, 2 * 150 + 2 * 60),
    # fails again during the restart (830 < 860): the 30 s of restart are lost too, restart paid again
    (1.0, [(700.0, 800.0), (830.0, 900.0)], 900 + 60 + 400, 2 * 100 + 2 * 30 + 2 * 60),
    # the checkpoint clock restarts with each attempt: at 1000 the 2nd attempt ran 140 s, saved none
    (1.0, [(700.0, 800.0), (1000.0, 1100.0)], 1100 + 60 + 400, 2 * 100 + 2 * 200 + 2 * 60),
])
def test_node_failure_loses_work_since_the_last_checkpoint(speed: float, outages: list, jct: float,
                                                           lost_gpu_s: float) -> None:
    cl = cluster(pool(gpus=2, gpu_type="fast", price=3.0), reference_gpu_type="ref",
                 speed={"ref": 1.0, "fast": speed}, checkpoint_interval_s=300.0, restart_cost_s=60.0)
    w = world([job("j", duration=1000.0, gpus=2)], cl)
    advance(w, 0.0)
    j = w.running["j"]
    for down, up in outages:
        advance(w, down)
        assert "j" in w.running
        ran = down - j.run_start
        work_left = j.work_left - math.floor(max(0.0, ran) / 300.0) * 300.0 * speed
        w.node_down(0, down, up)
        assert "j" in w.pending and not w.views[0].schedulable and w.views[0].free_gpus == (0, 1)
        assert j.work_left == pytest.approx(work_left)
        advance(w, up)
        assert "j" in w.running and (j.started_at, j.run_start) == (up, up + 60.0)  # the restart cost
    r = finish(w)
    assert j.attempt == len(outages) + 1
    assert r.jct_s == (pytest.approx(jct),) and r.queue_delay_s == (0.0,)
    assert r.metrics["interruptions"] == len(outages) and r.metrics["preemptions"] == 0
    assert r.metrics["gpu_hours_lost"] * 3600 == pytest.approx(lost_gpu_s)
    downtime = sum(up - down for down, up in outages)
    held = 2 * (jct - downtime)  # the job held both GPUs whenever the node was up
    assert r.per_team["default"]["gpu_hours"] * 3600 == pytest.approx(held)
    assert r.metrics["utilisation"] == pytest.approx(1.0)
    assert r.metrics["cost_usd"] == pytest.approx(held / 3600 * 3.0)


def test_failed_gang_releases_every_rank_and_restarts_elsewhere() -> None:
    # 3 nodes of 4 GPUs, an 8-GPU gang on two: a node of it fails, the gang restarts at once on the other two
    cl = cluster(pool(count=3, gpus=4), checkpoint_interval_s=100.0, restart_cost_s=10.0)
    w = world([job("g", duration=500.0, gpus=8)], cl)
    advance(w, 0.0)
    first = sorted(w.running["g"].ranks)
    w.events.push(250.0, "down", (first[0], 10_000.0))  # as a spot reclaim: the cycle of that instant runs
    advance(w, 250.0)
    assert len(w.running["g"].ranks) == 2 and first[0] not in w.running["g"].ranks
    assert [len(v.free_gpus) for i, v in enumerate(w.views) if i not in w.running["g"].ranks] == [4]
    r = finish(w)
    # saved 200 s at 250, 300 left after a 10 s restart: done at 560; lost 8*50 + 8*10
    assert r.jct_s == (560.0,)
    assert r.metrics["gpu_hours_lost"] * 3600 == pytest.approx(8 * 50 + 8 * 10)
    assert r.metrics["interruptions"] == 1  # one per job, not per rank


# ---- least attained service ---------------------------------------------------------------------------
# One GPU; A (1000 s) runs from 0, B (10 s) arrives at 100, when A has 100 GPU-s > 36: level 1.
@pytest.mark.parametrize("grace, checkpoint, b_jct, a_jct, lost_gpu_s", [
    # A stops at 130 with 100 s saved (lost 30); B 130-140; A restarts at 140, runs 900 s from 160
    (30.0, 50.0, 40.0, 140 + 20 + 900, 30 + 20),
    # no grace: A stops at 100 with 80 s saved (lost 20); B 100-110; A from 110 + 20, 920 s left
    (0.0, 40.0, 10.0, 110 + 20 + 920, 20 + 20),
])
def test_las_preempts_a_long_job_for_a_new_short_one(grace: float, checkpoint: float, b_jct: float,
                                                     a_jct: float, lost_gpu_s: float) -> None:
    cl = cluster(pool(gpus=1), checkpoint_interval_s=checkpoint, restart_cost_s=20.0, preemption_grace_s=grace)
    w = world([job("A", 0.0, 1000.0), job("B", 100.0, 10.0)], cl, LAS)
    advance(w, 100.0)
    if grace:
        assert w.rviews["A"].preempting and "B" in w.pending  # A keeps its GPU while it stops
        advance(w, 100.0 + grace)
    assert "B" in w.running and "A" in w.pending
    assert w.pending["A"].work_left == 1000.0 - math.floor((100.0 + grace) / checkpoint) * checkpoint
    r = finish(w)
    assert r.jct_s == (b_jct, a_jct)
    assert r.metrics["preemptions"] == 1 and r.metrics["interruptions"] == 0
    assert r.metrics["gpu_hours_lost"] * 3600 == pytest.approx(lost_gpu_s)


def test_las_does_not_preempt_a_job_below_the_threshold() -> None:
    # the default threshold, 1 GPU-h, is never reached: A and B stay in level 0, FIFO inside it
    r = simulate([job("A", 0.0, 1000.0), job("B", 20.0, 10.0)], cluster(pool(gpus=1)), Policy("las", PROFILES["las"]()))
    assert r.jct_s == (1000.0, 990.0)
    assert r.metrics["preemptions"] == 0


def test_las_preempts_once_the_running_job_crosses_the_threshold_while_another_waits() -> None:
    # nothing happens after B arrives; the plan's wake_at (A crossing the level) runs the cycle
    r = simulate([job("A", 0.0, 1000.0), job("B", 20.0, 10.0)], cluster(pool(gpus=1)), LAS)
    assert r.metrics["preemptions"] == 1


# ---- spot ---------------------------------------------------------------------------------------------
SPOT = SpotSeries("s", 100.0, (False, False, True, False))  # one outage, series time [200, 300), period 400


def transitions(w: World, until: float, node: int = 0) -> list[tuple[float, bool]]:
    """(time, whether the node is down) at each change of ``node``, stepping up to ``until``."""
    out, state = [], False
    while (t := w.events.next_time()) is not None and t <= until and w.step():
        if (node in w.down) != state:
            state = not state
            out.append((w.events.now, state))
    return out


def test_spot_node_is_reclaimed_during_outages_and_comes_back() -> None:
    cl = cluster(pool("spot", gpus=1, price=1.0, spot=SPOT), checkpoint_interval_s=50.0, restart_cost_s=0.0)
    w = world([job("j", duration=400.0)], cl, seed=0)
    o = w._offsets[0]  # where in the series node 0 starts
    d = (200.0 - o) % 400.0  # first outage in simulated time
    assert not 200.0 <= o < 300.0 and d >= 150.0, "seed 0 must start the node up and reclaim it after 150 s"
    # runs 0..d, saves floor(d/50)*50, resumes at d + 100 (restart free), done before the next outage
    saved = math.floor(d / 50.0) * 50.0
    jct = d + 100.0 + 400.0 - saved
    assert transitions(w, d + 100.0) == [(pytest.approx(d), True), (pytest.approx(d + 100.0), False)]
    r = finish(w)
    assert r.jct_s == (pytest.approx(jct),)
    assert r.metrics["interruptions"] == 1
    assert r.metrics["gpu_hours_lost"] * 3600 == pytest.approx(d - saved)
    assert r.metrics["cost_usd"] == pytest.approx((jct - 100.0) / 3600)  # no charge while reclaimed
    assert r.metrics["utilisation"] == pytest.approx(1.0)


@pytest.mark.parametrize("seed", [0, 1, 5])
def test_spot_outage_across_the_end_of_the_series_is_one_outage(seed: int) -> None:
    # unavailable at the last tick and the first: reading the series cyclically, one 200 s outage
    series = SpotSeries("wrap", 100.0, (True, False, False, True))
    cl = cluster(pool("od", gpus=1, gpu_type="OD"), pool("spot", gpus=1, spot=series))
    w = world([job("keepalive", duration=5000.0, gpu_type="OD")], cl, seed=seed)
    changes = [t for t, _ in transitions(w, 4000.0, node=1)]  # node 1: the spot node
    downs = list(zip(changes[::2], changes[1::2], strict=False))
    assert len(downs) >= 9
    inner = [b - a for a, b in downs if a > 0]  # an outage under way at 0 may be cut short
    assert inner == pytest.approx([200.0] * len(inner))
    starts = [a for a, _ in downs if a > 0]
    assert [b - a for a, b in zip(starts, starts[1:], strict=False)] == pytest.approx([400.0] * (len(starts) - 1))


# ---- seeds --------------------------------------------------------------------------------------------
def failing_cluster() -> ClusterModel:
    return cluster(pool(count=4, gpus=2, mtbf_s=1500.0, repair_s=300.0), checkpoint_interval_s=200.0)


FAILING_JOBS = [job(f"j{k}", submit=37.0 * k, duration=400.0 + 97.0 * (k % 5), gpus=1 + k % 2) for k in range(12)]


@pytest.mark.parametrize("pol", [FIFO, SJF, LAS])
def test_same_seed_same_run(pol: Policy) -> None:
    a, b = (simulate(FAILING_JOBS, failing_cluster(), pol, seed=7) for _ in range(2))
    assert a.metrics["interruptions"] > 0
    assert same(a.metrics, b.metrics)
    assert (a.jct_s, a.queue_delay_s, a.series) == (b.jct_s, b.queue_delay_s, b.series)


def test_seed_changes_failures_and_only_failures() -> None:
    runs = [simulate(FAILING_JOBS, failing_cluster(), seed=s) for s in range(4)]
    assert len({r.jct_s for r in runs}) > 1
    steady = [simulate(FAILING_JOBS, cluster(pool(count=4, gpus=2)), seed=s) for s in range(4)]
    assert len({r.jct_s for r in steady}) == 1 and steady[0].metrics["interruptions"] == 0

"""What a simulated run measures: quantiles, weighted max-min entitled shares, Jain's index, and the
collector's integration of capacity (utilisation, cost, energy, carbon per UTC hour), of jobs
(completion time, queueing delay, makespan), of attempts (per-team accounting, lost work) and of
fairness samples. Expected numbers are worked out by hand in each test."""

from __future__ import annotations

import math

import pytest

from hyperion.providers.grid import HourlySeries, constant
from hyperion.sim.cluster import ClusterModel, Pool, WorkloadModel
from hyperion.sim.energy import PowerModel
from hyperion.sim.experiment import run
from hyperion.sim.metrics import HOUR, Collector, entitled_shares, jain, percentile
from hyperion.sim.policies import policy
from hyperion.sim.traces.base import Trace, TraceJob

NAN = math.nan
TDP = 400.0


def cluster(gpus: int = 4, price: float = 0.0, idle: float = 0.3, pue: float = 1.0,
            carbon: HourlySeries | None = None, electricity: HourlySeries | None = None) -> ClusterModel:
    pools = (Pool("p", 1, "A100", gpus, 64_000, 2**39, price),)
    return ClusterModel("test", pools, {}, PowerModel({"A100": TDP}, idle_fraction=idle, pue=pue),
                        carbon or constant(0.0, "gCO2/kWh"), WorkloadModel(), electricity=electricity)


def collector(start_epoch: float = 0.0, weights: dict | None = None, **kw) -> Collector:
    c = Collector(cluster(**kw), start_epoch, weights or {})
    c.pool_changed(0, 0.0, up=c.cluster.pools[0].gpus)
    return c


def kwh(gpu_s: float, pue: float = 1.0) -> float:
    return gpu_s * TDP * pue / 3.6e6


def result(c: Collector, end: float) -> dict[str, float]:
    return c.result("test", end, 0.0, 0).metrics


# ---- pure functions -----------------------------------------------------------------------------
@pytest.mark.parametrize("values, q, expected", [
    ([5.0], 0.5, 5.0), ([5.0], 0.99, 5.0),
    ([1.0, 2.0, 3.0, 4.0], 0.5, 2.5),    # between ranks 1 and 2
    ([0.0, 10.0], 0.25, 2.5),
    ([1.0, 2.0, 3.0], 0.99, 2.98),       # rank 1.98
    ([1.0, 2.0, 3.0], 0.0, 1.0), ([1.0, 2.0, 3.0], 1.0, 3.0),
    ([10.0, 20.0, 30.0, 40.0, 50.0], 0.9, 46.0),  # rank 3.6
])
def test_percentile_interpolates_between_ranks(values: list, q: float, expected: float) -> None:
    assert percentile(values, q) == pytest.approx(expected)


def test_percentile_of_nothing_is_nan() -> None:
    assert math.isnan(percentile([], 0.5))


@pytest.mark.parametrize("capacity, demand, weight, expected", [
    # equal weights, one team capped below the equal share: the rest split what it leaves
    (10, {"a": 2, "b": 10, "c": 10}, {}, {"a": 2, "b": 4, "c": 4}),
    # weights 2:1, nobody capped
    (12, {"a": 100, "b": 100}, {"a": 2}, {"a": 8, "b": 4}),
    # weights 1:2:1, unit 3: a capped at 3; then 9 over weights 2:1
    (12, {"a": 3, "b": 100, "c": 100}, {"b": 2}, {"a": 3, "b": 6, "c": 3}),
    # two rounds: a capped at 1 (unit 10/3); then unit 9/2 caps b at 4; c takes the 5 left
    (10, {"a": 1, "b": 4, "c": 100}, {}, {"a": 1, "b": 4, "c": 5}),
    # a heavy team capped by its demand: the light one gets the rest
    (9, {"a": 2, "b": 100}, {"a": 4}, {"a": 2, "b": 7}),
    # everyone satisfied: capacity left over is nobody's
    (10, {"a": 3, "b": 4}, {}, {"a": 3, "b": 4}),
    # a team asking nothing gets nothing
    (4, {"a": 0, "b": 5}, {}, {"a": 0, "b": 4}),
    (0, {"a": 3}, {}, {"a": 0}),
])
def test_entitled_shares_water_fill_by_weight_up_to_demand(capacity: float, demand: dict, weight: dict,
                                                           expected: dict) -> None:
    share = entitled_shares(capacity, demand, weight)
    assert share == pytest.approx(expected)
    assert sum(share.values()) <= capacity + 1e-9


@pytest.mark.parametrize("values, expected", [
    ([1.0, 1.0, 1.0], 1.0), ([2.0, 2.0], 1.0), ([1.0, 0.0], 0.5),
    ([1.0, 2.0, 3.0], 36 / (3 * 14)),  # (1+2+3)^2 / (3 * (1+4+9))
    ([1.5, 0.5], 4 / (2 * 2.5)),
    ([0.0, 0.0], 1.0), ([], 1.0),      # nobody holds anything: no unfairness
])
def test_jain(values: list, expected: float) -> None:
    assert jain(values) == pytest.approx(expected)


# ---- capacity: utilisation, cost, energy, carbon -----------------------------------------------------
@pytest.mark.parametrize("idle, pue", [(0.3, 1.0), (0.0, 1.5), (1.0, 2.0)])
def test_capacity_integrals(idle: float, pue: float) -> None:
    # 4 GPUs up over [0, 400]; 2 busy over [100, 300]: 400 busy, 1200 idle GPU-s of 1600 up
    c = collector(price=2.5, idle=idle, pue=pue, carbon=constant(250.0, "gCO2/kWh"))
    c.pool_changed(0, 100.0, busy=2)
    c.pool_changed(0, 300.0, busy=-2)
    m = result(c, 400.0)
    assert m["utilisation"] == pytest.approx(400 / 1600)
    assert m["cost_usd"] == pytest.approx(1600 / 3600 * 2.5)  # up GPU-hours x price, busy or not
    energy = (400 + idle * 1200) * TDP * pue / 3.6e6
    assert m["energy_kwh"] == pytest.approx(energy)
    assert m["carbon_kg"] == pytest.approx(energy * 250.0 / 1000)


def test_down_capacity_costs_nothing_and_is_not_in_utilisation() -> None:
    # 4 GPUs up, 2 go down over [100, 200]; 1 busy throughout [0, 300]
    c = collector(price=1.0, idle=0.5)
    c.pool_changed(0, 0.0, busy=1)
    c.pool_changed(0, 100.0, up=-2)
    c.pool_changed(0, 200.0, up=2)
    m = result(c, 300.0)
    up = 4 * 300 - 2 * 100
    assert m["utilisation"] == pytest.approx(300 / up)
    assert m["cost_usd"] == pytest.approx(up / 3600)
    assert m["energy_kwh"] == pytest.approx(kwh(300 + 0.5 * (up - 300)))


def test_capacity_is_integrated_per_utc_hour() -> None:
    # relative 0 is epoch 3000 (0:50 UTC): 2 GPUs busy until 1200 (1:10): 600 s in each hour
    c = collector(start_epoch=3000.0, gpus=2)
    c.pool_changed(0, 0.0, busy=2)
    c.pool_changed(0, 1200.0, busy=-2)
    c.result("test", 1200.0, 0.0, 0)
    assert c.hours == {0: [[1200.0, 1200.0]], 1: [[1200.0, 1200.0]]}


HOURLY = HourlySeries("two-hours", 0.0, (100.0, 300.0), "gCO2/kWh")  # 0:00-1:00 UTC 100, 1:00-2:00 300


@pytest.mark.parametrize("start, end, g_by_hour", [
    # (relative start, end; relative 0 = epoch 3000) -> seconds x intensity of each hour covered
    (0.0, 1200.0, 600 * 100 + 600 * 300),   # across the 1:00 boundary, 10 min each side
    (500.0, 700.0, 100 * 100 + 100 * 300),  # short, still across the boundary
    (0.0, 300.0, 300 * 100),                # inside hour 0
    (700.0, 4200.0, 3500 * 300),            # inside hour 1
    (0.0, 4200.0, 600 * 100 + 3600 * 300),  # longer than an hour
])
def test_carbon_is_energy_of_each_hour_times_that_hours_intensity(start: float, end: float,
                                                                  g_by_hour: float) -> None:
    c = collector(start_epoch=3000.0, gpus=2, idle=0.0, carbon=HOURLY)
    c.pool_changed(0, start, busy=2)
    c.pool_changed(0, end, busy=-2)
    c.attempt_ended("t", 0, 2, start, end, 0.0)
    m = result(c, end)
    carbon = 2 * TDP / 3.6e6 * g_by_hour / 1000  # kWh per GPU-second x g, in kg
    assert m["energy_kwh"] == pytest.approx(kwh(2 * (end - start)))
    assert m["carbon_kg"] == pytest.approx(carbon)
    team = c.result("test", end, 0.0, 0).per_team["t"]
    assert team["energy_kwh"] == pytest.approx(kwh(2 * (end - start)))
    assert team["carbon_kg"] == pytest.approx(carbon)  # the team's attempt, integrated the same way


def test_energy_cost_is_each_hours_energy_times_that_hours_price() -> None:
    prices = HourlySeries("two-hours", 0.0, (50.0, -20.0), "USD/MWh")  # a negative price happens (DE-LU)
    c = collector(start_epoch=3000.0, gpus=2, idle=0.0, electricity=prices)
    c.pool_changed(0, 0.0, busy=2)
    c.pool_changed(0, 1200.0, busy=-2)  # 600 s in each hour
    m = result(c, 1200.0)
    assert m["energy_cost_usd"] == pytest.approx(kwh(2 * 600) * 50.0 / 1000 + kwh(2 * 600) * -20.0 / 1000)
    assert math.isnan(result(collector(), 10.0)["energy_cost_usd"])  # no price given: not reported


# ---- attempts and jobs --------------------------------------------------------------------------------
def test_attempts_are_charged_to_their_team() -> None:
    c = collector(price=3.0, pue=1.5, carbon=constant(400.0, "gCO2/kWh"))
    c.attempt_ended("a", 0, 2, 100.0, 1900.0, 2 * 300.0, "node")       # 3600 GPU-s, 600 lost
    c.attempt_ended("a", 0, 2, 2000.0, 2060.0, 2 * 60.0)                # a restart: 120 lost
    c.attempt_ended("b", 0, 1, 0.0, 720.0, 0.0, "scheduler")
    teams = c.result("test", 2060.0, 0.0, 0).per_team
    assert teams["a"]["gpu_hours"] == pytest.approx(3720 / 3600)
    assert teams["a"]["cost_usd"] == pytest.approx(3720 / 3600 * 3.0)
    assert teams["a"]["energy_kwh"] == pytest.approx(kwh(3720, pue=1.5))  # busy GPUs only, at TDP x PUE
    assert teams["a"]["carbon_kg"] == pytest.approx(kwh(3720, pue=1.5) * 0.4)
    assert teams["b"]["gpu_hours"] == pytest.approx(0.2)
    m = result(c, 2060.0)
    assert (m["interruptions"], m["preemptions"]) == (1, 1)
    assert m["gpu_hours_lost"] == pytest.approx(720 / 3600)


def test_job_times() -> None:
    c = collector()
    for team, submit, start, end in [("x", 10.0, 10.0, 110.0), ("y", 20.0, 50.0, 150.0), ("x", 30.0, 60.0, 400.0)]:
        c.submitted_job(team, submit)
        c.started_first(team, submit, start)
        c.finished(team, submit, end)
    c.submitted_job("y", 500.0)  # never starts
    r = c.result("test", 600.0, 0.0, 0)
    m = r.metrics
    assert r.jct_s == (100.0, 130.0, 370.0) and r.queue_delay_s == (0.0, 30.0, 30.0)
    assert (m["jobs_finished"], m["jct_mean_s"], m["jct_p50_s"]) == (3, 200.0, 130.0)
    assert m["jct_p99_s"] == pytest.approx(130 + 240 * 0.98)
    assert (m["queue_delay_mean_s"], m["queue_delay_p50_s"], m["queue_delay_p99_s"]) == (20.0, 30.0, 30.0)
    assert m["makespan_s"] == 400.0 - 10.0
    assert r.per_team["x"]["jct_mean_s"] == (100 + 370) / 2 and r.per_team["x"]["queue_delay_mean_s"] == 15.0
    assert r.per_team["y"]["jobs_finished"] == 1 and r.per_team["y"]["queue_delay_mean_s"] == 30.0


def test_no_finished_job_means_no_makespan() -> None:
    c = collector()
    c.submitted_job("x", 100.0)
    m = result(c, 700.0)
    assert m["jobs_finished"] == 0
    assert all(math.isnan(m[k]) for k in ("jct_mean_s", "jct_p50_s", "queue_delay_mean_s", "makespan_s"))


# ---- fairness samples ---------------------------------------------------------------------------------
@pytest.mark.parametrize("weights, samples, jain_index, max_dev", [
    # demands 6 and 6 on 8 GPUs: shares 4 and 4; held 6, 2 -> Jain(1.5, 0.5) = 0.8, |dev| 2/8 each;
    # then held 4, 4 -> 1.0, 0; averaged over the two samples
    ({}, [({"a": 6, "b": 2}, {"b": 4}), ({"a": 4, "b": 4}, {})], 0.9, 0.125),
    # weights 3:1: a's share is its whole demand 6, b's the 2 left: held exactly that
    ({"a": 3.0}, [({"a": 6, "b": 2}, {"b": 4})], 1.0, 0.0),
    # c asks nothing and does not count; b holds nothing of its share 4: Jain(1, 0) = 0.5
    ({}, [({"a": 4, "c": 0}, {"b": 4})], 0.5, 0.5),
    # only one team asking: no fairness sample
    ({}, [({"a": 8}, {"a": 4})], NAN, NAN),
])
def test_fairness_samples(weights: dict, samples: list, jain_index: float, max_dev: float) -> None:
    c = collector(gpus=8, weights=weights)
    for k, (held, waiting) in enumerate(samples):
        c.sample(600.0 * k, sum(1 for v in waiting.values() if v), held, waiting)
    m = result(c, 600.0 * len(samples))
    assert m["jain_index"] == pytest.approx(jain_index, nan_ok=True)
    assert m["max_share_deviation"] == pytest.approx(max_dev, nan_ok=True)


def test_samples_record_utilisation_and_queue_length() -> None:
    c = collector(gpus=8)
    c.sample(0.0, 3, {}, {"a": 3})
    c.pool_changed(0, 10.0, busy=6)
    c.sample(600.0, 1, {"a": 6}, {"a": 1})
    series = c.result("test", 600.0, 0.0, 0).series
    assert series == {"utilisation": ((0.0, 0.0), (600.0, 0.75)), "queue_length": ((0.0, 3.0), (600.0, 1.0))}


# ---- end to end ---------------------------------------------------------------------------------------
def test_single_job_run_metrics() -> None:
    # one 8-GPU node ($2/GPU-h, idle 0.3, PUE 1.2, 500 g/kWh); a 4-GPU job runs 1000 s from 0
    cl = cluster(gpus=8, price=2.0, idle=0.3, pue=1.2, carbon=constant(500.0, "gCO2/kWh"))
    r = run(Trace("t", (TraceJob("j", 0.0, 1000.0, 4),)), cl, policy("fifo"))
    m = r.metrics
    assert m["utilisation"] == pytest.approx(4000 / 8000)
    assert m["cost_usd"] == pytest.approx(8000 / HOUR * 2.0)
    energy = (4000 + 0.3 * 4000) * TDP * 1.2 / 3.6e6
    assert m["energy_kwh"] == pytest.approx(energy)
    assert m["carbon_kg"] == pytest.approx(energy * 0.5)
    team = r.per_team["default"]
    assert team["gpu_hours"] == pytest.approx(4000 / HOUR) and team["cost_usd"] == pytest.approx(4000 / HOUR * 2.0)
    assert team["energy_kwh"] == pytest.approx(4000 * TDP * 1.2 / 3.6e6)
    assert r.series["utilisation"][1:] == ((600.0, 0.5),)

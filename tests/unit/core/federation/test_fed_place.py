"""``place`` end to end: cheapest, carbon-spatial with a bounded cost, temporal shifting within
slack, capacity and budget shared by the jobs of one call, reasons for rejected clusters."""

from __future__ import annotations

import math

import pytest
from federation_builders import HOUR, NOW, a_cluster, a_job, a_snapshot

from hyperion.core.federation import FED_PROFILES, normalise, place

CHEAPEST, DEFAULT = FED_PROFILES["cheapest"](), FED_PROFILES["default"]()
SPATIAL, TEMPORAL = FED_PROFILES["carbon-spatial"](), FED_PROFILES["carbon-temporal"]()


def test_cheapest_picks_the_cheapest_and_spot_only_for_tolerant_jobs() -> None:
    clusters = [a_cluster("a", od={"H100": 3.0}), a_cluster("b", od={"H100": 2.5}),
                a_cluster("c", od={"H100": 4.0}, spot={"H100": 1.0}, spot_interruptions_per_h=0.1)]
    plan = place(a_snapshot(clusters, [a_job("strict", gpus=2), a_job("tolerant", gpus=2, spot=True)]), CHEAPEST)
    strict, tolerant = plan.decision("strict"), plan.decision("tolerant")
    assert (strict.cluster, strict.spot, strict.expected_usd) == ("b", False, pytest.approx(5.0))
    assert (tolerant.cluster, tolerant.spot) == ("c", True)
    assert tolerant.expected_usd == pytest.approx(2 * math.expm1(0.1) / 0.1)
    assert strict.rejected == {} and strict.start_delay_s == 0.0


def test_spot_rework_can_make_on_demand_cheaper() -> None:
    c = a_cluster("a", od={"H100": 2.0}, spot={"H100": 1.0}, spot_interruptions_per_h=2.0)  # e^2 - 1 = 6.4 h expected
    d = place(a_snapshot([c], [a_job(spot=True)]), CHEAPEST).decision("j1")
    assert (d.cluster, d.spot) == ("a", False)


def _two_grids(clean_price: float) -> list:
    dirty = a_cluster("dirty", region="r-dirty", od={"H100": 2.0}, carbon_g_per_kwh=(800.0,))
    clean = a_cluster("clean", region="r-clean", od={"H100": clean_price}, carbon_g_per_kwh=(50.0,))
    return [dirty, clean]


def test_carbon_spatial_moves_to_the_cleaner_region_at_a_bounded_cost() -> None:
    job = a_job(gpus=4, estimate_s=2 * HOUR)
    assert place(a_snapshot(_two_grids(2.2), [job]), DEFAULT).decision("j1").cluster == "dirty"  # carbon-agnostic
    d = place(a_snapshot(_two_grids(2.2), [job]), SPATIAL).decision("j1")
    assert d.cluster == "clean" and d.start_delay_s == 0.0
    assert d.expected_carbon_g == pytest.approx(4 * 0.3 * 2 * 50.0)
    # 50% dearer is past the 1.25 bound: it stays, whatever the carbon
    assert place(a_snapshot(_two_grids(3.0), [job]), SPATIAL).decision("j1").cluster == "dirty"
    assert place(a_snapshot(_two_grids(3.0), [job]), FED_PROFILES["carbon-spatial"](max_cost_ratio=2)).decision("j1").cluster == "clean"


def test_carbon_spatial_never_waits() -> None:
    c = a_cluster(carbon_g_per_kwh=(900.0, 900.0, 10.0))
    d = place(a_snapshot([c], [a_job(deadline=NOW + 10 * HOUR)]), SPATIAL).decision("j1")
    assert d.start_delay_s == 0.0


def test_temporal_waits_for_the_cleaner_hour_within_slack() -> None:
    series = (900.0, 900.0, 900.0, 100.0, 100.0, 900.0, 900.0, 50.0)
    c = a_cluster(carbon_g_per_kwh=series)
    job = a_job(estimate_s=2 * HOUR, deadline=NOW + 6 * HOUR)  # slack 4 h: the 50 at hour 7 is out of reach
    d = place(a_snapshot([c], [job]), TEMPORAL).decision("j1")
    assert d.start_delay_s == 3 * HOUR and d.expected_end == NOW + 5 * HOUR
    assert d.expected_carbon_g == pytest.approx(0.3 * 2 * 100.0)
    # a longer deadline reaches the 50 g hour (and the end of the series repeats it)
    later = place(a_snapshot([c], [a_job(estimate_s=2 * HOUR, deadline=NOW + 24 * HOUR)]), TEMPORAL).decision("j1")
    assert later.start_delay_s == 7 * HOUR
    # max_wait_h bounds the search
    capped = place(a_snapshot([c], [a_job(estimate_s=2 * HOUR, deadline=NOW + 24 * HOUR)]), FED_PROFILES["carbon-temporal"](max_wait_h=4))
    assert capped.decision("j1").start_delay_s == 3 * HOUR


def test_waiting_keeps_a_reserve_of_the_whole_slack() -> None:
    c = a_cluster(carbon_g_per_kwh=(900.0,) * 5 + (10.0,) * 10)  # clean from hour 5
    job = a_job(estimate_s=2 * HOUR, deadline=NOW + 8 * HOUR)    # whole slack 6 h
    assert place(a_snapshot([c], [job]), FED_PROFILES["carbon-temporal"](slack_reserve=0)).decision("j1").start_delay_s == 5 * HOUR
    # a quarter of it (1.5 h) stays unspent: at most 4 h of waiting (a run over hours 4 and 5)
    assert place(a_snapshot([c], [job]), TEMPORAL).decision("j1").start_delay_s == 4 * HOUR
    # decided again two hours later (the driver re-decides when a delay ends): the reserve is of the
    # whole slack since submission, so only 2 more hours may be spent
    later = a_job(estimate_s=2 * HOUR, deadline=NOW + 8 * HOUR, submitted_at=NOW - 2 * HOUR)
    d = place(a_snapshot([c], [later]), FED_PROFILES["carbon-temporal"](slack_reserve=0.5)).decision("j1")
    assert d.start_delay_s == 0.0  # slack 6 h, deadline at +8 h: reserve 4 h leaves 6 - 2 - 4 = 0 h


@pytest.mark.parametrize("job", [
    a_job(estimate_s=2 * HOUR),                                 # no deadline: never waits
    a_job(estimate_s=2 * HOUR, deadline=NOW + 2.5 * HOUR),      # under an hour of slack
])
def test_temporal_does_not_wait_without_slack(job) -> None:
    c = a_cluster(carbon_g_per_kwh=(900.0, 10.0))
    d = place(a_snapshot([c], [job]), TEMPORAL).decision("j1")
    assert d.cluster == "c1" and d.start_delay_s == 0.0


def test_capacity_taken_by_an_earlier_job_is_not_reused() -> None:
    a = a_cluster("a", free={"H100": 8}, od={"H100": 1.0})
    b = a_cluster("b", free={"H100": 8}, od={"H100": 2.0})
    jobs = [a_job("second", gpus=6, submitted_at=2.0), a_job("first", gpus=6, submitted_at=1.0),
            a_job("urgent", gpus=2, submitted_at=3.0, priority=10), a_job("third", gpus=6, submitted_at=4.0)]
    plan = place(a_snapshot([a, b], jobs), CHEAPEST)
    assert [d.job_id for d in plan.decisions] == ["urgent", "first", "second", "third"]
    assert [d.cluster for d in plan.decisions] == ["a", "a", "b", None]
    third = plan.decision("third")
    assert third.reason == "no cluster passes every hard constraint"
    assert third.rejected == {"a": "0 H100 GPU(s) free, the job needs 6", "b": "2 H100 GPU(s) free, the job needs 6"}


def test_team_budget_is_shared_by_the_jobs_of_one_call() -> None:
    c = a_cluster(od={"H100": 1.0})
    jobs = [a_job("x", team="t", gpus=4, submitted_at=1.0), a_job("y", team="t", gpus=4, submitted_at=2.0),
            a_job("z", team="u", gpus=4, submitted_at=3.0)]
    plan = place(a_snapshot([c], jobs, team_budget_left={"t": 6.0}), CHEAPEST)
    assert [d.cluster for d in plan.decisions] == ["c1", None, "c1"]
    assert plan.decision("y").rejected == {"c1": "expected to cost $4.00, team 't' has $2.00 left"}


def test_hard_constraints_reject_with_reasons_and_any_type_is_tried() -> None:
    eu = a_cluster("eu", region="eu-west-1", country="IE", free={"A100": 8, "H100": 1}, od={"A100": 1.5, "H100": 2.0})
    us = a_cluster("us", region="us-east-1", country="US", od={"H100": 0.5})
    job = a_job(gpus=4, residency=frozenset({"IE", "DE"}))
    d = place(a_snapshot([eu, us], [job]), DEFAULT).decision("j1")
    assert (d.cluster, d.gpu_type) == ("eu", "A100")
    assert d.rejected == {"us": "the job's data must stay in DE, IE; this cluster is in region us-east-1 (US)"}
    nowhere = place(a_snapshot([], [job]), DEFAULT).decision("j1")
    assert nowhere.cluster is None and nowhere.reason == "no clusters in the snapshot"


def test_default_prefers_the_data_and_the_callers() -> None:
    near = a_cluster("near", od={"H100": 2.1}, data=frozenset({"ds"}), latency_ms={"eu": 5.0})
    far = a_cluster("far", od={"H100": 2.0}, egress_usd_per_gb=0.09, latency_ms={"eu": 90.0})
    train = a_job("train", data_location="ds", data_bytes=50 * 10**9)
    serve = a_job("serve", caller_region="eu")
    picky = a_job("picky", caller_region="eu", weights={"latency": 2.0})
    plan = place(a_snapshot([near, far], [train, serve, picky]), DEFAULT)
    assert plan.decision("train").cluster == "near"  # $2.10 here vs $2.00 + $4.50 egress there
    # two candidates: each axis normalises to 0 and 1, so the weights decide: cost 1 > latency 0.5 ...
    assert plan.decision("serve").cluster == "far"
    # ... unless the job (or its team) weighs latency more
    assert plan.decision("picky").cluster == "near"
    teamwise = place(a_snapshot([near, far], [serve], team_weights={"t": {"latency": 2.0}}), DEFAULT)
    assert teamwise.decision("serve").cluster == "near"


@pytest.mark.parametrize("values, expected", [
    ([3.0, 1.0, None, 2.0], [1.0, 0.0, 1.0, 0.5]),   # unknown: the worst
    ([5.0, 5.0], [0.0, 0.0]),                        # all equal: no preference
    ([None, math.inf], [1.0, 1.0]),
])
def test_normalise(values: list, expected: list) -> None:
    assert normalise(values) == expected


def test_a_granted_cost_cap_keeps_the_options_a_job_waited_for() -> None:
    clean = a_cluster("clean", od={"H100": 3.0}, carbon_g_per_kwh=(50.0,))
    cheap = a_cluster("cheap", region="r2", od={"H100": 1.0}, carbon_g_per_kwh=(500.0,))
    job = a_job(estimate_s=HOUR)
    # decided alone with the cheap member: the clean one costs 3x, past the 1.25 bound
    d = place(a_snapshot([clean, cheap], [job]), SPATIAL).decision("j1")
    assert d.cluster == "cheap" and d.cost_cap_usd == pytest.approx(1.25)
    # a job first decided when only the clean member was free was granted 1.25 x $3: it keeps it
    kept = place(a_snapshot([clean, cheap], [a_job(estimate_s=HOUR, cost_cap_usd=3.75)]), SPATIAL).decision("j1")
    assert kept.cluster == "clean" and kept.cost_cap_usd == 3.75
    # a cap under the profile's own bound changes nothing
    assert place(a_snapshot([clean, cheap], [a_job(estimate_s=HOUR, cost_cap_usd=0.5)]), SPATIAL).decision("j1").cluster == "cheap"


def test_when_capacity_is_short_the_earliest_deadline_goes_first() -> None:
    c = a_cluster(free={"H100": 1})
    loose = a_job("a-loose", deadline=NOW + 10 * HOUR, submitted_at=NOW - 60)
    tight = a_job("b-tight", deadline=NOW + 2 * HOUR)
    none = a_job("c-none", submitted_at=NOW - 120)
    plan = place(a_snapshot([c], [none, loose, tight]), FED_PROFILES["default"]())
    assert [d.job_id for d in plan.decisions] == ["b-tight", "a-loose", "c-none"]
    assert plan.decision("b-tight").cluster == "c1" and plan.decision("a-loose").cluster is None

"""Budgets in the scheduling core: periods, expected cost, and the ``budget`` gate of a cycle."""

from __future__ import annotations

import calendar
from dataclasses import replace

import pytest

from hyperion.core import PROFILES, schedule
from hyperion.core.budget import check, committed, expected, period_bounds
from hyperion.model import VerdictCode
from hyperion.model.cost import BudgetView
from hyperion.testing.builders import a_job, a_node, a_snapshot

T = calendar.timegm((2026, 12, 6, 22, 30, 0))  # a Sunday
PRICES = {"A100": 2.0, "T4": 0.5, "cpu": 0.1}


def at(*ymd_hms: int) -> float:
    return float(calendar.timegm((*ymd_hms, *(0,) * (6 - len(ymd_hms)))))


@pytest.mark.parametrize("period, now, start, end", [
    ("day", T, at(2026, 12, 6), at(2026, 12, 7)),
    ("week", T, at(2026, 11, 30), at(2026, 12, 7)),            # Monday to Monday
    ("week", at(2026, 11, 30), at(2026, 11, 30), at(2026, 12, 7)),
    ("month", T, at(2026, 12, 1), at(2027, 1, 1)),            # December runs into January
    ("month", at(2024, 2, 29, 23, 59, 59), at(2024, 2, 1), at(2024, 3, 1)),  # leap year
    ("month", at(2024, 3, 1), at(2024, 3, 1), at(2024, 4, 1)),
])
def test_period_bounds(period: str, now: float, start: float, end: float) -> None:
    assert period_bounds(period, now) == (start, end)


def test_unknown_period_is_an_error() -> None:
    with pytest.raises(ValueError, match="year"):
        period_bounds("year", T)


def budget(usd: float | None = 100.0, spent: float = 0.0, gpu_hours: float | None = None, spent_gpu_h: float = 0.0,
           team: str = "vision") -> BudgetView:
    start, end = period_bounds("month", T)
    return BudgetView("monthly", team, "month", start, end, usd, gpu_hours, spent, spent_gpu_h)


def test_expected_cost_uses_the_jobs_type_else_the_dearest() -> None:
    assert expected(4, 0, "T4", 7200, PRICES) == (4 * 0.5 * 2, 8.0)
    assert expected(4, 0, None, 7200, PRICES) == (4 * 2.0 * 2, 8.0)  # may land on A100s: "up to"
    assert expected(0, 2000, None, 3600, PRICES) == (0.2, 0.0)         # CPU-only: per core-hour
    assert expected(4, 0, "T4", None, PRICES) == (None, None)


def test_check_says_what_is_spent_what_is_left_and_what_the_job_costs() -> None:
    assert check("vision", 2, 0, "A100", 3600, [budget(spent=90.0)], PRICES) is None  # $4 of $10 left
    why = check("vision", 4, 0, "A100", 7200, [budget(spent=90.0)], PRICES)
    assert why is not None
    assert "$16.00" in why and "$10.00 of $100.00 is left" in why and "$90.00 spent" in why
    assert "4 GPU(s) x 2.00 h" in why and "2027-01-01 00:00 UTC" in why
    # another team's budget does not apply
    assert check("nlp", 4, 0, "A100", 7200, [budget(spent=99.0)], PRICES) is None


def test_a_spent_budget_holds_even_jobs_without_an_estimate() -> None:
    assert check("vision", 1, 0, None, None, [budget(spent=50.0)], PRICES) is None
    why = check("vision", 1, 0, None, None, [budget(spent=100.0)], PRICES)
    assert why is not None and "$100.00 spent of $100.00 this month" in why


def test_gpu_hour_budgets_and_running_jobs_commitments() -> None:
    b = budget(usd=None, gpu_hours=10.0, spent_gpu_h=4.0)
    assert check("vision", 2, 0, None, 3 * 3600, [b], PRICES) is None                     # 6 of 6 left
    why = check("vision", 2, 0, None, 3 * 3600, [b], PRICES, committed=(0.0, 1.0))
    assert why is not None and "1.00 GPU-h still expected by running jobs" in why
    whole = check("vision", 8, 0, None, 2 * 3600, [b], PRICES, whole=True)
    assert whole is not None and "more than the whole monthly budget of 10.00 GPU-h" in whole


def test_committed_counts_the_rest_of_running_estimates() -> None:
    snap = a_snapshot([a_node("a").gpus(8).gpu_type("A100")], running=[
        a_job("r1").team("vision").gpus(2).runtime(7200).running_on("a", started=T - 3600),
        a_job("r2").team("vision").gpus(2).runtime(None).running_on("a", started=T - 3600)], now=T)
    assert committed(snap.running, T, PRICES) == {"vision": (2 * 2.0 * 1.0, 2.0)}


def with_budgets(snap, *budgets: BudgetView):
    return replace(snap, budgets=tuple(budgets), prices=PRICES)


def test_the_gate_holds_an_over_budget_team_and_places_the_others() -> None:
    snap = with_budgets(a_snapshot([a_node("a").gpus(8).gpu_type("A100")], [
        a_job("big").team("vision").gpus(4).runtime(7200).submitted(1),
        a_job("other").team("nlp").gpus(4).runtime(7200).submitted(2)], now=T), budget(spent=90.0))
    plan = schedule(snap, PROFILES["default"]())
    assert [a.job_id for a in plan.assignments] == ["other"]
    v = plan.verdicts["big"]
    assert (v.code, v.plugin) == (VerdictCode.UNRESOLVABLE, "budget")
    assert "$16.00" in v.reasons[0] and not plan.evictions
    assert plan.wake_at == period_bounds("month", T)[1]  # the next period may admit it


def test_jobs_placed_in_the_same_cycle_count_against_what_is_left() -> None:
    snap = with_budgets(a_snapshot([a_node("a").gpus(8).gpu_type("A100")], [
        a_job("j1").team("vision").gpus(2).runtime(3600).submitted(1),
        a_job("j2").team("vision").gpus(2).runtime(3600).submitted(2)], now=T), budget(spent=94.0))
    plan = schedule(snap, PROFILES["default"]())  # $6 left, each expects $4
    assert [a.job_id for a in plan.assignments] == ["j1"]
    assert plan.verdicts["j2"].plugin == "budget" and "$2.00 of $100.00 is left" in plan.verdicts["j2"].reasons[0]


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_every_profile_honours_budgets(profile: str) -> None:
    snap = with_budgets(a_snapshot([a_node("a").gpus(8).gpu_type("A100")], [
        a_job("big").team("vision").gpus(4).runtime(7200)], now=T), budget(spent=100.0))
    plan = schedule(snap, PROFILES[profile]())
    assert not plan.assignments and plan.verdicts["big"].plugin == "budget"


def test_no_budgets_no_gate() -> None:
    snap = a_snapshot([a_node("a").gpus(8).gpu_type("A100")], [a_job("j").team("vision").gpus(4).runtime(7200)], now=T)
    assert [a.job_id for a in schedule(snap, PROFILES["default"]()).assignments] == ["j"]

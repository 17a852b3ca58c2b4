"""Budgets in the simulator: the same gate as live (``core.budget``), fed by the world's own spend."""

from __future__ import annotations

import calendar

from hyperion.model.cost import BudgetSpec
from hyperion.providers.grid import constant
from hyperion.sim.cluster import ClusterModel, Pool, WorkloadModel
from hyperion.sim.energy import PowerModel
from hyperion.sim.policies import policy
from hyperion.sim.traces.base import Trace, TraceJob
from hyperion.sim.world import World

MIDNIGHT = float(calendar.timegm((2026, 12, 6, 0, 0, 0)))
DAY = 86400.0


def world(jobs: list[TraceJob], *budgets: BudgetSpec, oracle: str = "fifo") -> World:
    pool = Pool("n", 1, "A100", 8, 64_000, 512 * 2**30, 1.0)  # $1 per GPU-hour
    cl = ClusterModel("test", (pool,), {}, PowerModel({"A100": 400.0}), constant(0.0, "gCO2/kWh"), WorkloadModel(),
                      600.0, 0.0, budgets=budgets)
    pol = policy(oracle)
    return World(Trace("t", tuple(jobs)), cl, pol.profile, oracle=pol.oracle, start_epoch=MIDNIGHT)


def run_all(w: World) -> None:
    while w.step():
        pass


def started(w: World, job_id: str) -> float | None:
    j = w.running.get(job_id) or w.pending.get(job_id)
    return j.first_start if j is not None else None


def test_a_team_over_its_daily_budget_waits_for_the_next_day() -> None:
    jobs = [TraceJob("j1", 0.0, 7200.0, 4, team="a"), TraceJob("j2", 100.0, 7200.0, 4, team="a"),
            TraceJob("j3", 3 * 3600.0, 3600.0, 4, team="a"), TraceJob("b1", 3 * 3600.0 + 1, 3600.0, 4, team="b")]
    w = world(jobs, BudgetSpec("daily", "a", "day", usd=10.0))
    starts: dict[str, float] = {}
    while w.step():
        for jid, j in list(w.running.items()):
            starts.setdefault(jid, j.first_start)
    # j1 and j2 ran without estimates ($16 by 2 h); j3 waits for the next UTC day, b1 (no budget) does not
    assert starts["j1"] == 0.0 and starts["j2"] == 100.0
    assert starts["b1"] == 3 * 3600.0 + 1
    assert starts["j3"] == DAY
    assert w.remaining == 0


def test_expected_cost_holds_a_job_that_does_not_fit_what_is_left() -> None:
    # oracle estimates: j2 (4 GPUs x 2 h = $8) does not fit the $5 left after j1's $5; it waits a day
    jobs = [TraceJob("j1", 0.0, 3600.0 * 1.25, 4, team="a"), TraceJob("j2", 2 * 3600.0, 7200.0, 4, team="a")]
    w = world(jobs, BudgetSpec("daily", "a", "day", usd=10.0), oracle="sjf")
    starts: dict[str, float] = {}
    while w.step():
        for jid, j in list(w.running.items()):
            starts.setdefault(jid, j.first_start)
    assert starts == {"j1": 0.0, "j2": DAY}


def test_a_job_over_the_whole_budget_never_starts_and_the_run_ends() -> None:
    jobs = [TraceJob("big", 0.0, 10 * 3600.0, 8, team="a")]
    w = world(jobs, BudgetSpec("daily", "a", "day", usd=10.0), oracle="sjf")  # $80 expected
    run_all(w)
    assert w.remaining == 1 and "big" in w.pending


def test_held_jobs_are_told_the_periods_end_as_a_date() -> None:
    w = world([TraceJob("j1", 0.0, 3600.0, 8, team="a")], BudgetSpec("daily", "a", "day", usd=0.0))
    w.step()
    reason = w.rounds.verdicts["j1"].reasons[0]
    assert "until the period ends at 2026-12-07 00:00 UTC" in reason

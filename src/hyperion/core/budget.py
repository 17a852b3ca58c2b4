"""Budgets: periods, what a job is expected to cost, and the admission gate (pure).

The same gate runs in the live control plane and in the simulator: the ``budget`` plugin asks
``check`` for every pending job of a team with a budget, on the ``BudgetView``s of the snapshot
(each driver fills in what the team spent in the current period). A job is held when its team
has spent its budget, or when what the job is *expected* to cost (its GPUs x its runtime estimate
x the price of a GPU-hour, or GPU-hours for a GPU-hour budget) is more than what is left. A job
without a runtime estimate (none in its spec, no history of its user) has no expected cost: it is
held only once the budget is spent.

Prices for the expected cost: the job's GPU type's price when it names one, else the highest
price among the cluster's GPU types (it may land on any of them: the estimate says "up to").
"""

from __future__ import annotations

import calendar
from collections.abc import Iterable, Mapping

from hyperion.model.cost import PERIODS, BudgetView

DAY = 86400.0
# 1970-01-01 was a Thursday: Monday 1970-01-05 00:00 UTC starts the first whole week
_MONDAY = 4 * DAY


def period_bounds(period: str, now: float) -> tuple[float, float]:
    """[start, end) in epoch seconds of the UTC ``day``, ``week`` (Monday 00:00) or calendar
    ``month`` containing ``now``."""
    if period == "day":
        start = now - now % DAY
        return start, start + DAY
    if period == "week":
        start = now - (now - _MONDAY) % (7 * DAY)
        return start, start + 7 * DAY
    if period == "month":
        days = int(now // DAY)
        y, m, _ = _civil(days)
        start = calendar.timegm((y, m, 1, 0, 0, 0))
        end = calendar.timegm((y + (m == 12), m % 12 + 1, 1, 0, 0, 0))
        return float(start), float(end)
    raise ValueError(f"unknown budget period {period!r}; one of {', '.join(PERIODS)}")


def _civil(days: int) -> tuple[int, int, int]:
    """(year, month, day) of a day number since 1970-01-01 (Howard Hinnant's civil_from_days)."""
    z = days + 719468
    era = (z if z >= 0 else z - 146096) // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    y = yoe + era * 400
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = mp + 3 if mp < 10 else mp - 9
    return y + (m <= 2), m, d


def job_price(gpu_type: str | None, gpus: int, cpus_milli: int, prices: Mapping[str, float]) -> float:
    """USD per hour a job of ``gpus`` GPUs (``cpus_milli`` when it has none) is expected to cost:
    per GPU-hour of its type, else the highest among ``prices`` (GPU type -> USD per GPU-hour; the
    key ``"cpu"`` is USD per core-hour)."""
    if gpus <= 0:
        return prices.get("cpu", 0.0) * cpus_milli / 1000.0
    if gpu_type and gpu_type in prices:
        per = prices[gpu_type]
    else:
        per = max((v for k, v in prices.items() if k != "cpu"), default=0.0)
    return per * gpus


def expected(gpus: int, cpus_milli: int, gpu_type: str | None, estimate_s: float | None,
             prices: Mapping[str, float]) -> tuple[float | None, float | None]:
    """(USD, GPU-hours) a job is expected to use over its runtime estimate; (None, None) without one."""
    if estimate_s is None:
        return None, None
    hours = estimate_s / 3600.0
    return job_price(gpu_type, gpus, cpus_milli, prices) * hours, gpus * hours


def check(team: str, gpus: int, cpus_milli: int, gpu_type: str | None, estimate_s: float | None,
          budgets: Iterable[BudgetView], prices: Mapping[str, float], whole: bool = False,
          committed: tuple[float, float] = (0.0, 0.0)) -> str | None:
    """Why the team's budgets do not admit this job, or None. ``whole``: compare with the whole
    limit instead of what is left (a job that can never fit). ``committed``: (USD, GPU-hours) the
    team's running jobs are still expected to use (their estimates); it is not left for this one."""
    exp_usd, exp_gpu_h = expected(gpus, cpus_milli, gpu_type, estimate_s, prices)
    for b in budgets:
        if b.team != team:
            continue
        for unit, limit, spent, exp, owed in (("usd", b.usd, b.spent_usd, exp_usd, committed[0]),
                                              ("gpu_hours", b.gpu_hours, b.spent_gpu_hours, exp_gpu_h, committed[1])):
            if limit is None:
                continue
            left = limit if whole else limit - spent - owed
            name = f"budget {b.name!r} of team {team!r}"
            if not whole and limit - spent <= 0:
                return (f"{name}: {_fmt(unit, spent)} spent of {_fmt(unit, limit)} this {b.period}; "
                        f"the job waits until the period ends at {utc_text(b.epoch + b.period_end)} or the budget is raised")
            if exp is not None and exp > left + 1e-9:
                how = (f"{gpus} GPU(s) x {estimate_s / 3600.0:.2f} h" if unit == "gpu_hours" or gpus > 0
                       else f"{cpus_milli / 1000:g} CPU(s) x {estimate_s / 3600.0:.2f} h")
                if unit == "usd":
                    how += f" x {_fmt('usd', exp / (estimate_s / 3600.0) / max(gpus, 1))}/{'GPU' if gpus else 'node'}-h"
                if whole:
                    return (f"{name}: this job is expected to cost {_fmt(unit, exp)} ({how}), more than the whole "
                            f"{b.period}ly budget of {_fmt(unit, limit)}; ask for fewer GPUs or a shorter runtime_estimate, "
                            "or raise the budget")
                owing = f", {_fmt(unit, owed)} still expected by running jobs" if owed > 0 else ""
                return (f"{name}: this job is expected to cost {_fmt(unit, exp)} ({how}) but only {_fmt(unit, max(left, 0.0))} "
                        f"of {_fmt(unit, limit)} is left this {b.period} ({_fmt(unit, spent)} spent{owing}); it waits until "
                        f"{utc_text(b.epoch + b.period_end)} or until the budget is raised")
    return None


def committed(views: Iterable, now: float, prices: Mapping[str, float]) -> dict[str, tuple[float, float]]:
    """Team -> (USD, GPU-hours) its running jobs (``RunningView``s) are still expected to use: the
    rest of their runtime estimate at the price of their GPU type; jobs without one count nothing."""
    out: dict[str, tuple[float, float]] = {}
    for v in views:
        if v.preempting or v.runtime_estimate_s is None:
            continue
        started = v.started_at if v.started_at is not None else now
        left_h = max(0.0, started + v.runtime_estimate_s - now) / 3600.0
        if left_h <= 0:
            continue
        gpus = v.gpus
        usd = job_price(v.gpu_type, gpus, v.per_replica.cpus_milli * len(v.placements), prices) * left_h
        a, b = out.get(v.team, (0.0, 0.0))
        out[v.team] = (a + usd, b + gpus * left_h)
    return out


def _fmt(unit: str, value: float) -> str:
    return f"${value:,.2f}" if unit == "usd" else f"{value:,.2f} GPU-h"


def utc_text(t: float) -> str:
    """An instant as people read it in messages, without a clock or timezone: ``2025-06-01 14:00 UTC``."""
    y, m, d = _civil(int(t // DAY))
    s = int(t % DAY)
    return f"{y:04d}-{m:02d}-{d:02d} {s // 3600:02d}:{s % 3600 // 60:02d} UTC"

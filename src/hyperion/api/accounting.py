"""The live cost meter: what each job and team accrues while its tasks hold nodes, and budgets.

Every live task that holds resources (``store.objects.holds``) accrues, from the moment it is
placed until its exit is reported:
- *cost*: its share of its node's price per hour. A node may carry its own price (the label
  ``hyperion.io/price-per-hour``, USD per node-hour: a cloud instance's price); the share is the
  task's GPUs over the node's (its CPUs over the node's for a job without GPUs). Other nodes cost
  the applied ``kind: Pricing`` rates: the GPU-hour rate of their GPU type (the on-prem amortised
  rate), or the core-hour rate for a job without GPUs;
- *GPU-seconds*: GPUs held x seconds;
- *energy*: the power its GPUs report in the node's latest telemetry (fresher than a minute), else
  the power model (``gpu_watts`` of the type x ``busy_fraction``), x the facility PUE;
- *carbon*: energy x the node's grid intensity (label ``hyperion.io/carbon-intensity``, gCO2/kWh)
  or the Pricing default.

The meter accrues at every start and stop of a task (``ClusterState.task_listeners``) and on
``tick`` (every few seconds, so budgets and dashboards see running jobs' spend). Usage is kept per
job and per (team, 5-minute bucket) and saved every ``save_every`` seconds in one transaction:
the day's buckets (``records/usage/<YYYY-MM-DD>``) and the meter (``records/accounting``: when each
open task was last accrued). After a crash the meter resumes from the saved instants, so the time
the control plane was down is accrued too; what is lost is nothing but the telemetry of that time
(its energy is then that of the latest reading, or the power model).

Budgets (``kind: Budget``) are records ``budgets/<name>``; ``views`` gives them with what their team
spent in the current period, for the admission gate (``core.budget``); crossing 80 % and 100 % of a
limit is an event (``budget-warning``) once per period and level.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass

from hyperion.api.events import EventLog
from hyperion.core.budget import period_bounds
from hyperion.model import Job, Node, NodeMetrics, Placement
from hyperion.model.cost import BudgetSpec, BudgetView, Rates, Usage
from hyperion.ports.clock import Clock
from hyperion.store.objects import ClusterState

log = logging.getLogger("hyperion.accounting")

BUCKET = 300.0  # seconds per usage bucket
PRICE_LABEL = "hyperion.io/price-per-hour"
CARBON_LABEL = "hyperion.io/carbon-intensity"
METER = "accounting"
PRICING = "pricing"
USAGE = "usage/"
BUDGETS = "budgets/"
FRESH_S = 60.0  # telemetry older than this is not used for power
LEVELS = (0.8, 1.0)


@dataclass
class _Open:
    job_id: str
    team: str
    node_id: str
    gpus: tuple[int, ...]
    n_gpus: int
    cpus_milli: int
    since: float


def _key(job_id: str, attempt: int, rank: int) -> str:
    return f"{job_id}/{attempt}/{rank}"


def _day(t: float) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(t))


class Accountant:
    def __init__(self, state: ClusterState, clock: Clock, metrics: Mapping[str, Iterable[NodeMetrics]],
                 events: EventLog, save_every: float = 60.0) -> None:
        self.state = state
        self.clock = clock
        self.metrics = metrics  # node id -> its telemetry samples, newest last (ControlService.metrics)
        self.events = events
        self.save_every = save_every
        saved_rates = state.get_record(PRICING)
        self.rates = rates_from_dict(saved_rates) if saved_rates else Rates()
        self.budgets: dict[str, BudgetSpec] = {}
        for _, data in state.records(BUDGETS):
            spec = BudgetSpec(**data)
            self.budgets[spec.name] = spec
        self.jobs: dict[str, Usage] = defaultdict(Usage)
        # team -> bucket start -> usage
        self.buckets: dict[str, dict[float, Usage]] = defaultdict(lambda: defaultdict(Usage))
        self._day_jobs: dict[str, dict[str, Usage]] = defaultdict(lambda: defaultdict(Usage))
        self.totals: dict[str, Usage] = defaultdict(Usage)  # team -> all time
        for name, data in state.records(USAGE):
            day = name[len(USAGE):]
            for team, rows in data.get("teams", {}).items():
                for start, values in rows.items():
                    u = Usage.from_list(values)
                    self.buckets[team][float(start)] += u
                    self.totals[team] += u
            for job_id, values in data.get("jobs", {}).items():
                u = Usage.from_list(values)
                self.jobs[job_id] += u
                self._day_jobs[day][job_id] += u
        meter = state.get_record(METER) or {}
        since = meter.get("open", {})
        self.warned: dict[str, int] = dict(meter.get("warned", {}))  # "budget/period start/unit" -> level index
        self.open: dict[str, _Open] = {}
        now = clock.now()
        for job in state.jobs.values():
            for p in state.node_tasks_of(job.id):
                if job.handed_over:
                    continue
                key = _key(job.id, job.attempt, p.rank)
                start = since.get(key, job.scheduled_at if job.scheduled_at is not None else now)
                self.open[key] = self._open(job, p, min(start, now))
        self._dirty: set[str] = set()
        self._saved_at = now
        self.version = 0  # +1 whenever budgets or rates change (the scheduler then runs a full cycle)
        self._views: tuple[float, tuple[BudgetView, ...]] | None = None
        state.task_listeners.append(self.on_task)

    # ---- metering ------------------------------------------------------------------------
    def _open(self, job: Job, p: Placement, since: float) -> _Open:
        r = job.spec.resources
        return _Open(job.id, job.team, p.node_id, tuple(p.gpu_indices), len(p.gpu_indices) or r.gpus, r.cpus_milli, since)

    def on_task(self, job: Job, p: Placement, started: bool) -> None:
        key = _key(job.id, job.attempt, p.rank)
        now = self.clock.now()
        if started:
            if key not in self.open:
                self.open[key] = self._open(job, p, now)
            return
        o = self.open.pop(key, None)
        if o is not None:
            self._accrue(o, now)

    def tick(self, now: float | None = None) -> None:
        """Accrue every open task up to now, warn of budgets crossing a level, save when due."""
        now = self.clock.now() if now is None else now
        for o in self.open.values():
            self._accrue(o, now)
        if self.budgets:
            self._warn(now)
        if now - self._saved_at >= self.save_every:
            self.save(now)

    def _accrue(self, o: _Open, end: float) -> None:
        start = o.since
        if end <= start:
            return
        o.since = end
        node = self.state.nodes.get(o.node_id)
        rate = self.rate_per_hour(node, o.n_gpus, o.cpus_milli)
        watts = self._watts(node, o)
        intensity = self._intensity(node)
        u = Usage(rate / 3600.0, float(o.n_gpus), watts * self.rates.pue / 3.6e6, 0.0)
        u = Usage(u.cost_usd, u.gpu_s, u.energy_kwh, u.energy_kwh * intensity)  # per second
        t = start
        while t < end:  # split across buckets (and days)
            b = t - t % BUCKET
            edge = min(end, b + BUCKET)
            part = u.scaled(edge - t)
            self.buckets[o.team][b] += part
            self.totals[o.team] += part
            self.jobs[o.job_id] += part
            day = _day(b)
            self._day_jobs[day][o.job_id] += part
            self._dirty.add(day)
            t = edge

    def rate_per_hour(self, node: Node | None, gpus: int, cpus_milli: int) -> float:
        """USD per hour for ``gpus`` GPUs (or ``cpus_milli`` of CPU) of ``node``."""
        labels = dict(node.labels) if node is not None else {}
        price = _float(labels.get(PRICE_LABEL))
        if price is not None and node is not None:
            if node.gpus and gpus:
                return price * gpus / len(node.gpus)
            cores = node.capacity.cpus_milli
            return price * cpus_milli / cores if cores else 0.0
        if gpus:
            return self.rates.gpu_price(node.gpu_type if node is not None else "") * gpus
        return self.rates.cpu_hour_usd * cpus_milli / 1000.0

    def _watts(self, node: Node | None, o: _Open) -> float:
        if not o.n_gpus:
            return 0.0
        samples = self.metrics.get(o.node_id)
        if samples:
            latest = samples[-1]
            if self.clock.now() - latest.timestamp <= FRESH_S:
                by_index = {g.index: g.power_w for g in latest.gpus}
                if o.gpus and all(i in by_index and by_index[i] > 0 for i in o.gpus):
                    return sum(by_index[i] for i in o.gpus)
        gpu_type = node.gpu_type if node is not None else ""
        return self.rates.watts(gpu_type) * self.rates.busy_fraction * o.n_gpus

    def _intensity(self, node: Node | None) -> float:
        value = _float(dict(node.labels).get(CARBON_LABEL)) if node is not None else None
        return self.rates.carbon_g_per_kwh if value is None else value

    def save(self, now: float | None = None) -> None:
        """Accrue up to now and write the meter and the changed days in one transaction."""
        now = self.clock.now() if now is None else now
        for o in self.open.values():
            self._accrue(o, now)
        puts = {METER: {"at": now, "open": {k: o.since for k, o in self.open.items()}, "warned": self.warned}}
        for day in self._dirty:
            teams: dict[str, dict[str, list[float]]] = defaultdict(dict)
            for team, rows in self.buckets.items():
                for b, u in rows.items():
                    if _day(b) == day:
                        teams[team][repr(b)] = u.as_list()
            puts[USAGE + day] = {"teams": teams, "jobs": {j: u.as_list() for j, u in self._day_jobs[day].items()}}
        self.state.write_records(puts)
        self._dirty.clear()
        self._saved_at = now

    # ---- configuration ---------------------------------------------------------------------
    def set_rates(self, rates: Rates) -> bool:
        """Apply new rates from now on (what accrued so far keeps its price); False if unchanged."""
        if rates == self.rates:
            return False
        self.tick()
        self.state.put_record(PRICING, rates_to_dict(rates))
        self.rates = rates
        self.version += 1
        return True

    def set_budget(self, spec: BudgetSpec) -> str:
        old = self.budgets.get(spec.name)
        if old == spec:
            return "unchanged"
        self.state.put_record(BUDGETS + spec.name, asdict(spec))
        self.budgets[spec.name] = spec
        self.version += 1
        self._views = None
        return "configured" if old else "created"

    # ---- reading -----------------------------------------------------------------------------
    def usage_between(self, start: float, end: float, team: str | None = None) -> dict[str, Usage]:
        """Usage per team of the buckets that start in [start, end)."""
        out: dict[str, Usage] = {}
        for t, rows in self.buckets.items():
            if team is not None and t != team:
                continue
            total = Usage()
            if end - start <= 4 * len(rows) * BUCKET:  # a short span: look its buckets up
                b = start - start % BUCKET
                b = b if b >= start else b + BUCKET
                while b < end:
                    u = rows.get(b)
                    if u is not None:
                        total += u
                    b += BUCKET
            else:
                for b, u in rows.items():
                    if start <= b < end:
                        total += u
            if total != Usage() or t == team:
                out[t] = total
        return out

    def team_totals(self) -> dict[str, Usage]:
        """Usage per team, all time (kept as it accrues: read at every scrape)."""
        return dict(self.totals)

    def jobs_between(self, start: float, end: float) -> dict[str, Usage]:
        """Usage per job on the UTC days that overlap [start, end) (job usage is kept per day)."""
        out: dict[str, Usage] = defaultdict(Usage)
        lo = "" if start == float("-inf") else _day(start)
        hi = "9999-12-31" if end == float("inf") else _day(end - 1e-6)
        for day, jobs in self._day_jobs.items():
            if lo <= day <= hi:
                for job_id, u in jobs.items():
                    out[job_id] += u
        return dict(out)

    def job_usage(self, job_id: str) -> Usage | None:
        return self.jobs.get(job_id)

    def series(self, start: float, end: float, step_s: float, team: str | None = None) -> list[dict]:
        """Usage per team per ``step_s`` (a multiple of the 5-minute bucket) in [start, end)."""
        step = max(BUCKET, step_s - step_s % BUCKET)
        rows: dict[tuple[str, float], Usage] = defaultdict(Usage)
        for t, buckets in self.buckets.items():
            if team is not None and t != team:
                continue
            for b, u in buckets.items():
                if start <= b < end:
                    rows[(t, b - b % step)] += u
        return [{"t": b, "team": t, "cost_usd": u.cost_usd, "gpu_hours": u.gpu_s / 3600.0,
                 "energy_kwh": u.energy_kwh, "carbon_kg": u.carbon_g / 1000.0}
                for (t, b), u in sorted(rows.items(), key=lambda kv: (kv[0][1], kv[0][0]))]

    def views(self, now: float, max_age: float = 1.0) -> tuple[BudgetView, ...]:
        """Every budget with its team's spend in the current period (open tasks accrued to now);
        computed at most once per ``max_age`` seconds (scheduling cycles run far more often)."""
        if not self.budgets:
            return ()
        if self._views is not None and 0 <= now - self._views[0] < max_age:
            return self._views[1]
        for o in self.open.values():
            self._accrue(o, now)
        out = []
        for b in sorted(self.budgets.values(), key=lambda b: b.name):
            start, end = period_bounds(b.period, now)
            spent = self.usage_between(start, end, b.team).get(b.team, Usage())
            out.append(BudgetView(b.name, b.team, b.period, start, end, b.usd, b.gpu_hours, spent.cost_usd,
                                  spent.gpu_s / 3600.0, b.action))
        self._views = (now, tuple(out))
        return self._views[1]

    def prices(self) -> dict[str, float]:
        """USD per GPU-hour by GPU type of the ready nodes (and ``"cpu"``: per core-hour), for the
        admission gate's expected cost."""
        out: dict[str, float] = {"cpu": self.rates.cpu_hour_usd}
        for node in self.state.nodes.values():
            if node.gpus:
                per = self.rate_per_hour(node, 1, 0)
                out[node.gpu_type] = max(out.get(node.gpu_type, 0.0), per)
        return out

    def budget_status(self, now: float | None = None) -> list[dict]:
        """One row per budget and limit: spent, limit and their ratio in the current period."""
        now = self.clock.now() if now is None else now
        rows = []
        for v in self.views(now):
            for unit, limit, spent in (("usd", v.usd, v.spent_usd), ("gpu_hours", v.gpu_hours, v.spent_gpu_hours)):
                if limit is None:
                    continue
                rows.append({"name": v.name, "team": v.team, "period": v.period, "period_start": v.period_start,
                             "period_end": v.period_end, "resource": unit, "limit": limit, "spent": spent,
                             "ratio": spent / limit if limit > 0 else float("inf"), "action": v.action})
        return rows

    def warnings(self) -> dict[tuple[str, str], int]:
        """(team, level "80"|"100") -> how many times a budget of the team crossed it."""
        out: dict[tuple[str, str], int] = defaultdict(int)
        for key, level in self.warned.items():
            name = key.split("/", 1)[0]
            spec = self.budgets.get(name)
            team = spec.team if spec is not None else "?"
            for i in range(level):
                out[(team, str(int(LEVELS[i] * 100)))] += 1
        return dict(out)

    def _warn(self, now: float) -> None:
        for row in self.budget_status(now):
            key = f"{row['name']}/{row['period_start']:.0f}/{row['resource']}"
            level = sum(1 for lv in LEVELS if row["ratio"] >= lv)
            if level > self.warned.get(key, 0):
                self.warned[key] = level
                unit = "$" if row["resource"] == "usd" else ""
                suffix = "" if row["resource"] == "usd" else " GPU-h"
                self.events.emit("budget-warning",
                                 f"team {row['team']} has used {row['ratio']:.0%} of budget {row['name']!r} this "
                                 f"{row['period']} ({unit}{row['spent']:,.2f}{suffix} of {unit}{row['limit']:,.2f}{suffix})",
                                 team=row["team"])


def _float(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        return float(text)
    except ValueError:
        return None


def rates_to_dict(r: Rates) -> dict:
    return {"gpu_hour_usd": dict(r.gpu_hour_usd), "cpu_hour_usd": r.cpu_hour_usd, "gpu_watts": dict(r.gpu_watts),
            "busy_fraction": r.busy_fraction, "pue": r.pue, "carbon_g_per_kwh": r.carbon_g_per_kwh}


def rates_from_dict(d: dict) -> Rates:
    return Rates(dict(d.get("gpu_hour_usd", {"*": 1.0})), float(d.get("cpu_hour_usd", 0.0)),
                 dict(d.get("gpu_watts", {"*": 300.0})), float(d.get("busy_fraction", 1.0)), float(d.get("pue", 1.0)),
                 float(d.get("carbon_g_per_kwh", 400.0)))

"""Federation in the simulator: a job trace replayed across several clusters (on-prem and cloud
regions, ``kind: Cluster`` documents), each job placed by ``core.federation.place`` — the same
decision the live control plane makes — with real prices and hourly grid carbon.

Glossary:
- *member*: one cluster of the federation file (``api.spec.ClusterDoc``): its capacity (GPUs by
  type), prices, grid zone.
- *aligned trace*: job traces and grid data rarely cover the same years (Philly ran in 2017, the
  carbon series here cover 2021-2023), so ``align`` moves every submission by one whole number of
  weeks: the smallest that puts the first submission at or after ``--from``. Inter-arrival times,
  hour of day and weekday (UTC) are kept; jobs submitted at or after ``--to`` are dropped.
- *series mode* of a policy: what the decision sees of each member's carbon intensity:
  ``forecast`` (from the hours before the decision, ``core.federation.forecast``, as the live
  system does) or ``oracle`` (the actual series from the decision's hour on: the bound of a
  perfect forecast). Emissions are always *accounted* with the actual series (location-based:
  the grid's average intensity where and when the energy is drawn, GHG Protocol Scope 2).

The run, event by event (arrivals, finishes, the end of a recommended delay): the jobs that are
due (new, waiting for capacity after something finished, or at the end of their delay) are
decided together in one ``place`` call over every member's free GPUs. A placed job starts now and
holds its GPUs for its trace duration (runtime estimates are the trace durations, i.e. perfect);
a delayed job is decided again when its delay ends (with a fresh forecast); a job nothing can take
waits for capacity. A job whose deadline can no longer be met anywhere is decided without it (it
runs as soon as possible and counts as a miss). Deadlines are ``submission + (1 + slack) x
duration``. Energy is the job's GPUs at their busy watts x PUE; idle capacity is not counted
(cloud capacity is launched per job; on-prem idle power is the same under every policy).

*Queueing members and bursting* (a member with ``burst_after``, as in the live control plane,
docs/federation.md): the decision may send a job to such a member beyond its free GPUs (up to its
installed GPUs); it then waits in that member's FIFO queue, holding nothing, and the member's free
GPUs as the decision sees them are its free GPUs less those its queue wants (the live system's
committed GPUs). Queued jobs start strictly in FIFO order as GPUs free there (head-of-line: a
head that does not fit holds the jobs behind it; no backfill). At every event step each queued
job's expected wait is estimated as the live explain estimate does (``core.explain``): the time
when the member's running jobs, ending at their trace durations, have freed enough GPUs for the
jobs ahead of it in the queue plus itself; unknown when they never free enough. A job due to
burst (``core.federation.burst.burst_reason``, the live rule: a wait longer than ``burst_after``,
or unknown once it has waited that long, or one that would cost a deadline starting now still
meets) is decided again over the other members with no member queueing (each view's ``queues=False``, no cost cap);
if one takes it now (no delay) it starts there and counts in ``jobs_burst``, else it keeps its
place in the queue. With no queueing member the run is the one described above.
"""

from __future__ import annotations

import heapq
import math
import time
from bisect import bisect_left
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from itertools import accumulate
from pathlib import Path

from hyperion.api.spec import ClusterDoc, load_documents
from hyperion.core.federation import FED_PROFILES, FedProfile, place
from hyperion.core.federation.burst import burst_reason
from hyperion.core.federation.forecast import same_hour_yesterday, weekly_profile
from hyperion.model.federation import ClusterView, FedJob, FedSnapshot
from hyperion.providers.grid import HourlySeries, SeriesError, constant, read_series
from hyperion.sim.metrics import percentile
from hyperion.sim.result import PolicyResult
from hyperion.sim.traces.base import Trace

HOUR = 3600.0
WEEK = 7 * 86400.0
HORIZON_H = 8 * 24  # hours of carbon series a decision sees (a run past it reads the last hour's value)


class FederationError(ValueError):
    """A federation file or carbon directory that cannot be used; says which and what to do."""


# ---- the federation ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Federation:
    members: tuple[ClusterDoc, ...]
    carbon: Mapping[str, HourlySeries]  # member name -> actual hourly series of its grid

    @property
    def capacity(self) -> int:
        return sum(sum(m.gpus.values()) for m in self.members)


def load_federation(paths: str | Path | list[str | Path], carbon_dir: str | Path | None,
                    column: str = "direct") -> Federation:
    """Members from one or more files of ``kind: Cluster`` documents; each member's carbon series
    is the file ``<grid_zone>_*.csv[.gz]`` of ``carbon_dir``, else its static ``carbon_intensity``.
    Raises ``SpecError`` (file:line: field) or ``FederationError``."""
    members: list[ClusterDoc] = []
    for path in [Path(p) for p in (paths if isinstance(paths, list) else [paths])]:
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as e:
            raise FederationError(f"--federation {path}: {e.strerror or e}") from None
        docs = load_documents(text, str(path))
        others = sorted({d.kind for d in docs if not isinstance(d, ClusterDoc)})
        if others:
            raise FederationError(f"{path}: a federation file holds only kind: Cluster documents; found {', '.join(others)}")
        members += [d for d in docs if isinstance(d, ClusterDoc)]
    if not members:
        raise FederationError("no kind: Cluster document in --federation; describe each member cluster "
                              "(see examples/federation.yaml)")
    names = [m.name for m in members]
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})
        raise FederationError(f"cluster name(s) {', '.join(dup)} appear more than once in --federation; names must be unique")
    files: dict[str, Path] = {}
    if carbon_dir is not None:
        root = Path(carbon_dir)
        if not root.is_dir():
            raise FederationError(f"--carbon {carbon_dir}: not a directory of hourly carbon series")
        for f in sorted(root.iterdir()):
            if f.name.endswith((".csv", ".csv.gz")):
                files.setdefault(f.name.split("_")[0], f)
    carbon: dict[str, HourlySeries] = {}
    read: dict[str, HourlySeries] = {}
    for m in members:
        zone = m.to_view().grid_zone
        if zone in files:
            if zone not in read:
                try:
                    read[zone] = read_series(files[zone], column)
                except (SeriesError, OSError) as e:
                    raise FederationError(str(e)) from None
            carbon[m.name] = read[zone]
        elif m.carbon_intensity is not None:
            carbon[m.name] = constant(m.carbon_intensity, "gCO2/kWh", f"{m.name}/static")
        else:
            where = f"no file {zone}_*.csv(.gz) in --carbon {carbon_dir}" if carbon_dir else "no --carbon directory"
            raise FederationError(f"cluster {m.name!r} (grid zone {zone or 'unknown'}): {where} and no "
                                  "`carbon_intensity:`; add the series, set `grid_zone:` or give a static intensity")
    return Federation(tuple(members), carbon)


def align(trace: Trace, start: float, end: float | None = None) -> Trace:
    """``trace`` moved by the whole weeks that put its first submission at or after ``start``
    (epoch seconds), keeping only jobs submitted before ``end``. Needs a trace with absolute times."""
    if trace.start is None:
        raise FederationError(f"{trace.name}: the trace has only relative times; it cannot be aligned to a calendar "
                              "window (use a trace with dates, e.g. philly)")
    weeks = math.ceil((start - trace.start) / WEEK)
    new_start = trace.start + weeks * WEEK
    jobs = trace.jobs if end is None else tuple(j for j in trace.jobs if new_start + j.submit_s < end)
    return replace(trace, jobs=jobs, start=new_start)


# ---- policies ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class FedPolicy:
    name: str
    profile: Callable[[], FedProfile]
    series: str  # "forecast" or "oracle"


FED_POLICIES: dict[str, FedPolicy] = {
    "cheapest": FedPolicy("cheapest", FED_PROFILES["cheapest"], "forecast"),
    "default": FedPolicy("default", FED_PROFILES["default"], "forecast"),
    "carbon-spatial": FedPolicy("carbon-spatial", FED_PROFILES["carbon-spatial"], "forecast"),
    "carbon-temporal": FedPolicy("carbon-temporal", FED_PROFILES["carbon-temporal"], "forecast"),
    "carbon-oracle": FedPolicy("carbon-oracle", FED_PROFILES["carbon-temporal"], "oracle"),
}
FORECASTS = {"same-hour-yesterday": same_hour_yesterday, "weekly": weekly_profile}


def fed_policies(names: str) -> list[FedPolicy]:
    out = []
    for name in (n.strip() for n in names.split(",") if n.strip()):
        if name not in FED_POLICIES:
            raise FederationError(f"unknown federation policy {name!r}; known: {', '.join(FED_POLICIES)}")
        out.append(FED_POLICIES[name])
    if not out:
        raise FederationError("no policy given; name one or more of " + ", ".join(FED_POLICIES))
    return out


# ---- the run ----------------------------------------------------------------------------------
FINISH, ARRIVE, WAKE, CHECK = 0, 1, 2, 3  # at one instant: free GPUs first, then new jobs, then delays that end
# CHECK: a queued job with an unknown wait is due to burst (it has waited burst_after in its member's queue)


@dataclass(slots=True)
class _Job:
    id: str
    team: str
    gpus: int
    duration: float
    submit: float
    deadline: float
    wake: float = 0.0      # decided again at or after this instant
    blocked: int = -1      # the finish count when it last found no capacity (-1: not blocked)
    cap: float | None = None  # the cost cap its first delay was decided under (FedJob.cost_cap_usd)
    gpu_type: str = ""     # in a member's queue: the GPU type it waits for
    queued: float = 0.0    # in a member's queue: since when


@dataclass(slots=True)
class _Tally:
    jobs: int = 0
    gpu_h: float = 0.0
    usd: float = 0.0
    kwh: float = 0.0
    kg: float = 0.0


def actual_mean(series: HourlySeries, start: float, end: float) -> float:
    """Time-weighted mean of ``series`` over [start, end) (year alignment of ``HourlySeries.at``)."""
    if not end > start:
        return series.at(start)
    total, t = 0.0, start
    while t < end:
        step = min(end, (t // HOUR + 1) * HOUR)
        total += series.at(t) * (step - t)
        t = step
    return total / (end - start)


class FederationRun:
    """One policy over one aligned trace; ``run()`` returns its ``PolicyResult``."""

    def __init__(self, trace: Trace, federation: Federation, policy: FedPolicy, *, slack: float = 1.0,
                 forecast: str = "same-hour-yesterday", seed: int = 0) -> None:
        if trace.start is None:
            raise FederationError(f"{trace.name}: align the trace to the grid data first (it has no dates)")
        if forecast not in FORECASTS:
            raise FederationError(f"unknown forecast {forecast!r}; known: {', '.join(FORECASTS)}")
        if not slack >= 0:
            raise FederationError(f"deadline slack must be >= 0, got {slack}")
        self.trace, self.fed, self.policy, self.seed = trace, federation, policy, seed
        self.profile = policy.profile()
        self.forecast = FORECASTS[forecast]
        self.slack = slack
        self.templates = {m.name: m.to_view() for m in federation.members}
        self.free: dict[str, dict[str, int]] = {m.name: dict(m.gpus) for m in federation.members}
        self.biggest = max(n for m in federation.members for n in m.gpus.values())
        self._series_cache: dict[float, dict[str, tuple[float, ...]]] = {}
        self.finishes = 0
        self.busy = 0
        # queueing members (burst_after): member -> its FIFO queue, GPUs it wants by type, running jobs' ends
        self.burst_after = {m.name: m.burst_after for m in federation.members if m.burst_after is not None}
        self.queue: dict[str, list[_Job]] = {name: [] for name in self.burst_after}
        self.queued_gpus: dict[str, dict[str, int]] = {name: {} for name in self.burst_after}
        self.ends: dict[str, dict[str, tuple[str, float, int]]] = {name: {} for name in self.burst_after}

    # what the decision sees
    def _series(self, hour0: float) -> dict[str, tuple[float, ...]]:
        cached = self._series_cache.get(hour0)
        if cached is None:
            cached = {}
            for name, s in self.fed.carbon.items():
                if len(s.values) == 1:
                    cached[name] = (s.values[0],)
                elif self.policy.series == "oracle":
                    cached[name] = tuple(s.at(hour0 + i * HOUR) for i in range(HORIZON_H))
                else:
                    span = 4 * 168 if self.forecast is weekly_profile else 24
                    history = [s.at(hour0 - (span - i) * HOUR) for i in range(span)]
                    cached[name] = tuple(self.forecast(history, HORIZON_H))
            self._series_cache = {hour0: cached}  # decisions move forward in time: keep one hour
        return cached

    def _views(self, now: float) -> tuple[ClusterView, ...]:
        series = self._series(now - now % HOUR)
        return tuple(replace(v, free_gpus=self._free_view(name), carbon_g_per_kwh=series[name])
                     for name, v in self.templates.items())

    def _free_view(self, name: str) -> dict[str, int]:
        """Free GPUs as the decision sees them: a queueing member's less what its queue wants."""
        queued = self.queued_gpus.get(name)
        if not queued:
            return dict(self.free[name])
        return {t: max(0, n - queued.get(t, 0)) for t, n in self.free[name].items()}

    def _waits(self, member: str, now: float) -> list[tuple[_Job, float | None]]:
        """Each queued job of ``member`` with its expected wait (None: unknown), as the live explain
        estimate: when running jobs there have freed the GPUs the jobs ahead and it want."""
        by_type: dict[str, tuple[list[float], list[int]]] = {}
        wanted: dict[str, int] = {}
        out: list[tuple[_Job, float | None]] = []
        for j in self.queue[member]:
            t = j.gpu_type
            if t not in by_type:
                running = sorted((end, job_id, gpus) for job_id, (rt, end, gpus) in self.ends[member].items() if rt == t)
                by_type[t] = ([end for end, _, _ in running], list(accumulate(gpus for _, _, gpus in running)))
            ends, freed = by_type[t]
            ahead, free = wanted.get(t, 0), self.free[member].get(t, 0)
            if free >= ahead + j.gpus:
                wait: float | None = 0.0
            else:
                k = bisect_left(freed, ahead + j.gpus - free)
                wait = max(0.0, ends[k] - now) if k < len(ends) else None
            wanted[t] = ahead + j.gpus
            out.append((j, wait))
        return out

    def _enqueue(self, j: _Job, member: str, gpu_type: str, now: float) -> float | None:
        """``j`` joins ``member``'s queue; returns when it is due to burst if its wait stays unknown."""
        j.gpu_type, j.queued, j.blocked = gpu_type, now, -1
        self.queue[member].append(j)
        queued = self.queued_gpus[member]
        queued[gpu_type] = queued.get(gpu_type, 0) + j.gpus
        after = self.burst_after[member]
        return now + after if after > 0 else None

    def _dequeue(self, j: _Job, member: str) -> None:
        self.queue[member].remove(j)
        queued = self.queued_gpus[member]
        queued[j.gpu_type] -= j.gpus
        if not queued[j.gpu_type]:
            del queued[j.gpu_type]

    def _fed_job(self, j: _Job, now: float) -> FedJob:
        deadline = j.deadline if now + j.duration <= j.deadline else None  # already late: run as soon as possible
        return FedJob(j.id, j.team, j.gpus, j.duration, submitted_at=j.submit, deadline=deadline, cost_cap_usd=j.cap)

    def run(self, progress: Callable[[int, int], None] | None = None) -> PolicyResult:
        t0 = time.perf_counter()
        base = self.trace.start
        assert base is not None
        events: list[tuple[float, int, int, str]] = []
        jobs: dict[str, _Job] = {}
        skipped = 0
        for i, tj in enumerate(self.trace.jobs):
            if tj.gpus < 1 or tj.gpus > self.biggest:
                skipped += 1
                continue
            submit = base + tj.submit_s
            jobs[tj.id] = _Job(tj.id, tj.team, tj.gpus, tj.duration_s, submit,
                               submit + (1 + self.slack) * tj.duration_s, wake=submit)
            events.append((submit, ARRIVE, i, tj.id))
        heapq.heapify(events)
        pending: dict[str, _Job] = {}
        running: dict[str, tuple[str, str]] = {}  # job -> (member, GPU type)
        tally = {name: _Tally() for name in self.templates}
        jct: list[float] = []
        waits: list[float] = []
        misses = delays = burst = 0
        queue_series: list[tuple[float, float]] = []
        util_series: list[tuple[float, float]] = []
        capacity = self.fed.capacity
        total, done, steps = len(jobs), 0, 0
        last_sample = -math.inf

        def launch(j: _Job, member: str, gpu_type: str, now: float) -> None:
            self._start(j, member, gpu_type, now, tally[member])
            running[j.id] = (member, gpu_type)
            if member in self.ends:
                self.ends[member][j.id] = (gpu_type, now + j.duration, j.gpus)
            waits.append(now - j.submit)
            heapq.heappush(events, (now + j.duration, FINISH, 0, j.id))

        def drain(now: float) -> None:
            """Start each queueing member's jobs in FIFO order while its head fits."""
            for member, queue in self.queue.items():
                while queue and self.free[member].get(queue[0].gpu_type, 0) >= queue[0].gpus:
                    j = queue[0]
                    self._dequeue(j, member)
                    launch(j, member, j.gpu_type, now)

        def enqueue(j: _Job, member: str, gpu_type: str, now: float) -> None:
            due_at = self._enqueue(j, member, gpu_type, now)
            if due_at is not None:
                heapq.heappush(events, (due_at, CHECK, 0, j.id))

        while events:
            now = events[0][0]
            while events and events[0][0] == now:
                _, kind, _, job_id = heapq.heappop(events)
                if kind == FINISH:
                    member, gpu_type = running.pop(job_id)
                    j = jobs[job_id]
                    self.free[member][gpu_type] += j.gpus
                    if member in self.ends:
                        del self.ends[member][job_id]
                    self.busy -= j.gpus
                    self.finishes += 1
                    done += 1
                    jct.append(now - j.submit)
                    misses += now > j.deadline + 1e-6
                elif kind != CHECK:
                    pending[job_id] = jobs[job_id]
            if self.queue:
                drain(now)
            due = [j for j in pending.values()
                   if j.wake <= now and (j.blocked < 0 or j.blocked != self.finishes)]
            if due:
                steps += 1
                snapshot = FedSnapshot(now, self.seed, self._views(now), tuple(self._fed_job(j, now) for j in due))
                plan = place(snapshot, self.profile)
                for d in plan.decisions:
                    j = pending[d.job_id]
                    if d.cluster is None or d.gpu_type is None:
                        j.blocked = self.finishes
                    elif d.start_delay_s > 0:
                        j.wake, j.blocked = now + d.start_delay_s, -1
                        if j.cap is None:
                            j.cap = d.cost_cap_usd
                        delays += 1
                        heapq.heappush(events, (j.wake, WAKE, steps, j.id))
                    elif d.cluster in self.queue and (self.queue[d.cluster]
                                                      or self.free[d.cluster].get(d.gpu_type, 0) < j.gpus):
                        del pending[j.id]
                        enqueue(j, d.cluster, d.gpu_type, now)  # beyond its free GPUs: it joins the member's queue
                    else:
                        del pending[j.id]
                        launch(j, d.cluster, d.gpu_type, now)
            while self.queue and (n := self._burst(now, launch)):  # until no queued job is due to burst
                burst += n
                drain(now)  # a head that left may let the jobs behind it start
            if now - last_sample >= 600:
                last_sample = now
                queued = sum(len(q) for q in self.queue.values())
                queue_series.append((now - base, float(len(pending) + queued)))
                util_series.append((now - base, self.busy / capacity if capacity else 0.0))
            if progress is not None and steps % 500 == 0:
                progress(done, total)
        if progress is not None:
            progress(done, total)
        left = dict(pending)
        for queue in self.queue.values():
            left.update((j.id, j) for j in queue)
        return self._result(tally, jct, waits, misses, delays, burst, skipped, left, queue_series, util_series,
                            time.perf_counter() - t0, steps)

    def _burst(self, now: float, launch: Callable[[_Job, str, str, float], None]) -> int:
        """Decide again, over the other members with no member queueing, each queued job whose
        expected wait is longer than its member's ``burst_after`` (unknown: that has waited that long);
        start those one takes now. Returns how many were burst."""
        count = 0
        for member, queue in self.queue.items():
            if not queue or len(self.templates) < 2:
                continue
            after = self.burst_after[member]
            due = [j for j, wait in self._waits(member, now)
                   if burst_reason(wait, now - j.queued, after, now, j.deadline, j.duration) is not None
                   and (j.blocked < 0 or j.blocked != self.finishes)]
            if not due:
                continue
            views = tuple(replace(v, queues=False) for v in self._views(now) if v.name != member)
            fed_jobs = tuple(replace(self._fed_job(j, now), cost_cap_usd=None) for j in due)
            by_id = {j.id: j for j in due}
            for d in place(FedSnapshot(now, self.seed, views, fed_jobs), self.profile).decisions:
                j = by_id[d.job_id]
                if d.cluster is None or d.gpu_type is None or d.start_delay_s > 0:
                    j.blocked = self.finishes  # nothing else takes it now: it keeps its place here
                    continue
                self._dequeue(j, member)
                launch(j, d.cluster, d.gpu_type, now)
                count += 1
        return count

    def _start(self, j: _Job, member: str, gpu_type: str, now: float, t: _Tally) -> None:
        self.free[member][gpu_type] -= j.gpus
        self.busy += j.gpus
        view = self.templates[member]
        hours = j.gpus * j.duration / HOUR
        kwh = hours * view.watts(gpu_type) / 1000.0 * view.pue
        t.jobs += 1
        t.gpu_h += hours
        t.usd += hours * view.on_demand_usd[gpu_type]
        t.kwh += kwh
        t.kg += kwh * actual_mean(self.fed.carbon[member], now, now + j.duration) / 1000.0

    def _result(self, tally: dict[str, _Tally], jct: list[float], waits: list[float], misses: int, delays: int,
                burst: int, skipped: int, pending: dict[str, _Job], queue_series, util_series, wall: float,
                steps: int) -> PolicyResult:
        def mean(values: list[float]) -> float:
            return math.fsum(values) / len(values) if values else math.nan

        ordered_jct, ordered_waits = sorted(jct), sorted(waits)
        metrics = {
            "jobs_finished": float(len(jct)),
            "jct_mean_s": mean(jct), "jct_p50_s": percentile(ordered_jct, 0.5), "jct_p99_s": percentile(ordered_jct, 0.99),
            "queue_delay_mean_s": mean(waits), "queue_delay_p99_s": percentile(ordered_waits, 0.99),
            "deadline_misses": float(misses), "jobs_shifted": float(delays), "jobs_burst": float(burst),
            "cost_usd": math.fsum(t.usd for t in tally.values()),
            "energy_kwh": math.fsum(t.kwh for t in tally.values()),
            "carbon_kg": math.fsum(t.kg for t in tally.values()),
            "jobs_unplaceable": float(skipped), "jobs_unfinished": float(len(pending)),
        }
        per_cluster = {name: {"jobs": float(t.jobs), "gpu_hours": t.gpu_h, "cost_usd": t.usd, "energy_kwh": t.kwh,
                              "carbon_kg": t.kg} for name, t in tally.items()}
        return PolicyResult(self.policy.name, metrics, tuple(jct), tuple(waits),
                            {"queue_length": tuple(queue_series), "utilisation": tuple(util_series)},
                            per_team={}, wall_s=wall, events=steps, per_cluster=per_cluster)

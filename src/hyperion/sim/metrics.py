"""What a simulated run measures (definitions: ``result.METRICS`` and docs/simulator.md).

The collector is told of every change as it happens and integrates exactly between changes:
- per node pool, the GPUs up and the GPUs held by jobs, integrated per UTC hour (utilisation,
  capacity cost, energy; energy of each hour times the carbon intensity of that hour);
- per job, its submission, first start and finish (completion time, queueing delay);
- per attempt that ends, the GPU-seconds it held (per-team GPU-hours, cost, energy, carbon) and
  those that produced no saved work (``gpu_hours_lost``);
- at every sample instant, the queue length, the utilisation and each team's GPUs held against
  its entitled share (fairness).

Glossary: *entitled share* of a team at an instant: the weighted max-min fair division of the
GPUs up among the teams asking (holding or waiting for GPUs), each capped at what it asks for
(water-filling by queue weight).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from hyperion.sim.cluster import ClusterModel
from hyperion.sim.result import PolicyResult

HOUR = 3600.0


def percentile(ordered: list[float], q: float) -> float:
    """The ``q`` quantile (0..1) of sorted values, linear between ranks; NaN for none."""
    if not ordered:
        return math.nan
    pos = (len(ordered) - 1) * q
    lo = int(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def entitled_shares(capacity: float, demand: Mapping[str, float], weight: Mapping[str, float]) -> dict[str, float]:
    """Weighted max-min fair shares of ``capacity`` among teams asking ``demand`` (water-filling)."""
    share = {t: 0.0 for t in demand}
    left = {t for t, d in demand.items() if d > 0}
    cap = float(capacity)
    while left and cap > 1e-9:
        total_w = sum(weight.get(t, 1.0) for t in left)
        unit = cap / total_w
        capped = {t for t in left if demand[t] - share[t] <= unit * weight.get(t, 1.0)}
        if not capped:
            for t in left:
                share[t] += unit * weight.get(t, 1.0)
            break
        for t in capped:
            cap -= demand[t] - share[t]
            share[t] = demand[t]
        left -= capped
    return share


def jain(values: list[float]) -> float:
    s = sum(values)
    sq = sum(v * v for v in values)
    return (s * s) / (len(values) * sq) if sq > 0 else 1.0


class Collector:
    def __init__(self, cluster: ClusterModel, start_epoch: float, weights: Mapping[str, float]) -> None:
        self.cluster = cluster
        self.start_epoch = start_epoch
        self.weights = weights
        n = len(cluster.pools)
        self.busy = [0] * n      # GPUs held by jobs, per pool
        self.up = [0] * n        # GPUs of nodes up, per pool
        self._since = [0.0] * n
        self.hours: dict[int, list[list[float]]] = {}  # hour -> per pool [busy GPU-s, up GPU-s]
        self.submitted: dict[str, float] = {}
        self.jct: list[float] = []
        self.pending: list[float] = []  # per finished job, time pending over all its attempts
        self.waits: list[float] = []
        self.team: dict[str, dict[str, float]] = {}
        self.preemptions = 0
        self.interruptions = 0
        self.lost_gpu_s = 0.0
        self.util_series: list[tuple[float, float]] = []
        self.queue_series: list[tuple[float, float]] = []
        self._jain: list[float] = []
        self._dev: dict[str, float] = {}
        self._fair_samples = 0
        self.first_submit: float | None = None
        self.last_finish = 0.0

    # ---- capacity -----------------------------------------------------------------------------
    def _accrue(self, p: int, t: float) -> None:
        a, busy, up = self._since[p], self.busy[p], self.up[p]
        self._since[p] = t
        if t <= a or (busy == 0 and up == 0):
            return
        e0 = self.start_epoch + a
        e1 = self.start_epoch + t
        h = int(e0 // HOUR)
        while e0 < e1:
            edge = min(e1, (h + 1) * HOUR)
            dt = edge - e0
            row = self.hours.get(h)
            if row is None:
                row = self.hours[h] = [[0.0, 0.0] for _ in self.busy]
            row[p][0] += busy * dt
            row[p][1] += up * dt
            e0 = edge
            h += 1

    def pool_changed(self, p: int, t: float, busy: int = 0, up: int = 0) -> None:
        self._accrue(p, t)
        self.busy[p] += busy
        self.up[p] += up

    # ---- jobs ---------------------------------------------------------------------------------
    def _team(self, team: str) -> dict[str, float]:
        row = self.team.get(team)
        if row is None:
            row = self.team[team] = {"jobs": 0, "jct_sum": 0.0, "wait_sum": 0.0, "started": 0, "gpu_hours": 0.0,
                                     "cost_usd": 0.0, "energy_kwh": 0.0, "carbon_kg": 0.0}
        return row

    def submitted_job(self, team: str, t: float) -> None:
        if self.first_submit is None:
            self.first_submit = t
        self._team(team)

    def started_first(self, team: str, submitted: float, t: float) -> None:
        self.waits.append(t - submitted)
        row = self._team(team)
        row["started"] += 1
        row["wait_sum"] += t - submitted

    def finished(self, team: str, submitted: float, t: float, pending_s: float = 0.0) -> None:
        """``pending_s``: the job's time pending over all its attempts (requeues included)."""
        self.jct.append(t - submitted)
        self.pending.append(pending_s)
        self.last_finish = max(self.last_finish, t)
        row = self._team(team)
        row["jobs"] += 1
        row["jct_sum"] += t - submitted

    def attempt_ended(self, team: str, pool: int, gpus: int, start: float, end: float, lost_gpu_s: float,
                      evicted_by: str | None = None) -> None:
        """An attempt held ``gpus`` GPUs of ``pool`` over [start, end]; ``lost_gpu_s`` of that saved
        no work. ``evicted_by``: "scheduler" (a preemption), "node" (failure or spot reclaim)."""
        gpu_s = gpus * max(0.0, end - start)
        p = self.cluster.pools[pool]
        power = self.cluster.power
        row = self._team(team)
        row["gpu_hours"] += gpu_s / HOUR
        row["cost_usd"] += gpu_s / HOUR * p.cost_per_gpu_hour
        if p.gpus and gpu_s > 0:
            kwh = power.energy_kwh(p.gpu_type, gpu_s, 0.0)
            row["energy_kwh"] += kwh
            row["carbon_kg"] += kwh * self._mean_intensity(start, end) / 1000.0
        self.lost_gpu_s += lost_gpu_s
        if evicted_by == "scheduler":
            self.preemptions += 1
        elif evicted_by is not None:
            self.interruptions += 1

    def _mean_intensity(self, start: float, end: float) -> float:
        carbon = self.carbon
        e0, e1 = self.start_epoch + start, self.start_epoch + end
        total = weight = 0.0
        t = e0
        while t < e1:
            edge = min(e1, (math.floor(t / HOUR) + 1) * HOUR)
            total += carbon.at(t) * (edge - t)
            weight += edge - t
            t = edge
        return total / weight if weight else carbon.at(e0)  # an instant lost in the epoch's rounding

    @property
    def carbon(self):
        return self.cluster.carbon

    # ---- samples ------------------------------------------------------------------------------
    def sample(self, t: float, pending: int, held: Mapping[str, int], waiting: Mapping[str, int]) -> None:
        up = sum(self.up)
        busy = sum(self.busy)
        self.util_series.append((t, busy / up if up else 0.0))
        self.queue_series.append((t, float(pending)))
        demand = {team: held.get(team, 0) + waiting.get(team, 0) for team in held.keys() | waiting.keys()}
        asking = [team for team, d in demand.items() if d > 0]
        if len(asking) < 2 or not up:
            return
        share = entitled_shares(up, {team: demand[team] for team in asking}, self.weights)
        self._fair_samples += 1
        self._jain.append(jain([held.get(team, 0) / share[team] for team in asking if share[team] > 0]))
        for team in asking:
            self._dev[team] = self._dev.get(team, 0.0) + abs(held.get(team, 0) - share[team]) / up

    # ---- the result ---------------------------------------------------------------------------
    def result(self, policy: str, end: float, wall_s: float, events: int,
               counts: Mapping[str, float] | None = None) -> PolicyResult:
        """The metrics of a run that ended at ``end``; ``counts``: further metrics the driver kept."""
        for p in range(len(self.busy)):
            self._accrue(p, end)
        pools, power = self.cluster.pools, self.cluster.power
        busy_s = up_s = cost = energy = carbon = power_cost = 0.0
        price = self.cluster.electricity
        for h, row in self.hours.items():
            intensity = self.carbon.at(h * HOUR + HOUR / 2)
            usd_per_kwh = price.at(h * HOUR + HOUR / 2) / 1000.0 if price is not None else 0.0
            for p, (b, u) in enumerate(row):
                busy_s += b
                up_s += u
                cost += u / HOUR * pools[p].cost_per_gpu_hour
                if pools[p].gpus:
                    kwh = power.energy_kwh(pools[p].gpu_type, b, max(0.0, u - b))
                    energy += kwh
                    carbon += kwh * intensity / 1000.0
                    power_cost += kwh * usd_per_kwh
        jct, waits = sorted(self.jct), sorted(self.waits)
        n = self._fair_samples
        metrics = {
            "jobs_finished": float(len(jct)),
            "jct_mean_s": sum(jct) / len(jct) if jct else math.nan,
            "jct_p50_s": percentile(jct, 0.5),
            "jct_p99_s": percentile(jct, 0.99),
            "queue_delay_mean_s": sum(waits) / len(waits) if waits else math.nan,
            "queue_delay_p50_s": percentile(waits, 0.5),
            "queue_delay_p99_s": percentile(waits, 0.99),
            "pending_mean_s": sum(self.pending) / len(self.pending) if self.pending else math.nan,
            "makespan_s": self.last_finish - (self.first_submit or 0.0) if jct else math.nan,
            "utilisation": busy_s / up_s if up_s else math.nan,
            "jain_index": sum(self._jain) / len(self._jain) if self._jain else math.nan,
            "max_share_deviation": max((d / n for d in self._dev.values()), default=math.nan) if n else math.nan,
            "preemptions": float(self.preemptions),
            "interruptions": float(self.interruptions),
            "gpu_hours_lost": self.lost_gpu_s / HOUR,
            "cost_usd": cost,
            "energy_kwh": energy,
            "energy_cost_usd": power_cost if price is not None else math.nan,
            "carbon_kg": carbon,
            **(counts or {}),
        }
        per_team = {}
        for team, row in sorted(self.team.items()):
            per_team[team] = {
                "jobs_finished": row["jobs"],
                "jct_mean_s": row["jct_sum"] / row["jobs"] if row["jobs"] else math.nan,
                "queue_delay_mean_s": row["wait_sum"] / row["started"] if row["started"] else math.nan,
                "gpu_hours": row["gpu_hours"], "cost_usd": row["cost_usd"],
                "energy_kwh": row["energy_kwh"], "carbon_kg": row["carbon_kg"],
            }
        return PolicyResult(policy, metrics, tuple(self.jct), tuple(self.waits),
                            {"utilisation": tuple(self.util_series), "queue_length": tuple(self.queue_series)},
                            per_team, wall_s, events)

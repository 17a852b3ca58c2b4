"""What one candidate (cluster, GPU type, market, start delay) is expected to take, cost and emit.

Every plugin reads these numbers, so each formula lives here once:
- *expected run* (``expected_run_s``): on demand, the runtime estimate ``T``. On spot, with
  interruptions at rate ``r`` per hour (Poisson, ``l = r / 3600`` per second) and checkpoints
  every ``c`` seconds (``c = T`` without checkpoints: an interruption restarts the job), the
  expected time to get through each segment of ``c`` seconds, lost work redone, is
  ``(exp(l c) - 1) / l``, so ``T / c * (exp(l c) - 1) / l`` in all (restart overhead ignored).
- *staging* (``staging_s``): a job whose data set is not held by the cluster reads it over the WAN
  first: ``bytes * 8 / (wan_gbps * 1e9)`` seconds, during which its GPUs are held (and paid).
- *compute cost*: ``gpus * USD per GPU-hour (market) * expected run / 3600``.
- *egress cost* (``egress_usd``): ``bytes / 1e9 * USD per GB`` out of the data's location (see
  ``FedSnapshot.data_egress_usd_per_gb``), when the cluster does not hold it.
- *staging cost*: ``gpus * USD per GPU-hour * staging / 3600``.
- *carbon* (``mean_intensity``): ``gpus * watts / 1000 * PUE * expected run / 3600`` kWh times the
  time-weighted mean of the carbon series over the run, which starts after the delay and staging.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from hyperion.model.federation import ClusterView, FedJob, FedSnapshot

HOUR = 3600.0
INF = float("inf")


@dataclass(frozen=True, slots=True)
class Candidate:
    cluster: ClusterView
    gpus: int
    gpu_type: str
    spot: bool
    delay_s: float
    start: float  # now + delay
    price_per_gpu_h: float | None  # of its market; None: the type is not offered on it
    staging_s: float
    run_s: float  # expected, rework included
    egress_usd: float
    carbon_g: float | None

    @property
    def usd_per_h(self) -> float:
        return INF if self.price_per_gpu_h is None else self.price_per_gpu_h * self.gpus

    @property
    def wall_s(self) -> float:
        return self.staging_s + self.run_s

    @property
    def end(self) -> float:
        return self.start + self.wall_s

    @property
    def compute_usd(self) -> float:
        return self.usd_per_h * self.run_s / HOUR

    @property
    def staging_usd(self) -> float:
        return self.usd_per_h * self.staging_s / HOUR if self.staging_s > 0 else 0.0

    @property
    def usd(self) -> float:
        """Everything it is expected to cost: compute (with rework), egress and staging."""
        return self.compute_usd + self.egress_usd + self.staging_usd


def expected_run_s(estimate_s: float, interruptions_per_h: float, checkpoint_s: float | None) -> float:
    if interruptions_per_h <= 0 or estimate_s <= 0:
        return estimate_s
    seg = estimate_s if checkpoint_s is None or checkpoint_s <= 0 else min(checkpoint_s, estimate_s)
    x = interruptions_per_h / HOUR * seg  # expected interruptions per segment
    if x <= 0:  # a rate so small it underflows
        return estimate_s
    if x > 700:  # exp overflows: it would practically never finish
        return INF
    return estimate_s * math.expm1(x) / x  # = T / c * (exp(l c) - 1) / l


def staging_s(job: FedJob, cluster: ClusterView) -> float:
    if not _remote(job, cluster):
        return 0.0
    return INF if cluster.wan_gbps <= 0 else job.data_bytes * 8 / (cluster.wan_gbps * 1e9)


def egress_usd(job: FedJob, cluster: ClusterView, snapshot: FedSnapshot) -> float:
    if not _remote(job, cluster):
        return 0.0
    loc = job.data_location
    rate = snapshot.data_egress_usd_per_gb.get(loc) if loc is not None else None
    if rate is None:
        rate = min((c.egress_usd_per_gb for c in snapshot.clusters if loc in c.data), default=0.0)
    return job.data_bytes / 1e9 * rate


def _remote(job: FedJob, cluster: ClusterView) -> bool:
    return job.data_location is not None and job.data_bytes > 0 and job.data_location not in cluster.data


def mean_intensity(series: Sequence[float], hour0: float, start: float, end: float) -> float | None:
    """Time-weighted mean of an hourly ``series`` (index 0: the hour starting at ``hour0``) over
    [start, end); hours past its end repeat its last value, before its start its first. None: empty."""
    if not series:
        return None
    last = len(series) - 1

    def index(t: float) -> int:
        return min(max(int((t - hour0) // HOUR), 0), last)

    if not end > start:
        return float(series[index(start)])
    total, t = 0.0, start
    while t < end:
        i = index(t)
        if i == last:
            total += series[last] * (end - t)
            break
        step = min(end, hour0 + (i + 1) * HOUR)
        total += series[i] * (step - t)
        t = step
    return total / (end - start)


def candidate(job: FedJob, cluster: ClusterView, gpu_type: str, spot: bool, delay_s: float, snapshot: FedSnapshot,
              default_interruptions_per_h: float) -> Candidate:
    prices = cluster.spot_usd if spot else cluster.on_demand_usd
    rate = 0.0
    if spot:
        known = cluster.spot_interruptions_per_h
        rate = default_interruptions_per_h if known is None else known
    run = expected_run_s(job.runtime_estimate_s, rate, job.checkpoint_interval_s)
    stage = staging_s(job, cluster)
    start = snapshot.now + delay_s
    carbon = None
    if math.isfinite(run) and math.isfinite(stage):
        hour0 = snapshot.now - snapshot.now % HOUR
        g = mean_intensity(cluster.carbon_g_per_kwh, hour0, start + stage, start + stage + run)
        if g is not None:
            carbon = job.gpus * cluster.watts(gpu_type) / 1000.0 * cluster.pue * run / HOUR * g
    return Candidate(cluster, job.gpus, gpu_type, spot, delay_s, start, prices.get(gpu_type), stage, run,
                     egress_usd(job, cluster, snapshot), carbon)

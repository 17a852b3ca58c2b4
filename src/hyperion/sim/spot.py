"""The spot study (issue 8): jobs with deadlines on cloud GPUs bought on demand, on spot, or as
Hyperion's deadline-aware mix, with spot capacity that comes and goes as measured in real
SkyPilot traces, at real prices. It answers "how much does spot save, and what does it cost in
missed deadlines and lost work?".

Glossary:
- *zone*: one spot market (e.g. us-east-1c p3.2xlarge), whose capacity follows a SkyPilot series
  (``sim.traces.skypilot_spot``: unavailable ticks mean no spot capacity; a running instance is
  interrupted when its zone goes unavailable, as in the authors' own simulator), at a spot price.
- *market model*: all instances of a zone share its series, so a job's instances in one zone are
  interrupted together; on-demand capacity is always there. Instances hold one GPU each (the
  traces are of ``p3.2xlarge``, one V100); a job of n GPUs holds n instances, a gang.
- *checkpoints*: a job checkpoints every ``checkpoint_s`` of progress; an interruption loses the
  progress since the last one (the *lost GPU-hours*), and resuming costs ``restart_s`` of work.
  Machines are billed from launch, boot included.

Policies (each job is independent: on-demand capacity is unlimited and the spot series are
exogenous, so jobs do not compete):
- ``on-demand``: on-demand from submission to the end.
- ``spot``: always spot, in the cheapest zone with capacity; without capacity anywhere it waits
  for the first zone to come back (SkyPilot's managed spot, without its on-demand fallback).
- ``mix`` (Hyperion): at submission and after every interruption the job is decided by
  ``core.autoscale.reconcile``, the live autoscaler's decision, over the zones that have
  capacity and on-demand: spot when a spot run (expected rework included) still meets the
  deadline and an on-demand finish after one interruption still would, in the zone whose price
  and interruption rate make the run cheapest, otherwise on demand, where it then stays. Without spot capacity anywhere it waits ``poll_s``
  at a time while a spot run would still meet the deadline after the wait
  (``core.autoscale.spot_meets_deadline``), and goes on demand when it would not ("Can't Be
  Late", NSDI'24, in its simplest form).

The interruption rate a zone's offer carries is the zone's outages per available hour over its
whole series (known in advance: a mild oracle; live, it comes from history).
"""

from __future__ import annotations

import bisect
import csv
import math
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from hyperion.core.autoscale import reconcile, spot_meets_deadline
from hyperion.model.autoscale import Demand, InstanceOffer, NodePoolSpec, ScaleSnapshot
from hyperion.sim.metrics import percentile
from hyperion.sim.result import PolicyResult
from hyperion.sim.traces.base import Trace
from hyperion.sim.traces.skypilot_spot import SpotSeries

POLICIES = ("on-demand", "spot", "mix")
POOL = "cloud"


@dataclass(frozen=True)
class Zone:
    name: str
    series: SpotSeries
    spot_usd_per_h: float  # per instance (one GPU)
    _downs: tuple[float, ...] = field(init=False, repr=False)  # outage starts
    _ups: tuple[float, ...] = field(init=False, repr=False)  # outage ends

    def __post_init__(self) -> None:
        spans = self.series.outages()
        object.__setattr__(self, "_downs", tuple(a for a, _ in spans))
        object.__setattr__(self, "_ups", tuple(b for _, b in spans))

    @property
    def period(self) -> float:
        return self.series.duration_s

    def available(self, t: float) -> bool:
        """Spot capacity at ``t`` seconds from the study's start (the series repeats)."""
        x = t % self.period
        i = bisect.bisect_right(self._downs, x) - 1
        return i < 0 or x >= self._ups[i]

    def next_down(self, t: float) -> float:
        """The first instant at or after ``t`` when capacity goes away (inf: never)."""
        if not self._downs:
            return math.inf
        base = t - t % self.period
        x = t % self.period
        i = bisect.bisect_left(self._downs, x)
        return base + (self._downs[i] if i < len(self._downs) else self.period + self._downs[0])

    def next_up(self, t: float) -> float:
        """The first instant at or after ``t`` with capacity."""
        if self.available(t):
            return t
        base = t - t % self.period
        x = t % self.period
        i = bisect.bisect_right(self._downs, x) - 1
        return base + self._ups[i]

    @property
    def interruptions_per_h(self) -> float:
        down = sum(b - a for a, b in zip(self._downs, self._ups, strict=True))
        up_h = (self.period - down) / 3600
        return len(self._downs) / up_h if up_h > 0 else math.inf


@dataclass(frozen=True)
class Market:
    zones: tuple[Zone, ...]
    on_demand_usd_per_h: float  # per instance (one GPU)
    instance_type: str = "p3.2xlarge"
    boot_s: float = 120.0
    checkpoint_s: float = 1800.0
    restart_s: float = 120.0
    poll_s: float = 600.0


@dataclass(slots=True)
class _Outcome:
    finish: float
    usd: float = 0.0
    lost_gpu_s: float = 0.0
    interruptions: int = 0
    spot_gpu_s: float = 0.0
    on_demand_gpu_s: float = 0.0


def run_job(market: Market, policy: str, gpus: int, submit: float, duration: float, deadline: float,
            seed: int = 0) -> _Outcome:
    """One job's life under ``policy`` (times in seconds from the study's start)."""
    out = _Outcome(submit)
    t, left, on_demand = submit, duration, policy == "on-demand"
    pool = NodePoolSpec(POOL, "sim", capacity_types=("spot", "on-demand"), max_nodes=max(gpus, 1), boot_s=market.boot_s)
    while left > 0:
        zone = None
        if not on_demand:
            up = [z for z in market.zones if z.available(t)]
            if policy == "spot":
                if not up:
                    t = min(z.next_up(t) for z in market.zones)
                    continue
                zone = min(up, key=lambda z: (z.spot_usd_per_h, z.name))
            else:
                job = Demand("j", 1, gpus, spot_ok=True, deadline=deadline, runtime_estimate_s=left,
                             checkpoint_interval_s=market.checkpoint_s, submitted_at=submit)
                worst = max((z.interruptions_per_h for z in market.zones), default=0.0)
                if not up and spot_meets_deadline(job, t + market.poll_s, market.boot_s, worst):
                    t = min(t + market.poll_s, min(z.next_up(t) for z in market.zones))
                    continue
                offers = [InstanceOffer(POOL, market.instance_type, 1, z.spot_usd_per_h, "V100", True, z.name,
                                        z.interruptions_per_h) for z in up]
                offers.append(InstanceOffer(POOL, market.instance_type, 1, market.on_demand_usd_per_h, "V100", False))
                plan = reconcile(ScaleSnapshot(t, seed, (pool,), tuple(offers), (), (job,)))
                launch = plan.launches[0]
                if launch.spot:
                    zone = next(z for z in up if z.name == launch.zone)
                else:
                    on_demand = True
        if on_demand or zone is None:
            held = market.boot_s + left
            out.usd += gpus * market.on_demand_usd_per_h * held / 3600
            out.on_demand_gpu_s += gpus * held
            t += held
            left = 0
            break
        start = t + market.boot_s
        down = zone.next_down(t)
        end = start + left
        if down >= end:
            out.usd += gpus * zone.spot_usd_per_h * (end - t) / 3600
            out.spot_gpu_s += gpus * (end - t)
            t, left = end, 0
            break
        out.usd += gpus * zone.spot_usd_per_h * (down - t) / 3600
        out.spot_gpu_s += gpus * (down - t)
        progress = max(0.0, down - start)
        saved = progress - progress % market.checkpoint_s
        out.lost_gpu_s += gpus * (progress - saved)
        out.interruptions += 1
        left -= saved
        if saved > 0:
            left += market.restart_s
        t = down
    out.finish = t
    return out


def run_study(trace: Trace, market: Market, policy: str, slack: float = 1.0, seed: int = 0) -> PolicyResult:
    """Every job of ``trace`` (times relative to its start) under ``policy``; deadlines are
    ``submission + boot + (1 + slack) x duration``, so on demand always meets them."""
    if policy not in POLICIES:
        raise ValueError(f"unknown spot policy {policy!r}; known: {', '.join(POLICIES)}")
    t0 = time.perf_counter()
    jct: list[float] = []
    usd = lost = spot_s = od_s = 0.0
    misses = interruptions = skipped = 0
    for j in trace.jobs:
        if j.gpus < 1:
            skipped += 1
            continue
        deadline = j.submit_s + market.boot_s + (1 + slack) * j.duration_s
        o = run_job(market, policy, j.gpus, j.submit_s, j.duration_s, deadline, seed)
        jct.append(o.finish - j.submit_s)
        usd += o.usd
        lost += o.lost_gpu_s
        spot_s += o.spot_gpu_s
        od_s += o.on_demand_gpu_s
        interruptions += o.interruptions
        misses += o.finish > deadline + 1e-6
    n = len(jct)
    metrics = {
        "jobs_finished": float(n), "cost_usd": usd, "deadline_misses": float(misses),
        "deadline_miss_rate": misses / n if n else math.nan, "gpu_hours_lost": lost / 3600,
        "interruptions": float(interruptions), "jct_mean_s": _mean(jct), "jct_p99_s": percentile(sorted(jct), 0.99),
        "spot_share": spot_s / (spot_s + od_s) if spot_s + od_s else math.nan, "jobs_unplaceable": float(skipped),
    }
    return PolicyResult(policy, metrics, tuple(jct), wall_s=time.perf_counter() - t0, events=n)


def read_spot_prices(path: str | Path, instance_type: str) -> dict[str, float]:
    """Zone -> median spot price of ``instance_type`` from an AWS spot price history CSV
    (``describe-spot-price-history`` records as rows: region, availability_zone, instance_type,
    product_description, spot_price_usd_per_hour, timestamp_utc; e.g. the DISPA'20 "training on a
    dime" logs). Bad rows raise ``ValueError`` naming file:line and the column."""
    wanted = ("availability_zone", "instance_type", "spot_price_usd_per_hour")
    prices: dict[str, list[float]] = {}
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = [c for c in wanted if c not in (reader.fieldnames or ())]
        if missing:
            raise ValueError(f"{path}:1: no column {', '.join(missing)}; expected an AWS spot price history "
                             f"({', '.join(wanted)}, ...)")
        for row in reader:
            if row["instance_type"] != instance_type:
                continue
            try:
                price = float(row["spot_price_usd_per_hour"])
            except ValueError:
                price = math.nan
            if not (math.isfinite(price) and price > 0):
                raise ValueError(f"{path}:{reader.line_num}: spot_price_usd_per_hour: "
                                 f"{row['spot_price_usd_per_hour']!r} is not a positive price; fix or delete the row")
            prices.setdefault(row["availability_zone"], []).append(price)
    return {zone: statistics.median(v) for zone, v in prices.items()}


def load_market(series: Sequence[str | Path], spot_prices: dict[str, float], on_demand_usd_per_h: float,
                **settings: float) -> Market:
    """A market of the zones whose series files are given (named ``<zone>_<device>_<n>.json``);
    a zone without its own spot price gets the median of its region's zones, else of all."""
    from hyperion.sim.traces.skypilot_spot import read

    if not spot_prices:
        raise ValueError("no spot prices for the instance type; check the price file and instance type")
    zones = []
    for path in series:
        s = read(str(path))
        zone = s.name.split("_")[0]
        region = zone.rstrip("abcdefghijklmnopqrstuvwxyz")
        price = spot_prices.get(zone)
        if price is None:
            near = [p for z, p in spot_prices.items() if z.rstrip("abcdefghijklmnopqrstuvwxyz") == region]
            price = statistics.median(near or list(spot_prices.values()))
        zones.append(Zone(zone, s, price))
    if not zones:
        raise ValueError("no spot series given")
    return Market(tuple(zones), on_demand_usd_per_h, **settings)


def _mean(values: Sequence[float]) -> float:
    return math.fsum(values) / len(values) if values else math.nan

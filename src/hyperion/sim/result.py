"""What one simulated run reports: its metrics (defined in ``METRICS`` and docs/simulator.md),
the distributions behind them and time series for plots."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Metric:
    key: str
    label: str   # short column header
    unit: str    # "s", "h", "%", "USD", "kWh", "kg", "" (a count or an index)
    definition: str


METRICS: tuple[Metric, ...] = (
    Metric("jobs_finished", "jobs", "", "jobs that ran to completion inside the simulated window"),
    Metric("jct_mean_s", "JCT avg", "s", "job completion time: finish - submission, mean over finished jobs"),
    Metric("jct_p50_s", "JCT p50", "s", "median job completion time"),
    Metric("jct_p99_s", "JCT p99", "s", "99th percentile of job completion time"),
    Metric("queue_delay_mean_s", "wait avg", "s", "queueing delay: first start - submission, mean over started jobs"),
    Metric("queue_delay_p50_s", "wait p50", "s", "median queueing delay"),
    Metric("queue_delay_p99_s", "wait p99", "s", "99th percentile of queueing delay"),
    Metric("pending_mean_s", "pend avg", "s", "time pending over all attempts (first wait and every wait after "
           "an eviction or interruption), mean over finished jobs"),
    Metric("deadline_misses", "late", "", "jobs that finished after their deadline (federation runs)"),
    Metric("jobs_shifted", "shifted", "", "decisions that delayed a job to a later hour (federation runs: temporal shifting)"),
    Metric("jobs_burst", "burst", "", "jobs that left a queueing member's queue (burst_after) for another member "
           "because their expected wait there passed burst_after (federation runs: cloud bursting)"),
    Metric("makespan_s", "makespan", "s", "last finish - first submission"),
    Metric("utilisation", "util", "%", "GPU-seconds held by jobs / GPU-seconds of schedulable capacity, over the makespan"),
    Metric("jain_index", "Jain", "", "Jain's fairness index of each team's GPUs held / its entitled share, "
           "time-averaged over samples with two or more teams asking"),
    Metric("max_share_deviation", "max dev", "%", "largest time-averaged |GPUs held - entitled share| of any team, "
           "as a share of cluster GPUs"),
    Metric("preemptions", "preempt", "", "jobs evicted by the scheduler to make room for another"),
    Metric("interruptions", "interrupt", "", "jobs stopped by a node failure or a spot reclaim"),
    Metric("gpu_hours_lost", "lost GPU-h", "h", "GPU-hours of work redone: run since the last checkpoint at each "
           "eviction, plus restart time"),
    Metric("cost_usd", "cost", "USD", "capacity cost: node GPU-hours while up x price per GPU-hour"),
    Metric("energy_kwh", "energy", "kWh", "GPU energy: busy GPUs at TDP, idle GPUs at the idle fraction, times PUE"),
    Metric("energy_cost_usd", "power $", "USD", "energy of each hour x the electricity price of that hour "
           "(power.electricity_prices or a flat price; '-' when the cluster gives none)"),
    Metric("carbon_kg", "CO2", "kg", "energy of each hour x grid carbon intensity of that hour"),
)


FEDERATION_ONLY = frozenset({"deadline_misses", "jobs_shifted", "jobs_burst"})  # reported by federation runs (sim.federation) only


@dataclass(frozen=True)
class PolicyResult:
    policy: str
    metrics: dict[str, float]              # METRICS key -> value
    jct_s: tuple[float, ...] = ()          # per finished job
    queue_delay_s: tuple[float, ...] = ()  # per started job
    # series name ("utilisation" in [0, 1], "queue_length" in jobs) -> ((relative time s, value), ...)
    series: dict[str, tuple[tuple[float, float], ...]] = field(default_factory=dict)
    per_team: dict[str, dict[str, float]] = field(default_factory=dict)  # team -> metric key -> value
    wall_s: float = 0.0   # wall-clock seconds the run took
    events: int = 0       # events processed
    # federation runs: member cluster -> {"jobs", "gpu_hours", "cost_usd", "energy_kwh", "carbon_kg"}
    per_cluster: dict[str, dict[str, float]] = field(default_factory=dict)

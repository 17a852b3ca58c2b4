"""Value types of the federation decision: which cluster (or cloud region) runs a job, on which
market, and when. ``core.federation.place(FedSnapshot, profile) -> FedPlan`` reads only these.

Glossary:
- *cluster* (``ClusterView``): one place a job can run as a whole: an on-prem cluster, or one
  cloud provider's region (or zone). It says what is free there, what a GPU-hour costs on demand
  and on spot, how often spot capacity is taken back, the grid's carbon intensity, what moving a
  GB out of it costs, which data sets it holds, and where it is.
- *carbon series*: grams CO2e per kWh, one value per hour; index 0 is the hour containing the
  snapshot's ``now`` (``floor(now / 3600) * 3600``), index 1 the next hour, and so on. The driver
  fills it with a forecast (``core.federation.forecast``) or, in the simulator, with the actual
  series (an oracle bound). Hours past its end repeat its last value; an empty series is unknown.
- *residency*: regions or countries where a job's data may be processed.
- *queueing member* (``ClusterView.queues``): an on-prem cluster whose queue jobs may join when
  its GPUs are all taken; the live control plane bursts a job from it to another member when its
  expected wait there grows past the member's ``burst_after`` (docs/federation.md, Bursting).
- *market*: on-demand, or spot (cheaper, may be interrupted; only for jobs that tolerate it).
- *start delay*: temporal shifting; a job with deadline slack may start some whole hours later,
  when the grid is cleaner. A delay is a recommendation: the driver keeps the job pending and
  decides again next cycle.

Units: USD, seconds since the epoch, bytes (1 GB = 1e9 bytes), grams CO2e, milliseconds.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

DEFAULT_GPU_WATTS = 300.0


@dataclass(frozen=True, slots=True)
class ClusterView:
    name: str
    provider: str  # "onprem", "aws", "gcp", ...
    region: str
    free_gpus: Mapping[str, int]  # GPU type -> GPUs free (or launchable) now
    on_demand_usd: Mapping[str, float] = field(default_factory=dict)  # GPU type -> USD per GPU-hour; absent: not offered
    spot_usd: Mapping[str, float] = field(default_factory=dict)  # GPU type -> USD per GPU-hour on spot; absent: no spot
    spot_interruptions_per_h: float | None = None  # expected spot interruptions per hour; None: unknown
    zone: str = ""
    grid_zone: str = ""  # the electricity grid's zone (e.g. an ElectricityMaps zone), for the carbon series
    country: str = ""  # ISO code, for residency
    carbon_g_per_kwh: tuple[float, ...] = ()  # hourly series from the snapshot's hour (see module docstring)
    gpu_watts: Mapping[str, float] = field(default_factory=dict)  # GPU type -> watts when busy; absent: 300
    pue: float = 1.0
    egress_usd_per_gb: float = 0.0  # moving one GB out of this cluster
    wan_gbps: float = 1.0  # bandwidth for reading remote data into this cluster
    data: frozenset[str] = frozenset()  # names of the data locations it holds (a bucket, a filesystem)
    location: tuple[float, float] | None = None  # (latitude, longitude) in degrees
    latency_ms: Mapping[str, float] = field(default_factory=dict)  # caller region -> round trip, measured
    accepting: bool = True  # False: drained, unreachable or disabled by an operator
    queues: bool = False  # takes a job beyond its free GPUs (up to capacity_gpus): it waits in this member's queue
    capacity_gpus: Mapping[str, int] = field(default_factory=dict)  # GPU type -> installed GPUs (queueing members)

    def watts(self, gpu_type: str) -> float:
        return self.gpu_watts.get(gpu_type, DEFAULT_GPU_WATTS)


@dataclass(frozen=True, slots=True)
class FedJob:
    id: str
    team: str
    gpus: int
    runtime_estimate_s: float
    gpu_type: str | None = None  # None: any type
    submitted_at: float = 0.0
    priority: int = 0  # higher first
    deadline: float | None = None  # epoch seconds by which it should finish; None: no deadline (never waits)
    data_location: str | None = None  # where its data set lives (a name some clusters hold)
    data_bytes: int = 0
    max_usd_per_h: float | None = None  # for all its GPUs together, at list price
    regions: frozenset[str] = frozenset()  # allowed regions; empty: any
    providers: frozenset[str] = frozenset()  # allowed providers; empty: any
    residency: frozenset[str] = frozenset()  # regions or countries its data may be processed in; empty: anywhere
    spot: bool = False  # tolerates interruption, so may run on spot
    checkpoint_interval_s: float | None = None  # None: an interruption restarts it from the beginning
    caller_region: str | None = None  # inference: where its callers are (key of ``ClusterView.latency_ms``)
    caller_location: tuple[float, float] | None = None  # inference: (latitude, longitude) of its callers
    weights: Mapping[str, float] | None = None  # score plugin -> weight; overrides team's and defaults
    # what it may be expected to cost at most, granted by an earlier decision (its ``cost_cap_usd``):
    # a job decided again when its delay ends keeps the options it waited for, even when a cheaper
    # member has freed up meanwhile; None: only the profile's ``max_cost_ratio`` bounds it
    cost_cap_usd: float | None = None


@dataclass(frozen=True, slots=True)
class FedSnapshot:
    now: float
    seed: int
    clusters: tuple[ClusterView, ...]
    jobs: tuple[FedJob, ...]
    team_budget_left: Mapping[str, float] = field(default_factory=dict)  # team -> USD left; absent: no budget
    weights: Mapping[str, float] = field(default_factory=dict)  # score plugin -> weight (defaults over the profile's)
    team_weights: Mapping[str, Mapping[str, float]] = field(default_factory=dict)  # team -> its weights
    # data location -> USD per GB to move data out of it; absent: the cheapest ``egress_usd_per_gb``
    # among the clusters holding it (0 when none does)
    data_egress_usd_per_gb: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class FedDecision:
    """Where one job goes. ``cluster`` None: nowhere now (``reason`` says why). ``rejected``:
    cluster name -> why it failed a hard constraint (for every such cluster, placed job or not)."""

    job_id: str
    cluster: str | None
    gpu_type: str | None = None
    spot: bool = False
    start_delay_s: float = 0.0
    expected_usd: float | None = None  # compute (with expected rework) + egress + GPU time spent reading remote data
    expected_carbon_g: float | None = None  # None: the cluster's carbon intensity is unknown
    expected_end: float | None = None  # now + delay + data staging + expected run
    score: float | None = None  # weighted sum of normalised scores (higher is better), 0..sum of weights
    rejected: Mapping[str, str] = field(default_factory=dict)
    reason: str = ""
    cost_cap_usd: float | None = None  # the bound on expected cost this decision applied (None: none)


@dataclass(frozen=True, slots=True)
class FedPlan:
    now: float
    decisions: tuple[FedDecision, ...]  # in the order jobs were decided

    def decision(self, job_id: str) -> FedDecision:
        for d in self.decisions:
            if d.job_id == job_id:
                return d
        raise KeyError(job_id)

    @property
    def placed(self) -> tuple[FedDecision, ...]:
        return tuple(d for d in self.decisions if d.cluster is not None)


# ---- the live federation: what a job asks of it and what it decided (stored with the job) ----
WEIGHT_NAMES = ("cost", "carbon", "egress", "latency")  # the score plugins a job or team may weigh


@dataclass(frozen=True, slots=True)
class FedPrefs:
    """A job's federation knobs (its document's ``placement:``); see ``FedJob`` for the meaning."""

    weights: tuple[tuple[str, float], ...] = ()  # score plugin -> weight, sorted by name
    regions: tuple[str, ...] = ()
    providers: tuple[str, ...] = ()
    residency: tuple[str, ...] = ()
    spot: bool = False  # tolerates interruption
    checkpoint_interval_s: float | None = None
    caller_region: str | None = None


@dataclass(frozen=True, slots=True)
class Routing:
    """Where the live federation sent a job, and why: the member (``cluster``), GPU type, market,
    when it may start (``start_after``; None: at once), what it is expected to cost and emit, and
    every member that could not take it with the reason. ``carbon_now_g`` / ``usd_now``: the
    expected carbon and cost of the same choice started at once (what a wait saves)."""

    cluster: str
    profile: str
    decided_at: float
    gpu_type: str | None = None
    spot: bool = False
    start_delay_s: float = 0.0
    start_after: float | None = None
    expected_usd: float | None = None
    expected_carbon_g: float | None = None
    expected_end: float | None = None
    score: float | None = None
    carbon_now_g: float | None = None
    usd_now: float | None = None
    rejected: tuple[tuple[str, str], ...] = ()  # (member, reason), by member name
    cost_cap_usd: float | None = None  # granted by its first delayed decision (FedJob.cost_cap_usd)
    burst_from: str | None = None  # the member whose queue it left (bursting), None: it was not burst
    burst_wait_s: float | None = None  # the wait expected there when it was burst (None: unknown)

    def waits_for(self) -> str:
        """Why a delayed job waits: ``a cleaner hour (expected 120 g CO2 vs 310 g now)``; "" when it does not."""
        if self.start_after is None:
            return ""
        if self.expected_carbon_g is not None and self.carbon_now_g is not None and self.expected_carbon_g < self.carbon_now_g:
            return f"a cleaner hour (expected {self.expected_carbon_g:,.0f} g CO2 vs {self.carbon_now_g:,.0f} g now)"
        if self.expected_usd is not None and self.usd_now is not None and self.expected_usd < self.usd_now:
            return f"a cheaper hour (expected ${self.expected_usd:,.2f} vs ${self.usd_now:,.2f} now)"
        return "a better hour"

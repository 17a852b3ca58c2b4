"""Federation: ``place(FedSnapshot, profile) -> FedPlan``, which cluster (and market, and hour)
runs each job. Pure and deterministic for a snapshot, like ``core.schedule``.

The decision, in phases:
1. *order*: jobs by priority (higher first), then earliest deadline first (jobs without one last),
   then submission time, then id: when capacity is short, the job closest to missing goes first.
2. *candidates*: for each job, every (cluster, GPU type, market, start delay): clusters by name;
   the job's GPU type, or every type the cluster lists; on demand, and spot when the job tolerates
   interruption; delay 0, and with the ``wait`` option and a deadline, every whole hour up to
   ``min(max_wait_h, (deadline - now - estimate - slack_reserve x whole slack) / 3600)``, the whole
   slack being ``deadline - submitted_at - estimate``. A job without a deadline never waits.
   Each candidate's run, cost and carbon come from ``estimate.candidate``.
3. *filter*: the profile's hard constraints (``filter`` plugins, in order); a cluster none of whose
   candidates passes is reported in ``FedDecision.rejected`` with the reasons at delay 0.
4. *bound*: candidates costing more than ``max_cost_ratio`` times the cheapest feasible are dropped
   (or more than the job's ``cost_cap_usd``, when that is higher: what it was granted when first
   decided, so a job decided again after a delay keeps the choices it waited for).
5. *score*: each ``penalty`` plugin's values, min-max normalised over the remaining candidates,
   combine into ``sum(weight * (1 - normalised))`` (weights: see ``profiles``); the highest wins,
   ties to the shorter delay, the lower cost, then cluster name, GPU type, on-demand before spot.
6. *commit*: the job's GPUs leave the cluster's free count and its expected cost its team's budget,
   so later jobs of the same call see what is left. A delayed job holds them too (a plan never
   promises the same GPUs twice; the driver re-decides a waiting job next cycle anyway).

Profiles, plugins and default weights: ``core.federation.profiles``; formulas: ``estimate``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from hyperion.core.federation.estimate import HOUR, Candidate, candidate
from hyperion.core.federation.profiles import FED_PROFILES, FedProfile, build_fed_profile, fed_plugin
from hyperion.model.federation import ClusterView, FedDecision, FedJob, FedPlan, FedSnapshot

__all__ = ["FED_PROFILES", "Context", "FedProfile", "build_fed_profile", "fed_plugin", "place"]


@dataclass(slots=True)
class Context:
    """What plugins may read besides the job and the candidate: the snapshot, and what earlier
    jobs of this call left (``free``: (cluster, GPU type) -> GPUs; ``budget_left``: team -> USD)."""

    snapshot: FedSnapshot
    free: dict[tuple[str, str], int]
    budget_left: dict[str, float]


def place(snapshot: FedSnapshot, profile: FedProfile) -> FedPlan:
    clusters = tuple(sorted(snapshot.clusters, key=lambda c: c.name))
    ctx = Context(snapshot, {(c.name, t): n for c in clusters for t, n in c.free_gpus.items()},
                  dict(snapshot.team_budget_left))
    decisions = []
    for job in sorted(snapshot.jobs, key=_order):
        d = _decide(job, clusters, ctx, profile)
        if d.cluster is not None and d.gpu_type is not None:
            key = (d.cluster, d.gpu_type)
            ctx.free[key] = ctx.free.get(key, 0) - job.gpus
            if job.team in ctx.budget_left and d.expected_usd is not None:
                ctx.budget_left[job.team] -= d.expected_usd
        decisions.append(d)
    return FedPlan(snapshot.now, tuple(decisions))


def _order(j: FedJob) -> tuple:
    """Priority (higher first), then the earliest deadline (none: last), submission, id."""
    return -j.priority, j.deadline if j.deadline is not None else math.inf, j.submitted_at, j.id


def _delays(job: FedJob, now: float, profile: FedProfile) -> list[float]:
    if not profile.option("wait") or job.deadline is None:
        return [0.0]
    # keep a share of the job's whole slack unspent, for waiting on capacity when the delay ends
    reserve = profile.option("slack_reserve") * max(job.deadline - job.submitted_at - job.runtime_estimate_s, 0.0)
    slack = job.deadline - now - job.runtime_estimate_s - reserve
    if not slack > 0:
        return [0.0]
    hours = int(min(slack // HOUR, profile.option("max_wait_h")))
    return [h * HOUR for h in range(hours + 1)]


def _types(job: FedJob, cluster: ClusterView) -> list[str]:
    if job.gpu_type is not None:
        return [job.gpu_type]
    return sorted(set(cluster.free_gpus) | set(cluster.on_demand_usd) | set(cluster.spot_usd))


def _decide(job: FedJob, clusters: tuple[ClusterView, ...], ctx: Context, profile: FedProfile) -> FedDecision:
    filters = profile.serving("filter")
    delays = _delays(job, ctx.snapshot.now, profile)
    default_rate = profile.option("spot_interruptions_per_h")
    feasible: list[Candidate] = []
    rejected: dict[str, str] = {}
    for cluster in clusters:
        reasons: list[str] = []
        for gpu_type in _types(job, cluster):
            for spot in (False, True) if job.spot else (False,):
                for delay in delays:
                    cand = candidate(job, cluster, gpu_type, spot, delay, ctx.snapshot, default_rate)
                    why = next((r for f in filters if (r := f.filter(job, cand, ctx)) is not None), None)
                    if why is None:
                        feasible.append(cand)
                    elif delay == 0 and why not in reasons:
                        reasons.append(why)
        if not any(c.cluster.name == cluster.name for c in feasible):
            rejected[cluster.name] = "; ".join(reasons) or "offers no GPU type"
    if not feasible:
        why = "no clusters in the snapshot" if not clusters else "no cluster passes every hard constraint"
        return FedDecision(job.id, None, rejected=rejected, reason=why)
    cheapest = min(c.usd for c in feasible)
    ratio = profile.option("max_cost_ratio")
    cap = cheapest * ratio
    if job.cost_cap_usd is not None and job.cost_cap_usd > cap:
        cap = job.cost_cap_usd  # granted when it was first decided (see FedJob.cost_cap_usd)
    if math.isfinite(cap):
        feasible = [c for c in feasible if c.usd <= cap + 1e-9]
    scores = _scores(job, feasible, ctx, profile)
    best = min(range(len(feasible)), key=lambda i: (-scores[i], feasible[i].delay_s, feasible[i].usd,
                                                    feasible[i].cluster.name, feasible[i].gpu_type, feasible[i].spot))
    c = feasible[best]
    return FedDecision(job.id, c.cluster.name, c.gpu_type, c.spot, c.delay_s, c.usd, c.carbon_g, c.end,
                       scores[best], rejected, cost_cap_usd=cap if math.isfinite(cap) else None)


def weights_for(job: FedJob, snapshot: FedSnapshot, profile: FedProfile) -> dict[str, float]:
    """Score plugin -> weight for ``job``: per key, the job's, its team's, the snapshot's, the profile's."""
    layers: list[Mapping[str, float]] = [job.weights or {}, snapshot.team_weights.get(job.team, {}),
                                         snapshot.weights, profile.weights]
    out: dict[str, float] = {}
    for p in profile.serving("penalty"):
        w = next((layer[p.name] for layer in layers if p.name in layer), 0.0)
        out[p.name] = w if w > 0 else 0.0  # negative or NaN: 0
    return out


def _scores(job: FedJob, cands: list[Candidate], ctx: Context, profile: FedProfile) -> list[float]:
    weights = weights_for(job, ctx.snapshot, profile)
    total = [0.0] * len(cands)
    for p in profile.serving("penalty"):
        w = weights[p.name]
        if w == 0:
            continue
        raw = [p.penalty(job, c, ctx) for c in cands]
        for i, n in enumerate(normalise(raw)):
            total[i] += w * (1.0 - n)
    return total


def normalise(values: list[float | None]) -> list[float]:
    """Min-max to 0..1 (0: the best, lowest); unknown (None or not finite) values get 1; all equal: 0."""
    known = [v for v in values if v is not None and math.isfinite(v)]
    if not known:
        return [0.0 if v is not None and math.isfinite(v) else 1.0 for v in values]
    lo, hi = min(known), max(known)
    span = hi - lo
    return [1.0 if v is None or not math.isfinite(v) else (0.0 if span <= 0 else (v - lo) / span) for v in values]

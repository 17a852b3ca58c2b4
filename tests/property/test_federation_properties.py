"""Properties of ``core.federation.place`` over random snapshots and every built-in profile:
every placed job satisfies every hard constraint (fit, regions and providers, residency, max
price, deadline, team budget), no cluster's free GPUs are promised twice, and the plan depends
only on the snapshot (not on the order its clusters and jobs are listed in)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from hyperion.core.federation import FED_PROFILES, place
from hyperion.model.federation import ClusterView, FedJob, FedPlan, FedSnapshot

HOUR = 3600.0
NOW = 1_800_000_123.0  # not on the hour
TYPES = ("A100", "H100")
EPS = 1e-6

mostly = st.sampled_from((True, True, True, False))
prices = st.fixed_dictionaries({}, optional={t: st.floats(0.1, 10.0) for t in TYPES})
# constraints: often none, so that a good share of the jobs is placed and the checks bite
small_sets = lambda values: st.just(frozenset()) | st.frozensets(st.sampled_from(values), min_size=1, max_size=2)  # noqa: E731


@st.composite
def clusters(draw: st.DrawFn, i: int) -> ClusterView:
    return ClusterView(
        name=f"c{i}", provider=draw(st.sampled_from(("aws", "gcp", "onprem"))), region=draw(st.sampled_from(("r1", "r2", "r3"))),
        free_gpus={t: draw(st.integers(0, 16)) for t in TYPES},
        on_demand_usd={t: draw(st.floats(0.1, 10.0)) for t in TYPES if draw(mostly)}, spot_usd=draw(prices),
        spot_interruptions_per_h=draw(st.none() | st.floats(0.0, 3.0)),
        country=draw(st.sampled_from(("", "DE", "US"))),
        carbon_g_per_kwh=tuple(draw(st.lists(st.floats(0.0, 1000.0), max_size=30))),
        egress_usd_per_gb=draw(st.floats(0.0, 0.2)), wan_gbps=draw(st.floats(0.1, 100.0)),
        data=draw(small_sets(("d1", "d2"))),
        location=draw(st.none() | st.tuples(st.floats(-90, 90), st.floats(-180, 180))),
        latency_ms=draw(st.dictionaries(st.sampled_from(("eu", "us")), st.floats(1.0, 300.0), max_size=2)),
        accepting=draw(mostly),
    )


@st.composite
def jobs(draw: st.DrawFn, i: int) -> FedJob:
    estimate = draw(st.floats(60.0, 20 * HOUR))
    return FedJob(
        id=f"j{i}", team=draw(st.sampled_from(("t1", "t2"))), gpus=draw(st.integers(1, 8)), runtime_estimate_s=estimate,
        gpu_type=draw(st.none() | st.sampled_from(TYPES)), submitted_at=draw(st.sampled_from((0.0, 1.0, 2.0))),
        priority=draw(st.integers(0, 2)),
        deadline=draw(st.none() | st.floats(0.0, 48 * HOUR).map(lambda s: NOW + s)),
        data_location=draw(st.none() | st.sampled_from(("d1", "d2", "d3"))), data_bytes=draw(st.integers(0, 10**13)),
        max_usd_per_h=draw(st.none() | st.floats(0.0, 60.0)),  # (a dictionary's first choice is its smallest)
        regions=draw(small_sets(("r1", "r2", "r3"))), providers=draw(small_sets(("aws", "gcp", "onprem"))),
        residency=draw(small_sets(("r1", "DE", "US"))), spot=draw(st.booleans()),
        checkpoint_interval_s=draw(st.none() | st.floats(60.0, 4 * HOUR)),
        caller_region=draw(st.none() | st.sampled_from(("eu", "us"))),
        caller_location=draw(st.none() | st.tuples(st.floats(-90, 90), st.floats(-180, 180))),
        weights=draw(st.none() | st.dictionaries(st.sampled_from(("cost", "carbon", "egress", "latency")), st.floats(0.0, 5.0))),
    )


@st.composite
def snapshots(draw: st.DrawFn) -> FedSnapshot:
    n_clusters, n_jobs = draw(st.integers(0, 4)), draw(st.integers(0, 6))
    return FedSnapshot(
        now=NOW, seed=draw(st.integers(0, 9)),
        clusters=tuple(draw(clusters(i)) for i in range(n_clusters)),
        jobs=tuple(draw(jobs(i)) for i in range(n_jobs)),
        team_budget_left=draw(st.dictionaries(st.sampled_from(("t1", "t2")), st.floats(0.0, 500.0))),
        data_egress_usd_per_gb=draw(st.dictionaries(st.sampled_from(("d1", "d3")), st.floats(0.0, 0.2))),
    )


profiles = st.sampled_from(sorted(FED_PROFILES)).map(lambda name: FED_PROFILES[name]())


def assert_hard_constraints_hold(snap: FedSnapshot, plan: FedPlan, waits: bool) -> None:
    by_name = {c.name: c for c in snap.clusters}
    by_id = {j.id: j for j in snap.jobs}
    used: dict[tuple[str, str], int] = defaultdict(int)
    spent: dict[str, float] = defaultdict(float)
    assert sorted(d.job_id for d in plan.decisions) == sorted(by_id)
    for d in plan.placed:
        job, c = by_id[d.job_id], by_name[d.cluster]
        assert d.gpu_type is not None and c.accepting
        assert job.gpu_type in (None, d.gpu_type)
        assert job.spot or not d.spot
        price = (c.spot_usd if d.spot else c.on_demand_usd).get(d.gpu_type)
        assert price is not None, "placed on a market that does not offer the type"
        used[(c.name, d.gpu_type)] += job.gpus
        assert not job.regions or c.region in job.regions
        assert not job.providers or c.provider in job.providers
        assert not job.residency or c.region in job.residency or (c.country != "" and c.country in job.residency)
        assert job.max_usd_per_h is None or price * job.gpus <= job.max_usd_per_h + EPS
        assert d.start_delay_s >= 0 and d.start_delay_s % HOUR == 0
        assert d.start_delay_s == 0 or (waits and job.deadline is not None)
        assert d.expected_end is not None and d.expected_end >= NOW + d.start_delay_s + job.runtime_estimate_s - EPS
        if job.deadline is not None:
            assert d.expected_end <= job.deadline + EPS
        assert d.expected_usd is not None and d.expected_usd >= price * job.gpus * job.runtime_estimate_s / HOUR - EPS
        spent[job.team] += d.expected_usd
    for key, n in used.items():
        assert n <= by_name[key[0]].free_gpus.get(key[1], 0), f"{key} over-committed"
    for team, usd in spent.items():
        left = snap.team_budget_left.get(team)
        assert left is None or usd <= left + 1e-6 * max(1.0, left)


@settings(max_examples=300, deadline=None)
@given(snapshots(), profiles)
def test_placed_jobs_satisfy_every_hard_constraint(snap: FedSnapshot, profile) -> None:
    plan = place(snap, profile)
    assert_hard_constraints_hold(snap, plan, profile.option("wait"))
    for d in plan.decisions:
        assert (d.cluster is None) == bool(d.reason)
        assert d.cluster not in d.rejected


@settings(max_examples=150, deadline=None)
@given(snapshots(), profiles)
def test_plan_is_deterministic_and_independent_of_listing_order(snap: FedSnapshot, profile) -> None:
    plan = place(snap, profile)
    assert place(snap, profile) == plan
    shuffled = replace(snap, clusters=snap.clusters[::-1], jobs=snap.jobs[::-1])
    assert place(shuffled, profile) == plan

"""Every example cluster file loads, with the real data files it names when they are here."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from hyperion.sim.cluster import load_cluster

ROOT = Path(__file__).resolve().parents[3]
DATA = Path(os.environ.get("HYPERION_DATA", ROOT.parent / "shared" / "data"))


@pytest.mark.parametrize("path", sorted((ROOT / "examples" / "clusters").glob("*.yaml")), ids=lambda p: p.name)
def test_every_example_cluster_loads(path: Path) -> None:
    if not DATA.is_dir():
        pytest.skip(f"no data dir at {DATA} (set HYPERION_DATA)")
    cluster = load_cluster(path, DATA)
    assert cluster.gpus > 0
    assert all(cluster.power.watts(p.gpu_type) > 0 for p in cluster.pools if p.gpus)


def test_the_example_federations_load_with_real_prices_and_carbon() -> None:
    from hyperion.sim.federation import load_federation

    if not DATA.is_dir():
        pytest.skip(f"no data dir at {DATA} (set HYPERION_DATA)")
    examples = ROOT / "examples"
    fed = load_federation([examples / "federation.yaml", examples / "federation-onprem.yaml"],
                          DATA / "carbon_electricitymaps_hourly")
    assert len(fed.members) == 7 and fed.capacity == 1024
    views = {m.name: m.to_view() for m in fed.members}
    assert views["aws-us-east-1"].grid_zone == "US-MIDA-PJM" and views["aws-us-east-1"].on_demand_usd["V100"] == pytest.approx(3.06)
    assert views["azure-canadacentral"].grid_zone == "CA-ON" and views["azure-canadacentral"].country == "CA"
    assert all(len(s.values) > 24 * 365 for s in fed.carbon.values())  # hourly series, not static values


def test_on_a_real_day_the_carbon_aware_policies_emit_less_within_their_cost_bound() -> None:
    """Two days of Philly (week 4) on the cloud example federation with real hourly carbon: the
    direction of the bench's result (docs/benchmarks.md), not its figures."""
    from datetime import UTC, datetime

    from hyperion.sim.federation import FED_POLICIES, FederationRun, align, load_federation
    from hyperion.sim.traces import read_trace, window

    if not DATA.is_dir():
        pytest.skip(f"no data dir at {DATA} (set HYPERION_DATA)")
    fed = load_federation(ROOT / "examples" / "federation.yaml", DATA / "carbon_electricitymaps_hourly")
    start = datetime(2022, 3, 7, tzinfo=UTC).timestamp()
    trace = align(window(read_trace(f"philly:{DATA / 'philly_pollux' / 'philly.csv'}"), 28 * 86400.0, None),
                  start, start + 2 * 86400)
    assert 100 < len(trace.jobs) < 10_000
    runs = {p: FederationRun(trace, fed, FED_POLICIES[p]).run().metrics for p in ("default", "carbon-spatial", "carbon-temporal")}
    for p in ("carbon-spatial", "carbon-temporal"):
        assert runs[p]["jobs_finished"] == runs["default"]["jobs_finished"] == len(trace.jobs)
        assert runs[p]["carbon_kg"] < runs["default"]["carbon_kg"]
        assert runs[p]["cost_usd"] <= runs["default"]["cost_usd"] * 1.25
    assert runs["carbon-temporal"]["jobs_shifted"] > 0

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

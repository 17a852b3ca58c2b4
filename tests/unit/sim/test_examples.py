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

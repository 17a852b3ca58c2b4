"""The ``egress`` score: data size x USD/GB out of its location, plus GPU time spent reading it."""

from __future__ import annotations

import pytest
from federation_builders import a_cluster, a_job, a_snapshot, cand, ctx

from hyperion.core.federation.plugins.egress import Egress


def test_egress_is_zero_next_to_the_data_and_counts_transfer_and_slowdown_elsewhere() -> None:
    home = a_cluster("home", data=frozenset({"gs://corpus"}), egress_usd_per_gb=0.12)
    away = a_cluster("away", od={"H100": 3.0}, wan_gbps=4.0)
    job = a_job(gpus=8, data_location="gs://corpus", data_bytes=2 * 10**12)  # 2 TB: 4000 s at 4 Gbit/s
    snap = a_snapshot([home, away], [job])
    x = ctx(snap)
    assert Egress().penalty(job, cand(job, home, snapshot=snap), x) == 0.0
    assert Egress().penalty(job, cand(job, away, snapshot=snap), x) == pytest.approx(2000 * 0.12 + 8 * 3.0 * 4000 / 3600)


def test_no_data_no_egress() -> None:
    c = a_cluster()
    assert Egress().penalty(a_job(), cand(a_job(), c), ctx(a_snapshot([c]))) == 0.0

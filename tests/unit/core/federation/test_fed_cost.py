"""The ``cost`` score: expected USD, spot with expected rework."""

from __future__ import annotations

import math

import pytest
from federation_builders import HOUR, a_cluster, a_job, a_snapshot, cand, ctx

from hyperion.core.federation.plugins.cost import Cost


def test_cost_on_demand_and_spot_with_rework() -> None:
    c = a_cluster(od={"H100": 4.0}, spot={"H100": 1.0}, spot_interruptions_per_h=1.0)
    job = a_job(gpus=2, estimate_s=HOUR, spot=True)
    x = ctx(a_snapshot([c]))
    assert Cost().penalty(job, cand(job, c), x) == pytest.approx(8.0)
    assert Cost().penalty(job, cand(job, c, spot=True), x) == pytest.approx(2.0 * (math.e - 1))  # 3.44: still cheaper


def test_unknown_interruption_rate_uses_the_profile_default() -> None:
    c = a_cluster(spot={"H100": 1.0})
    job = a_job(estimate_s=HOUR, spot=True)
    assert Cost().penalty(job, cand(job, c, spot=True, rate=0.5), ctx(a_snapshot([c]))) == pytest.approx(2 * math.expm1(0.5))


def test_cost_includes_egress_and_staging() -> None:
    c = a_cluster(od={"H100": 2.0}, wan_gbps=8.0)
    job = a_job(gpus=1, data_location="ds", data_bytes=1800 * 10**9)  # 0.5 h staging
    snap = a_snapshot([c], data_egress_usd_per_gb={"ds": 0.01})
    assert Cost().penalty(job, cand(job, c, snapshot=snap), ctx(snap)) == pytest.approx(2.0 + 18.0 + 1.0)

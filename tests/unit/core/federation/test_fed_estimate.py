"""``core.federation.estimate``: expected run with spot rework, staging, egress, carbon."""

from __future__ import annotations

import math

import pytest
from federation_builders import HOUR, NOW, a_cluster, a_job, a_snapshot, cand

from hyperion.core.federation.estimate import egress_usd, expected_run_s, mean_intensity, staging_s


@pytest.mark.parametrize("estimate, rate, ckpt, hours", [
    (HOUR, 0.0, None, 1.0),                              # on demand: the estimate
    (HOUR, 1.0, None, math.e - 1),                       # 1 interruption/h, restart from scratch: e - 1 h
    (HOUR, 1.0, HOUR / 2, 2 * (math.exp(0.5) - 1)),     # two half-hour segments
    (2 * HOUR, 0.5, 4 * HOUR, 2 * (math.e - 1)),         # a checkpoint interval past the run: from scratch
    (HOUR, 1000.0, None, math.inf),                      # never finishes
])
def test_expected_run_with_rework(estimate: float, rate: float, ckpt: float | None, hours: float) -> None:
    got = expected_run_s(estimate, rate, ckpt) / HOUR
    assert got == pytest.approx(hours) if math.isfinite(hours) else got == math.inf


def test_rework_grows_with_rate_and_shrinks_with_checkpoints() -> None:
    assert expected_run_s(HOUR, 0.1, None) < expected_run_s(HOUR, 0.2, None)
    assert expected_run_s(10 * HOUR, 0.2, 600) < expected_run_s(10 * HOUR, 0.2, 3600) < expected_run_s(10 * HOUR, 0.2, None)


def test_staging_and_egress_only_when_the_data_is_elsewhere() -> None:
    home = a_cluster("home", data=frozenset({"s3://ds"}), egress_usd_per_gb=0.09)
    cheap = a_cluster("cheap-src", data=frozenset({"s3://ds"}), egress_usd_per_gb=0.05)
    away = a_cluster("away", wan_gbps=2.0)
    job = a_job(data_location="s3://ds", data_bytes=10**12)  # 1 TB
    snap = a_snapshot([home, cheap, away], [job])
    assert staging_s(job, home) == 0.0 and egress_usd(job, home, snap) == 0.0
    assert staging_s(job, away) == pytest.approx(8e12 / 2e9)  # 4000 s at 2 Gbit/s
    assert egress_usd(job, away, snap) == pytest.approx(1000 * 0.05)  # from the cheapest holder
    assert egress_usd(job, away, a_snapshot([home, away], [job], data_egress_usd_per_gb={"s3://ds": 0.02})) == pytest.approx(20.0)
    assert egress_usd(job, away, a_snapshot([away], [job])) == 0.0  # nobody holds it: rate unknown, 0
    assert staging_s(a_job(data_location="s3://ds"), away) == 0.0  # no size, nothing to read


@pytest.mark.parametrize("start, end, mean", [
    (0, HOUR, 100.0),
    (HOUR / 2, 3 * HOUR / 2, 150.0),          # half of hour 0, half of hour 1
    (HOUR, 3 * HOUR, (200 + 400) / 2),
    (2 * HOUR, 6 * HOUR, 400.0),              # past the end: the last value repeats
    (HOUR / 2, HOUR / 2, 100.0),              # empty window: the value at its start
])
def test_mean_intensity(start: float, end: float, mean: float) -> None:
    assert mean_intensity((100.0, 200.0, 400.0), NOW, NOW + start, NOW + end) == pytest.approx(mean)


def test_mean_intensity_of_an_empty_series_is_unknown() -> None:
    assert mean_intensity((), NOW, NOW, NOW + HOUR) is None


def test_candidate_carbon_counts_power_pue_run_and_intensity_after_delay_and_staging() -> None:
    c = a_cluster(carbon_g_per_kwh=(500.0, 100.0, 100.0), gpu_watts={"H100": 700.0}, pue=1.2, wan_gbps=8.0,
                  data=frozenset())
    job = a_job(gpus=2, estimate_s=HOUR, data_location="ds", data_bytes=1800 * 10**9)  # 1800 GB at 8 Gbit/s: 1800 s
    k = cand(job, c)
    assert k.staging_s == pytest.approx(1800.0)
    # run from 0.5 h to 1.5 h: half at 500, half at 100 -> 300 g/kWh; 2 x 0.7 kW x 1.2 x 1 h = 1.68 kWh
    assert k.carbon_g == pytest.approx(1.68 * 300.0)
    assert cand(job, c, delay_s=HOUR).carbon_g == pytest.approx(1.68 * 100.0)
    assert k.usd == pytest.approx(2 * 2.0 * 1.5)  # compute 1 h + staging 0.5 h, no egress source

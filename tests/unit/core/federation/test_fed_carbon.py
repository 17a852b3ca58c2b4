"""The ``carbon`` score: grams over the expected run from its start hour."""

from __future__ import annotations

import pytest
from federation_builders import HOUR, a_cluster, a_job, a_snapshot, cand, ctx

from hyperion.core.federation.plugins.carbon import Carbon


def test_carbon_is_energy_times_mean_intensity_over_the_run() -> None:
    c = a_cluster(carbon_g_per_kwh=(400.0, 200.0, 100.0), gpu_watts={"H100": 500.0}, pue=1.5)
    job = a_job(gpus=4, estimate_s=2 * HOUR)
    x = ctx(a_snapshot([c]))
    kwh = 4 * 0.5 * 1.5 * 2  # 6 kWh
    assert Carbon().penalty(job, cand(job, c), x) == pytest.approx(kwh * 300.0)
    assert Carbon().penalty(job, cand(job, c, delay_s=HOUR), x) == pytest.approx(kwh * 150.0)
    assert Carbon().penalty(job, cand(job, c, delay_s=5 * HOUR), x) == pytest.approx(kwh * 100.0)


def test_carbon_default_power_and_unknown_intensity() -> None:
    job = a_job(gpus=1, estimate_s=HOUR)
    c = a_cluster(carbon_g_per_kwh=(100.0,))
    assert Carbon().penalty(job, cand(job, c), ctx(a_snapshot([c]))) == pytest.approx(0.3 * 100.0)  # 300 W default
    unknown = a_cluster()
    assert Carbon().penalty(job, cand(job, unknown), ctx(a_snapshot([unknown]))) is None

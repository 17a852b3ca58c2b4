"""The ``deadline`` filter: now + delay + staging + expected run <= deadline."""

from __future__ import annotations

import math

import pytest
from federation_builders import HOUR, NOW, a_cluster, a_job, a_snapshot, cand, ctx

from hyperion.core.federation.plugins.deadline import Deadline


@pytest.mark.parametrize("deadline_h, delay_h, ok", [
    (None, 5, True),
    (2, 0, True),
    (2, 1, True),     # ends exactly at the deadline
    (2, 2, False),
    (0.5, 0, False),
])
def test_deadline_with_delay(deadline_h: float | None, delay_h: float, ok: bool) -> None:
    c = a_cluster()
    job = a_job(estimate_s=HOUR, deadline=None if deadline_h is None else NOW + deadline_h * HOUR)
    why = Deadline().filter(job, cand(job, c, delay_s=delay_h * HOUR), ctx(a_snapshot([c])))
    assert (why is None) == ok


def test_deadline_counts_staging_and_spot_rework() -> None:
    c = a_cluster(spot={"H100": 1.0}, spot_interruptions_per_h=1.0, wan_gbps=8.0)
    job = a_job(estimate_s=HOUR, deadline=NOW + 1.5 * HOUR, spot=True)
    x = ctx(a_snapshot([c]))
    assert Deadline().filter(job, cand(job, c), x) is None
    why = Deadline().filter(job, cand(job, c, spot=True), x)  # e - 1 = 1.72 h expected
    assert why is not None and "spot, with expected rework" in why and f"{math.e - 1:.2f} h run" in why
    remote = a_job(estimate_s=HOUR, deadline=NOW + 1.5 * HOUR, data_location="ds", data_bytes=3600 * 10**9)  # 1 h at 8 Gbit/s
    why = Deadline().filter(remote, cand(remote, c), x)
    assert why == "expected to finish 0.50 h after the deadline (1.00 h run + 1.00 h reading remote data)"

"""The ``budget`` filter: the team has the job's expected cost left."""

from __future__ import annotations

import pytest
from federation_builders import HOUR, a_cluster, a_job, a_snapshot, cand, ctx

from hyperion.core.federation.plugins.budget import Budget


@pytest.mark.parametrize("left, ok", [(None, True), (100.0, True), (16.0, True), (15.99, False), (-5.0, False)])
def test_budget(left: float | None, ok: bool) -> None:
    c = a_cluster(od={"H100": 2.0})
    job = a_job(team="vision", gpus=4, estimate_s=2 * HOUR)  # 4 x $2 x 2 h = $16
    snap = a_snapshot([c], team_budget_left={} if left is None else {"vision": left})
    why = Budget().filter(job, cand(job, c), ctx(snap))
    assert (why is None) == ok
    if not ok:
        assert why == f"expected to cost $16.00, team 'vision' has ${max(left, 0.0):.2f} left"


def test_budget_counts_egress() -> None:
    c = a_cluster(od={"H100": 2.0}, wan_gbps=1e9)  # staging negligible
    job = a_job(team="vision", gpus=1, data_location="ds", data_bytes=100 * 10**9)
    snap = a_snapshot([c], team_budget_left={"vision": 10.0}, data_egress_usd_per_gb={"ds": 0.09})
    assert cand(job, c, snapshot=snap).usd == pytest.approx(2.0 + 9.0, rel=1e-6)
    assert Budget().filter(job, cand(job, c, snapshot=snap), ctx(snap)) is not None

"""The ``max-price`` filter: list price for all the job's GPUs per hour, on the candidate's market."""

from __future__ import annotations

import pytest
from federation_builders import a_cluster, a_job, a_snapshot, cand, ctx

from hyperion.core.federation.plugins.max_price import MaxPrice


@pytest.mark.parametrize("gpus, spot, max_usd, ok", [
    (4, False, None, True),
    (4, False, 8.0, True),    # 4 x $2 = $8/h: at the limit
    (4, False, 7.99, False),
    (4, True, 4.0, True),     # spot: 4 x $1
    (4, True, 3.0, False),
])
def test_max_price(gpus: int, spot: bool, max_usd: float | None, ok: bool) -> None:
    c = a_cluster(od={"H100": 2.0}, spot={"H100": 1.0})
    job = a_job(gpus=gpus, max_usd_per_h=max_usd, spot=True)
    why = MaxPrice().filter(job, cand(job, c, spot=spot), ctx(a_snapshot([c])))
    assert (why is None) == ok
    if not ok:
        assert why.startswith(f"${4 * (1.0 if spot else 2.0):.2f}/h")

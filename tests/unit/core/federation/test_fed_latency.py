"""The ``latency`` score: measured round trip, else great-circle distance at 100 km per ms."""

from __future__ import annotations

import pytest
from federation_builders import a_cluster, a_job, a_snapshot, cand, ctx

from hyperion.core.federation.plugins.latency import Latency, great_circle_km

LONDON, NEW_YORK = (51.5074, -0.1278), (40.7128, -74.0060)


def test_great_circle() -> None:
    assert great_circle_km(LONDON, NEW_YORK) == pytest.approx(5570, rel=0.005)
    assert great_circle_km(LONDON, LONDON) == 0.0
    assert great_circle_km((0.0, 0.0), (0.0, 180.0)) == pytest.approx(3.141592653589793 * 6371.0)


@pytest.mark.parametrize("job_kw, cluster_kw, ms", [
    ({}, {}, 0.0),                                                                         # not inference: no preference
    ({"caller_region": "eu-west-2"}, {"latency_ms": {"eu-west-2": 72.0}}, 72.0),            # measured
    ({"caller_region": "eu-west-2", "caller_location": LONDON},
     {"latency_ms": {"eu-west-2": 72.0}, "location": NEW_YORK}, 72.0),                      # measured wins
    ({"caller_region": "x", "caller_location": LONDON}, {"location": NEW_YORK}, 55.7),      # distance
    ({"caller_location": LONDON}, {}, None),                                                 # cluster location unknown
])
def test_latency(job_kw: dict, cluster_kw: dict, ms: float | None) -> None:
    c = a_cluster(**cluster_kw)
    job = a_job(**job_kw)
    got = Latency().penalty(job, cand(job, c), ctx(a_snapshot([c])))
    assert got == (None if ms is None else pytest.approx(ms, rel=0.005))

"""The ``placement`` filter: allowed regions and providers."""

from __future__ import annotations

import pytest
from federation_builders import a_cluster, a_job, a_snapshot, cand, ctx

from hyperion.core.federation.plugins.placement import Placement


@pytest.mark.parametrize("regions, providers, reason", [
    ((), (), None),
    (("eu-west-1", "us-east-1"), (), None),
    (("eu-west-1",), (), "region us-east-1 is not among the job's regions (eu-west-1)"),
    ((), ("aws", "onprem"), None),
    ((), ("gcp",), "provider aws is not among the job's providers (gcp)"),
    (("us-east-1",), ("gcp",), "provider aws is not among the job's providers (gcp)"),
])
def test_placement(regions: tuple[str, ...], providers: tuple[str, ...], reason: str | None) -> None:
    c = a_cluster(provider="aws", region="us-east-1")
    job = a_job(regions=frozenset(regions), providers=frozenset(providers))
    assert Placement().filter(job, cand(job, c), ctx(a_snapshot([c]))) == reason

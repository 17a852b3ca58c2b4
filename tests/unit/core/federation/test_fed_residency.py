"""The ``residency`` filter: the job's data stays in its allowed regions or countries."""

from __future__ import annotations

import pytest
from federation_builders import a_cluster, a_job, a_snapshot, cand, ctx

from hyperion.core.federation.plugins.residency import Residency


@pytest.mark.parametrize("residency, country, ok", [
    ((), "DE", True),
    (("DE",), "DE", True),               # by country
    (("eu-central-1",), "", True),       # by region
    (("FR",), "DE", False),
    (("DE",), "", False),                # country unknown: not proven to be in DE
])
def test_residency(residency: tuple[str, ...], country: str, ok: bool) -> None:
    c = a_cluster(region="eu-central-1", country=country)
    job = a_job(residency=frozenset(residency))
    why = Residency().filter(job, cand(job, c), ctx(a_snapshot([c])))
    assert (why is None) == ok
    if not ok:
        assert "must stay in" in why and "eu-central-1" in why

"""Federation profiles: validation, options, weights resolution; kept apart from scheduling profiles."""

from __future__ import annotations

import pytest
from federation_builders import a_cluster, a_job, a_snapshot

from hyperion.core import PROFILES
from hyperion.core.federation import FED_PROFILES, build_fed_profile, weights_for
from hyperion.core.federation.profiles import HARD_CONSTRAINTS
from hyperion.core.framework import PLUGINS, ProfileError


def test_builtin_profiles() -> None:
    assert set(FED_PROFILES) == {"cheapest", "default", "carbon-spatial", "carbon-temporal"}
    for name, make in FED_PROFILES.items():
        p = make()
        assert p.plugins[: len(HARD_CONSTRAINTS)] == HARD_CONSTRAINTS, name
    assert [q.name for q in FED_PROFILES["cheapest"]().serving("penalty")] == ["cost"]
    assert "carbon" not in FED_PROFILES["default"]().plugins
    assert FED_PROFILES["carbon-spatial"]().option("wait") is False
    assert FED_PROFILES["carbon-temporal"]().option("wait") is True
    assert FED_PROFILES["carbon-temporal"](max_wait_h=6).option("max_wait_h") == 6.0


@pytest.mark.parametrize("plugins, weights, options, match", [
    (("fit", "preemption"), {}, {}, "unknown plugin"),
    (("fit", "cost"), {"carbon": 1.0}, {}, "weight for 'carbon'"),
    (("fit", "cost"), {"fit": 1.0}, {}, "weight for 'fit'"),   # a filter has no weight
    (("fit", "cost"), {"cost": -1.0}, {}, ">= 0"),
    (("fit",), {}, {"victim_order": "x"}, "unknown option"),
    (("fit",), {}, {"max_cost_ratio": 0.5}, "max_cost_ratio must be a number in"),
    (("fit",), {}, {"wait": "maybe"}, "wait must be true or false"),
])
def test_profile_validation(plugins: tuple, weights: dict, options: dict, match: str) -> None:
    with pytest.raises(ProfileError, match=match):
        build_fed_profile("p", plugins, weights, options)


def test_registries_are_apart() -> None:
    FED_PROFILES["default"]()
    PROFILES["default"]()
    assert "carbon" not in PLUGINS and "node-fit" not in __import__(
        "hyperion.core.federation.profiles", fromlist=["FED_PLUGINS"]).FED_PLUGINS


def test_weights_job_then_team_then_snapshot_then_profile() -> None:
    p = FED_PROFILES["carbon-spatial"]()
    snap = a_snapshot([a_cluster()], weights={"latency": 0.1, "egress": 0.2},
                      team_weights={"t": {"egress": 3.0, "carbon": 5.0}})
    job = a_job(team="t", weights={"carbon": -1.0, "cost": 7.0, "unknown": 9.0})
    assert weights_for(job, snap, p) == {"cost": 7.0, "egress": 3.0, "latency": 0.1, "carbon": 0.0}
    assert weights_for(a_job(team="other"), snap, p) == {"cost": 1.0, "egress": 0.2, "latency": 0.1, "carbon": 2.0}
    # a weight for a plugin the profile does not run is ignored
    assert weights_for(job, snap, FED_PROFILES["cheapest"]()) == {"cost": 7.0}

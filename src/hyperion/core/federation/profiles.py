"""Federation plugins, profiles and options: the same shape as ``core.framework``, kept apart.

Why a parallel registry instead of ``core.framework.PLUGINS``: federation plugins serve other
extension points (``filter(job, candidate, ctx)`` and ``penalty(job, candidate, ctx)`` on a
``core.federation.estimate.Candidate``, not a node) and other options; sharing one registry would
let a scheduling profile enable ``carbon`` (and crash in a cycle), or a federation profile
``preemption``. What is shared is reused: ``ProfileError`` and the option validators.

Glossary:
- *plugin*: a class registered with ``@fed_plugin("name")`` in ``core/federation/plugins/``:
  ``filter(job, candidate, ctx) -> str | None``: a hard constraint; a reason when violated;
  ``penalty(job, candidate, ctx) -> float | None``: lower is better; None: unknown (scored worst).
  ``place`` normalises each plugin's penalties min-max over the job's feasible candidates to 0..1
  and scores a candidate ``sum(weight * (1 - normalised))``; the highest score wins.
- *profile*: which plugins run (filters in order, the first failing one gives the reason), the
  score weights, and options.
- *weights*, per key, first found: the job's, its team's (``FedSnapshot.team_weights``), the
  snapshot's defaults (``FedSnapshot.weights``), the profile's. Only the profile's plugins score;
  a negative weight counts as 0.

Options (``FED_OPTIONS``):
- ``wait`` (false): temporal shifting; a job with a deadline may start 1, 2, ... whole hours later
  while ``now + delay + expected run <= deadline``;
- ``max_wait_h`` (24): at most this many hours of delay are considered;
- ``slack_reserve`` (0.25): the share of a job's whole slack (deadline - submission - estimate)
  that waiting never spends: a job decided again when its delay ends (the driver re-decides) keeps
  that much time to wait for capacity, so repeated delays cannot walk it into a miss;
- ``max_cost_ratio`` (inf): a candidate whose expected cost exceeds the cheapest feasible one's by
  more than this factor is not considered (the bound on what carbon or latency may cost);
- ``spot_interruptions_per_h`` (0.05): assumed where a cluster does not say.

Profiles and their default weights (``FED_PROFILES``; every one runs every hard constraint:
fit, placement, residency, max-price, deadline, budget):
- ``cheapest``: cost 1;
- ``default`` (carbon-agnostic): cost 1, egress 0.5, latency 0.5;
- ``carbon-spatial``: cost 1, egress 0.5, latency 0.5, carbon 2, max_cost_ratio 1.25 (a job may
  move to a cleaner region for at most 25% more than the cheapest, never later);
- ``carbon-temporal``: as carbon-spatial, plus ``wait``.
Carbon weighs more than cost in the carbon profiles because min-max normalisation maps any two
candidates to 0 and 1 on each axis: with equal weights a cheaper dirty and a dearer clean region
would tie; the cost bound, not the weight, keeps the price of that preference in check.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from hyperion.core.framework import ProfileError, check_options, flag, number, registrar

FED_PLUGINS: dict[str, type] = {}


fed_plugin = registrar(FED_PLUGINS, "federation plugin")


FED_OPTIONS: dict[str, tuple[Any, Callable[[object], Any]]] = {
    "wait": (False, flag),
    "max_wait_h": (24.0, number(0, 168)),
    "slack_reserve": (0.25, number(0, 1)),
    "max_cost_ratio": (float("inf"), number(1, float("inf"))),
    "spot_interruptions_per_h": (0.05, number(0, 1e6)),
}


@dataclass(frozen=True)
class FedProfile:
    name: str
    plugins: tuple[str, ...]
    weights: Mapping[str, float] = field(default_factory=dict)
    instances: tuple[Any, ...] = ()
    options: Mapping[str, Any] = field(default_factory=dict)  # every option, resolved

    def serving(self, point: str) -> list[Any]:
        return [p for p in self.instances if callable(getattr(p, point, None))]

    def option(self, name: str) -> Any:
        return self.options.get(name, FED_OPTIONS[name][0])


def build_fed_profile(name: str, plugins: list[str] | tuple[str, ...], weights: Mapping[str, float] | None = None,
                      options: Mapping[str, object] | None = None) -> FedProfile:
    from hyperion.core.federation import plugins as _builtin  # noqa: F401  (registers the built-in plugins)

    unknown = [p for p in plugins if p not in FED_PLUGINS]
    if unknown:
        raise ProfileError(f"federation profile {name!r}: unknown plugin(s) {', '.join(unknown)}; "
                           f"known: {', '.join(sorted(FED_PLUGINS))}")
    weights = dict(weights or {})
    for key, w in weights.items():
        if key not in plugins or not callable(getattr(FED_PLUGINS[key], "penalty", None)):
            raise ProfileError(f"federation profile {name!r}: weight for {key!r}, which is not a score plugin it enables")
        if not (w >= 0):
            raise ProfileError(f"federation profile {name!r}: weight of {key!r} must be >= 0, got {w}")
    resolved = {key: default for key, (default, _) in FED_OPTIONS.items()}
    resolved.update(check_options(f"federation profile {name!r}", options, FED_OPTIONS))
    instances = tuple(FED_PLUGINS[p]() for p in plugins)
    for inst in instances:
        inst.opt = resolved
    return FedProfile(name, tuple(plugins), weights, instances, resolved)


HARD_CONSTRAINTS = ("fit", "placement", "residency", "max-price", "deadline", "budget")
_CARBON_WEIGHTS = {"cost": 1.0, "egress": 0.5, "latency": 0.5, "carbon": 2.0}

# name -> (plugins, weights, options the profile sets unless the caller sets them)
FED_PROFILE_PLUGINS: dict[str, tuple[tuple[str, ...], dict[str, float], dict[str, object]]] = {
    "cheapest": ((*HARD_CONSTRAINTS, "cost"), {"cost": 1.0}, {}),
    "default": ((*HARD_CONSTRAINTS, "cost", "egress", "latency"), {"cost": 1.0, "egress": 0.5, "latency": 0.5}, {}),
    "carbon-spatial": ((*HARD_CONSTRAINTS, "cost", "egress", "latency", "carbon"), _CARBON_WEIGHTS,
                       {"max_cost_ratio": 1.25}),
    "carbon-temporal": ((*HARD_CONSTRAINTS, "cost", "egress", "latency", "carbon"), _CARBON_WEIGHTS,
                        {"max_cost_ratio": 1.25, "wait": True}),
}


def _profile(name: str) -> Callable[..., FedProfile]:
    plugins, weights, preset = FED_PROFILE_PLUGINS[name]
    return lambda **options: build_fed_profile(name, plugins, weights, {**preset, **options})


FED_PROFILES: dict[str, Callable[..., FedProfile]] = {name: _profile(name) for name in FED_PROFILE_PLUGINS}

"""The scheduling framework: plugins, profiles and their options.

Glossary:
- *plugin*: a class registered with ``@plugin("name")`` in ``core/plugins/``. It serves the
  extension points whose methods it defines (``cycle`` is the running ``core.cycle.Cycle``):
  ``sort_key(job, snapshot)`` order inside a queue, lower first (the framework appends
  submission time and id);
  ``queue_key(queue, head, cycle)`` which queue goes next (lower first; re-asked after each job);
  ``admit(job, replica, gpu_type, cycle) -> str | None`` a reason when one more replica on nodes
  of ``gpu_type`` is not allowed (quota);
  ``filter(job, node, snapshot) -> str | None`` a reason when the node cannot host one replica;
  ``score(job, node, snapshot) -> float`` higher is better;
  ``preempt(job, cycle) -> Preemption | None`` victims whose eviction lets the job fit;
  ``reserve(job, cycle) -> Hold | None`` resources promised to a job that cannot start now;
  ``gate(job, cycle) -> str | None`` a reason the job is not considered this cycle at all (a
  budget; evictions would not help);
  ``wake_at(cycle) -> float | None`` when the plan may change with nothing else happening
  (``Plan.wake_at``: a driver that runs cycles only on changes runs one then).
  Each instance has ``opt``: the profile's options, every one resolved to a value.
- *profile*: which plugins run, their score weights and the options below; validated when built.
- *option*: a named choice where schedulers disagree (see docs/adr/0003); each has a default.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from hyperion.model import Priority

PLUGINS: dict[str, type] = {}


def registrar(registry: dict[str, type], what: str = "plugin") -> Callable[[str], Callable[[type], type]]:
    """A decorator factory registering classes by name in ``registry`` (``plugin`` here; the
    federation's plugins have their own registry, ``core.federation.profiles``)."""
    def decorator(name: str) -> Callable[[type], type]:
        def register(cls: type) -> type:
            if name in registry:
                raise ValueError(f"{what} {name!r} registered twice")
            cls.name = name
            registry[name] = cls
            return cls
        return register
    return decorator


plugin = registrar(PLUGINS)


class ProfileError(ValueError):
    """A profile names an unknown plugin, an invalid weight or an invalid option."""


def choice(*values: str) -> Callable[[object], str]:
    def check(v: object) -> str:
        if v not in values:
            raise ValueError(f"one of {', '.join(values)}")
        return str(v)
    return check


def flag(v: object) -> bool:
    if isinstance(v, bool):
        return v
    if isinstance(v, str) and v.lower() in ("true", "false", "yes", "no", "1", "0"):
        return v.lower() in ("true", "yes", "1")
    raise ValueError("true or false")


def number(lo: float, hi: float, open_lo: bool = False) -> Callable[[object], float]:
    def check(v: object) -> float:
        try:
            x = float(v)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise ValueError("a number") from None
        if not (lo < x if open_lo else lo <= x) or not x <= hi:
            raise ValueError(f"a number in {'(' if open_lo else '['}{lo:g}, {hi:g}]")
        return x
    return check


# name -> (default, validator). Semantics and reasons: docs/adr/0003-queues-fair-share-preemption.md
# options naming the lowest priority class a rule applies to ("never": to none)
CLASS_FLOOR: dict[str, Priority | None] = {"ultra-low-latency": Priority.ULTRA_LOW_LATENCY,
                                           "latency-critical": Priority.LATENCY_CRITICAL, "never": None}

OPTIONS: dict[str, tuple[Any, Callable[[object], Any]]] = {
    "victim_order": ("borrowers-first", choice("borrowers-first", "cheapest-first")),
    "reclaim_priority": ("lower-or-equal", choice("lower-or-equal", "lower", "any")),
    "share_basis": ("usage", choice("usage", "borrowed")),
    "share_order": ("current", choice("current", "after-admission")),
    "lend_while_pending": (True, flag),
    "cross_queue_class_preemption": ("ultra-low-latency", choice(*CLASS_FLOOR)),
    "half_life_s": (86400.0, number(0, 10 * 365 * 86400.0, open_lo=True)),
    "history_weight": (0.5, number(0, 1)),
    # who may evict whom: "class" (the tiers of core/plugins/preemption.py) or, in addition,
    # "attained-service" (Tiresias: a job evicts jobs of its class in a higher service level)
    "preempt_by": ("class", choice("class", "attained-service")),
    # least-attained-service levels: boundaries at T, 10 T, 100 T, ... GPU-hours, ``las_levels`` levels
    "las_threshold_gpu_h": (1.0, number(0, 1e9, open_lo=True)),
    "las_levels": (2.0, number(1, 8)),
    # the fast path: a job of this class or higher that needs evictions is placed on its victims'
    # resources in the same cycle (they are frozen, then checkpoint and stop in the background);
    # lower classes wait for their victims to stop (they checkpoint first)
    "handover_class": ("ultra-low-latency", choice(*CLASS_FLOOR)),
}


@dataclass(frozen=True)
class Profile:
    """``incremental``: a driver may offer a cycle only the jobs that arrived since the last one,
    with the last plan's ``holds``, while free capacity and queues are unchanged (the jobs it left
    pending cannot start on unchanged capacity, so the plan is the same as for all of them)."""

    name: str
    plugins: tuple[str, ...]
    weights: dict[str, float] = field(default_factory=dict)
    instances: tuple[Any, ...] = ()
    incremental: bool = False
    options: Mapping[str, Any] = field(default_factory=dict)

    def serving(self, point: str) -> list[Any]:
        return [p for p in self.instances if callable(getattr(p, point, None))]

    def option(self, name: str) -> Any:
        return self.options.get(name, OPTIONS[name][0])


def check_options(what: str, options: Mapping[str, object] | None,
                  table: Mapping[str, tuple[Any, Callable[[object], Any]]]) -> dict[str, Any]:
    """The given options, each validated by its entry of ``table`` (name -> (default, validator));
    ``ProfileError`` names ``what`` (e.g. "profile 'default'"), the option and what it must be."""
    checked: dict[str, Any] = {}
    for key, value in (options or {}).items():
        if key not in table:
            raise ProfileError(f"{what}: unknown option {key!r}; known: {', '.join(sorted(table))}")
        try:
            checked[key] = table[key][1](value)
        except ValueError as e:
            raise ProfileError(f"{what}: option {key} must be {e}, got {value!r}") from None
    return checked


def build_profile(name: str, plugins: list[str] | tuple[str, ...], weights: dict[str, float] | None = None,
                  incremental: bool = False, options: Mapping[str, object] | None = None) -> Profile:
    weights = dict(weights or {})
    from hyperion.core import plugins as _builtin  # noqa: F401  (registers the built-in plugins)

    unknown = [p for p in plugins if p not in PLUGINS]
    if unknown:
        raise ProfileError(f"profile {name!r}: unknown plugin(s) {', '.join(unknown)}; known: {', '.join(sorted(PLUGINS))}")
    for key, w in weights.items():
        if key not in plugins:
            raise ProfileError(f"profile {name!r}: weight for {key!r}, which the profile does not enable")
        if not (w >= 0):
            raise ProfileError(f"profile {name!r}: weight of {key!r} must be >= 0, got {w}")
    checked = check_options(f"profile {name!r}", options, OPTIONS)
    if checked.get("lend_while_pending") is False:
        incremental = False  # lending then depends on every pending job, not only new arrivals
    resolved = {key: checked.get(key, default) for key, (default, _) in OPTIONS.items()}
    instances = tuple(PLUGINS[p]() for p in plugins)
    for inst in instances:
        inst.opt = resolved  # the profile's options, for extension points not given the cycle
    return Profile(name, tuple(plugins), weights, instances, incremental, checked)


DEFAULT_PLUGINS = ("priority-fifo", "fair-share", "budget", "federation", "quota", "node-fit", "preemption", "backfill")

# name -> (plugins, options the profile sets unless the caller sets them)
PROFILE_PLUGINS: dict[str, tuple[tuple[str, ...], dict[str, object]]] = {
    "default": (DEFAULT_PLUGINS, {}),
    # the baselines a simulation compares against (docs/simulator.md)
    "first-fit": (("priority-fifo", "budget", "federation", "node-fit"), {}),
    # (each honours queue quotas and budgets, so a comparison on a cluster with quotas compares orderings)
    "fifo": (("priority-fifo", "budget", "federation", "quota", "node-fit"), {}),
    "sjf": (("priority-fifo", "shortest-first", "budget", "federation", "quota", "node-fit"), {}),
    "las": (("priority-fifo", "least-attained-service", "budget", "federation", "quota", "node-fit", "preemption"),
            {"preempt_by": "attained-service"}),
    "drf": (("priority-fifo", "fair-share", "budget", "federation", "quota", "node-fit"), {"history_weight": 0.0}),
}


def _profile(name: str) -> Callable[..., Profile]:
    plugins, preset = PROFILE_PLUGINS[name]
    return lambda **options: build_profile(name, plugins, incremental=True, options={**preset, **options})


PROFILES: dict[str, Callable[..., Profile]] = {name: _profile(name) for name in PROFILE_PLUGINS}

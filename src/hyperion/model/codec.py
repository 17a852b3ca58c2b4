"""Model objects <-> plain JSON-able dicts: what the store persists and the API returns.

Pure: no I/O; callers serialise the dicts (the store uses orjson). The format is stable because
stored records outlive the code that wrote them:

- keys are the dataclass field names; renaming a field needs an alias here, not a new format;
- enums are their string values, except ``Priority``, which is its label (``"latency-critical"``);
- tuples of (key, value) pairs (``env``, ``labels``, ``rank_exits``) are objects; their keys are
  unique by construction, and encoding refuses a duplicate rather than drop one silently;
- ``Resources`` is ``{"gpus": .., "cpus_milli": .., "memory": ..}``;
- a queue's amounts (``nominal``, ``borrowing_limit``, ``lending_limit``) are objects keyed by
  resource key (``{"gpus/A100": 8, "cpus": 64000}``), read back as pairs sorted by key;
- a field that holds its default of ``None`` or ``()`` is left out, so records stay compact; every
  other field is written, so changing a default later never changes what an old record meant;
- decoding ignores keys it does not know (written by a newer version) and fills the dataclass
  default for keys that are missing (written by an older one). A record that lacks a field with
  no default, or holds a value of the wrong kind, raises ``ValueError``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from hyperion.model.autoscale import Instance, InstanceState, NodePoolSpec
from hyperion.model.federation import FedPrefs, Routing
from hyperion.model.job import Framework, Job, JobSpec, Phase, Placement, Priority
from hyperion.model.node import Gpu, GpuMetrics, Node, NodeMetrics, NodeState
from hyperion.model.queue import QueueSpec
from hyperion.model.resources import Resources
from hyperion.model.team import Team

__all__ = [
    "instance_from_dict", "instance_to_dict", "job_from_dict", "job_to_dict", "metrics_from_dict", "metrics_to_dict",
    "node_from_dict", "node_to_dict", "nodepool_from_dict", "nodepool_to_dict", "queue_from_dict", "queue_to_dict",
    "resources_from_dict", "resources_to_dict", "spec_from_dict", "spec_to_dict", "team_from_dict", "team_to_dict",
]

T = TypeVar("T")
_Convert = Callable[[Any], Any]


# ---- generic field walking ------------------------------------------------------------------
def _encode(obj: Any, **convert: _Convert) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if (value is None or value == ()) and f.default == value:
            continue
        out[f.name] = convert[f.name](value) if f.name in convert and value is not None else value
    return out


def _decode(cls: type[T], d: object, **convert: _Convert) -> T:
    if not isinstance(d, Mapping):
        raise ValueError(f"a {cls.__name__} record must be an object, got {type(d).__name__}")  # noqa: TRY004
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        if f.name not in d:
            continue
        value = d[f.name]
        try:
            kwargs[f.name] = convert[f.name](value) if f.name in convert and value is not None else value
        except (ValueError, TypeError, KeyError, AttributeError) as err:
            raise ValueError(f"{cls.__name__}.{f.name}: {err}") from None
    try:
        return cls(**kwargs)
    except TypeError as err:  # a field without a default is missing
        raise ValueError(f"a {cls.__name__} record is incomplete: {err}") from None


def _pairs_to_dict(pairs: tuple[tuple[Any, Any], ...]) -> dict[str, Any]:
    out = {str(k): v for k, v in pairs}
    if len(out) != len(pairs):
        raise ValueError(f"duplicate keys in {pairs!r}: a record cannot hold them")
    return out


def _str_pairs(d: Mapping[str, Any]) -> tuple[tuple[str, Any], ...]:
    return tuple((str(k), v) for k, v in d.items())


def _list(t: tuple[Any, ...]) -> list[Any]:
    return list(t)


def _priority(v: object) -> Priority:
    if isinstance(v, int):
        return Priority(v)
    try:
        return Priority.from_label(str(v))
    except KeyError:
        raise ValueError(f"unknown priority {v!r}") from None


# ---- resources ------------------------------------------------------------------------------
def resources_to_dict(r: Resources) -> dict[str, int]:
    return {"gpus": r.gpus, "cpus_milli": r.cpus_milli, "memory": r.memory}


def resources_from_dict(d: object) -> Resources:
    return _decode(Resources, d)


# ---- jobs -----------------------------------------------------------------------------------
def _weights(d: Mapping[str, Any]) -> tuple[tuple[str, float], ...]:
    return tuple(sorted((str(k), float(v)) for k, v in d.items()))


def _prefs_to_dict(p: FedPrefs) -> dict[str, Any]:
    return _encode(p, weights=_pairs_to_dict, regions=_list, providers=_list, residency=_list)


def _prefs_from_dict(d: object) -> FedPrefs:
    return _decode(FedPrefs, d, weights=_weights, regions=tuple, providers=tuple, residency=tuple)


def _routing_to_dict(r: Routing) -> dict[str, Any]:
    return _encode(r, rejected=_pairs_to_dict)


def _routing_from_dict(d: object) -> Routing:
    return _decode(Routing, d, rejected=lambda m: tuple(sorted((str(k), str(v)) for k, v in m.items())))


def spec_to_dict(spec: JobSpec) -> dict[str, Any]:
    return _encode(spec, framework=lambda f: f.value, priority=lambda p: p.label,
                   resources=resources_to_dict, command=_list, env=_pairs_to_dict, labels=_pairs_to_dict,
                   federation=_prefs_to_dict)


def spec_from_dict(d: object) -> JobSpec:
    return _decode(JobSpec, d, framework=Framework, priority=_priority, resources=resources_from_dict,
                   command=tuple, env=_str_pairs, labels=_str_pairs, federation=_prefs_from_dict)


def _placement_to_dict(p: Placement) -> dict[str, Any]:
    return _encode(p, gpu_indices=_list)


def _placement_from_dict(d: object) -> Placement:
    return _decode(Placement, d, gpu_indices=tuple)


def job_to_dict(job: Job) -> dict[str, Any]:
    return _encode(job, spec=spec_to_dict, phase=lambda p: p.value,
                   placements=lambda ps: [_placement_to_dict(p) for p in ps], rank_exits=_pairs_to_dict,
                   routed=_routing_to_dict)


def job_from_dict(d: object) -> Job:
    return _decode(Job, d, spec=spec_from_dict, phase=Phase,
                   placements=lambda ps: tuple(_placement_from_dict(p) for p in ps),
                   rank_exits=lambda m: tuple((int(k), v) for k, v in m.items()), routed=_routing_from_dict)


# ---- nodes, teams and queues ----------------------------------------------------------------
def node_to_dict(node: Node) -> dict[str, Any]:
    return _encode(node, gpus=lambda gs: [_encode(g) for g in gs], capacity=resources_to_dict,
                   labels=_pairs_to_dict, state=lambda s: s.value)


def node_from_dict(d: object) -> Node:
    return _decode(Node, d, gpus=lambda gs: tuple(_decode(Gpu, g) for g in gs), capacity=resources_from_dict,
                   labels=_str_pairs, state=NodeState)


def team_to_dict(team: Team) -> dict[str, Any]:
    return _encode(team, placement_weights=_pairs_to_dict)


def team_from_dict(d: object) -> Team:
    return _decode(Team, d, placement_weights=_weights)


def _amounts(d: Mapping[str, Any]) -> tuple[tuple[str, int], ...]:
    return tuple(sorted((str(k), v) for k, v in d.items()))


def queue_to_dict(q: QueueSpec) -> dict[str, Any]:
    return _encode(q, nominal=_pairs_to_dict, borrowing_limit=_pairs_to_dict, lending_limit=_pairs_to_dict)


def queue_from_dict(d: object) -> QueueSpec:
    return _decode(QueueSpec, d, nominal=_amounts, borrowing_limit=_amounts, lending_limit=_amounts)


# ---- telemetry ------------------------------------------------------------------------------
def metrics_to_dict(m: NodeMetrics) -> dict[str, Any]:
    return _encode(m, gpus=lambda gs: [_encode(g) for g in gs])


def metrics_from_dict(d: object) -> NodeMetrics:
    return _decode(NodeMetrics, d, gpus=lambda gs: tuple(_decode(GpuMetrics, g) for g in gs))


# ---- the autoscaler's node pools and instances ------------------------------------------------
def nodepool_to_dict(pool: NodePoolSpec) -> dict[str, Any]:
    return _encode(pool, instance_types=_list, gpu_types=_list, capacity_types=_list)


def nodepool_from_dict(d: object) -> NodePoolSpec:
    return _decode(NodePoolSpec, d, instance_types=tuple, gpu_types=tuple, capacity_types=tuple)


def instance_to_dict(i: Instance) -> dict[str, Any]:
    return _encode(i, state=lambda s: s.value)


def instance_from_dict(d: object) -> Instance:
    return _decode(Instance, d, state=InstanceState)

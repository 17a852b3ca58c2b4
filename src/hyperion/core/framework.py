"""The scheduling framework: ``schedule(snapshot, profile) -> Plan``.

Glossary:
- *plugin*: a class registered with ``@plugin("name")`` in ``core/plugins/``. It serves the
  extension points whose methods it defines:
  ``sort_key(job, snapshot)`` (queue order, lower goes first),
  ``filter(job, node, snapshot) -> str | None`` (a reason when the node cannot host one replica),
  ``score(job, node, snapshot) -> float`` (higher is better).
- *profile*: which plugins run and with which score weights; validated when built.

The cycle, in phases:
1. order the pending jobs (queue-sort plugins);
2. for each job, place its replicas one by one on the best node that passes every filter,
   on a working copy of free capacity;
3. a gang (``min_available`` ranks) is all-or-nothing: if it does not fit, its tentative
   placements are rolled back and the job gets a typed verdict with the reasons per node.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hyperion.model import Assign, JobView, NodeView, Placement, Plan, Resources, Snapshot, Verdict, VerdictCode

PLUGINS: dict[str, type] = {}


def plugin(name: str) -> Callable[[type], type]:
    def register(cls: type) -> type:
        if name in PLUGINS:
            raise ValueError(f"plugin {name!r} registered twice")
        cls.name = name
        PLUGINS[name] = cls
        return cls
    return register


class ProfileError(ValueError):
    """A profile names an unknown plugin or an invalid weight."""


@dataclass(frozen=True)
class Profile:
    """``incremental``: the profile is greedy with no reservations or preemption, so a job that did
    not fit cannot fit while free capacity is unchanged; a driver may then offer only the jobs that
    arrived since the last cycle (the plan is the same as for all pending jobs)."""

    name: str
    plugins: tuple[str, ...]
    weights: dict[str, float] = field(default_factory=dict)
    instances: tuple[Any, ...] = ()
    incremental: bool = False

    def serving(self, point: str) -> list[Any]:
        return [p for p in self.instances if callable(getattr(p, point, None))]


def build_profile(name: str, plugins: list[str] | tuple[str, ...], weights: dict[str, float] | None = None,
                  incremental: bool = False) -> Profile:
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
    return Profile(name, tuple(plugins), weights, tuple(PLUGINS[p]() for p in plugins), incremental)


PROFILES: dict[str, Callable[[], Profile]] = {
    "first-fit": lambda: build_profile("first-fit", ["priority-fifo", "node-fit"], incremental=True),
}


class _Free:
    """Mutable working copy of one node's free capacity during a cycle; its view is rebuilt only
    after it changes."""

    __slots__ = ("node", "free", "gpus", "_view")

    def __init__(self, node: NodeView) -> None:
        self.node = node
        self.free = node.free
        self.gpus = list(node.free_gpus)
        self._view: NodeView | None = node

    def take(self, r: Resources) -> tuple[int, ...]:
        gpus = tuple(self.gpus[: r.gpus])
        del self.gpus[: r.gpus]
        self.free = self.free - r
        self._view = None
        return gpus

    def give(self, r: Resources, gpus: tuple[int, ...]) -> None:
        self.gpus = sorted(self.gpus + list(gpus))
        self.free = self.free + r
        self._view = None

    def view(self) -> NodeView:
        if self._view is None:
            v = self.node
            self._view = NodeView(v.id, v.gpu_type, v.capacity, self.free, tuple(self.gpus), v.schedulable, v.labels)
        return self._view


def _max_free(work: list[_Free]) -> Resources:
    """Component-wise maximum of free capacity over schedulable nodes: a replica larger than
    this in any resource fits nowhere."""
    g = c = m = 0
    for w in work:
        if w.node.schedulable:
            f = w.free
            g, c, m = max(g, f.gpus), max(c, f.cpus_milli), max(m, f.memory)
    return Resources(g, c, m)


def schedule(snapshot: Snapshot, profile: Profile) -> Plan:
    sorters = profile.serving("sort_key")
    filters = profile.serving("filter")
    scorers = profile.serving("score")

    def order(job: JobView) -> tuple:
        return tuple(s.sort_key(job, snapshot) for s in sorters) + (job.id,)

    work = [_Free(n) for n in snapshot.nodes]
    bound = _max_free(work)
    hostable: dict[tuple, bool] = {}
    unschedulable = sum(1 for w in work if not w.node.schedulable)
    schedulable = len(work) - unschedulable
    assignments: list[Assign] = []
    verdicts: dict[str, Verdict] = {}

    for job in sorted(snapshot.pending, key=order):
        short = job.per_replica.shortfall(bound)
        if short:  # no node has room for one replica: skip the node scan
            text = (f"{schedulable} node(s): insufficient {', '.join(short)}",) if schedulable else ()
            if unschedulable:
                text += (f"{unschedulable} node(s): node not ready or cordoned",)
            verdicts[job.id] = _verdict(job, snapshot, hostable, text, 0)
            continue
        placed: list[tuple[int, _Free, tuple[int, ...]]] = []
        reasons: Counter[str] = Counter()
        for rank in range(job.replicas):
            best, best_score = None, None
            for w in work:
                if not job.per_replica.fits_in(w.free):
                    if rank == 0:
                        reasons["insufficient " + ", ".join(job.per_replica.shortfall(w.free))] += 1
                    continue
                view = w.view()
                why = next((r for f in filters if (r := f.filter(job, view, snapshot))), None)
                if why:
                    if rank == 0:
                        reasons[why] += 1
                    continue
                score = sum(profile.weights.get(s.name, 1.0) * s.score(job, view, snapshot) for s in scorers)
                if best is None or score > best_score:
                    best, best_score = w, score
                    if not scorers:
                        break  # first fit
            if best is None:
                break
            placed.append((rank, best, best.take(job.per_replica)))
        if len(placed) >= job.replicas:
            assignments.append(Assign(job.id, tuple(Placement(r, w.node.id, g) for r, w, g in placed)))
            bound = _max_free(work)
            continue
        for _, w, gpus in placed:  # roll back the partial gang
            w.give(job.per_replica, gpus)
        text = tuple(f"{count} node(s): {why}" for why, count in reasons.most_common())
        verdicts[job.id] = _verdict(job, snapshot, hostable, text, len(placed))
    return Plan(tuple(assignments), verdicts)


def _verdict(job: JobView, snapshot: Snapshot, hostable: dict[tuple, bool], reasons: tuple[str, ...], placed: int) -> Verdict:
    key = (job.per_replica, job.gpu_type)
    fits_empty = hostable.get(key)
    if fits_empty is None:
        fits_empty = hostable[key] = any(
            job.per_replica.fits_in(n.capacity) and (not job.gpu_type or n.gpu_type == job.gpu_type) for n in snapshot.nodes)
    text = list(reasons)
    if job.replicas > 1:
        text.append(f"gang of {job.replicas}: only {placed} replica(s) fit now")
    if not snapshot.nodes:
        text.append("no nodes registered")
    elif not fits_empty:
        text.append("no node is large enough for one replica even when empty")
    return Verdict(VerdictCode.UNSCHEDULABLE if fits_empty else VerdictCode.UNRESOLVABLE, tuple(text), "node-fit")

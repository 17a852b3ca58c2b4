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

from hyperion.core.capacity import Capacity, Slot
from hyperion.model import Assign, JobView, Placement, Plan, Snapshot, Verdict, VerdictCode

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


# At most this many feasible nodes are scored per replica (kube-scheduler's
# percentageOfNodesToScore idea): scoring every node of a 10,000-node cluster for every job
# would cost more than the placement is worth. Candidates come best fit first.
SCORE_SAMPLE = 64


def queue_order(snapshot: Snapshot, profile: Profile) -> list[JobView]:
    """Pending jobs in the order the profile considers them (queue-sort plugins, then id)."""
    sorters = profile.serving("sort_key")
    return sorted(snapshot.pending, key=lambda job: tuple(s.sort_key(job, snapshot) for s in sorters) + (job.id,))


def schedule(snapshot: Snapshot, profile: Profile) -> Plan:
    filters = profile.serving("filter")
    scorers = profile.serving("score")

    cap = Capacity(snapshot)
    hostable: dict[tuple, bool] = {}
    no_room: dict[tuple, Verdict] = {}  # (shape, capacity epoch) -> verdict of a job that fits nowhere
    assignments: list[Assign] = []
    verdicts: dict[str, Verdict] = {}

    for job in queue_order(snapshot, profile):
        r = job.per_replica
        shape = (r, job.gpu_type, job.replicas, cap.epoch(job.gpu_type))
        if shape in no_room:
            verdicts[job.id] = no_room[shape]
            continue
        short = r.shortfall(cap.bound(job.gpu_type))
        if short:  # no node has room for one replica: skip the node scan
            same = cap.count(job.gpu_type)
            text = (f"{same} node(s): insufficient {', '.join(short)}",) if same else ()
            verdicts[job.id] = no_room[shape] = _verdict(job, snapshot, hostable, text + _other_types(cap, job) + _cordoned(cap), 0)
            continue
        placed: list[tuple[int, Slot, tuple[int, ...]]] = []
        reasons: Counter[str] = Counter()
        for rank in range(job.replicas):
            best, best_score, feasible = None, None, 0
            for slot in cap.candidates(r.gpus, job.gpu_type):
                if not r.fits_in(slot.free):
                    if rank == 0:
                        reasons["insufficient " + ", ".join(r.shortfall(slot.free))] += 1
                    continue
                view = slot.view()
                why = next((w for f in filters if (w := f.filter(job, view, snapshot))), None)
                if why:
                    if rank == 0:
                        reasons[why] += 1
                    continue
                if not scorers:
                    best = slot
                    break
                score = sum(profile.weights.get(sc.name, 1.0) * sc.score(job, view, snapshot) for sc in scorers)
                if best is None or score > best_score:
                    best, best_score = slot, score
                feasible += 1
                if feasible >= SCORE_SAMPLE:
                    break
            if best is None:
                break
            placed.append((rank, best, cap.take(best, r)))
        if len(placed) >= job.replicas:
            assignments.append(Assign(job.id, tuple(Placement(rk, sl.node.id, g) for rk, sl, g in placed)))
            continue
        if not placed:
            cap.tighten(job.gpu_type)  # the bound let this job through but no node had room: it was loose
        for _, slot, gpus in placed:  # roll back the partial gang
            cap.give(slot, r, gpus)
        if rank == 0 or not placed:
            few = cap.too_few_gpus(r.gpus, job.gpu_type)
            if few:
                reasons["insufficient gpus"] += few
        text = tuple(f"{count} node(s): {why}" for why, count in reasons.most_common()) + _other_types(cap, job) + _cordoned(cap)
        verdict = _verdict(job, snapshot, hostable, text, len(placed))
        verdicts[job.id] = verdict
        if not placed and not _from_plugins(reasons):
            no_room[(r, job.gpu_type, job.replicas, cap.epoch(job.gpu_type))] = verdict
    return Plan(tuple(assignments), verdicts)


def _from_plugins(reasons: Counter[str]) -> bool:
    """Whether any reason came from a plugin filter. The framework's own reasons depend only on a
    job's shape and the capacity left; a plugin's may depend on more, so then the verdict is not
    reused for another job of the same shape."""
    return any(not (why.startswith("insufficient") or why.startswith("gpu type ")) for why in reasons)


def _other_types(cap: Capacity, job: JobView) -> tuple[str, ...]:
    if not job.gpu_type:
        return ()
    return tuple(f"{n} node(s): gpu type {t or 'none'} is not {job.gpu_type}" for t, n in cap.other_types(job.gpu_type).items())


def _cordoned(cap: Capacity) -> tuple[str, ...]:
    return (f"{cap.unschedulable} node(s): node not ready or cordoned",) if cap.unschedulable else ()


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

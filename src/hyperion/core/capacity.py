"""Working capacity during one scheduling cycle, indexed for placement.

Glossary:
- *slot*: the mutable working copy of one node's free capacity (``Slot``); placing a replica
  takes from it, rolling back a partial gang gives back.
- *bucket*: the slots of one GPU type with exactly ``f`` free GPUs. Candidates for a replica that
  needs ``g`` GPUs are read from buckets ``f >= g`` in increasing ``f`` (best fit: the fullest node
  that still fits goes first, which keeps whole nodes free for large gangs), each bucket in
  node order, so a placement costs a few dictionary steps instead of a scan of every node.

Unschedulable nodes are never indexed. Everything here is deterministic for a snapshot.
"""

from __future__ import annotations

from collections.abc import Iterator

from hyperion.model import NodeView, Resources


class Slot:
    __slots__ = ("index", "node", "free", "gpus", "_view")

    def __init__(self, index: int, node: NodeView) -> None:
        self.index = index
        self.node = node
        self.free = node.free
        self.gpus = list(node.free_gpus)
        self._view: NodeView | None = node

    def view(self) -> NodeView:
        """The slot as a NodeView for plugins; rebuilt only after the slot changed."""
        if self._view is None:
            v = self.node
            self._view = NodeView(v.id, v.gpu_type, v.capacity, self.free, tuple(self.gpus), v.schedulable, v.labels)
        return self._view


class Capacity:
    def __init__(self, nodes: tuple[NodeView, ...]) -> None:
        self.slots = [Slot(i, n) for i, n in enumerate(nodes)]
        self.unschedulable = sum(1 for n in nodes if not n.schedulable)
        self.max_gpus = max((len(s.gpus) for s in self.slots if s.node.schedulable), default=0)
        self.types: list[str] = sorted({s.node.gpu_type for s in self.slots if s.node.schedulable})
        # gpu type -> [free GPU count -> {slot index: None}] (a dict is an insertion-ordered set)
        self.buckets: dict[str, list[dict[int, None]]] = {t: [{} for _ in range(self.max_gpus + 1)] for t in self.types}
        self.type_count: dict[str, int] = dict.fromkeys(self.types, 0)
        for i, s in enumerate(self.slots):
            if s.node.schedulable:
                self.buckets[s.node.gpu_type][len(s.gpus)][i] = None
                self.type_count[s.node.gpu_type] += 1
        self.by_type: dict[str, list[Slot]] = {t: [] for t in self.types}
        for s in self.slots:
            if s.node.schedulable:
                self.by_type[s.node.gpu_type].append(s)
        # bumped by every take/give on a node of that type: conclusions about capacity expire
        self.epochs: dict[str, int] = dict.fromkeys(self.types, 0)
        self._bounds: dict[str, Resources] = {}
        self._tight_at: dict[str, int] = {}

    @property
    def schedulable(self) -> int:
        return len(self.slots) - self.unschedulable

    def epoch(self, gpu_type: str | None) -> tuple:
        """A token that changes whenever capacity a job of ``gpu_type`` could use changes."""
        if gpu_type:
            return (gpu_type, self.epochs.get(gpu_type, 0))
        return tuple(self.epochs.values())

    def bound(self, gpu_type: str | None) -> Resources:
        """An upper bound of free capacity on any schedulable node of ``gpu_type`` (any type if
        None), per resource: a replica larger than this in any resource fits nowhere. Taking never
        invalidates it; giving raises it; a caller that found it loose calls ``tighten``."""
        g = c = m = 0
        for t in [gpu_type] if gpu_type else self.types:
            if t not in self.by_type:
                continue
            if t not in self._bounds:
                self.tighten(t)
            b = self._bounds[t]
            g, c, m = max(g, b.gpus), max(c, b.cpus_milli), max(m, b.memory)
        return Resources(g, c, m)

    def tighten(self, gpu_type: str | None) -> None:
        """Recompute the bound exactly: a scan of the type's nodes, at most once per change to them."""
        for t in [gpu_type] if gpu_type else self.types:
            if t not in self.by_type or self._tight_at.get(t) == self.epochs[t]:
                continue
            g = c = m = 0
            for s in self.by_type[t]:
                f = s.free
                g, c, m = max(g, f.gpus), max(c, f.cpus_milli), max(m, f.memory)
            self._bounds[t] = Resources(g, c, m)
            self._tight_at[t] = self.epochs[t]

    def candidates(self, gpus: int, gpu_type: str | None) -> Iterator[Slot]:
        """Schedulable slots with at least ``gpus`` free GPUs of ``gpu_type`` (any type if None),
        best fit first. Do not take or give while iterating."""
        types = [gpu_type] if gpu_type else self.types
        for f in range(gpus, self.max_gpus + 1):
            for t in types:
                buckets = self.buckets.get(t)
                if buckets:
                    for i in buckets[f]:
                        yield self.slots[i]

    def too_few_gpus(self, gpus: int, gpu_type: str | None) -> int:
        """How many schedulable nodes of an acceptable type have fewer than ``gpus`` free GPUs."""
        types = [gpu_type] if gpu_type else self.types
        return sum(len(self.buckets[t][f]) for t in types if t in self.buckets for f in range(min(gpus, self.max_gpus + 1)))

    def other_types(self, gpu_type: str) -> dict[str, int]:
        return {t: n for t, n in self.type_count.items() if t != gpu_type and n}

    def take(self, slot: Slot, r: Resources) -> tuple[int, ...]:
        gpus = tuple(slot.gpus[: r.gpus])
        self._unindex(slot)
        del slot.gpus[: r.gpus]
        slot.free = slot.free - r
        self._reindex(slot)
        return gpus

    def give(self, slot: Slot, r: Resources, gpus: tuple[int, ...]) -> None:
        self._unindex(slot)
        slot.gpus = sorted(slot.gpus + list(gpus))
        slot.free = slot.free + r
        self._reindex(slot)
        t = slot.node.gpu_type
        if slot.node.schedulable and t in self._bounds:
            b, f = self._bounds[t], slot.free
            self._bounds[t] = Resources(max(b.gpus, f.gpus), max(b.cpus_milli, f.cpus_milli), max(b.memory, f.memory))

    def _unindex(self, slot: Slot) -> None:
        if slot.node.schedulable:
            del self.buckets[slot.node.gpu_type][len(slot.gpus)][slot.index]

    def _reindex(self, slot: Slot) -> None:
        slot._view = None
        if slot.node.schedulable:
            self.epochs[slot.node.gpu_type] += 1
            self.buckets[slot.node.gpu_type][len(slot.gpus)][slot.index] = None

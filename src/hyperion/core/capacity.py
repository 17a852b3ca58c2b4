"""Working capacity during one scheduling cycle: a copy-on-write overlay over the snapshot's
``NodeIndex``.

Glossary:
- *slot*: the mutable working copy of one node's free capacity (``Slot``), made the first time a
  cycle looks at that node; placing a replica takes from it, rolling back a partial gang gives back.
- *bucket*: the positions of the schedulable nodes of one GPU type with exactly ``f`` free GPUs.
  Candidates for a replica that needs ``g`` GPUs are read from buckets ``f >= g`` in increasing
  ``f`` (best fit: the fullest node that still fits goes first, which keeps whole nodes free for
  large gangs), each bucket in node order. A bucket is copied only when the cycle changes it, so a
  cycle costs what it places, not the size of the cluster.

Everything here is deterministic for a snapshot.
"""

from __future__ import annotations

from collections.abc import Iterator

from hyperion.model import NodeView, Resources, Snapshot
from hyperion.model.nodeindex import NodeIndex


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
    def __init__(self, snapshot: Snapshot) -> None:
        index = snapshot.node_index
        if not isinstance(index, NodeIndex) or index.size != len(snapshot.nodes):
            index = NodeIndex.build(snapshot.nodes)
        self.nodes = snapshot.nodes
        self.unschedulable = index.unschedulable
        self.max_gpus = index.max_gpus
        self.totals = index.totals
        self.types: list[str] = sorted(index.buckets)
        self._buckets = {t: list(b) for t, b in index.buckets.items()}
        self._copied: set[tuple[str, int]] = set()
        self._bounds = dict(index.bounds)
        self._tight_at: dict[str, int] = {}
        self.slots: dict[int, Slot] = {}
        # bumped by every take/give on a node of that type: conclusions about capacity expire
        self.epochs: dict[str, int] = dict.fromkeys(self.types, 0)
        self.type_count = {t: sum(len(b) for b in bs) for t, bs in index.buckets.items()}

    @property
    def schedulable(self) -> int:
        return len(self.nodes) - self.unschedulable

    def slot(self, i: int) -> Slot:
        s = self.slots.get(i)
        if s is None:
            s = self.slots[i] = Slot(i, self.nodes[i])
        return s

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
            b = self._bounds.get(t)
            if b is not None:
                g, c, m = max(g, b.gpus), max(c, b.cpus_milli), max(m, b.memory)
        return Resources(g, c, m)

    def tighten(self, gpu_type: str | None) -> None:
        """Recompute the bound exactly: a scan of the type's nodes, at most once per change to them."""
        for t in [gpu_type] if gpu_type else self.types:
            if t not in self._buckets or self._tight_at.get(t) == self.epochs[t]:
                continue
            g = c = m = 0
            for bucket in self._buckets[t]:
                for i in bucket:
                    s = self.slots.get(i)
                    f = s.free if s is not None else self.nodes[i].free
                    g, c, m = max(g, f.gpus), max(c, f.cpus_milli), max(m, f.memory)
            self._bounds[t] = Resources(g, c, m)
            self._tight_at[t] = self.epochs[t]

    def candidates(self, gpus: int, types: list[str]) -> Iterator[Slot]:
        """Schedulable slots with at least ``gpus`` free GPUs of one of ``types``, best fit first.
        Do not take or give while iterating."""
        for f in range(gpus, self.max_gpus + 1):
            for t in types:
                buckets = self._buckets.get(t)
                if buckets:
                    for i in buckets[f]:
                        yield self.slot(i)

    def too_few_gpus(self, gpus: int, types: list[str]) -> int:
        """How many schedulable nodes of ``types`` have fewer than ``gpus`` free GPUs."""
        return sum(len(self._buckets[t][f]) for t in types if t in self._buckets for f in range(min(gpus, self.max_gpus + 1)))

    def free_gpus(self, types: list[str]) -> int:
        """Free GPUs on the schedulable nodes of ``types`` (from the buckets: no node scan)."""
        return sum(f * len(b) for t in types if t in self._buckets for f, b in enumerate(self._buckets[t]))

    def other_types(self, gpu_type: str) -> dict[str, int]:
        return {t: n for t, n in self.type_count.items() if t != gpu_type and n}

    def count(self, gpu_type: str | None) -> int:
        return self.type_count.get(gpu_type, 0) if gpu_type else self.schedulable

    def take(self, slot: Slot, r: Resources, gpus: tuple[int, ...] | None = None) -> tuple[int, ...]:
        """Take ``r`` from the slot: the lowest free GPU indices, or exactly ``gpus``."""
        self._bucket(slot).pop(slot.index)
        if gpus is None:
            gpus = tuple(slot.gpus[: r.gpus])
            del slot.gpus[: r.gpus]
        else:
            slot.gpus = [g for g in slot.gpus if g not in gpus]
        slot.free = slot.free - r
        self._changed(slot)
        return gpus

    def give(self, slot: Slot, r: Resources, gpus: tuple[int, ...]) -> None:
        self._bucket(slot).pop(slot.index)
        slot.gpus = sorted(slot.gpus + list(gpus))
        slot.free = slot.free + r
        self._changed(slot)
        t, b, f = slot.node.gpu_type, self._bounds[slot.node.gpu_type], slot.free
        self._bounds[t] = Resources(max(b.gpus, f.gpus), max(b.cpus_milli, f.cpus_milli), max(b.memory, f.memory))

    def _bucket(self, slot: Slot) -> dict[int, None]:
        t, f = slot.node.gpu_type, len(slot.gpus)
        if (t, f) not in self._copied:
            self._buckets[t][f] = dict(self._buckets[t][f])
            self._copied.add((t, f))
        return self._buckets[t][f]

    def _changed(self, slot: Slot) -> None:
        slot._view = None
        self.epochs[slot.node.gpu_type] += 1
        self._bucket(slot)[slot.index] = None

"""Queues: where a team's jobs wait, with the quota the queue is promised.

Glossary:
- *resource key*: the name a quota is kept under: ``gpus/<TYPE>`` (GPUs of one type), ``cpus``
  (millicores) and ``memory`` (bytes). A replica on a node of type ``T`` charges
  ``gpus/T`` for its GPUs.
- *nominal quota*: what a queue is promised. A key the queue does not list is not governed (no
  limit), except that a queue listing any ``gpus/`` key has nominal 0 for the GPU types it omits.
- *cohort*: queues that lend their unused nominal quota to each other. A queue using more than
  its nominal quota of a key is *borrowing* that key.
- *borrowing limit*: at most this much above nominal (absent: as much as the cohort has).
- *lending limit*: at most this much of the nominal quota is lent (absent: all of it); the rest
  is kept for the queue alone (its *guaranteed* part).
- *weight*: the queue's share of the cluster relative to other queues in fair-share ordering.
"""

from __future__ import annotations

from dataclasses import dataclass

from hyperion.model.resources import Resources

GPU_PREFIX = "gpus/"
DEFAULT_QUEUE = "default"


def gpu_key(gpu_type: str) -> str:
    return GPU_PREFIX + gpu_type


def demand(r: Resources, gpu_type: str) -> tuple[tuple[str, int], ...]:
    """The resource keys one replica of ``r`` charges on a node of ``gpu_type``."""
    out = []
    if r.gpus:
        out.append((gpu_key(gpu_type), r.gpus))
    if r.cpus_milli:
        out.append(("cpus", r.cpus_milli))
    if r.memory:
        out.append(("memory", r.memory))
    return tuple(out)


@dataclass(frozen=True, slots=True)
class QueueSpec:
    name: str
    cohort: str | None = None
    weight: float = 1.0
    nominal: tuple[tuple[str, int], ...] = ()  # sorted (resource key, amount)
    borrowing_limit: tuple[tuple[str, int], ...] = ()
    lending_limit: tuple[tuple[str, int], ...] = ()

    @property
    def governs_gpus(self) -> bool:
        return any(k.startswith(GPU_PREFIX) for k, _ in self.nominal)

    def nominal_of(self, key: str) -> int | None:
        """The nominal quota of ``key``; None when the queue does not govern it."""
        for k, v in self.nominal:
            if k == key:
                return v
        if key.startswith(GPU_PREFIX) and self.governs_gpus:
            return 0
        return None

    def borrowing_limit_of(self, key: str) -> int | None:
        return dict(self.borrowing_limit).get(key)

    def lending_limit_of(self, key: str) -> int | None:
        return dict(self.lending_limit).get(key)

    def guaranteed_of(self, key: str) -> int:
        """The part of the nominal quota that is never lent."""
        nominal = self.nominal_of(key) or 0
        lend = self.lending_limit_of(key)
        return 0 if lend is None else max(0, nominal - lend)

    def lendable_of(self, key: str) -> int:
        return (self.nominal_of(key) or 0) - self.guaranteed_of(key)


def unlimited(name: str) -> QueueSpec:
    """A queue with no quota: what a job gets when no ``Queue`` object governs its queue."""
    return QueueSpec(name)

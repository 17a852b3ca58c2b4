"""Quota accounting for one scheduling cycle: what each queue holds, what it may take.

Glossary (see ``model.queue``): a queue's usage of a resource key up to its *guaranteed* part is
its own; above that it draws on its cohort's *pool*, the sum of the members' lendable quota
(Kueue's model). Admitting ``x`` more of a key to queue ``q`` needs:

- ``usage + x <= nominal + borrowing limit`` (no cohort: ``<= nominal``), and
- the cohort's pool use after admission ``<= pool``.

Keys a queue does not govern are not limited. A queue without a ``QueueSpec`` has no quota.
A queue named in ``not_lending`` lends nothing this cycle: its whole nominal quota counts as
guaranteed (the cycle names the queues with pending jobs when ``lend_while_pending`` is off).

The ledger is a working copy: placing a replica ``take``s, rolling back or evicting ``release``s.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping

from hyperion.model import QueueSpec, Resources, RunningView
from hyperion.model.queue import demand

INF = float("inf")


def usage_of(running: Iterable[RunningView]) -> dict[str, dict[str, int]]:
    """Resources held per queue and key, summed over running jobs (a driver that keeps this
    incrementally passes ``Snapshot.usage`` instead)."""
    out: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for v in running:
        for key, amount in demand(v.per_replica, v.gpu_type):
            out[v.queue][key] += amount * len(v.placements)
    return {q: dict(u) for q, u in out.items()}


class Ledger:
    def __init__(self, queues: Mapping[str, QueueSpec], usage: Mapping[str, Mapping[str, int]],
                 not_lending: Iterable[str] = ()) -> None:
        self.queues = queues
        self.usage: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        for q, u in usage.items():
            self.usage[q].update(u)
        self._stamps: dict[str, int] = defaultdict(int)
        self.versions: dict[str, int] = defaultdict(int)  # queue -> changes to its usage
        self._borrowing: dict[str, tuple[int, bool]] = {}
        keep = set(not_lending)  # queues that lend nothing this cycle: all their nominal is guaranteed
        self._guaranteed: dict[str, dict[str, int]] = {}
        self.pool: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        self.pool_used: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        for name, spec in queues.items():
            g = {k: (v if name in keep else spec.guaranteed_of(k)) for k, v in spec.nominal}
            self._guaranteed[name] = g
            if spec.cohort:
                for k, v in spec.nominal:
                    self.pool[spec.cohort][k] += v - g[k]
        for name, spec in queues.items():
            if spec.cohort:
                for k, used in self.usage[name].items():
                    if spec.nominal_of(k) is not None:
                        self.pool_used[spec.cohort][k] += max(0, used - self.guaranteed(name, k))

    def guaranteed(self, queue: str, key: str) -> int:
        return self._guaranteed.get(queue, {}).get(key, 0)

    @staticmethod
    def limit(spec: QueueSpec, key: str) -> float | None:
        """The most ``spec``'s queue may hold of ``key``; None when not governed."""
        nominal = spec.nominal_of(key)
        if nominal is None:
            return None
        if not spec.cohort:
            return nominal
        b = spec.borrowing_limit_of(key)
        return INF if b is None else nominal + b

    def admit(self, queue: str, r: Resources, gpu_type: str, count: int = 1) -> str | None:
        """Why ``count`` more replicas of ``r`` on ``gpu_type`` nodes would break the queue's quota
        (None: they would not)."""
        spec = self.queues.get(queue)
        if spec is None:
            return None
        used = self.usage[queue]
        for key, amount in demand(r, gpu_type):
            limit = self.limit(spec, key)
            if limit is None:
                continue
            amount *= count
            new = used[key] + amount
            if new > limit:
                return _over(queue, spec, key, used[key], amount, limit)
            if spec.cohort:
                g = self.guaranteed(queue, key)
                extra = max(0, new - g) - max(0, used[key] - g)
                if extra and self.pool_used[spec.cohort][key] + extra > self.pool[spec.cohort][key]:
                    return (f"quota: cohort {spec.cohort} has no idle {_unit(key)} to lend to queue {queue} "
                            f"({_fmt(key, self.pool_used[spec.cohort][key])} of {_fmt(key, self.pool[spec.cohort][key])} lent)")
        return None

    def never_fits(self, queue: str, r: Resources, gpu_type: str, count: int) -> str | None:
        """Why the queue could never hold ``count`` replicas on ``gpu_type``, even idle."""
        spec = self.queues.get(queue)
        if spec is None:
            return None
        for key, amount in demand(r, gpu_type):
            limit = self.limit(spec, key)
            if limit is None:
                continue
            cap = limit
            if spec.cohort:
                cap = min(limit, self.guaranteed(queue, key) + self.pool[spec.cohort][key])
            if amount * count > cap:
                return (f"quota: queue {queue} can never hold {_fmt(key, amount * count)} of {_unit(key)} "
                        f"(at most {_fmt(key, cap)}); raise its quota or ask for less")
        return None

    def stamp(self, queue: str) -> int:
        """Changes whenever what ``admit`` answers for ``queue`` may change."""
        spec = self.queues.get(queue)
        if spec is None:
            return 0
        return self._stamps[spec.cohort or "/" + queue]

    def take(self, queue: str, r: Resources, gpu_type: str, sign: int = 1) -> None:
        spec = self.queues.get(queue)
        self.versions[queue] += 1
        if spec is not None:
            self._stamps[spec.cohort or "/" + queue] += 1
        used = self.usage[queue]
        for key, amount in demand(r, gpu_type):
            old = used[key]
            used[key] = old + sign * amount
            if spec is not None and spec.cohort and spec.nominal_of(key) is not None:
                g = self.guaranteed(queue, key)
                self.pool_used[spec.cohort][key] += max(0, used[key] - g) - max(0, old - g)

    def release(self, queue: str, r: Resources, gpu_type: str) -> None:
        self.take(queue, r, gpu_type, -1)

    def borrowing(self, queue: str) -> bool:
        """Whether the queue holds more than its nominal quota of any key (cached per usage change)."""
        version = self.versions[queue]
        hit = self._borrowing.get(queue)
        if hit is not None and hit[0] == version:
            return hit[1]
        spec = self.queues.get(queue)
        answer = False
        if spec is not None and spec.cohort:
            used = self.usage[queue]
            answer = any((n := spec.nominal_of(k)) is not None and v > n for k, v in used.items())
        self._borrowing[queue] = (version, answer)
        return answer

    def within_nominal(self, queue: str, r: Resources, gpu_type: str, count: int) -> bool:
        """Whether the queue would still be within its nominal quota after taking ``count`` replicas."""
        spec = self.queues.get(queue)
        if spec is None:
            return True
        used = self.usage[queue]
        for key, amount in demand(r, gpu_type):
            nominal = spec.nominal_of(key)
            if nominal is not None and used[key] + amount * count > nominal:
                return False
        return True

    def cohort(self, queue: str) -> str | None:
        spec = self.queues.get(queue)
        return spec.cohort if spec else None


def _unit(key: str) -> str:
    return f"{key[5:]} GPUs" if key.startswith("gpus/") else key


def _fmt(key: str, v: float) -> str:
    if v == INF:
        return "unlimited"
    if key == "cpus":
        return f"{v / 1000:g}"
    if key == "memory":
        return f"{v / 2**30:.4g}Gi"
    return f"{int(v)}"


def _over(queue: str, spec: QueueSpec, key: str, used: int, amount: int, limit: float) -> str:
    nominal = spec.nominal_of(key) or 0
    how = f"nominal {_fmt(key, nominal)}"
    if spec.cohort and limit > nominal:
        how += f" + borrowing limit {_fmt(key, limit - nominal)}"
    elif not spec.cohort:
        how += " (no cohort to borrow from)"
    return f"quota: queue {queue} holds {_fmt(key, used)} {_unit(key)}; {_fmt(key, amount)} more would exceed {how}"

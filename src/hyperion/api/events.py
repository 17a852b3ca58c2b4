"""The cluster's event log: what happened to jobs and nodes that a person wants to see later.

An *event* is one dict: ``seq`` (increasing), ``at`` (epoch seconds), ``kind``, ``message`` (a
sentence that says what happened and why), and the ``job``, ``team`` and ``node`` it concerns
(absent when none). Kinds:

- ``preempted``: a job was stopped to make room (it checkpoints and requeues); ``handover``: the
  same on the fast path (frozen at once, its GPUs went to an urgent job);
- ``node-lost``, ``node-condition``: a node stopped answering, or its agent judged it unhealthy
  (or healthy again);
- ``budget-warning``: a team's spend crossed 80 % or 100 % of a budget; ``budget-held``,
  ``budget-rejected``: admission kept a job back, or refused it, for its budget;
- ``idle-reclaimed``: a job whose GPUs stayed idle was stopped with a checkpoint;
- ``scale-up``, ``scale-down``, ``scale-failed``: the autoscaler asked a node pool's provider for
  machines, released (or drained) them, or the provider could not do what it was asked;
  ``spot-interruption``: a spot instance's interruption notice; ``orphan-swept``: instances tagged
  as ours that the store did not know were terminated;
- ``burst``: a job waiting too long in a queueing federation member's queue went to another
  member; ``burst-refused``: it was due to, but no other member could run it (the reason).

Each event is one store record (``records/events/<seq>``), written when it happens, so the log
survives restarts; the newest ``keep`` are kept (older ones are deleted in batches). Reads are
served from memory. ``counts`` are totals per kind since the log began (for ``/metrics``); they are
kept in the record ``events-counts`` with each write, so they survive pruning and restarts.
"""

from __future__ import annotations

import logging
from collections import Counter, deque
from collections.abc import Iterable

from hyperion.ports.clock import Clock
from hyperion.store.objects import ClusterState

log = logging.getLogger("hyperion.events")

PREFIX = "events/"
COUNTS = "events-counts"
KINDS = ("preempted", "handover", "node-lost", "node-condition", "budget-warning", "budget-held",
         "budget-rejected", "idle-reclaimed", "scale-up", "scale-down", "scale-failed", "spot-interruption", "orphan-swept",
         "burst", "burst-refused")


class EventLog:
    def __init__(self, state: ClusterState, clock: Clock, keep: int = 10_000) -> None:
        self.state = state
        self.clock = clock
        self.keep = keep
        self._events: deque[dict] = deque()
        self._counts: Counter[str] = Counter()
        for _, event in state.records(PREFIX):
            self._events.append(event)
        saved = state.get_record(COUNTS) or {}
        self._counts.update({k: int(v) for k, v in saved.get("counts", {}).items()})
        self._seq = self._events[-1]["seq"] if self._events else int(saved.get("seq", 0))

    def emit(self, kind: str, message: str, *, job: str | None = None, team: str | None = None,
             node: str | None = None) -> dict:
        """Record an event (one guarded store write, with the per-kind totals) and return it."""
        if kind not in KINDS:
            raise ValueError(f"unknown event kind {kind!r}; known: {', '.join(KINDS)}")
        self._seq += 1
        event = {"seq": self._seq, "at": self.clock.now(), "kind": kind, "message": message}
        for key, value in (("job", job), ("team", team), ("node", node)):
            if value is not None:
                event[key] = value
        self._counts[kind] += 1
        drop = []
        if len(self._events) >= self.keep + max(1, self.keep // 10):  # prune in batches, not every write
            while len(self._events) >= self.keep:
                drop.append(_name(self._events.popleft()["seq"]))
        self.state.write_records({_name(self._seq): event, COUNTS: {"seq": self._seq, "counts": dict(self._counts)}}, drop)
        self._events.append(event)
        log.info("%s: %s", kind, message)
        return event

    def recent(self, limit: int = 100, kinds: Iterable[str] | None = None, team: str | None = None,
               job: str | None = None, before: int | None = None) -> list[dict]:
        """The newest events first, at most ``limit``, of the given kinds, team and job; ``before``:
        only events with a smaller ``seq`` (the next page)."""
        wanted = set(kinds) if kinds else None
        out = []
        for event in reversed(self._events):
            if before is not None and event["seq"] >= before:
                continue
            if wanted is not None and event["kind"] not in wanted:
                continue
            if team is not None and event.get("team") != team:
                continue
            if job is not None and event.get("job") != job:
                continue
            out.append(event)
            if len(out) >= limit:
                break
        return out

    def counts(self) -> dict[str, int]:
        """Events per kind since the log began (every kind listed, zero included)."""
        return {k: self._counts.get(k, 0) for k in KINDS}


def _name(seq: int) -> str:
    return f"{PREFIX}{seq:012d}"

"""Routing and temporal shifting of jobs the federation decided (``Job.routed``; docs/federation.md).

A job the live federation routed to a member (``JobView.cluster``) may run only on nodes labelled
``hyperion.io/cluster: <member>``; a node without that label, or with another member's, does not
match. Extension points:
- ``gate(job, cycle)``: keeps the job out of the cycle (UNRESOLVABLE: evictions would not help)
  while it waits for the hour the federation chose (``JobView.start_after``), or while its member
  has no node at all (capacity comes from the member's node pool);
- ``filter(job, node, snapshot)``: the node's member label must be the job's member;
- ``wake_at(cycle)``: the earliest start time of a waiting job (the driver runs a cycle then).
Jobs without a member pass untouched, so a cluster without federation members schedules as before.
"""

from __future__ import annotations

from hyperion.core.budget import utc_text
from hyperion.core.framework import plugin
from hyperion.model import JobView, NodeView, Snapshot

CLUSTER_LABEL = "hyperion.io/cluster"


def member_of(node: NodeView) -> str | None:
    """The federation member a node belongs to (its ``hyperion.io/cluster`` label), or None."""
    return next((v for k, v in node.labels if k == CLUSTER_LABEL), None)


@plugin("federation")
class Federation:
    def __init__(self) -> None:
        self._cycle_id: int | None = None
        self._members: set[str] = set()
        self._waking: list[float] = []

    def _prepare(self, cycle) -> None:
        if self._cycle_id != id(cycle):
            self._cycle_id = id(cycle)
            self._members = {m for n in cycle.snapshot.nodes if (m := member_of(n)) is not None}
            self._waking = []

    def gate(self, job: JobView, cycle) -> str | None:
        if job.cluster is None and job.start_after is None:
            return None
        self._prepare(cycle)
        now = cycle.snapshot.now
        if job.start_after is not None and now < job.start_after:
            self._waking.append(job.start_after)
            why = f" for {job.waits_for}" if job.waits_for else ""
            return f"federation: waits until {utc_text(job.start_after)}{why}"
        if job.cluster is not None and job.cluster not in self._members:
            return (f"federation: routed to member {job.cluster}, which has no node yet: capacity comes from its "
                    f"node pool (issue 8); an agent joins it with --label {CLUSTER_LABEL}={job.cluster}")
        return None

    def filter(self, job: JobView, node: NodeView, snapshot: Snapshot) -> str | None:
        if job.cluster is None:
            return None
        member = member_of(node)
        if member == job.cluster:
            return None
        if member is None:
            return f"node is in no federation member (no {CLUSTER_LABEL} label); the job is routed to {job.cluster}"
        return f"node is in member {member}; the job is routed to {job.cluster}"

    def wake_at(self, cycle) -> float | None:
        if self._cycle_id != id(cycle) or not self._waking:
            return None
        return min(self._waking)

"""Why a job is pending: its place in the scheduling order and in its queue, who is ahead, the
verdict's reasons, and an estimated start.

The order is the one the last full cycle used (``Plan.order``: classes, fair share between
queues, priority and age inside a queue); jobs that arrived since follow, in queue order.
A job holding an EASY-backfill reservation starts at its reserved time at the latest.

The estimate is deliberately simple and says what it assumes: the jobs ahead of this one that
want GPUs of the same kind start first; running jobs end at ``started_at + runtime_estimate``;
GPUs freed anywhere are counted as usable (per-node fit and gang shape are not modelled, so the
estimate is the earliest plausible time, not a promise). For a job the federation routed to a
member, "anywhere" is that member's nodes, and the jobs ahead are those routed there too. When a running job that would have to
end first has no runtime estimate, the start is unknown and the explanation says which job.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import accumulate

from hyperion.core.cycle import within_queue_order
from hyperion.core.framework import Profile
from hyperion.core.plugins.federation import member_of
from hyperion.model import Hold, JobView, Plan, RunningView, Snapshot, Verdict, VerdictCode
from hyperion.model.federation import Routing


@dataclass(frozen=True, slots=True)
class Explanation:
    job_id: str
    position: int  # 1-based place among pending jobs in scheduling order
    pending: int
    queue: str
    queue_position: int  # 1-based place among the pending jobs of its queue
    queue_pending: int
    ahead: tuple[JobView, ...]
    verdict: Verdict | None
    estimated_start: float | None
    estimate_basis: str


CAPACITY_PLUGINS = frozenset({"node-fit", "backfill"})
CAPACITY_CODES = frozenset({VerdictCode.UNSCHEDULABLE, VerdictCode.UNRESOLVABLE})


def waits_for_capacity(verdict: Verdict | None, routed: Routing | None, now: float) -> bool:
    """Whether the verdict keeps a job pending for lack of GPUs: node fit, a backfill reservation,
    or, for a job the federation routed (``routed``), its gate once the start time has passed,
    which holds the job only because its member has no node. More capacity, or capacity
    elsewhere, would start it; unlike a quota, a budget hold, preemption victims still stopping or
    a delayed start."""
    if verdict is None or verdict.code not in CAPACITY_CODES:
        return False
    return verdict.plugin in CAPACITY_PLUGINS or (verdict.plugin == "federation" and routed is not None
                                                  and (routed.start_after is None or routed.start_after <= now))


def _competes(a: str | None, b: str | None) -> bool:
    """Whether jobs wanting GPU types ``a`` and ``b`` draw on the same GPUs (None: any type)."""
    return a is None or b is None or a == b


def order_of(snapshot: Snapshot, profile: Profile, plan: Plan) -> list[JobView]:
    """Pending jobs in the order the last cycle considered them, newer arrivals after."""
    by_id = {j.id: j for j in snapshot.pending}
    seen = [by_id[i] for i in plan.order if i in by_id]
    known = set(plan.order)
    return seen + within_queue_order(snapshot, profile, [j for j in snapshot.pending if j.id not in known])


def explain(snapshot: Snapshot, profile: Profile, plan: Plan, job_id: str) -> Explanation | None:
    return explain_many(snapshot, profile, plan, (job_id,)).get(job_id)


def explain_many(snapshot: Snapshot, profile: Profile, plan: Plan, job_ids: Iterable[str]) -> dict[str, Explanation]:
    """``explain`` for several pending jobs (a page of the dashboard's queue view): the order,
    the queues, the free GPUs and the running jobs' ends are worked out once, not per job."""
    order = order_of(snapshot, profile, plan)
    wanted = set(job_ids)
    at = {j.id: i for i, j in enumerate(order) if j.id in wanted}
    if not at:
        return {}
    in_queue: Counter[str] = Counter()
    queue_position: dict[str, int] = {}
    ahead_gpus: dict[str, int] = {}  # GPUs the jobs ahead want that draw on the same kind
    by_type: Counter[tuple[str | None, str | None]] = Counter()  # GPUs wanted so far, by (member, GPU type asked)
    for j in order:
        in_queue[j.queue] += 1
        if j.id in at:
            queue_position[j.id] = in_queue[j.queue]
            ahead_gpus[j.id] = sum(n for (member, t), n in by_type.items()
                                   if member == j.cluster and _competes(t, j.gpu_type))
        by_type[(j.cluster, j.gpu_type)] += j.per_replica.gpus * j.replicas
    holds: dict[str, Hold] = {}
    for h in plan.holds:
        holds.setdefault(h.job_id, h)
    gauge = _Gauge(snapshot)
    out = {}
    for job_id, i in at.items():
        job = order[i]
        hold = holds.get(job_id)
        if job.cluster is not None and job.cluster not in gauge.members:
            start, basis = None, f"unknown: routed to federation member {job.cluster}, which has no node yet"
        elif hold is not None and hold.until is not None:
            start, basis = max(snapshot.now, hold.until), "reserved: resources are held for this job from then (EASY backfill)"
        else:
            start, basis = gauge.estimate(job, ahead_gpus[job_id])
        if start is not None and job.start_after is not None and start < job.start_after:
            start, basis = job.start_after, "when the federation lets it start (it waits for a better hour)"
        out[job_id] = Explanation(job_id, i + 1, len(order), job.queue, queue_position[job_id], in_queue[job.queue],
                                  tuple(order[:i]), plan.verdicts.get(job_id), start, basis)
    return out


class _Gauge:
    """Free and total GPUs of schedulable nodes and the running jobs in the order they are expected
    to end, per GPU kind a job may ask for (None: any) and federation member (a routed job counts
    only its member's nodes and the jobs running there; an unrouted one every node), computed once
    per snapshot."""

    def __init__(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot
        self.running = sorted(snapshot.running, key=lambda r: (r.expected_end is None, r.expected_end or 0.0, r.id))
        self._kinds: dict[tuple[str | None, str | None], tuple[int, int, list[RunningView], list[int], int | None]] = {}
        self.member = {n.id: member_of(n) for n in snapshot.nodes}
        self.members = {m for m in self.member.values() if m is not None}  # federation members with nodes

    def _kind(self, gpu_type: str | None, cluster: str | None = None
              ) -> tuple[int, int, list[RunningView], list[int], int | None]:
        kind = self._kinds.get((gpu_type, cluster))
        if kind is None:
            nodes = [n for n in self.snapshot.nodes if n.schedulable and _competes(n.gpu_type, gpu_type)
                     and (cluster is None or self.member[n.id] == cluster)]
            running = [r for r in self.running if _competes(r.gpu_type, gpu_type)
                       and (cluster is None or any(self.member.get(node) == cluster for node, _ in r.placements))]
            freed = list(accumulate(r.gpus for r in running))  # GPUs free once running[:k + 1] end
            first_unknown = next((k for k, r in enumerate(running) if r.expected_end is None), None)
            kind = self._kinds[(gpu_type, cluster)] = (sum(n.free.gpus for n in nodes), sum(n.capacity.gpus for n in nodes),
                                                       running, freed, first_unknown)
        return kind

    def estimate(self, job: JobView, wanted: int) -> tuple[float | None, str]:
        need = job.per_replica.gpus * job.replicas
        if need == 0:
            return self.snapshot.now, "needs no GPUs: waits only for CPU or memory"
        free, total, running, freed, first_unknown = self._kind(job.gpu_type, job.cluster)
        if need > total:
            where = "the cluster" if job.cluster is None else f"member {job.cluster}"
            return None, f"needs {need} GPUs; {where} has {total} of that kind"
        if free >= wanted + need:
            return self.snapshot.now, f"{free} GPUs free now; the jobs ahead want {wanted}"
        k = bisect_left(freed, wanted + need - free)  # the first running job whose end frees enough
        if k < len(running) and (first_unknown is None or k < first_unknown):
            return max(self.snapshot.now, running[k].expected_end or 0.0), (
                f"when running jobs end at their runtime estimates ({free + freed[k]} GPUs free by then; "
                f"the jobs ahead want {wanted}, this one {need})")
        if first_unknown is not None:
            return None, f"unknown: running job {running[first_unknown].id} has no runtime estimate"
        return None, f"the jobs ahead want {wanted} GPUs and this one {need}, more than running jobs will free"

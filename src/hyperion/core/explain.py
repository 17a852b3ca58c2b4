"""Why a job is pending: its place in the scheduling order and in its queue, who is ahead, the
verdict's reasons, and an estimated start.

The order is the one the last full cycle used (``Plan.order``: classes, fair share between
queues, priority and age inside a queue); jobs that arrived since follow, in queue order.
A job holding an EASY-backfill reservation starts at its reserved time at the latest.

The estimate is deliberately simple and says what it assumes: the jobs ahead of this one that
want GPUs of the same kind start first; running jobs end at ``started_at + runtime_estimate``;
GPUs freed anywhere are counted as usable (per-node fit and gang shape are not modelled, so the
estimate is the earliest plausible time, not a promise). When a running job that would have to
end first has no runtime estimate, the start is unknown and the explanation says which job.
"""

from __future__ import annotations

from dataclasses import dataclass

from hyperion.core.cycle import within_queue_order
from hyperion.core.framework import Profile
from hyperion.model import JobView, Plan, RunningView, Snapshot, Verdict


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
    order = order_of(snapshot, profile, plan)
    at = next((i for i, j in enumerate(order) if j.id == job_id), None)
    if at is None:
        return None
    job = order[at]
    ahead = tuple(order[:at])
    mates = [j for j in order if j.queue == job.queue]
    hold = next((h for h in plan.holds if h.job_id == job_id), None)
    if hold is not None and hold.until is not None:
        start, basis = max(snapshot.now, hold.until), "reserved: resources are held for this job from then (EASY backfill)"
    else:
        start, basis = _estimate(snapshot, job, ahead)
    return Explanation(job_id, at + 1, len(order), job.queue, mates.index(job) + 1, len(mates), ahead,
                       plan.verdicts.get(job_id), start, basis)


def _estimate(snapshot: Snapshot, job: JobView, ahead: tuple[JobView, ...]) -> tuple[float | None, str]:
    need = job.per_replica.gpus * job.replicas
    if need == 0:
        return snapshot.now, "needs no GPUs: waits only for CPU or memory"
    wanted = sum(j.per_replica.gpus * j.replicas for j in ahead if _competes(j.gpu_type, job.gpu_type))
    free = sum(n.free.gpus for n in snapshot.nodes if n.schedulable and _competes(n.gpu_type, job.gpu_type))
    total = sum(n.capacity.gpus for n in snapshot.nodes if n.schedulable and _competes(n.gpu_type, job.gpu_type))
    if need > total:
        return None, f"needs {need} GPUs; the cluster has {total} of that kind"
    if free >= wanted + need:
        return snapshot.now, f"{free} GPUs free now; the jobs ahead want {wanted}"
    running: list[RunningView] = sorted(
        (r for r in snapshot.running if _competes(r.gpu_type, job.gpu_type)),
        key=lambda r: (r.expected_end is None, r.expected_end or 0.0, r.id))
    for r in running:
        if r.expected_end is None:
            return None, f"unknown: running job {r.id} has no runtime estimate"
        free += r.gpus
        if free >= wanted + need:
            return max(snapshot.now, r.expected_end), (
                f"when running jobs end at their runtime estimates ({free} GPUs free by then; "
                f"the jobs ahead want {wanted}, this one {need})")
    return None, f"the jobs ahead want {wanted} GPUs and this one {need}, more than running jobs will free"

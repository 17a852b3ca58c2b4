"""Builds the immutable ``Snapshot`` a scheduling decision reads, from the live cluster state.

The simulator builds the same type from its virtual world; ``core.schedule`` cannot tell them apart.
"""

from __future__ import annotations

from hyperion.model import Job, JobView, NodeState, NodeView, Snapshot
from hyperion.store.objects import ClusterState


def job_view(job: Job) -> JobView:
    s = job.spec
    return JobView(id=job.id, team=s.team, queue=s.queue, priority=s.priority, priority_value=s.priority_value,
                   submitted_at=job.submitted_at, per_replica=s.resources, replicas=s.replicas,
                   min_available=s.min_available, gpu_type=s.gpu_type, runtime_estimate_s=s.runtime_estimate_s)


class Snapshotter:
    def __init__(self, state: ClusterState) -> None:
        self.state = state
        self._views: dict[str, tuple[Job, JobView]] = {}

    def nodes(self) -> tuple[NodeView, ...]:
        out = []
        for node in self.state.nodes.values():
            if node.state is not NodeState.READY:
                continue
            used, used_gpus = self.state.allocated(node.id)
            free_gpus = tuple(g.index for g in node.gpus if g.index not in used_gpus)
            out.append(NodeView(node.id, node.gpu_type, node.capacity, node.capacity - used, free_gpus,
                                schedulable=not node.cordoned, labels=node.labels))
        return tuple(out)

    def pending(self) -> tuple[JobView, ...]:
        views = []
        jobs = self.state.jobs
        for job_id in self.state.pending:
            job = jobs[job_id]
            cached = self._views.get(job_id)
            if cached is None or cached[0] is not job:
                cached = self._views[job_id] = (job, job_view(job))
            views.append(cached[1])
        if len(self._views) > 2 * len(views) + 1024:  # forget jobs that left the queue
            self._views = {k: v for k, v in self._views.items() if k in self.state.pending}
        return tuple(views)

    def snapshot(self, now: float, seed: int) -> Snapshot:
        return Snapshot(now=now, seed=seed, nodes=self.nodes(), pending=self.pending())

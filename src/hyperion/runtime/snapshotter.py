"""Builds the immutable ``Snapshot`` a scheduling decision reads, from the live cluster state.

The simulator builds the same type from its virtual world; ``core.schedule`` cannot tell them apart.
"""

from __future__ import annotations

from hyperion.model import Hold, Job, JobView, NodeState, NodeView, Phase, RunningView, Snapshot
from hyperion.model.nodeindex import NodeIndex
from hyperion.store.objects import ClusterState, live_tasks


def job_view(job: Job, estimate: float | None = None) -> JobView:
    """The scheduler's view of a pending job. A job the federation routed (``Job.routed``) carries
    its member, its start time, and the GPU type chosen for it when it named none."""
    s = job.spec
    r = job.routed
    return JobView(id=job.id, team=s.team, queue=s.queue, priority=s.priority, priority_value=s.priority_value,
                   submitted_at=job.submitted_at, per_replica=s.resources, replicas=s.replicas,
                   min_available=s.min_available, gpu_type=s.gpu_type or (r.gpu_type if r is not None else None),
                   runtime_estimate_s=s.runtime_estimate_s if s.runtime_estimate_s is not None else estimate,
                   user=s.user, attained_gpu_s=job.attained_gpu_s,
                   cluster=r.cluster if r is not None else None, start_after=r.start_after if r is not None else None,
                   waits_for=r.waits_for() if r is not None else "")



class Snapshotter:
    """Keeps node views and their ``NodeIndex`` from one snapshot to the next, recomputing only
    the nodes the state reports changed; a change in which nodes are ready rebuilds them."""

    def __init__(self, state: ClusterState) -> None:
        self.state = state
        self._views: dict[str, tuple[Job, JobView, float | None]] = {}
        self._nodes: tuple[NodeView, ...] = ()
        self._position: dict[str, int] = {}
        self._index: NodeIndex | None = None
        state.changed_nodes.update(state.nodes)
        self._running: dict[str, RunningView] = {}
        self.running_version = 0  # +1 whenever the set of running views changes
        state.changed_jobs.update(state.jobs)

    def _node_view(self, node) -> NodeView:
        used, used_gpus = self.state.allocated(node.id)
        free_gpus = tuple(g.index for g in node.gpus if g.index not in used_gpus)
        return NodeView(node.id, node.gpu_type, node.capacity, node.capacity - used, free_gpus,
                        schedulable=not node.cordoned and not node.condition, labels=node.labels)

    def nodes(self) -> tuple[tuple[NodeView, ...], NodeIndex]:
        changed = self.state.take_changed_nodes()
        if self._index is not None and not changed:
            return self._nodes, self._index
        ready = [n for n in self.state.nodes.values() if n.state is NodeState.READY]
        if self._index is None or len(ready) != len(self._nodes) or any(n.id not in self._position for n in ready):
            self._nodes = tuple(self._node_view(n) for n in ready)
            self._position = {v.id: i for i, v in enumerate(self._nodes)}
            self._index = NodeIndex.build(self._nodes)
            return self._nodes, self._index
        views = list(self._nodes)
        positions = [self._position[i] for i in changed if i in self._position]
        for i in positions:
            views[i] = self._node_view(self.state.nodes[views[i].id])
        new = tuple(views)
        self._index = self._index.updated(self._nodes, new, positions)
        self._nodes = new
        return self._nodes, self._index

    def pending(self) -> tuple[JobView, ...]:
        views = []
        jobs = self.state.jobs
        estimate = self.state.runtime_estimate
        for job_id in self.state.pending:
            job = jobs[job_id]
            cached = self._views.get(job_id)
            est = None if job.spec.runtime_estimate_s is not None else estimate(job.spec.team, job.spec.user)
            if cached is None or cached[0] is not job or cached[2] != est:  # the user's history moved on
                cached = self._views[job_id] = (job, job_view(job, est), est)
            views.append(cached[1])
        if len(self._views) > 2 * len(views) + 1024:  # forget jobs that left the queue
            self._views = {k: v for k, v in self._views.items() if k in self.state.pending}
        return tuple(views)

    def _running_view(self, job: Job) -> RunningView | None:
        tasks = live_tasks(job)
        if not tasks or job.handed_over:  # a handed-over job holds nothing while it stops
            return None
        s = job.spec
        node = self.state.nodes.get(tasks[0].node_id)
        # what the scheduler expected of this attempt when it placed it (the simulator's too)
        estimate = job.placed_estimate_s if job.placed_estimate_s is not None else s.runtime_estimate_s
        leaving = job.phase is Phase.PREEMPTED or job.phase.terminal  # being stopped
        return RunningView(job.id, s.team, s.queue, s.priority, s.resources,
                           tuple((p.node_id, p.gpu_indices) for p in tasks), node.gpu_type if node else "",
                           job.attempt_started_at, estimate, s.priority_value, job.last_checkpoint_at, leaving, s.user,
                           job.attained_gpu_s)

    def running(self) -> tuple[RunningView, ...]:
        """Jobs holding resources (their live tasks), updated for the jobs written since the last call."""
        changed = self.state.take_changed_jobs()
        for job_id in changed:
            old = self._running.pop(job_id, None)
            job = self.state.jobs.get(job_id)
            new = self._running_view(job) if job is not None else None
            if old == new:
                if new is not None:
                    self._running[job_id] = new
                continue
            if old is None or new is None or (old.placements, old.preempting) != (new.placements, new.preempting):
                self.running_version += 1  # who holds what changed (not merely, say, a start time)
            if new is not None:
                self._running[job_id] = new
        return tuple(self._running.values())

    def snapshot(self, now: float, seed: int, history: dict | None = None, holds: tuple[Hold, ...] = (),
                 budgets: tuple = (), prices: dict | None = None) -> Snapshot:
        nodes, index = self.nodes()
        running = self.running()
        usage = {q: dict(u) for q, u in self.state.queue_usage.items()}
        return Snapshot(now=now, seed=seed, nodes=nodes, pending=self.pending(), node_index=index, running=running,
                        queues=dict(self.state.queues), usage=usage, history=history or {}, holds=holds,
                        budgets=budgets, prices=prices or {})

"""Typed, cached access to the control plane's objects over any StateStore.

The control plane is the single writer of its store (the SQLite adapter holds a file lock), so
it keeps every object in memory - an informer-style cache - and writes through. Every write is a
guarded commit: it compares each key's cached mod_revision, so a stale or concurrent writer fails
loudly instead of overwriting. Job writes are checked against the phase transition table.

Glossary:
- *live task*: a rank of a job's current attempt that has been placed on a node and has not been
  reported exited. Live tasks hold node capacity, whatever the job's phase (a cancelled job's
  tasks hold their GPUs until the agent confirms they stopped).
- *queues*: the applied ``kind: Queue`` objects by name. The queue ``default`` exists without
  one (no quota); ``queues_version`` counts changes to them since this instance was built, so a
  reader compares it with the value it last saw to know the definitions changed.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

import orjson

from hyperion.core.estimates import RuntimeHistory
from hyperion.model import Job, JobSpec, Node, Phase, Placement, Resources, Team, check_transition
from hyperion.model.codec import (
    job_from_dict,
    job_to_dict,
    node_from_dict,
    node_to_dict,
    queue_from_dict,
    queue_to_dict,
    team_from_dict,
    team_to_dict,
)
from hyperion.model.queue import QueueSpec, demand
from hyperion.ports.store import Compare, Delete, Put, StateStore

JOBS, NODES, TEAMS, QUEUES, RECORDS = "jobs/", "nodes/", "teams/", "queues/", "records/"


class ConflictError(RuntimeError):
    """A guarded commit failed: the store changed under this writer."""


def live_tasks(job: Job) -> list[Placement]:
    """The ranks still running: placed and not exited (a handed-over job's ranks included, though
    they hold no resources any more: ``holds``)."""
    if not job.placements or job.phase is Phase.PENDING:
        return []
    exited = {rank for rank, _ in job.rank_exits}
    return [p for p in job.placements if p.rank not in exited]


def holds(job: Job) -> bool:
    """Whether the job's live tasks hold their resources: not once handed over to an urgent job."""
    return not job.handed_over


class ClusterState:
    def __init__(self, store: StateStore) -> None:
        self.store = store
        self.jobs: dict[str, Job] = {}
        self.nodes: dict[str, Node] = {}
        self.teams: dict[str, Team] = {}
        self.queues: dict[str, QueueSpec] = {}
        self.queues_version = 0  # +1 on every change to ``queues`` after loading
        self._revs: dict[str, int] = {}
        # node id -> {(job id, rank): placement} of live tasks
        self.node_tasks: dict[str, dict[tuple[str, int], Placement]] = defaultdict(dict)
        self.pending: dict[str, None] = {}  # job ids in PENDING, in submission order
        # ids of nodes whose object or live tasks changed since a reader last took this set
        # (the snapshotter updates only those node views and its node index)
        self.changed_nodes: set[str] = set()
        # ids of jobs written since a reader last took this set (the snapshotter's running views)
        self.changed_jobs: set[str] = set()
        # runtimes of each (team, user)'s latest succeeded jobs: the estimate for a job whose spec
        # gives none (EASY backfill, ``hyperion explain``)
        self.runtimes = RuntimeHistory()
        # resources held by live tasks per queue and per "queue/user", by resource key
        # (``model.queue.demand``, GPUs charged to the node's type): quota, fair share, listings
        self.queue_usage: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        self.user_usage: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        # called with (job, task, held) whenever a live task starts or stops holding its resources
        # (the accountant's meter); not for what ``_load`` finds
        self.task_listeners: list = []
        self._load()

    # ---- loading -------------------------------------------------------------------------
    def _load(self) -> None:
        for kv in self.store.range(TEAMS):
            team = team_from_dict(orjson.loads(kv.value))
            self.teams[team.name] = team
            self._revs[kv.key] = kv.mod_revision
        for kv in self.store.range(QUEUES):
            queue = queue_from_dict(orjson.loads(kv.value))
            self.queues[queue.name] = queue
            self._revs[kv.key] = kv.mod_revision
        for kv in self.store.range(NODES):
            node = node_from_dict(orjson.loads(kv.value))
            self.nodes[node.id] = node
            self._revs[kv.key] = kv.mod_revision
        jobs = []
        for kv in self.store.range(JOBS):
            jobs.append(job_from_dict(orjson.loads(kv.value)))
            self._revs[kv.key] = kv.mod_revision
        for job in sorted(jobs, key=lambda j: (j.submitted_at, j.id)):
            self.jobs[job.id] = job
            self._index(None, job)

    # ---- indexes -------------------------------------------------------------------------
    def _index(self, old: Job | None, new: Job) -> None:
        self.changed_jobs.add(new.id)
        if new.phase is Phase.SUCCEEDED and (old is None or old.phase is not Phase.SUCCEEDED) \
                and new.finished_at is not None and (new.attempt_started_at or new.started_at) is not None:
            # the run that succeeded, not the waits between attempts
            self.runtimes.record(new.spec.team, new.spec.user, new.finished_at - (new.attempt_started_at or new.started_at))
        if old is not None:
            for p in live_tasks(old):
                self.node_tasks[p.node_id].pop((old.id, p.rank), None)
                self.changed_nodes.add(p.node_id)
                self._charge(old, p, -1)
        for p in live_tasks(new):
            self.node_tasks[p.node_id][(new.id, p.rank)] = p
            self.changed_nodes.add(p.node_id)
            self._charge(new, p, 1)
        if new.phase is not Phase.PENDING:
            self.pending.pop(new.id, None)
        elif new.id not in self.pending:
            if old is not None and self.pending and self.jobs[next(reversed(self.pending))].submitted_at > new.submitted_at:
                # back in the queue after a retry: keep submission order (rare, so a re-sort is fine)
                self.pending[new.id] = None
                order = sorted(self.pending, key=lambda i: (self.jobs[i].submitted_at if i != new.id else new.submitted_at, i))
                self.pending = dict.fromkeys(order)
            else:
                self.pending[new.id] = None

    def _charge(self, job: Job, task: Placement, sign: int) -> None:
        """Count a live task in what its queue (and its user in the queue) holds."""
        if not holds(job):
            return
        for listener in self.task_listeners:
            listener(job, task, sign > 0)
        node = self.nodes.get(task.node_id)
        spec = job.spec
        gpu_type = node.gpu_type if node is not None else spec.gpu_type or ""
        for key, amount in demand(spec.resources, gpu_type):
            self.queue_usage[spec.queue][key] += sign * amount
            self.user_usage[f"{spec.queue}/{spec.user}"][key] += sign * amount

    def take_changed_jobs(self) -> set[str]:
        changed, self.changed_jobs = self.changed_jobs, set()
        return changed

    def runtime_estimate(self, team: str, user: str) -> float | None:
        """The median runtime of the user's latest succeeded jobs, if any."""
        return self.runtimes.estimate(team, user)

    def estimate_for(self, spec: JobSpec) -> float | None:
        """A job's runtime estimate: its own, else its user's history (``runtime_estimate``), else None."""
        return spec.runtime_estimate_s if spec.runtime_estimate_s is not None else self.runtime_estimate(spec.team, spec.user)

    def take_changed_nodes(self) -> set[str]:
        changed, self.changed_nodes = self.changed_nodes, set()
        return changed

    def node_tasks_of(self, job_id: str) -> list[Placement]:
        job = self.jobs.get(job_id)
        return live_tasks(job) if job is not None else []

    def allocated(self, node_id: str) -> tuple[Resources, set[int]]:
        """Resources and GPU indices held by live tasks on a node."""
        used = Resources()
        gpus: set[int] = set()
        for (job_id, _), p in self.node_tasks.get(node_id, {}).items():
            job = self.jobs[job_id]
            if not holds(job):
                continue
            used = used + job.spec.resources
            gpus.update(p.gpu_indices)
        return used, gpus

    # ---- writes --------------------------------------------------------------------------
    def create_job(self, job: Job) -> bool:
        """Store a new job; False if the id is taken."""
        key = JOBS + job.id
        res = self.store.txn([Compare(key, 0)], [Put(key, orjson.dumps(job_to_dict(job)))])
        if not res.succeeded:
            return False
        self._revs[key] = res.revision
        self.jobs[job.id] = job
        self._index(None, job)
        return True

    def update_jobs(self, new_jobs: Iterable[Job]) -> None:
        """Write changed jobs in one guarded transaction; every phase change is checked."""
        batch = {j.id: j for j in new_jobs}
        if not batch:
            return
        compares, puts = [], []
        for job in batch.values():
            old = self.jobs.get(job.id)
            if old is None:
                raise KeyError(f"job {job.id} does not exist")
            check_transition(old.phase, job.phase)
            key = JOBS + job.id
            compares.append(Compare(key, self._revs[key]))
            puts.append(Put(key, orjson.dumps(job_to_dict(job))))
        res = self.store.txn(compares, puts)
        if not res.succeeded:
            raise ConflictError(f"store changed under the control plane (keys {', '.join(res.failed_keys)})")
        for job in batch.values():
            self._revs[JOBS + job.id] = res.revision
            old = self.jobs[job.id]
            self.jobs[job.id] = job
            self._index(old, job)

    def put_node(self, node: Node) -> None:
        self._put(NODES + node.id, node_to_dict(node))
        self.nodes[node.id] = node
        self.changed_nodes.add(node.id)

    def delete_node(self, node_id: str) -> bool:
        """Forget a node that is gone for good (an autoscaled machine that was terminated); it
        must hold no live task. False if there is no such node."""
        if node_id not in self.nodes:
            return False
        if self.node_tasks.get(node_id):
            raise ValueError(f"node {node_id} still holds live tasks; it cannot be forgotten")
        key = NODES + node_id
        res = self.store.txn([Compare(key, self._revs.get(key, 0))], [Delete(key)])
        if not res.succeeded:
            raise ConflictError(f"store changed under the control plane (key {key})")
        self._revs.pop(key, None)
        del self.nodes[node_id]
        self.node_tasks.pop(node_id, None)
        self.changed_nodes.add(node_id)
        return True

    def put_team(self, team: Team) -> None:
        self._put(TEAMS + team.name, team_to_dict(team))
        self.teams[team.name] = team

    def put_queue(self, queue: QueueSpec) -> None:
        """Create or replace a queue's definition; ``queues_version`` moves on if it changed."""
        self._put(QUEUES + queue.name, queue_to_dict(queue))
        if self.queues.get(queue.name) != queue:
            self.queues[queue.name] = queue
            self.queues_version += 1

    # ---- small records of the control plane's own (fair-share history) ---------------------
    def get_record(self, name: str) -> dict | None:
        kv = self.store.get(RECORDS + name)
        if kv is None:
            return None
        self._revs[kv.key] = kv.mod_revision
        return orjson.loads(kv.value)

    def put_record(self, name: str, data: dict) -> None:
        self._put(RECORDS + name, data)

    def records(self, prefix: str) -> list[tuple[str, dict]]:
        """Every record whose name starts with ``prefix``, in name order, as (name, data)."""
        out = []
        for kv in self.store.range(RECORDS + prefix):
            self._revs[kv.key] = kv.mod_revision
            out.append((kv.key[len(RECORDS):], orjson.loads(kv.value)))
        return out

    def write_records(self, puts: dict[str, dict], deletes: Iterable[str] = ()) -> None:
        """Create, replace and delete records in one guarded transaction: all or nothing."""
        compares, ops = [], []
        for name, data in puts.items():
            key = RECORDS + name
            compares.append(Compare(key, self._revs.get(key, 0)))
            ops.append(Put(key, orjson.dumps(data)))
        for name in deletes:
            key = RECORDS + name
            compares.append(Compare(key, self._revs.get(key, 0)))
            ops.append(Delete(key))
        if not ops:
            return
        res = self.store.txn(compares, ops)
        if not res.succeeded:
            raise ConflictError(f"store changed under the control plane (keys {', '.join(res.failed_keys)})")
        for name in puts:
            self._revs[RECORDS + name] = res.revision
        for name in deletes:
            self._revs.pop(RECORDS + name, None)

    def _put(self, key: str, data: dict) -> None:
        res = self.store.txn([Compare(key, self._revs.get(key, 0))], [Put(key, orjson.dumps(data))])
        if not res.succeeded:
            raise ConflictError(f"store changed under the control plane (key {key})")
        self._revs[key] = res.revision

"""Builders for test data: jobs, nodes and snapshots in one readable line each.

    a_job("train").gpus(2).replicas(3).priority(Priority.LATENCY_CRITICAL).submitted(5.0).build()  # Job
    a_job("train").gpus(2).view()                                                                # JobView
    a_node("n1").gpus(8).gpu_type("A100").cpus(32).memory("256Gi").build_view()                   # NodeView
    a_snapshot(nodes=[a_node("n1")], pending=[a_job("a").gpus(1)], now=0, seed=0)                 # Snapshot
    a_queue("research").cohort("lab").gpus(A100=4).borrowing_limit(A100=2).build()                 # QueueSpec
    a_job("old").gpus(2).queue("research").running_on("n1", started=0.0)                          # RunningBuilder

``a_snapshot(..., running=[...], queues=[...])`` takes the GPUs, CPUs and memory of the running
jobs from the nodes they run on (lowest free GPU indices unless given), so the two always agree.

Glossary:
- *builder*: a frozen value; every setter returns a new builder, so a half-built one can be shared
  as a template (``big = a_job("x").gpus(8)``; ``big.replicas(2)`` leaves ``big`` as it was).
- *free* (nodes): what ``build_view`` reports as unused. ``.used(...)`` and ``.busy_gpus(...)``
  take from it; by default a node is empty.

Defaults are deliberately small and dull: a job asks for 0 GPUs, 1 CPU and 1 GiB per replica, one
replica, batch priority, submitted at 0; a node has 8 GPUs of type "A100", 64 CPUs and 512 GiB and
is schedulable. A test states only what it is about.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, replace

from hyperion.model import (
    Gpu,
    Hold,
    Job,
    JobSpec,
    JobView,
    Node,
    NodeView,
    Priority,
    QueueSpec,
    Resources,
    RunningView,
    Snapshot,
)
from hyperion.model.queue import gpu_key

__all__ = ["JobBuilder", "NodeBuilder", "QueueBuilder", "RunningBuilder", "a_job", "a_node", "a_queue", "a_snapshot",
           "job_view", "to_bytes"]

_UNITS = {"": 1, "k": 10**3, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12,
          "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}
_SIZE = re.compile(r"(\d+)\s*(|k|K|M|G|T|Ki|Mi|Gi|Ti)")


def to_bytes(size: int | str) -> int:
    """Bytes from an int or a size such as ``"16Gi"`` (powers of 1024) or ``"16G"`` (of 1000)."""
    if isinstance(size, int):
        return size
    m = _SIZE.fullmatch(size.strip())
    if not m:
        raise ValueError(f"size {size!r}: expected bytes or a whole number with a unit (Ki Mi Gi Ti, k M G T)")
    return int(m.group(1)) * _UNITS[m.group(2)]


@dataclass(frozen=True)
class JobBuilder:
    id: str
    team_: str = "team-a"
    priority_: Priority = Priority.BATCH
    priority_value_: int = 0
    gpus_: int = 0
    cpus_milli_: int = 1000
    memory_: int = 2**30
    gpu_type_: str | None = None
    replicas_: int = 1
    min_available_: int | None = None  # None: all replicas (a gang)
    submitted_: float = 0.0
    max_retries_: int = 0
    queue_: str = "default"
    user_: str = ""
    runtime_: float | None = None

    def team(self, name: str) -> JobBuilder:
        return replace(self, team_=name)

    def queue(self, name: str) -> JobBuilder:
        return replace(self, queue_=name)

    def user(self, name: str) -> JobBuilder:
        return replace(self, user_=name)

    def runtime(self, seconds: float | None) -> JobBuilder:
        """The runtime estimate (the spec's ``runtime_estimate``)."""
        return replace(self, runtime_=seconds)

    def running_on(self, *nodes: str, started: float | None = 0.0, checkpoint: float | None = None,
                   preempting: bool = False, gpus: tuple[tuple[int, ...], ...] | None = None) -> RunningBuilder:
        """This job running, one rank on each of ``nodes`` (GPU indices: the lowest free unless given)."""
        return RunningBuilder(self, tuple(nodes), started, checkpoint, preempting, gpus)

    def priority(self, p: Priority, value: int = 0) -> JobBuilder:
        return replace(self, priority_=p, priority_value_=value)

    def priority_value(self, value: int) -> JobBuilder:
        return replace(self, priority_value_=value)

    def gpus(self, n: int) -> JobBuilder:
        return replace(self, gpus_=n)

    def cpus(self, n: float) -> JobBuilder:
        return replace(self, cpus_milli_=round(n * 1000))

    def memory(self, size: int | str) -> JobBuilder:
        return replace(self, memory_=to_bytes(size))

    def gpu_type(self, t: str | None) -> JobBuilder:
        return replace(self, gpu_type_=t)

    def replicas(self, n: int) -> JobBuilder:
        return replace(self, replicas_=n)

    def gang(self, n: int) -> JobBuilder:
        """``n`` replicas that must all be placed together."""
        return replace(self, replicas_=n, min_available_=n)

    def submitted(self, at: float) -> JobBuilder:
        return replace(self, submitted_=at)

    def max_retries(self, n: int) -> JobBuilder:
        return replace(self, max_retries_=n)

    @property
    def per_replica(self) -> Resources:
        return Resources(self.gpus_, self.cpus_milli_, self.memory_)

    def spec(self) -> JobSpec:
        return JobSpec(name=self.id, team=self.team_, priority=self.priority_, priority_value=self.priority_value_,
                       resources=self.per_replica, gpu_type=self.gpu_type_, replicas=self.replicas_,
                       min_available=self.min_available_ or self.replicas_, max_retries=self.max_retries_,
                       command=("true",), queue=self.queue_, user=self.user_, runtime_estimate_s=self.runtime_)

    def build(self) -> Job:
        """A PENDING job that was never placed."""
        return Job(id=self.id, spec=self.spec(), submitted_at=self.submitted_)

    def view(self) -> JobView:
        """What the scheduler sees of the job."""
        return job_view(self.build())


@dataclass(frozen=True)
class NodeBuilder:
    id: str
    gpus_: int = 8
    gpu_type_: str = "A100"
    cpus_milli_: int = 64_000
    memory_: int = 512 * 2**30
    busy_gpus_: tuple[int, ...] = ()
    used_: Resources = Resources()  # cpus and memory held by tasks (GPUs come from busy_gpus_)
    schedulable_: bool = True
    labels_: tuple[tuple[str, str], ...] = ()

    def gpus(self, n: int) -> NodeBuilder:
        return replace(self, gpus_=n)

    def gpu_type(self, t: str) -> NodeBuilder:
        return replace(self, gpu_type_=t)

    def cpus(self, n: float) -> NodeBuilder:
        return replace(self, cpus_milli_=round(n * 1000))

    def memory(self, size: int | str) -> NodeBuilder:
        return replace(self, memory_=to_bytes(size))

    def busy_gpus(self, *indices: int) -> NodeBuilder:
        """These GPU indices are held by running tasks."""
        return replace(self, busy_gpus_=tuple(sorted(set(self.busy_gpus_) | set(indices))))

    def used(self, cpus: float = 0, memory: int | str = 0) -> NodeBuilder:
        """CPUs and memory held by running tasks."""
        return replace(self, used_=Resources(0, round(cpus * 1000), to_bytes(memory)))

    def unschedulable(self) -> NodeBuilder:
        """Cordoned or not ready: the scheduler must not place anything here."""
        return replace(self, schedulable_=False)

    def labels(self, **labels: str) -> NodeBuilder:
        return replace(self, labels_=tuple(sorted(labels.items())))

    @property
    def capacity(self) -> Resources:
        return Resources(self.gpus_, self.cpus_milli_, self.memory_)

    def build(self) -> Node:
        return Node(id=self.id, hostname=self.id, gpus=tuple(Gpu(i) for i in range(self.gpus_)),
                    gpu_type=self.gpu_type_, capacity=self.capacity, labels=self.labels_, cordoned=not self.schedulable_)

    def build_view(self) -> NodeView:
        if any(not 0 <= i < self.gpus_ for i in self.busy_gpus_):
            raise ValueError(f"node {self.id}: busy GPU indices {self.busy_gpus_} outside 0..{self.gpus_ - 1}")
        free_gpus = tuple(i for i in range(self.gpus_) if i not in self.busy_gpus_)
        free = self.capacity - Resources(len(self.busy_gpus_), self.used_.cpus_milli, self.used_.memory)
        return NodeView(self.id, self.gpu_type_, self.capacity, free, free_gpus, self.schedulable_, self.labels_)


def job_view(job: Job) -> JobView:
    """The scheduler's view of a job, field for field as the live snapshotter builds it."""
    s = job.spec
    r = job.routed
    return JobView(id=job.id, team=s.team, queue=s.queue, priority=s.priority, priority_value=s.priority_value,
                   submitted_at=job.submitted_at, per_replica=s.resources, replicas=s.replicas,
                   min_available=s.min_available, gpu_type=s.gpu_type or (r.gpu_type if r is not None else None),
                   runtime_estimate_s=s.runtime_estimate_s, user=s.user,
                   cluster=r.cluster if r is not None else None, start_after=r.start_after if r is not None else None,
                   waits_for=r.waits_for() if r is not None else "")


@dataclass(frozen=True)
class RunningBuilder:
    job: JobBuilder
    nodes: tuple[str, ...]
    started: float | None = 0.0
    checkpoint: float | None = None
    preempting: bool = False
    gpus: tuple[tuple[int, ...], ...] | None = None

    def view(self, gpu_type: str, gpus: tuple[tuple[int, ...], ...]) -> RunningView:
        j = self.job
        return RunningView(j.id, j.team_, j.queue_, j.priority_, j.per_replica, tuple(zip(self.nodes, gpus, strict=True)), gpu_type,
                           self.started, j.runtime_, j.priority_value_, self.checkpoint, self.preempting, j.user_)


@dataclass(frozen=True)
class QueueBuilder:
    name: str
    cohort_: str | None = None
    weight_: float = 1.0
    nominal_: tuple[tuple[str, int], ...] = ()
    borrowing_: tuple[tuple[str, int], ...] = ()
    lending_: tuple[tuple[str, int], ...] = ()

    def cohort(self, name: str | None) -> QueueBuilder:
        return replace(self, cohort_=name)

    def weight(self, w: float) -> QueueBuilder:
        return replace(self, weight_=w)

    def gpus(self, **per_type: int) -> QueueBuilder:
        """Nominal GPU quota per type: ``.gpus(A100=4, H100=2)``."""
        return replace(self, nominal_=_merge(self.nominal_, {gpu_key(t): n for t, n in per_type.items()}))

    def cpus(self, n: float) -> QueueBuilder:
        return replace(self, nominal_=_merge(self.nominal_, {"cpus": round(n * 1000)}))

    def memory(self, size: int | str) -> QueueBuilder:
        return replace(self, nominal_=_merge(self.nominal_, {"memory": to_bytes(size)}))

    def borrowing_limit(self, **per_type: int) -> QueueBuilder:
        return replace(self, borrowing_=_merge(self.borrowing_, {gpu_key(t): n for t, n in per_type.items()}))

    def lending_limit(self, **per_type: int) -> QueueBuilder:
        return replace(self, lending_=_merge(self.lending_, {gpu_key(t): n for t, n in per_type.items()}))

    def build(self) -> QueueSpec:
        return QueueSpec(self.name, self.cohort_, self.weight_, self.nominal_, self.borrowing_, self.lending_)


def _merge(old: tuple[tuple[str, int], ...], new: dict[str, int]) -> tuple[tuple[str, int], ...]:
    return tuple(sorted({**dict(old), **new}.items()))


def a_queue(name: str) -> QueueBuilder:
    return QueueBuilder(name)


def a_job(name: str = "job") -> JobBuilder:
    return JobBuilder(name)


def a_node(node_id: str = "n1") -> NodeBuilder:
    return NodeBuilder(node_id)


def a_snapshot(nodes: Iterable[NodeBuilder | NodeView] = (), pending: Iterable[JobBuilder | JobView | Job] = (),
               now: float = 0.0, seed: int = 0, running: Iterable[RunningBuilder] = (),
               queues: Iterable[QueueBuilder | QueueSpec] = (), history: dict | None = None,
               holds: Iterable[Hold] = ()) -> Snapshot:
    """A snapshot of the given nodes and pending jobs; builders, views and ``Job`` values all do.
    Running jobs take their resources from the nodes they run on."""
    node_views = [n.build_view() if isinstance(n, NodeBuilder) else n for n in nodes]
    at = {v.id: k for k, v in enumerate(node_views)}
    running_views = []
    for rb in running:
        r, chosen = rb.job.per_replica, []
        for k, node_id in enumerate(rb.nodes):
            if node_id not in at:
                raise ValueError(f"running job {rb.job.id}: no node {node_id!r} in the snapshot")
            n = node_views[at[node_id]]
            gpus = rb.gpus[k] if rb.gpus else n.free_gpus[: r.gpus]
            if len(gpus) != r.gpus or not set(gpus) <= set(n.free_gpus) or not r.fits_in(n.free):
                raise ValueError(f"running job {rb.job.id}: node {node_id} has no room for it")
            node_views[at[node_id]] = NodeView(n.id, n.gpu_type, n.capacity, n.free - r,
                                               tuple(g for g in n.free_gpus if g not in gpus), n.schedulable, n.labels)
            chosen.append(tuple(gpus))
        running_views.append(rb.view(node_views[at[rb.nodes[0]]].gpu_type if rb.nodes else "", tuple(chosen)))
    job_views = tuple(j.view() if isinstance(j, JobBuilder) else job_view(j) if isinstance(j, Job) else j
                      for j in pending)
    queue_specs = {q.name: q.build() if isinstance(q, QueueBuilder) else q for q in queues}
    return Snapshot(now=now, seed=seed, nodes=tuple(node_views), pending=job_views, running=tuple(running_views),
                    queues=queue_specs, history=history or {}, holds=tuple(holds))


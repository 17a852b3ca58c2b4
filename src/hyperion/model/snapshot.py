"""The immutable input of a scheduling decision.

A snapshot holds everything a decision may read, ``now`` and ``seed`` included, so the same
snapshot always yields the same plan, in the live control plane and in the simulator alike.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from hyperion.model.cost import BudgetView
from hyperion.model.job import Priority
from hyperion.model.plan import Hold
from hyperion.model.queue import QueueSpec
from hyperion.model.resources import Resources


@dataclass(frozen=True, slots=True)
class NodeView:
    id: str
    gpu_type: str
    capacity: Resources
    free: Resources
    free_gpus: tuple[int, ...]  # GPU indices not held by any task
    schedulable: bool = True  # ready and not cordoned
    labels: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class JobView:
    id: str
    team: str
    queue: str
    priority: Priority
    priority_value: int
    submitted_at: float
    per_replica: Resources
    replicas: int
    min_available: int
    gpu_type: str | None = None
    runtime_estimate_s: float | None = None  # from the spec, else from the user's history
    user: str = ""
    attained_gpu_s: float = 0.0  # GPU-seconds run by its earlier attempts (least-attained-service)
    cluster: str | None = None  # the federation member it is routed to: only nodes labelled with it
    start_after: float | None = None  # the federation delayed it until then (temporal shifting)
    waits_for: str = ""  # why it waits, e.g. "a cleaner hour (expected 120 g CO2 vs 310 g now)"


@dataclass(frozen=True, slots=True)
class RunningView:
    """A job holding resources: placed and not yet finished. ``placements`` are its live ranks
    as (node id, GPU indices); each holds ``per_replica``. ``preempting``: it was chosen as a
    victim and is being stopped (it still holds its resources until its ranks exit)."""

    id: str
    team: str
    queue: str
    priority: Priority
    per_replica: Resources
    placements: tuple[tuple[str, tuple[int, ...]], ...]
    gpu_type: str  # of the node(s) it runs on
    started_at: float | None
    runtime_estimate_s: float | None = None
    priority_value: int = 0
    last_checkpoint_at: float | None = None
    preempting: bool = False
    user: str = ""
    attained_gpu_s: float = 0.0  # GPU-seconds run by its earlier attempts (not counting this one)

    def attained_at(self, now: float) -> float:
        """GPU-seconds run by every attempt up to ``now``, this one included."""
        ran = 0.0 if self.started_at is None else max(0.0, now - self.started_at)
        return self.attained_gpu_s + self.gpus * ran

    @property
    def gpus(self) -> int:
        """GPUs held in total, all live ranks."""
        return self.per_replica.gpus * len(self.placements)

    @property
    def expected_end(self) -> float | None:
        if self.started_at is None or self.runtime_estimate_s is None:
            return None
        return self.started_at + self.runtime_estimate_s


@dataclass(frozen=True, slots=True)
class Snapshot:
    now: float
    seed: int
    nodes: tuple[NodeView, ...]
    pending: tuple[JobView, ...]
    # optional: ``model.nodeindex.NodeIndex`` of ``nodes``, kept up to date by a driver that builds
    # snapshots incrementally; ``schedule`` builds one when absent
    node_index: object | None = None
    running: tuple[RunningView, ...] = ()
    # queue name -> its spec; a queue not listed has no quota (weight 1, no cohort)
    queues: Mapping[str, QueueSpec] = field(default_factory=dict)
    # queue name -> resource key -> amount held by its running jobs; None: derived from ``running``
    # (a driver that keeps it incrementally passes it so a cycle need not sum every running job)
    usage: Mapping[str, Mapping[str, int]] | None = None
    # decayed past usage (resource-seconds, see ``core.fairshare``) by queue name and by
    # "queue/user"; read by fair-share ordering
    history: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    # holds decided by an earlier cycle for jobs not in ``pending`` (an incremental cycle offers
    # only new arrivals; the head job's reservation must still be honoured)
    holds: tuple[Hold, ...] = ()
    # teams' budgets with what each spent this period, and USD per GPU-hour by GPU type ("cpu":
    # per core-hour) for a job's expected cost: read by the ``budget`` plugin (``core.budget``)
    budgets: tuple[BudgetView, ...] = ()
    prices: Mapping[str, float] = field(default_factory=dict)

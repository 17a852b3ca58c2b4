"""The immutable input of a scheduling decision.

A snapshot holds everything a decision may read, ``now`` and ``seed`` included, so the same
snapshot always yields the same plan, in the live control plane and in the simulator alike.
"""

from __future__ import annotations

from dataclasses import dataclass

from hyperion.model.job import Priority
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
    runtime_estimate_s: float | None = None


@dataclass(frozen=True, slots=True)
class RunningView:
    """A job holding resources: placed and not yet finished."""

    id: str
    team: str
    queue: str
    priority: Priority
    gpus: int  # held in total, all replicas
    gpu_type: str  # of the node(s) it runs on
    started_at: float | None
    runtime_estimate_s: float | None = None

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

"""Value types of the autoscaler: node pools, the instances they own, what can be launched, what
pending jobs ask for, and the plan ``core.autoscale.reconcile`` returns.

Glossary:
- *node pool* (``NodePoolSpec``, ``kind: NodePool``): a set of interchangeable machines a
  provider can launch (Karpenter's idea): which instance or GPU types, which capacity types in
  order of preference (spot, on-demand), at least ``min_nodes`` and at most ``max_nodes``, and how
  long a node may stay idle before it is released (scale to zero).
- *instance*: one machine a pool asked a provider for, from the request to its end. Its
  ``state`` moves only along ``INSTANCE_TRANSITIONS`` (checked on every write); ``version`` grows
  with each write so a stale writer can be refused.
- *offer* (``InstanceOffer``): one instance type a pool may launch, in one zone, on one capacity
  type, with its price and (for spot) its expected interruption rate.
- *demand*: a pending job the current nodes cannot take; each replica must fit on one machine. A
  job the federation routed to a member (``Demand.cluster``) can use only the pools whose nodes
  join that member (``NodePoolSpec.cluster``); a job routed nowhere only pools that join none.
- *task load* (``TaskLoad``, ``ScaleSnapshot.tasks``): one task on a ready instance's node: its
  job, the GPUs it holds, when it started, and whether it is *movable* (its job checkpoints, so
  it can be drained and resume elsewhere). Consolidation reads it.
- *consolidation* (``NodePoolSpec.consolidate_after_s``): draining an under-used node whose
  movable tasks, all running at least that long, fit in the free GPUs of the pool's other ready
  nodes, so the pool costs less (Karpenter's idea).
- *plan* (``ScalePlan``): launches (with a request id that makes them idempotent), terminations,
  drains, and why each job that still cannot run cannot.

Units: seconds since the epoch, USD per hour, GPUs.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field


class InstanceState(enum.Enum):
    REQUESTED = "requested"      # the plan asked for it; the provider has not answered
    LAUNCHING = "launching"      # the provider accepted the request
    BOOTING = "booting"          # the machine is up; its agent has not joined yet
    READY = "ready"              # its agent joined: a node jobs can use
    DRAINING = "draining"        # cordoned (idle timeout, consolidation, spot notice): jobs checkpoint and leave
    TERMINATING = "terminating"  # the provider was asked to end it
    TERMINATED = "terminated"
    FAILED = "failed"            # the provider could not launch it, or it died

    @property
    def live(self) -> bool:
        """Counts against the pool's ``max_nodes`` (it exists or will)."""
        return self in _LIVE


_LIVE = frozenset({InstanceState.REQUESTED, InstanceState.LAUNCHING, InstanceState.BOOTING, InstanceState.READY,
                   InstanceState.DRAINING})
S = InstanceState
INSTANCE_TRANSITIONS: Mapping[InstanceState, frozenset[InstanceState]] = {
    S.REQUESTED: frozenset({S.LAUNCHING, S.READY, S.FAILED, S.TERMINATING}),
    S.LAUNCHING: frozenset({S.BOOTING, S.READY, S.FAILED, S.TERMINATING}),
    S.BOOTING: frozenset({S.READY, S.FAILED, S.TERMINATING}),
    S.READY: frozenset({S.DRAINING, S.TERMINATING, S.FAILED}),
    S.DRAINING: frozenset({S.READY, S.TERMINATING, S.FAILED}),
    S.TERMINATING: frozenset({S.TERMINATED, S.FAILED}),
    S.TERMINATED: frozenset(),
    S.FAILED: frozenset({S.TERMINATING, S.TERMINATED}),
}


class InstanceTransitionError(ValueError):
    pass


def check_instance_transition(old: InstanceState, new: InstanceState) -> None:
    """Raise unless an instance may move from ``old`` to ``new`` (staying put is allowed)."""
    if old is not new and new not in INSTANCE_TRANSITIONS[old]:
        allowed = ", ".join(sorted(s.value for s in INSTANCE_TRANSITIONS[old])) or "none (it is final)"
        raise InstanceTransitionError(f"an instance cannot go from {old.value} to {new.value}; from {old.value}: {allowed}")


SPOT, ON_DEMAND = "spot", "on-demand"


@dataclass(frozen=True, slots=True)
class NodePoolSpec:
    name: str
    provider: str  # "local", "aws", ...
    instance_types: tuple[str, ...] = ()  # allowed; empty: any the provider offers
    gpu_types: tuple[str, ...] = ()  # allowed; empty: any
    capacity_types: tuple[str, ...] = (SPOT, ON_DEMAND)  # in order of preference
    min_nodes: int = 0
    max_nodes: int = 10
    idle_timeout_s: float = 600.0  # a ready node without tasks this long is released (down to min_nodes)
    boot_s: float = 120.0  # expected time from request to a ready node (deadline checks)
    cluster: str | None = None  # the federation member its nodes join (label hyperion.io/cluster); None: none
    consolidate_after_s: float | None = None  # move checkpointable jobs off an under-used node after this; None: never
    region: str = ""  # the provider's region (aws); "": the control plane's default region

    def __post_init__(self) -> None:
        if not 0 <= self.min_nodes <= self.max_nodes:
            raise ValueError(f"node pool {self.name!r}: need 0 <= min_nodes ({self.min_nodes}) <= max_nodes ({self.max_nodes})")
        unknown = [c for c in self.capacity_types if c not in (SPOT, ON_DEMAND)]
        if unknown or not self.capacity_types or len(set(self.capacity_types)) != len(self.capacity_types):
            raise ValueError(f"node pool {self.name!r}: capacity_types must list spot and/or on-demand once each, "
                             f"got {list(self.capacity_types)}")


@dataclass(frozen=True, slots=True)
class InstanceOffer:
    pool: str
    instance_type: str
    gpus: int
    usd_per_h: float
    gpu_type: str | None = None
    spot: bool = False
    zone: str = ""
    interruptions_per_h: float | None = None  # spot: expected interruptions per hour; None: unknown

    @property
    def capacity_type(self) -> str:
        return SPOT if self.spot else ON_DEMAND


@dataclass(frozen=True, slots=True)
class Instance:
    id: str  # ours, stable from the request on (the provider's id may come later)
    pool: str
    instance_type: str
    gpus: int
    state: InstanceState
    request_id: str
    created_at: float
    gpu_type: str | None = None
    spot: bool = False
    zone: str = ""
    usd_per_h: float = 0.0
    version: int = 0
    provider_id: str = ""
    node_id: str = ""  # the agent's node id once it joined
    ready_at: float | None = None
    idle_since: float | None = None  # READY and without a task since then; None: busy (or not ready)
    notice_at: float | None = None  # a spot interruption notice (or rebalance recommendation) came then
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Demand:
    job_id: str
    gpus_per_replica: int
    replicas: int = 1
    gpu_type: str | None = None
    spot_ok: bool = False  # tolerates interruption (checkpoints)
    deadline: float | None = None
    runtime_estimate_s: float | None = None
    checkpoint_interval_s: float | None = None
    submitted_at: float = 0.0
    priority: int = 0
    pool: str | None = None  # only this pool
    cluster: str | None = None  # the federation member it is routed to: only pools whose nodes join it


@dataclass(frozen=True, slots=True)
class TaskLoad:
    """One task (a replica of a job) on an instance's node."""

    job_id: str
    gpus: int
    movable: bool  # its job checkpoints (a checkpoint dir, or a checkpoint taken): it may be drained and resume
    started_at: float  # when its current attempt started (or was placed)
    gpu_type: str | None = None  # the GPU type its job asks for; None: any


@dataclass(frozen=True, slots=True)
class ScaleSnapshot:
    now: float
    seed: int
    pools: tuple[NodePoolSpec, ...]
    offers: tuple[InstanceOffer, ...]
    instances: tuple[Instance, ...]
    demand: tuple[Demand, ...]
    used_gpus: Mapping[str, int] = field(default_factory=dict)  # instance id -> GPUs its tasks hold
    tasks: Mapping[str, tuple[TaskLoad, ...]] = field(default_factory=dict)  # instance id -> the tasks on its node


@dataclass(frozen=True, slots=True)
class Launch:
    request_id: str  # the provider launches a request once, whatever the retries
    pool: str
    instance_type: str
    count: int
    gpus: int  # per instance
    usd_per_h: float  # per instance
    gpu_type: str | None = None
    spot: bool = False
    zone: str = ""
    jobs: tuple[str, ...] = ()  # the pending jobs it is for (empty: min_nodes)
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Terminate:
    instance_id: str
    pool: str
    reason: str


@dataclass(frozen=True, slots=True)
class Drain:
    instance_id: str
    pool: str
    reason: str


@dataclass(frozen=True, slots=True)
class ScalePlan:
    now: float
    launches: tuple[Launch, ...] = ()
    terminations: tuple[Terminate, ...] = ()
    drains: tuple[Drain, ...] = ()
    waiting: Mapping[str, str] = field(default_factory=dict)  # job id -> why capacity is not being added for it
    placed: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # job id -> instances (existing or requested) it fits on

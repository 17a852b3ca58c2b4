"""Jobs: what a user asked for (``JobSpec``) and what became of it (``Job``).

Glossary:
- *job*: one submission; it has ``replicas`` ranks that run together.
- *attempt*: a job is started again after a preemption or a retried failure; each start is one
  attempt (1, 2, ...). Agents key their work by (job id, attempt, rank), so a command delivered
  twice never starts a process twice.
- *placement*: where one rank of the current attempt runs: a node and the GPU indices on it.
- *phase*: the job's place in its lifecycle; ``TRANSITIONS`` lists the allowed moves and every
  write is checked against it (``check_transition``).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from hyperion.model.federation import FedPrefs, Routing
from hyperion.model.resources import Resources


class Priority(enum.IntEnum):
    """Priority classes; a higher class may preempt a lower one, never the reverse."""

    BATCH = 0
    LATENCY_CRITICAL = 1
    ULTRA_LOW_LATENCY = 2

    @property
    def label(self) -> str:
        return self.name.lower().replace("_", "-")

    @classmethod
    def from_label(cls, label: str) -> Priority:
        return cls[label.upper().replace("-", "_")]


class Framework(enum.Enum):
    PYTORCH = "pytorch"
    JAX = "jax"
    TENSORFLOW = "tensorflow"
    CUSTOM_CONTAINER = "custom-container"
    COMMAND = "command"


class Phase(enum.Enum):
    PENDING = "pending"
    SCHEDULED = "scheduled"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    PREEMPTED = "preempted"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL


TERMINAL = frozenset({Phase.SUCCEEDED, Phase.FAILED, Phase.CANCELLED})

# old phase -> phases it may move to. PREEMPTED is a resting state between attempts: the job was
# stopped to make room and goes back to PENDING to be placed again. RUNNING -> PENDING is a retry
# (a failed attempt with retries left, or a lost node) once every rank of the attempt has exited.
TRANSITIONS: dict[Phase, frozenset[Phase]] = {
    Phase.PENDING: frozenset({Phase.SCHEDULED, Phase.CANCELLED, Phase.FAILED}),
    Phase.SCHEDULED: frozenset({Phase.RUNNING, Phase.PENDING, Phase.PREEMPTED, Phase.SUCCEEDED,
                                Phase.FAILED, Phase.CANCELLED}),
    Phase.RUNNING: frozenset({Phase.SUCCEEDED, Phase.FAILED, Phase.CANCELLED, Phase.PREEMPTED, Phase.PENDING}),
    Phase.PREEMPTED: frozenset({Phase.PENDING, Phase.CANCELLED, Phase.FAILED}),
    Phase.SUCCEEDED: frozenset(),
    Phase.FAILED: frozenset(),
    Phase.CANCELLED: frozenset(),
}


class TransitionError(ValueError):
    """A write tried to move a job along an edge that ``TRANSITIONS`` does not allow."""


def check_transition(old: Phase, new: Phase) -> None:
    if old is new:
        return
    if new not in TRANSITIONS[old]:
        raise TransitionError(f"job phase {old.value} -> {new.value} is not allowed")


@dataclass(frozen=True, slots=True)
class JobSpec:
    """A validated job request. Built from the user's document by ``hyperion.api.spec``."""

    name: str
    team: str
    user: str = ""
    framework: Framework = Framework.COMMAND
    priority: Priority = Priority.BATCH
    priority_value: int = 0
    resources: Resources = Resources()  # per replica
    gpu_type: str | None = None
    replicas: int = 1
    min_available: int = 1  # gang size: ranks that must be placed together
    queue: str = "default"
    command: tuple[str, ...] = ()
    image: str | None = None
    env: tuple[tuple[str, str], ...] = ()
    working_dir: str | None = None
    checkpoint_dir: str | None = None
    deadline: float | None = None  # seconds since the epoch
    data_location: str | None = None
    data_size: int | None = None  # bytes
    max_price_per_hour: float | None = None
    labels: tuple[tuple[str, str], ...] = ()
    max_retries: int = 0
    runtime_estimate_s: float | None = None
    grace_period_s: float = 10.0
    # idle reclaim: stop (with a checkpoint) once every GPU stays below this percent for the window
    idle_gpu_utilization: float | None = None
    idle_window_s: float | None = None
    federation: FedPrefs | None = None  # its knobs for the federation (document: ``placement:``)

    @property
    def total(self) -> Resources:
        return self.resources.scaled(self.replicas)


@dataclass(frozen=True, slots=True)
class Placement:
    rank: int
    node_id: str
    gpu_indices: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class Job:
    id: str
    spec: JobSpec
    phase: Phase = Phase.PENDING
    submitted_at: float = 0.0
    attempt: int = 0  # 0 until first placed
    placements: tuple[Placement, ...] = ()
    started_at: float | None = None  # when its first attempt started running
    finished_at: float | None = None
    exit_code: int | None = None
    reason: str = ""  # why the job is in its phase (last failure, cancellation, preemption)
    failures: int = 0  # attempts that ended in failure (count against spec.max_retries)
    rank_exits: tuple[tuple[int, int], ...] = field(default=())  # (rank, exit code) of this attempt
    attempt_started_at: float | None = None  # when the current attempt started running
    scheduled_at: float | None = None  # when the current attempt was placed
    attained_gpu_s: float = 0.0  # GPU-seconds run by its earlier attempts (least-attained-service)
    placed_estimate_s: float | None = None  # the runtime estimate the scheduler placed this attempt with
    last_checkpoint_at: float | None = None  # when the job last reported a complete checkpoint (any attempt)
    checkpoint_path: str | None = None  # that checkpoint; the next attempt resumes from it
    # preempted by the fast path: its resources went to an urgent job at once, while its ranks are
    # frozen, then asked to checkpoint and stopped; they hold nothing any more
    handed_over: bool = False
    routed: Routing | None = None  # where the federation sent it (None: no federation members)

    @property
    def team(self) -> str:
        return self.spec.team

    @property
    def node(self) -> str | None:
        return self.placements[0].node_id if self.placements else None

"""The output of a scheduling decision: assignments to apply and, for every job left pending,
a typed verdict with its reasons (the same data feeds ``hyperion explain``)."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from hyperion.model.job import Placement
from hyperion.model.resources import Resources


class VerdictCode(enum.Enum):
    OK = "ok"
    UNSCHEDULABLE = "unschedulable"  # no room now; freeing resources (evictions, exits) could help
    UNRESOLVABLE = "unresolvable"    # no node could ever host it as the cluster stands
    SKIP = "skip"
    ERROR = "error"


@dataclass(frozen=True, slots=True)
class Verdict:
    code: VerdictCode
    reasons: tuple[str, ...] = ()
    plugin: str = ""


@dataclass(frozen=True, slots=True)
class Assign:
    job_id: str
    placements: tuple[Placement, ...]


@dataclass(frozen=True, slots=True)
class Evict:
    """Stop a running job to make room; it goes back to its queue and resumes from its checkpoint."""

    job_id: str
    preemptor: str  # the job it makes room for
    reason: str
    # the fast path (``handover_class``): the preemptor was placed on this job's resources in the
    # same plan; the job is frozen at once and checkpoints and stops in the background
    handover: bool = False


@dataclass(frozen=True, slots=True)
class Hold:
    """Resources promised to a pending job: on each listed node, other jobs may not take
    ``amount`` of what is free now.

    ``kind`` ``reservation``: an EASY-backfill reservation; a job that ends by ``until`` may still
    use the resources (None: no job may). ``nomination``: the free capacity a preemptor counts on
    besides what its victims free (and, once they have stopped, what they freed), kept for it
    until it is placed; no other job may use it."""

    job_id: str
    until: float | None
    amounts: tuple[tuple[str, Resources], ...]  # (node id, held amount)
    kind: str = "reservation"
    # nominations: the quota the preemptor's placement will charge, (queue, GPU type, amount),
    # kept charged while the hold is carried into cycles that do not reconsider the preemptor
    quota: tuple[tuple[str, str, Resources], ...] = ()
    # nominations: what each victim frees on the nodes the preemptor counts on, (victim job id,
    # node id, amount); held for the preemptor too once that victim has stopped
    victims: tuple[tuple[str, str, Resources], ...] = ()


@dataclass(frozen=True, slots=True)
class Plan:
    assignments: tuple[Assign, ...] = ()
    verdicts: dict[str, Verdict] = field(default_factory=dict)  # job id -> why it is still pending
    evictions: tuple[Evict, ...] = ()
    holds: tuple[Hold, ...] = ()
    order: tuple[str, ...] = ()  # the pending jobs in the order the cycle considered them
    # the earliest time at which this plan may change with nothing else happening (a running job
    # moves up a service level while a job waits); None: only when something changes
    wake_at: float | None = None

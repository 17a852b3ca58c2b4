"""The output of a scheduling decision: assignments to apply and, for every job left pending,
a typed verdict with its reasons (the same data feeds ``hyperion explain``)."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from hyperion.model.job import Placement


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
class Plan:
    assignments: tuple[Assign, ...] = ()
    verdicts: dict[str, Verdict] = field(default_factory=dict)  # job id -> why it is still pending

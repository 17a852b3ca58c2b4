"""What every trace reader returns, and how readers report bad input.

Glossary:
- *trace job*: one job of a trace as the trace saw it: when it was submitted, how many GPUs it
  held and for how long it ran uninterrupted (on the trace's own GPUs).
- *relative time*: seconds since the trace's first submission (``Trace.start`` is that instant
  as seconds since the epoch, UTC, when the trace says; None when it only has relative times).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hyperion.model.job import Priority


class TraceError(ValueError):
    """A trace that cannot be read: names the file, the line (1-based, the header is line 1)
    and the field, and says what to do."""


@dataclass(frozen=True, slots=True)
class TraceJob:
    id: str
    submit_s: float            # relative time of submission (>= 0)
    duration_s: float          # uninterrupted run time on the trace's GPUs (> 0)
    gpus: int                  # GPUs the job holds in total (>= 0)
    team: str = "default"      # team / virtual cluster; becomes the job's queue
    user: str = ""
    gpu_type: str | None = None  # a required GPU type, None: any
    cpus_milli: int = 0        # in total (0: not constrained)
    memory: int = 0            # bytes in total (0: not constrained)
    priority: Priority = Priority.BATCH
    line: int = 0              # line of the trace file it came from
    one_node: bool = False     # it cannot span nodes (a Kubernetes pod); else a wide job is split into ranks


@dataclass(frozen=True, slots=True)
class Trace:
    name: str                   # e.g. "philly:/path/philly.csv"
    jobs: tuple[TraceJob, ...]  # sorted by (submit_s, id)
    start: float | None = None  # epoch seconds (UTC) of relative time 0, when known
    # rows read but not replayable, by reason (e.g. {"never scheduled": 897}); bad rows raise
    skipped: dict[str, int] = field(default_factory=dict)

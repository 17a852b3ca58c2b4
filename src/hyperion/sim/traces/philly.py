"""Reader for the Microsoft Philly job trace as published by the Pollux authors (``philly.csv``).

Format: CSV, header ``timestamp,duration,num_gpus,gpu_time,cluster``, one row per job, rows in
no particular order; may be gzip-compressed (``.gz``).

Origin: ``petuum/adaptdl:simulator/traces/philly.csv`` (Pollux, OSDI'21), derived from the
Microsoft Philly trace (``msr-fiddle/philly-traces``, Jeon et al., ATC'19). No schema document
exists; the meanings below are how Pollux's ``simulator/workload.py`` uses the columns.

Columns:
- ``timestamp``: submission time, ``YYYY-MM-DD HH:MM:SS``, no time zone. Philly logs are
  US-Pacific local time, so we read it in ``tz`` (default ``America/Los_Angeles``). A wall time
  that occurs twice (the hour repeated when DST ends) is taken at its first occurrence
  (``fold=0``); one that does not exist (skipped when DST starts) gets the offset in force
  before the change. A timestamp that carries its own UTC offset is taken as written.
- ``duration``: run time in seconds (float). Rows with ``duration <= 0`` are not replayable:
  they are counted in ``Trace.skipped["zero duration"]``.
- ``num_gpus``: GPUs the job held (a whole number >= 0; ``"1.0"`` is accepted as 1).
- ``gpu_time``: ``duration * num_gpus``; not used (and not checked).
- ``cluster``: hash of the Philly virtual cluster (VC) the job ran in.

Our interpretation: every row is one batch job of ``num_gpus`` GPUs that ran ``duration``
seconds uninterrupted; ``team`` is the VC hash, so each VC becomes a queue; ``id`` is
``philly-<line>`` (line of the file, header = line 1). The trace has no user, GPU model, CPU,
memory or job-status columns; those fields keep their defaults.
"""

from __future__ import annotations

import math
from datetime import datetime
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from hyperion.sim.traces.base import Trace, TraceError, TraceJob
from hyperion.sim.traces.csvfile import FIX, rows, whole

COLUMNS = ("timestamp", "duration", "num_gpus", "gpu_time", "cluster")
DEFAULT_TZ = "America/Los_Angeles"


def read(path: str, tz: str = DEFAULT_TZ) -> Trace:
    """Read a Philly ``philly.csv`` file; ``tz`` is the time zone its timestamps are written in."""
    zone = _zone(tz)
    parsed: list[tuple[float, str, float, int, str, int]] = []  # (epoch, id, duration, gpus, team, line)
    skipped_zero = 0
    for line, (timestamp, duration_text, num_gpus, _, cluster) in rows(path, COLUMNS, "a Philly (Pollux) trace"):
        epoch = _epoch(timestamp, zone, path, line)
        duration = _duration(duration_text, path, line)
        gpus = whole(num_gpus, path, line, "num_gpus")
        team = cluster.strip()
        if not team:
            raise TraceError(f"{path}:{line}: cluster: expected a virtual-cluster id, got ''; {FIX}")
        if duration <= 0:
            skipped_zero += 1
            continue
        parsed.append((epoch, f"philly-{line}", duration, gpus, team, line))
    start = min((p[0] for p in parsed), default=None)
    parsed.sort(key=lambda p: (p[0], p[1]))
    jobs = tuple(
        TraceJob(id=job_id, submit_s=epoch - start, duration_s=duration, gpus=gpus, team=team, line=line)
        for epoch, job_id, duration, gpus, team, line in parsed
    )
    skipped = {"zero duration": skipped_zero} if skipped_zero else {}
    return Trace(name=f"philly:{path}", jobs=jobs, start=start, skipped=skipped)


@lru_cache(maxsize=8)
def _zone(tz: str) -> ZoneInfo:
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError) as error:
        raise ValueError(f"unknown time zone {tz!r}; use an IANA name such as {DEFAULT_TZ!r}") from error


def _epoch(text: str, zone: ZoneInfo, path: str, line: int) -> float:
    try:
        if len(text) < 19 or text[10] not in " T":  # a date alone would silently mean midnight
            raise ValueError
        when = datetime.fromisoformat(text)
    except ValueError:
        raise TraceError(f"{path}:{line}: timestamp: expected YYYY-MM-DD HH:MM:SS (local time), got {text!r}; "
                         f"{FIX}") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=zone)
    return when.timestamp()


def _duration(text: str, path: str, line: int) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise TraceError(f"{path}:{line}: duration: expected a number of seconds, got {text!r}; {FIX}")
    return value

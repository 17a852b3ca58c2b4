"""Trace readers: turn published cluster traces into ``Trace``s of ``TraceJob``s (see ``base``).

One module per format, each documenting the format, its origin, its columns and how we read
them: ``philly`` (Microsoft Philly jobs, Pollux's ``philly.csv``), ``alibaba`` (Alibaba GPU
v2023 pod and node lists), ``azure_llm`` (Azure LLM inference requests 2023) and
``skypilot_spot`` (spot availability series; a ``SpotSeries``, not a job trace).

A trace is named on the command line as ``FORMAT:PATH``, e.g. ``philly:data/philly.csv``;
``read_trace`` reads one and ``window`` cuts a time window out of it. Every reader raises
``TraceError`` for bad input, naming the file, the line and the column.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable

from hyperion.sim.traces import alibaba, azure_llm, philly
from hyperion.sim.traces.base import Trace, TraceError, TraceJob

__all__ = ["READERS", "Trace", "TraceError", "TraceJob", "read_trace", "window"]

READERS: dict[str, Callable[[str], Trace]] = {
    "philly": philly.read,
    "alibaba": alibaba.read,
    "azure-llm": azure_llm.read,
}


def read_trace(spec: str) -> Trace:
    """Read the trace ``spec`` names, as ``FORMAT:PATH`` (e.g. ``alibaba:openb_pod_list_default.csv``)."""
    known = ", ".join(READERS)
    trace_format, colon, path = spec.partition(":")
    if not colon or not path:
        raise TraceError(f"trace {spec!r}: expected FORMAT:PATH, e.g. philly:data/philly.csv (formats: {known})")
    reader = READERS.get(trace_format.strip())
    if reader is None:
        raise TraceError(f"trace {spec!r}: unknown format {trace_format!r}; known formats: {known}")
    if not os.path.isfile(path):
        raise TraceError(f"trace file not found: {path}")
    return dataclasses.replace(reader(path), name=spec)


def window(trace: Trace, start_s: float | None = None, end_s: float | None = None) -> Trace:
    """The jobs submitted in ``[start_s, end_s)`` (relative times of ``trace``; None: unbounded),
    re-based so the first kept job is submitted at 0, with ``start`` moved by as much. Ids,
    order and ``skipped`` (counted over the whole file) are kept."""
    if start_s is not None and end_s is not None and end_s < start_s:
        raise ValueError(f"window end {end_s} is before its start {start_s}")
    jobs = [job for job in trace.jobs
            if (start_s is None or job.submit_s >= start_s) and (end_s is None or job.submit_s < end_s)]
    shift = jobs[0].submit_s if jobs else (start_s or 0.0)
    kept = tuple(dataclasses.replace(job, submit_s=job.submit_s - shift) for job in jobs) if shift else tuple(jobs)
    start = None if trace.start is None else trace.start + shift
    return Trace(name=trace.name, jobs=kept, start=start, skipped=dict(trace.skipped))

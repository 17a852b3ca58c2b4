"""Reader for the Azure LLM inference trace 2023 (``AzureLLMInferenceTrace_{code,conv}.csv``).

Format: CSV, header ``TIMESTAMP,ContextTokens,GeneratedTokens``, one row per request in arrival
order; the last line may lack its newline; may be gzip-compressed (``.gz``).

Origin: ``Azure/AzurePublicDataset:data/AzureLLMInferenceTrace_{code,conv}.csv`` (Patel et al.,
"Splitwise", ISCA'24; CC-BY-4.0): about an hour of requests to two LLM inference services, a
coding assistant (``code``) and a conversation service (``conv``).

Columns:
- ``TIMESTAMP``: when the request arrived, ``YYYY-MM-DD HH:MM:SS.fffffff`` (100-ns precision,
  seven fractional digits, more than ``datetime`` holds; we parse the fraction ourselves). The
  trace gives no time zone: we read it as UTC, so ``Trace.start`` is only as absolute as that
  assumption (Azure's own logs are UTC; the origin says nothing).
- ``ContextTokens``: prompt (input) tokens. ``GeneratedTokens``: output tokens.

Our interpretation: each request is one LATENCY_CRITICAL job of ``gpus_per_request`` GPUs whose
run time comes from a simple per-request service-time model,
``duration_s = ContextTokens / prefill_tokens_per_s + GeneratedTokens / decode_tokens_per_s``:
prefill runs at a fixed token rate, decoding emits tokens one after another at a fixed rate, and
requests do not batch. The rates are parameters, not measurements of this trace: the defaults are
round order-of-magnitude placeholders; set them for the model and GPU being simulated. A request with no
tokens at all is counted in ``Trace.skipped["zero duration"]``. ``team`` is the service, read
from the file name (``AzureLLMInferenceTrace_code.csv`` -> ``code``; any other name -> its stem);
``id`` is ``<team>-<line>``.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from pathlib import PurePath

from hyperion.model.job import Priority
from hyperion.sim.traces.base import Trace, TraceError, TraceJob
from hyperion.sim.traces.csvfile import FIX, rows

COLUMNS = ("TIMESTAMP", "ContextTokens", "GeneratedTokens")
FILE_PREFIX = "AzureLLMInferenceTrace_"


def read(path: str, prefill_tokens_per_s: float = 5000.0, decode_tokens_per_s: float = 50.0,
         gpus_per_request: int = 1) -> Trace:
    """Read an Azure LLM inference trace file; see the module docstring for the service-time model."""
    for label, rate in (("prefill_tokens_per_s", prefill_tokens_per_s), ("decode_tokens_per_s", decode_tokens_per_s)):
        if isinstance(rate, bool) or not (isinstance(rate, int | float) and math.isfinite(rate) and rate > 0):
            raise ValueError(f"{label} must be a number > 0, got {rate!r}")
    if isinstance(gpus_per_request, bool) or not (isinstance(gpus_per_request, int) and gpus_per_request >= 1):
        raise ValueError(f"gpus_per_request must be a whole number >= 1, got {gpus_per_request!r}")
    team = service_name(path)
    kept: list[tuple[int, float, str, float, int]] = []  # (whole epoch seconds, fraction, id, duration, line)
    zero_duration = 0
    for line, (timestamp, context, generated) in rows(path, COLUMNS, "an Azure LLM inference trace"):
        seconds, fraction = _arrival(timestamp, path, line)
        duration = (_tokens(context, path, line, "ContextTokens") / prefill_tokens_per_s
                    + _tokens(generated, path, line, "GeneratedTokens") / decode_tokens_per_s)
        if duration <= 0:
            zero_duration += 1
            continue
        kept.append((seconds, fraction, f"{team}-{line}", duration, line))
    start_seconds, start_fraction = min(kept)[:2] if kept else (0, 0.0)
    jobs = sorted(
        (TraceJob(id=job_id, submit_s=(seconds - start_seconds) + (fraction - start_fraction), duration_s=duration,
                  gpus=gpus_per_request, team=team, priority=Priority.LATENCY_CRITICAL, line=line)
         for seconds, fraction, job_id, duration, line in kept),
        key=lambda job: (job.submit_s, job.id),
    )
    return Trace(name=f"azure-llm:{path}", jobs=tuple(jobs), start=start_seconds + start_fraction if kept else None,
                 skipped={"zero duration": zero_duration} if zero_duration else {})


def service_name(path: str) -> str:
    """The service a trace file is of: ``.../AzureLLMInferenceTrace_conv.csv`` -> ``conv``."""
    name = PurePath(path).name
    for suffix in (".gz", ".csv"):
        name = name.removesuffix(suffix)
    return name[len(FILE_PREFIX):] if name.startswith(FILE_PREFIX) and len(name) > len(FILE_PREFIX) else name


def _arrival(text: str, path: str, line: int) -> tuple[int, float]:
    """(whole seconds since the epoch, fraction of a second) of a UTC timestamp with any number
    of fractional digits; kept apart so 100-ns steps survive in relative times."""
    whole, dot, digits = text.strip().partition(".")
    try:
        if len(whole) != 19 or whole[10] not in " T" or (dot and not digits.isdigit()):
            raise ValueError
        when = datetime.fromisoformat(whole).replace(tzinfo=UTC)
    except ValueError:
        raise TraceError(f"{path}:{line}: TIMESTAMP: expected YYYY-MM-DD HH:MM:SS[.fraction], got {text!r}; {FIX}") from None
    return int(when.timestamp()), int(digits) / 10 ** len(digits) if digits else 0.0


def _tokens(text: str, path: str, line: int, column: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise TraceError(f"{path}:{line}: {column}: expected a whole number of tokens >= 0, got {text!r}; {FIX}")
    return value

"""A node's health, judged by its agent from each telemetry reading: too hot, or failing GPUs.

An unhealthy node is cordoned by the control plane (it takes no new work) and, when the verdict
says ``drain``, its jobs are stopped too. The agent calls ``assess`` with the previous verdict and
the newest GPU readings and reports the result when ``changed`` says so. Pure: no clock, no I/O.

Rules:
- Temperature. A GPU at or above ``max_gpu_temperature_c`` makes the node unhealthy ("too hot");
  the reason names the hottest GPU of the reading that crossed the limit and keeps naming it
  while the node stays too hot. It is healthy again only after ``cool_readings`` consecutive
  readings in which every GPU is at or below ``resume_gpu_temperature_c`` (hysteresis, so a GPU
  hovering at the limit does not flap the node); a reading above that resets the count. A
  reading with no GPUs counts as cool.
- Errors. The first reading of each GPU index is its baseline: counts it already had (volatile
  ECC counters survive agent restarts) are not news. Uncorrected ECC errors or critical XID
  events above the baseline are an error condition, and it is sticky: it clears only when the
  agent starts over with a new ``NodeHealth()`` (after the GPU was reset). A counter that goes
  down (the driver was reloaded) lowers the baseline, so errors after the reset still count.
- Errors come first in the reason; with both, the two are joined with "; ". ``drain`` is set when
  any present condition asks for it (``drain_on_errors``, ``drain_on_temperature``).
- ``assess`` returns the very object it was given when nothing changed, so callers can test
  ``new is prev`` cheaply.

Glossary:
    condition   one reason to be unhealthy: ``errors`` (sticky) or ``too_hot`` (recovers).
    cool        consecutive cool readings counted while too hot; 0 otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from hyperion.model import GpuMetrics


@dataclass(frozen=True, slots=True)
class HealthPolicy:
    max_gpu_temperature_c: float = 90.0     # a GPU at or above this: unhealthy ("too hot")
    resume_gpu_temperature_c: float = 80.0  # healthy again only when every GPU is at or below this ...
    cool_readings: int = 3                  # ... for this many consecutive readings (hysteresis)
    drain_on_temperature: bool = False      # too hot: cordon only (default), or also stop its jobs
    drain_on_errors: bool = True            # new uncorrected ECC errors or critical XID events: also stop its jobs

    def __post_init__(self) -> None:
        if not self.resume_gpu_temperature_c < self.max_gpu_temperature_c:
            raise ValueError(
                f"health policy: resume_gpu_temperature_c ({self.resume_gpu_temperature_c}) must be below "
                f"max_gpu_temperature_c ({self.max_gpu_temperature_c}), or a node at the limit would flap "
                f"between cordoned and not; lower the resume temperature or raise the limit")
        if self.cool_readings < 1:
            raise ValueError(
                f"health policy: cool_readings must be at least 1 (the readings at or below "
                f"{self.resume_gpu_temperature_c} C needed to resume), got {self.cool_readings}")


@dataclass(frozen=True, slots=True)
class NodeHealth:
    healthy: bool = True
    reason: str = ""        # why not healthy, e.g. "GPU 3 at 93.0 C (limit 90.0 C)"; "" when healthy
    drain: bool = False
    cool: int = 0           # consecutive cool readings while unhealthy for temperature
    baseline: tuple[tuple[int, int, int], ...] = ()  # (gpu index, ecc_errors, xid_errors) seen first: errors counted from here
    errors: str = ""        # sticky: an error condition, cleared only by a new NodeHealth() (agent restart after the GPU was reset)
    too_hot: str = ""       # the temperature condition while unhealthy for temperature; "" otherwise


def changed(a: NodeHealth, b: NodeHealth) -> bool:
    """Whether the verdict the control plane sees differs (not the counters behind it)."""
    return (a.healthy, a.reason, a.drain) != (b.healthy, b.reason, b.drain)


def assess(prev: NodeHealth, gpus: Sequence[GpuMetrics], policy: HealthPolicy) -> NodeHealth:
    """The node's health after one more reading; ``prev`` itself when nothing changed."""
    baseline = _baseline(prev.baseline, gpus)
    errors = prev.errors or _new_errors({i: (e, x) for i, e, x in baseline}, gpus)
    too_hot, cool = _temperature(prev, gpus, policy)
    reason = "; ".join(part for part in (errors, too_hot) if part)
    drain = bool(errors and policy.drain_on_errors) or bool(too_hot and policy.drain_on_temperature)
    new = NodeHealth(healthy=not reason, reason=reason, drain=drain, cool=cool, baseline=baseline,
                     errors=errors, too_hot=too_hot)
    return prev if new == prev else new


def _baseline(prev: tuple[tuple[int, int, int], ...], gpus: Sequence[GpuMetrics]) -> tuple[tuple[int, int, int], ...]:
    """Each GPU's first counts, lowered where a counter went down since."""
    seen = {index: (ecc, xid) for index, ecc, xid in prev}
    for g in gpus:
        ecc, xid = seen.get(g.index, (g.ecc_errors, g.xid_errors))
        seen[g.index] = (min(ecc, g.ecc_errors), min(xid, g.xid_errors))
    out = tuple((index, ecc, xid) for index, (ecc, xid) in sorted(seen.items()))
    return prev if out == prev else out


def _new_errors(baseline: dict[int, tuple[int, int]], gpus: Sequence[GpuMetrics]) -> str:
    parts = []
    for g in sorted(gpus, key=lambda g: g.index):
        base_ecc, base_xid = baseline.get(g.index, (g.ecc_errors, g.xid_errors))
        ecc, xid = g.ecc_errors - base_ecc, g.xid_errors - base_xid
        found = []
        if ecc > 0:
            found.append(f"{_count(ecc, 'new uncorrected ECC error')} ({g.ecc_errors} in all)")
        if xid > 0:
            found.append(f"{_count(xid, 'critical XID event')} (last XID {g.last_xid})")
        if found:
            parts.append(f"GPU {g.index}: " + ", ".join(found))
    if not parts:
        return ""
    gpu = "GPU" if len(parts) == 1 else "GPUs"
    return "; ".join(parts) + f"; reset the {gpu} (nvidia-smi -r) and restart hyperiond to clear this"


def _temperature(prev: NodeHealth, gpus: Sequence[GpuMetrics], policy: HealthPolicy) -> tuple[str, int]:
    """The temperature condition ("" when none) and the cool-reading count after this reading."""
    hottest = max(gpus, key=lambda g: (g.temperature_c, -g.index), default=None)
    if hottest is not None and hottest.temperature_c >= policy.max_gpu_temperature_c:
        reason = prev.too_hot or (f"GPU {hottest.index} at {hottest.temperature_c:.1f} C "
                                  f"(limit {policy.max_gpu_temperature_c:.1f} C)")
        return reason, 0
    if not prev.too_hot:
        return "", 0
    if all(g.temperature_c <= policy.resume_gpu_temperature_c for g in gpus):
        cool = prev.cool + 1
        return ("", 0) if cool >= policy.cool_readings else (prev.too_hot, cool)
    return prev.too_hot, 0


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"

"""When a job waiting in a queueing member's queue bursts to another member (docs/federation.md,
Bursting). One rule, used by the live control plane (``ControlService.burst``) and the simulator
(``sim.federation``) alike.

A job is due to burst when:
- its expected wait there is longer than the member's ``burst_after``; or
- the wait is unknown (e.g. a running job there has no runtime estimate) and it has already
  waited ``burst_after`` in the queue; or
- it has a deadline that it would still meet if it started now, but that waiting here makes it
  miss (``now + wait + runtime > deadline``): a wait shorter than ``burst_after`` may still cost a
  deadline, and bursting is what can save it (a job that would miss it anyway is not burst for it).
"""

from __future__ import annotations


def burst_reason(wait_s: float | None, waited_s: float, burst_after_s: float, now: float,
                 deadline: float | None = None, runtime_s: float | None = None) -> str | None:
    """Why the job is due to burst now, or None. ``wait_s``: its expected wait in the queue (None:
    unknown); ``waited_s``: how long it has waited there; ``runtime_s``: its runtime estimate."""
    if wait_s is None:
        if waited_s >= burst_after_s:
            return f"its expected wait is unknown and it has waited {waited_s:.0f} s (burst_after {burst_after_s:.0f} s)"
        return None
    if wait_s > burst_after_s:
        return f"expected wait {wait_s:.0f} s (burst_after {burst_after_s:.0f} s)"
    if (deadline is not None and runtime_s is not None and now + runtime_s <= deadline
            and now + wait_s + runtime_s > deadline):
        return (f"expected wait {wait_s:.0f} s would miss its deadline by {now + wait_s + runtime_s - deadline:.0f} s "
                f"(burst_after {burst_after_s:.0f} s)")
    return None

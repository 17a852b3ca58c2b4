"""Idle GPU reclaim (pure): which running jobs' GPUs have stayed idle long enough to be stopped.

A job's *idle policy* is its own (``JobSpec.idle_gpu_utilization``/``idle_window_s``) or else its
team's; none: never reclaimed. A telemetry sample of a node is *low* for a job when every GPU the
job holds there is below the policy's utilisation (percent). ``low_since`` follows the samples: it
is set by the first low sample and cleared by any sample that is not low (on any of the job's
nodes). A job is *due* once ``now - low_since >= window``: the driver stops it with a checkpoint
(SIGTERM, then its grace period) and says so in its events. A GPU with no reading is not low: a
node that reports nothing never has its jobs reclaimed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class IdlePolicy:
    gpu_utilization: float  # percent: below it a GPU is idle
    window_s: float         # how long every GPU of the job must stay idle


def policy_for(job_utilization: float | None, job_window: float | None, team_utilization: float | None,
               team_window: float | None) -> IdlePolicy | None:
    """The job's own policy, else its team's, else None."""
    if job_utilization is not None and job_window is not None:
        return IdlePolicy(job_utilization, job_window)
    if team_utilization is not None and team_window is not None:
        return IdlePolicy(team_utilization, team_window)
    return None


def is_low(gpus: Iterable[int], utilization: Mapping[int, float], policy: IdlePolicy) -> bool:
    """Whether every one of the job's GPUs on a node read below the policy's utilisation."""
    held = list(gpus)
    return bool(held) and all(i in utilization and utilization[i] < policy.gpu_utilization for i in held)


def follow(low_since: float | None, low: bool, at: float) -> float | None:
    """``low_since`` after a sample taken at ``at``."""
    if not low:
        return None
    return at if low_since is None else low_since


def due(low_since: float | None, policy: IdlePolicy, now: float) -> bool:
    return low_since is not None and now - low_since >= policy.window_s


def reason(policy: IdlePolicy, low_since: float, now: float) -> str:
    return (f"reclaimed: every GPU stayed below {policy.gpu_utilization:g}% utilisation for {now - low_since:.0f} s "
            f"(idle policy: {policy.window_s:g} s); stopped with a checkpoint request")

"""Runs policies over a trace on a cluster: one fresh ``World`` per policy, same seed, so runs
differ only by policy."""

from __future__ import annotations

import time
from collections.abc import Callable

from hyperion.sim.cluster import ClusterModel
from hyperion.sim.policies import Policy
from hyperion.sim.result import PolicyResult
from hyperion.sim.traces.base import Trace
from hyperion.sim.world import World

Progress = Callable[[int, int, str], None]  # (jobs done, jobs in all, note)


def run(trace: Trace, cluster: ClusterModel, policy: Policy, seed: int = 0, progress: Progress | None = None) -> PolicyResult:
    t0 = time.perf_counter()
    world = World(trace, cluster, policy.profile, oracle=policy.oracle, seed=seed)
    total = world.remaining
    steps = 0
    while world.step():
        steps += 1
        if progress is not None and steps % 2000 == 0:
            progress(total - world.remaining, total, policy.name)
    wall = time.perf_counter() - t0
    result = world.result(policy.name, wall)
    if progress is not None:
        progress(total - world.remaining, total, policy.name)
    return result

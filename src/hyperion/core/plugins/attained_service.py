"""Least attained service (Tiresias' discretised LAS, NSDI'19): a job's *service* is the
GPU-seconds it has run over all its attempts; services are cut into levels at T, 10 T, 100 T, ...
GPU-hours (options ``las_threshold_gpu_h`` = T, ``las_levels``). Inside a queue, lower levels go
first and a level is FIFO. With the profile option ``preempt_by`` = ``attained-service`` a
pending job may evict running jobs of its class in a higher level (``core/plugins/preemption``):
new, short jobs overtake long ones, which need no runtime estimate.

Tiresias also promotes a job that waited long back to the first level (starvation guard); not
done here.
"""

from __future__ import annotations

from collections.abc import Mapping

from hyperion.core.framework import plugin
from hyperion.model import JobView, Snapshot


def level(service_gpu_s: float, opt: Mapping[str, object]) -> int:
    bound = float(opt["las_threshold_gpu_h"]) * 3600.0  # type: ignore[arg-type]
    top = int(opt["las_levels"]) - 1  # type: ignore[call-overload]
    k = 0
    while k < top and service_gpu_s >= bound:
        k += 1
        bound *= 10.0
    return k


@plugin("least-attained-service")
class LeastAttainedService:
    opt: Mapping[str, object]

    def sort_key(self, job: JobView, snapshot: Snapshot) -> tuple:
        return (level(job.attained_gpu_s, self.opt),)

    def wake_at(self, cycle) -> float | None:
        """With preemption by service level: when the first running job moves above the lowest
        level a job is left waiting in (it may then be evicted for it)."""
        opt = self.opt
        if opt["preempt_by"] != "attained-service":
            return None
        waiting = [j.attained_gpu_s for j in cycle.snapshot.pending if j.id in cycle.verdicts]
        if not waiting:
            return None
        lowest = level(min(waiting), opt)
        if lowest >= int(opt["las_levels"]) - 1:  # type: ignore[call-overload]
            return None
        bound = float(opt["las_threshold_gpu_h"]) * 3600.0 * 10.0 ** lowest  # type: ignore[arg-type]
        now, soonest = cycle.snapshot.now, None
        for v in cycle.snapshot.running:
            if v.preempting or not v.gpus or v.started_at is None:
                continue
            service = v.attained_at(now)
            if service < bound:
                at = now + (bound - service) / v.gpus + 1e-3  # just past it, whatever the rounding
                soonest = at if soonest is None or at < soonest else soonest
        return soonest

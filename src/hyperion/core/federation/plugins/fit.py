"""Filter: the cluster accepts work, offers the GPU type on the candidate's market, and has the
job's GPUs free of that type (after the placements earlier in the same call), or, for a queueing
member (``ClusterView.queues``), has at least that many GPUs of the type installed: the job joins
its queue."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hyperion.core.federation.profiles import fed_plugin

if TYPE_CHECKING:
    from hyperion.core.federation import Context
    from hyperion.core.federation.estimate import Candidate
    from hyperion.model.federation import FedJob


@fed_plugin("fit")
class Fit:
    def filter(self, job: FedJob, cand: Candidate, ctx: Context) -> str | None:
        if not cand.cluster.accepting:
            return "not accepting work"
        if cand.price_per_gpu_h is None:
            return f"{cand.gpu_type} not offered {'on spot' if cand.spot else 'on demand'}"
        free = ctx.free.get((cand.cluster.name, cand.gpu_type), 0)
        if free < job.gpus:
            installed = cand.cluster.capacity_gpus.get(cand.gpu_type, 0)
            if cand.cluster.queues and installed >= job.gpus:
                return None  # it waits in the member's queue (the driver may burst it later)
            return f"{free} {cand.gpu_type} GPU(s) free, the job needs {job.gpus}"
        return None

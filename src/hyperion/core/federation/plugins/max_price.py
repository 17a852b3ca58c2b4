"""Filter: the candidate's list price for all the job's GPUs, per hour, on its market, is at most
the job's ``max_usd_per_h`` (none: any price)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hyperion.core.federation.profiles import fed_plugin

if TYPE_CHECKING:
    from hyperion.core.federation import Context
    from hyperion.core.federation.estimate import Candidate
    from hyperion.model.federation import FedJob


@fed_plugin("max-price")
class MaxPrice:
    def filter(self, job: FedJob, cand: Candidate, ctx: Context) -> str | None:
        if job.max_usd_per_h is None or cand.usd_per_h <= job.max_usd_per_h + 1e-9:
            return None
        market = "spot" if cand.spot else "on demand"
        return f"${cand.usd_per_h:,.2f}/h {market} for {job.gpus} {cand.gpu_type}, above the job's max ${job.max_usd_per_h:,.2f}/h"

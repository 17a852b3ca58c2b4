"""Score: what the job is expected to cost on the candidate, in USD (lower is better):
compute at the market's price for the expected run, which on spot includes the expected rework
from interruptions (``estimate.expected_run_s``), plus egress and the GPU time spent reading
remote data. Spot is a candidate only for a job that tolerates interruption (``FedJob.spot``), so
such a job gets spot where its discount outweighs the rework, and on-demand elsewhere."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hyperion.core.federation.profiles import fed_plugin

if TYPE_CHECKING:
    from hyperion.core.federation import Context
    from hyperion.core.federation.estimate import Candidate
    from hyperion.model.federation import FedJob


@fed_plugin("cost")
class Cost:
    def penalty(self, job: FedJob, cand: Candidate, ctx: Context) -> float:
        return cand.usd

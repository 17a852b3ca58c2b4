"""Score: grams CO2e the job is expected to emit on the candidate (lower is better): its GPUs'
power x PUE x expected run, times the mean carbon intensity of the cluster's grid over the hours
it would run, from its start (delay and staging included). With a start delay this is what
temporal shifting compares. Unknown intensity (empty series): scored worst."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hyperion.core.federation.profiles import fed_plugin

if TYPE_CHECKING:
    from hyperion.core.federation import Context
    from hyperion.core.federation.estimate import Candidate
    from hyperion.model.federation import FedJob


@fed_plugin("carbon")
class Carbon:
    def penalty(self, job: FedJob, cand: Candidate, ctx: Context) -> float | None:
        return cand.carbon_g

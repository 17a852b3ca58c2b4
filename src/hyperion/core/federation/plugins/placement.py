"""Filter: the cluster is in one of the job's allowed regions and providers (empty: any)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hyperion.core.federation.profiles import fed_plugin

if TYPE_CHECKING:
    from hyperion.core.federation import Context
    from hyperion.core.federation.estimate import Candidate
    from hyperion.model.federation import FedJob


@fed_plugin("placement")
class Placement:
    def filter(self, job: FedJob, cand: Candidate, ctx: Context) -> str | None:
        c = cand.cluster
        if job.regions and c.region not in job.regions:
            return f"region {c.region} is not among the job's regions ({', '.join(sorted(job.regions))})"
        if job.providers and c.provider not in job.providers:
            return f"provider {c.provider} is not among the job's providers ({', '.join(sorted(job.providers))})"
        return None

"""Filter: data residency; the cluster's region or country is one where the job's data may be
processed (``FedJob.residency``; empty: anywhere)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hyperion.core.federation.profiles import fed_plugin

if TYPE_CHECKING:
    from hyperion.core.federation import Context
    from hyperion.core.federation.estimate import Candidate
    from hyperion.model.federation import FedJob


@fed_plugin("residency")
class Residency:
    def filter(self, job: FedJob, cand: Candidate, ctx: Context) -> str | None:
        c = cand.cluster
        if not job.residency or c.region in job.residency or (c.country and c.country in job.residency):
            return None
        where = f"region {c.region}" + (f" ({c.country})" if c.country else " (country unknown)")
        return f"the job's data must stay in {', '.join(sorted(job.residency))}; this cluster is in {where}"

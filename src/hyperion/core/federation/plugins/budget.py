"""Filter: the team has at least the job's expected cost left (``FedSnapshot.team_budget_left``
minus what earlier jobs of the same call are expected to cost). A team not listed has no budget."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hyperion.core.federation.profiles import fed_plugin

if TYPE_CHECKING:
    from hyperion.core.federation import Context
    from hyperion.core.federation.estimate import Candidate
    from hyperion.model.federation import FedJob


@fed_plugin("budget")
class Budget:
    def filter(self, job: FedJob, cand: Candidate, ctx: Context) -> str | None:
        left = ctx.budget_left.get(job.team)
        if left is None or cand.usd <= left + 1e-9:
            return None
        return f"expected to cost ${cand.usd:,.2f}, team {job.team!r} has ${max(left, 0.0):,.2f} left"

"""Filter: the job is expected to finish by its deadline: ``now + delay + staging + expected run
<= deadline`` (the expected run includes spot rework; see ``estimate``). No deadline: always."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hyperion.core.federation.profiles import fed_plugin

if TYPE_CHECKING:
    from hyperion.core.federation import Context
    from hyperion.core.federation.estimate import Candidate
    from hyperion.model.federation import FedJob


@fed_plugin("deadline")
class Deadline:
    def filter(self, job: FedJob, cand: Candidate, ctx: Context) -> str | None:
        if job.deadline is None or cand.end <= job.deadline + 1e-6:
            return None
        late = cand.end - job.deadline
        parts = f"{cand.run_s / 3600:.2f} h run" + (f" + {cand.staging_s / 3600:.2f} h reading remote data" if cand.staging_s else "")
        if cand.spot:
            parts += " (spot, with expected rework)"
        return f"expected to finish {late / 3600:.2f} h after the deadline ({parts})"

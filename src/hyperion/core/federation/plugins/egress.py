"""Score: data gravity, in USD (lower is better): egress (data size in GB x USD per GB out of the
data's location) plus the slowdown of reading it remotely, priced as the GPU time held while it
is read (``gpus x USD per GPU-hour x bytes * 8 / (wan_gbps * 1e9) / 3600``). Zero where the
cluster holds the data. Both are part of ``cost`` too: in a profile with both, moving data weighs
twice, a deliberate lean towards running next to the data."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hyperion.core.federation.profiles import fed_plugin

if TYPE_CHECKING:
    from hyperion.core.federation import Context
    from hyperion.core.federation.estimate import Candidate
    from hyperion.model.federation import FedJob


@fed_plugin("egress")
class Egress:
    def penalty(self, job: FedJob, cand: Candidate, ctx: Context) -> float:
        return cand.egress_usd + cand.staging_usd

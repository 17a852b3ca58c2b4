"""Score: round trip to the job's callers, in milliseconds (lower is better), for inference jobs
(a job with neither ``caller_region`` nor ``caller_location`` scores 0 everywhere). A measured
``ClusterView.latency_ms[caller_region]`` wins; else the great-circle distance between the
cluster's and the callers' locations at 1 ms of round trip per 100 km (light in fibre covers about
200 km per ms, there and back); else unknown, scored worst."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from hyperion.core.federation.profiles import fed_plugin

if TYPE_CHECKING:
    from hyperion.core.federation import Context
    from hyperion.core.federation.estimate import Candidate
    from hyperion.model.federation import FedJob

EARTH_RADIUS_KM = 6371.0
KM_PER_MS_RTT = 100.0


def great_circle_km(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Haversine distance between two (latitude, longitude) points in degrees."""
    lat1, lon1, lat2, lon2 = map(math.radians, (*a, *b))
    h = math.sin((lat2 - lat1) / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(h)))


@fed_plugin("latency")
class Latency:
    def penalty(self, job: FedJob, cand: Candidate, ctx: Context) -> float | None:
        if job.caller_region is None and job.caller_location is None:
            return 0.0
        c = cand.cluster
        if job.caller_region is not None and job.caller_region in c.latency_ms:
            return c.latency_ms[job.caller_region]
        if job.caller_location is not None and c.location is not None:
            return great_circle_km(c.location, job.caller_location) / KM_PER_MS_RTT
        return None

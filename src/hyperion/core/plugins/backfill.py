"""EASY backfill: the first job that cannot start for want of capacity gets a reservation.

The reservation is computed on the cycle's working copy: running jobs (and the jobs this cycle
placed) end, in order of their expected end (start + runtime estimate; jobs being preempted end
now; jobs with no estimate last, at an unknown time), until the job fits. That time is its
*shadow* start; the nodes it would use then are held for it. Victims that this cycle or an
earlier one evicted for a preemptor are not counted: what they free is the preemptor's. On each such node, the hold is what
the job needs there minus what running jobs free there by the shadow time: later jobs may take
held resources only if their own runtime estimate ends by the shadow time, so they never delay
the reserved job. Jobs without an estimate (spec or the user's history) never backfill into held
resources.
"""

from __future__ import annotations

from hyperion.core.cycle import Cycle
from hyperion.core.framework import plugin
from hyperion.model import Hold, JobView, Resources

INF = float("inf")


@plugin("backfill")
class Backfill:
    def reserve(self, job: JobView, cycle: Cycle) -> Hold | None:
        now = cycle.snapshot.now
        events = []
        for v in (*cycle.snapshot.running, *cycle.placed_now):
            if job.gpu_type and v.gpu_type != job.gpu_type and v.queue != job.queue:
                continue  # frees nothing this job could use (its own queue's jobs may free quota)
            if v.id in cycle.claimed:
                continue  # its resources are promised to the job it is evicted for
            end = now if v.preempting else v.expected_end
            events.append((INF if end is None else max(end, now), v.id, v))
        if not events:
            return None
        events.sort(key=lambda e: (e[0], e[1]))
        r = job.per_replica
        released, fit, shadow, k = [], None, INF, 0
        while k < len(events):
            end, freed = events[k][0], []
            while k < len(events) and events[k][0] == end:
                v = events[k][2]
                freed += cycle.release(v)
                released.append(v)
                k += 1
            if any(r.fits_in(cycle.cap.slot(i).free) for i in freed):
                fit = cycle.try_fit(job)
                if fit is not None:
                    shadow = end
                    break
        freed_at: dict[int, Resources] = {}
        for v in released:
            for node_id, _ in v.placements:
                i = cycle.position(node_id)
                if i is not None:
                    freed_at[i] = freed_at.get(i, Resources()) + v.per_replica
        for v in reversed(released):
            cycle.retake(v)
        if fit is None:
            return None
        need: dict[int, Resources] = {}
        for i, amount in fit:
            need[i] = need.get(i, Resources()) + amount
        amounts = []
        for i in sorted(need):
            h = need[i] - freed_at.get(i, Resources())
            h = Resources(max(0, h.gpus), max(0, h.cpus_milli), max(0, h.memory))
            if h != Resources():
                amounts.append((cycle.snapshot.nodes[i].id, h))
        return Hold(job.id, None if shadow == INF else shadow, tuple(amounts))

"""Preemption planning: the cheapest set of running jobs whose eviction lets a pending job fit.

Who may be a victim of job J (docs/adr/0003 gives the reasons and the options):
- a job of J's own queue of a lower priority class (tier 1);
- a job of a queue that is *borrowing* (holds more than its nominal quota): if its class is
  lower than J's, or, by *reclaim*, if it is in J's cohort, J's queue stays within its nominal
  quota after admitting J, and the class rule of ``reclaim_priority`` allows it (tier 0). Reclaim
  stops at the victim queue's nominal quota: a victim is taken only while its queue still borrows;
- a lower-class job of any other queue when J's class is at least ``cross_queue_class_preemption``
  (tier 2);
- with the option ``preempt_by`` = ``attained-service``, a job of J's class whose attained
  service is in a higher level than J's (``core/plugins/attained_service``) (tier 1);
- a job already being stopped by an earlier decision: free, taken first.
Never a job of a higher class, never one of the same class except by reclaim or by service level.

Cost of a victim: its tier (``victim_order`` = ``borrowers-first``; ignored with
``cheapest-first``), then GPU-hours of work lost since its last checkpoint (or its start), then
lower priority, then younger. Whole jobs are evicted (every rank of a gang).

The search, on the cycle's working copy (reverted before returning):
1. free the jobs already stopping; if J fits, keep only those it needs and wait for them;
2. otherwise repeat until J fits: when only J's quota blocks it, evict the cheapest candidate of
   J's own queue or cohort; else pick the node where the cheapest prefix of its candidates makes
   room for one replica, the cheapest such set across nodes, and free it;
3. fill back: give back each chosen victim, most expensive first, that J turns out not to need;
4. if J cannot fit even with every candidate gone, evict nobody.
"""

from __future__ import annotations

from hyperion.core.cycle import Cycle, Preemption
from hyperion.core.framework import CLASS_FLOOR, plugin
from hyperion.core.plugins.attained_service import level
from hyperion.model import JobView, Priority, RunningView


@plugin("preemption")
class Preempt:
    def preempt(self, job: JobView, cycle: Cycle) -> Preemption | None:
        snapshot, ledger = cycle.snapshot, cycle.ledger
        if not snapshot.running:
            return None
        r = job.per_replica
        types = [job.gpu_type] if job.gpu_type else cycle.cap.types
        cohort = ledger.cohort(job.queue)
        reclaim = cohort is not None and any(ledger.within_nominal(job.queue, r, t, job.min_available) for t in types)
        by_service = cycle.opt["preempt_by"] == "attained-service"
        if not reclaim and job.priority == min(Priority):
            if not by_service:
                return None  # no class below it and nothing to reclaim: no job may be evicted for it
            levels = _levels(cycle)
            if not cycle.scratch["stopping"] and max(levels.values(), default=0) <= level(job.attained_gpu_s, cycle.opt):
                return None  # nor a job in a higher service level, nor one being stopped
        inflight: list[RunningView] = []
        cands: list[tuple[tuple, RunningView, bool]] = []
        for v in snapshot.running:
            if v.id in cycle.claimed or (job.gpu_type and v.gpu_type != job.gpu_type and v.queue != job.queue):
                continue
            if v.preempting:
                inflight.append(v)
                continue
            tier = _tier(v, job, cycle, reclaim, cohort)
            if tier is not None:
                cands.append((_cost(v, tier[0], snapshot.now), v, tier[1]))
        if not inflight and not cands:
            return None
        if r.gpus:  # cheap necessary condition: enough GPUs free or held by candidates
            kinds = set(types)
            could = cycle.cap.free_gpus(types) + sum(v.gpus for v in inflight if v.gpu_type in kinds) \
                + sum(v.gpus for _, v, _ in cands if v.gpu_type in kinds)
            if could < r.gpus * job.min_available:
                return None
        cands.sort(key=lambda c: c[0])
        released: list[RunningView] = []
        for v in inflight:
            cycle.release(v)
            released.append(v)
        fits = bool(inflight) and cycle.try_fit(job) is not None
        if not fits:
            fits = self._search(job, cycle, cands, released, cohort)
        at: list[tuple[int, object]] | None = None
        if fits:
            needed = _fill_back(job, cycle, released)
            at = (cycle.try_fit(job) or [])[: job.min_available]  # what it is guaranteed: its gang
        for v in reversed(released):
            cycle.retake(v)
        if not fits:
            return None
        waiting = tuple(v for v in needed if v.preempting)
        victims = tuple(v for v in needed if not v.preempting)
        how = f"for job {job.id} ({job.priority.label}) of queue {job.queue}"
        if victims and all(v.priority >= job.priority for v in victims):
            how += ", which reclaims its queue's nominal quota"
        return Preemption(victims, waiting, "preempted " + how, tuple(i for i, _ in at or ()))

    def _search(self, job: JobView, cycle: Cycle, cands: list, released: list[RunningView], cohort: str | None) -> bool:
        r = job.per_replica
        left = {v.id: (cost, v, borrow) for cost, v, borrow in cands}
        by_node: dict[int, list[str]] = {}
        for _, v, _ in cands:
            for node_id in dict.fromkeys(n for n, _ in v.placements):  # a gang may have ranks on one node
                i = cycle.position(node_id)
                node = cycle.snapshot.nodes[i] if i is not None else None
                if node is not None and node.schedulable and r.fits_in(node.capacity):
                    by_node.setdefault(i, []).append(v.id)
        ledger = cycle.ledger

        def usable(vid: str) -> bool:
            item = left.get(vid)
            return item is not None and (not item[2] or ledger.borrowing(item[1].queue))

        while True:
            if cycle.try_fit(job) is not None:
                return True
            if not left:
                return False
            pick: list[RunningView] = []
            if cycle.try_fit(job, quota=False) is not None:  # only the quota blocks: free quota, anywhere
                for vid, (_, v, _) in left.items():
                    if usable(vid) and (v.queue == job.queue or (cohort and ledger.cohort(v.queue) == cohort)):
                        pick = [v]
                        break
            else:
                best = None
                for i, vids in by_node.items():
                    slot = cycle.cap.slot(i)
                    if job.gpu_type and slot.node.gpu_type != job.gpu_type:
                        continue
                    acc = slot.free
                    if r.fits_in(acc):
                        continue  # not what blocks the job
                    here: list[RunningView] = []
                    for vid in vids:
                        if not usable(vid):
                            continue
                        v = left[vid][1]
                        held = sum(1 for n, _ in v.placements if n == slot.node.id)
                        acc = acc + v.per_replica.scaled(held)
                        here.append(v)
                        if r.fits_in(acc):
                            key = _set_cost([left[x.id][0] for x in here]) + (i,)
                            if best is None or key < best[0]:
                                best = (key, here)
                            break
                if best is not None:
                    pick = best[1]
            if not pick:
                return False
            for v in pick:
                del left[v.id]
                cycle.release(v)
                released.append(v)


def _tier(v: RunningView, job: JobView, cycle: Cycle, reclaim: bool, cohort: str | None) -> tuple[int, bool] | None:
    """(tier, whether eligibility rests on the victim's queue borrowing), or None: not a victim."""
    opt, ledger = cycle.opt, cycle.ledger
    lower = v.priority < job.priority
    cheapest = opt["victim_order"] == "cheapest-first"
    if v.queue == job.queue and lower:
        return (0 if cheapest else 1, False)
    if opt["preempt_by"] == "attained-service" and v.priority == job.priority \
            and _levels(cycle)[v.id] > level(job.attained_gpu_s, opt):
        return (1, False)
    if v.queue == job.queue:
        return None
    borrowing = ledger.borrowing(v.queue)
    if lower and borrowing:
        return (0, True)
    if borrowing and reclaim and ledger.cohort(v.queue) == cohort:
        rule = opt["reclaim_priority"]
        if rule == "any" or (rule == "lower-or-equal" and v.priority <= job.priority):
            return (0, True)
    cross = CLASS_FLOOR[opt["cross_queue_class_preemption"]]
    if lower and cross is not None and job.priority >= cross:
        return (0 if cheapest else 2, False)
    return None


def _levels(cycle: Cycle) -> dict[str, int]:
    """Each running job's service level now, computed once per cycle."""
    levels = cycle.scratch.get("service-levels")
    if levels is None:
        now, opt = cycle.snapshot.now, cycle.opt
        levels = cycle.scratch["service-levels"] = {v.id: level(v.attained_at(now), opt) for v in cycle.snapshot.running}
        cycle.scratch["stopping"] = any(v.preempting for v in cycle.snapshot.running)
    return levels


def _cost(v: RunningView, tier: int, now: float) -> tuple:
    if v.started_at is None:
        lost = 0.0
    else:
        since = max(v.started_at, v.last_checkpoint_at or v.started_at)
        lost = v.gpus * max(0.0, now - since) / 3600.0
    return (tier, lost, int(v.priority), v.priority_value, -(v.started_at if v.started_at is not None else now), v.id)


def _set_cost(costs: list[tuple]) -> tuple:
    return (max(c[0] for c in costs), sum(c[1] for c in costs), max(c[2] for c in costs), max(c[3] for c in costs),
            len(costs), max(c[4] for c in costs))


def _fill_back(job: JobView, cycle: Cycle, released: list[RunningView]) -> list[RunningView]:
    """Give back, most expensive first, each released job the preemptor does not need; the list
    keeps only the needed ones (still released)."""
    now = cycle.snapshot.now
    order = sorted(range(len(released)), key=lambda k: _cost(released[k], 0, now), reverse=True)
    drop = set()
    for k in order:
        v = released[k]
        cycle.retake(v)
        if cycle.try_fit(job) is None:
            cycle.release(v)
        else:
            drop.add(k)
    released[:] = [v for k, v in enumerate(released) if k not in drop]
    return list(released)

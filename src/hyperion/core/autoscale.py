"""The autoscaler's decision: ``reconcile(ScaleSnapshot) -> ScalePlan``, which machines to launch,
release or drain so pending jobs get capacity just in time and idle capacity goes away. Pure and
deterministic for a snapshot, like ``core.schedule`` and ``core.federation.place``; the live loop
and the simulator both call it.

The decision, in phases:
1. *capacity on hand*: every live instance that is not draining and has no interruption notice
   is a bin of free GPUs: a ready one its GPUs minus those its tasks hold, one still requested,
   launching or booting all of its GPUs (it is coming; launching more for the same job would
   over-buy).
2. *demand*: pending jobs by priority (higher first), earliest deadline, submission, id. Each job
   is a gang: all its replicas, each on one machine, or nothing. Its replicas go first into bins on
   hand (first fit, in a stable order), then into machines launched for it: per replica, the
   cheapest eligible offer that holds it, where *eligible* means the job's pool (if pinned), the
   pool's instance and GPU types, a capacity type the pool allows, and spot only for a job that
   tolerates interruption and whose deadline a spot run still meets (below); and the pool's
   federation member is the job's (``NodePoolSpec.cluster``, ``Demand.cluster``). Offers rank by the
   pool's capacity-type preference, then spot offers outside the zones where the pool's spot
   capacity is being reclaimed (an interruption notice: a replacement goes to another zone), then
   by what the machines the job needs cost per hour (spot inflated by its expected rework), then by
   name. Machines launched for one job are shared by later jobs of the same call. A pool never
   exceeds ``max_nodes`` (live instances plus launches); a job that cannot be placed whole is
   reported in ``waiting`` with the reason, and launches nothing.
3. *deadline-aware markets* ("Can't Be Late", NSDI'24: keep enough slack to finish on demand): a
   spot offer is eligible only if ``spot_meets_deadline``: the expected spot run (interruptions
   and restarts from the last checkpoint, as in ``core.federation.estimate.expected_run_s``)
   meets the deadline, and so would an on-demand finish after one interruption;
   otherwise the job gets on-demand capacity.
4. *floor*: each pool is brought up to ``min_nodes`` with its most preferred, cheapest offer.
5. *release*: a ready instance idle for its pool's ``idle_timeout_s`` that no job was placed on
   in this call is terminated, while the pool stays at or above ``min_nodes`` (scale to zero with
   ``min_nodes: 0``); a failed instance is terminated (clean up); a ready instance with an
   interruption notice is drained (cordoned: its jobs checkpoint and are requeued, and its GPUs
   are not counted in phase 1, so their replacement is launched in phase 2 of the same call).
6. *consolidate* (Karpenter's consolidation): in each pool with ``consolidate_after_s`` set, at
   most one ready instance is drained per call when its tasks could run on the pool's other nodes
   and the pool would cost less. Only a pool nobody wants: no launch for it in this plan, no job
   of the demand placed on it or waiting for it (one it could hold: not pinned elsewhere, same
   federation member), and no instance of it draining already (its jobs need the room). The
   candidate is ready for ``consolidate_after_s``, has no notice, no job placed on it in this
   call, is not released in phase 5, keeps the pool at or above ``min_nodes`` once gone (not
   counting instances with a notice either), and has tasks (``ScaleSnapshot.tasks``), all
   movable (their jobs checkpoint) and all running for ``consolidate_after_s``; they fit, first
   fit by GPUs decreasing, into the free GPUs (after phase 2) of the pool's other ready instances
   without notice that phase 5 keeps, a task that asks for a GPU type only on instances of that
   type. Candidates go fewest used GPUs first, then dearest, then by id. Its jobs checkpoint and are requeued (as for a notice), then the
   scheduler starts them on the nodes that had room.

Request ids are ``<pool>-<now>-<n>`` (``now`` in whole milliseconds): the same snapshot gives
the same ids, so a driver that applies a plan twice launches once (providers are idempotent by
request id).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from hyperion.core.federation.estimate import expected_run_s
from hyperion.model.autoscale import (
    Demand,
    Drain,
    Instance,
    InstanceOffer,
    InstanceState,
    Launch,
    NodePoolSpec,
    ScalePlan,
    ScaleSnapshot,
    TaskLoad,
    Terminate,
)

DEFAULT_INTERRUPTIONS_PER_H = 0.05  # where an offer does not say


@dataclass(slots=True)
class _Bin:
    key: str  # an instance id, or "<request id>#<n>" for one launched in this call
    pool: str
    gpu_type: str | None
    spot: bool
    free: int
    cluster: str | None = None  # the federation member of its pool


def reconcile(snap: ScaleSnapshot) -> ScalePlan:
    pools = {p.name: p for p in snap.pools}
    live = [i for i in snap.instances if i.state.live and i.pool in pools]
    count = {name: sum(1 for i in live if i.pool == name) for name in pools}
    bins = [_Bin(i.id, i.pool, i.gpu_type, i.spot, _free(i, snap), pools[i.pool].cluster)
            for i in sorted(live, key=_instance_order)
            if i.state is not InstanceState.DRAINING and i.notice_at is None]
    launches: list[Launch] = []
    waiting: dict[str, str] = {}
    placed: dict[str, tuple[str, ...]] = {}
    serial = 0
    for job in sorted(snap.demand, key=_demand_order):
        fit, new, why = _place(job, bins, snap, pools, count, serial)
        if why is not None:
            waiting[job.job_id] = why
            continue
        serial += len(new)
        for launch in new:
            count[launch.pool] += launch.count
            bins += [_Bin(f"{launch.request_id}#{k}", launch.pool, launch.gpu_type, launch.spot, launch.gpus,
                          pools[launch.pool].cluster)
                     for k in range(launch.count)]
        _take(bins, fit, job.gpus_per_replica)
        launches += new
        placed[job.job_id] = tuple(key for key, _ in fit)
    for name, pool in sorted(pools.items()):  # the floor
        short = pool.min_nodes - count[name]
        offer = next(iter(_ranked(_offers(snap, pool, None, 0, spot_ok=True), pool, None, 0)), None)
        if short > 0 and offer is not None:
            launches.append(_launch(offer, short, _request_id(name, snap.now, serial), (), f"pool {name} keeps at least "
                                    f"{pool.min_nodes} node(s)"))
            serial += 1
            count[name] += short
    used = {key for keys in placed.values() for key in keys}
    terminations, drains = _release(snap, pools, count, used)
    drains += _consolidate(snap, pools, count, bins, launches, placed, waiting, used,
                           {t.instance_id for t in terminations})
    return ScalePlan(snap.now, tuple(launches), tuple(terminations), tuple(drains), waiting, placed)


def _free(i: Instance, snap: ScaleSnapshot) -> int:
    if i.state is InstanceState.READY:
        return max(0, i.gpus - snap.used_gpus.get(i.id, 0))
    return i.gpus


def _instance_order(i: Instance) -> tuple:
    return i.pool, i.created_at, i.id


def _demand_order(d: Demand) -> tuple:
    return -d.priority, d.deadline if d.deadline is not None else math.inf, d.submitted_at, d.job_id


def _compatible(b: _Bin, job: Demand) -> bool:
    return ((job.pool is None or b.pool == job.pool) and b.cluster == job.cluster
            and (job.gpu_type is None or b.gpu_type == job.gpu_type) and (job.spot_ok or not b.spot))


def _fits(bins: Iterable[_Bin], job: Demand) -> list[tuple[str, int]]:
    """(bin key, replicas) for as many of the job's replicas as fit in ``bins``, first fit."""
    out: list[tuple[str, int]] = []
    left = job.replicas
    for b in bins:
        if left == 0:
            break
        if not _compatible(b, job):
            continue
        n = min(left, b.free // job.gpus_per_replica) if job.gpus_per_replica else left
        if n > 0:
            out.append((b.key, n))
            left -= n
    return out


def _take(bins: list[_Bin], fit: list[tuple[str, int]], gpus_per_replica: int) -> None:
    by_key = {b.key: b for b in bins}
    for key, replicas in fit:
        by_key[key].free -= replicas * gpus_per_replica


def _place(job: Demand, bins: list[_Bin], snap: ScaleSnapshot, pools: dict[str, NodePoolSpec], count: dict[str, int],
           serial: int) -> tuple[list[tuple[str, int]], list[Launch], str | None]:
    """Where the job's replicas go (existing bins and machines to launch), or why they cannot."""
    fit = _fits(bins, job)
    left = job.replicas - sum(n for _, n in fit)
    if left == 0:
        return fit, [], None
    spot_ok = _spot_in_time(job, snap, pools)
    reasons: list[str] = []
    for pool in sorted(pools.values(), key=lambda p: p.name):
        if job.pool is not None and pool.name != job.pool:
            continue
        if pool.cluster != job.cluster:
            continue
        if job.gpu_type is not None and pool.gpu_types and job.gpu_type not in pool.gpu_types:
            reasons.append(f"pool {pool.name}: no {job.gpu_type}")
            continue
        ranked = _ranked(_offers(snap, pool, job.gpu_type, job.gpus_per_replica, spot_ok), pool, job, left,
                         _reclaiming(snap, pool.name))
        if not ranked:
            reasons.append(f"pool {pool.name}: no offer holds a replica of {job.gpus_per_replica} GPU(s)"
                           + ("" if job.gpu_type is None else f" {job.gpu_type}")
                           + ("" if spot_ok or not job.spot_ok else " on demand (spot would miss the deadline)"))
            continue
        offer = ranked[0]
        per = offer.gpus // job.gpus_per_replica if job.gpus_per_replica else left
        need = math.ceil(left / per)
        room = pool.max_nodes - count[pool.name]
        if need > room:
            reasons.append(f"pool {pool.name}: needs {need} more {offer.instance_type} node(s), "
                           f"{room} left under max_nodes {pool.max_nodes}")
            continue
        launch = _launch(offer, need, _request_id(pool.name, snap.now, serial), (job.job_id,),
                         f"job {job.job_id}: {left} replica(s) of {job.gpus_per_replica} GPU(s) have no free node")
        keys = [(f"{launch.request_id}#{k}", min(per, left - k * per)) for k in range(need)]
        return fit + keys, [launch], None
    if not reasons:
        reasons.append("no node pool may hold it" + ("" if job.pool is None else f" (it is pinned to {job.pool!r})")
                       + ("" if job.cluster is None else f" (it is routed to federation member {job.cluster!r}, "
                                                          "and no pool's nodes join it)"))
    return [], [], "; ".join(reasons)


def _reclaiming(snap: ScaleSnapshot, pool: str) -> frozenset[str]:
    """Zones where a live spot instance of the pool has an interruption notice."""
    return frozenset(i.zone for i in snap.instances
                     if i.pool == pool and i.spot and i.zone and i.state.live and i.notice_at is not None)


def _spot_in_time(job: Demand, snap: ScaleSnapshot, pools: dict[str, NodePoolSpec]) -> bool:
    boot = max((p.boot_s for p in pools.values()), default=0.0)
    rates = [o.interruptions_per_h for o in snap.offers if o.spot and o.interruptions_per_h is not None]
    return spot_meets_deadline(job, snap.now, boot, max(rates, default=DEFAULT_INTERRUPTIONS_PER_H))


def spot_meets_deadline(job: Demand, now: float, boot_s: float, interruptions_per_h: float) -> bool:
    """Whether a spot run started ``now`` is expected to meet the job's deadline, and could still
    meet it on demand after one interruption (the safety of "Can't Be Late", NSDI'24):
    - ``now + boot + expected spot run <= deadline``, the run inflated by
      interruptions with restarts from the last checkpoint;
    - ``now + 2 x boot + checkpoint interval + estimate <= deadline``: an interruption at any
      moment loses at most one checkpoint interval of progress, and a machine on demand then
      finishes the rest (spot progress runs at the clock's pace, so this holds all run long).
    A driver that decides again after each interruption keeps the job on a path that ends in time.
    A job that does not tolerate interruption: never; one without a deadline or estimate: always."""
    if not job.spot_ok:
        return False
    if job.deadline is None or job.runtime_estimate_s is None:
        return True
    estimate = job.runtime_estimate_s
    run = expected_run_s(estimate, interruptions_per_h, job.checkpoint_interval_s)
    lose = estimate if job.checkpoint_interval_s is None else min(job.checkpoint_interval_s, estimate)
    return (now + boot_s + run <= job.deadline
            and now + 2 * boot_s + lose + estimate <= job.deadline)


def _offers(snap: ScaleSnapshot, pool: NodePoolSpec, gpu_type: str | None, gpus: int, spot_ok: bool) -> list[InstanceOffer]:
    return [o for o in snap.offers
            if o.pool == pool.name and o.gpus >= gpus
            and (not pool.instance_types or o.instance_type in pool.instance_types)
            and (not pool.gpu_types or o.gpu_type in pool.gpu_types)
            and (gpu_type is None or o.gpu_type == gpu_type)
            and o.capacity_type in pool.capacity_types and (spot_ok or not o.spot)]


def _ranked(offers: list[InstanceOffer], pool: NodePoolSpec, job: Demand | None, replicas: int,
            reclaiming: frozenset[str] = frozenset()) -> list[InstanceOffer]:
    """By the pool's capacity-type preference, then spot offers outside the zones where the pool's
    spot capacity is being reclaimed (``reclaiming``; a spot offer with no zone may land in one, so
    it goes after those that name another zone), then what the machines for ``replicas`` of the job
    cost per hour (spot inflated by its expected rework), then instance type and zone. Without a
    job (the floor): the cheapest machine."""
    def cost(o: InstanceOffer) -> float:
        if job is None:
            return o.usd_per_h
        per = o.gpus // job.gpus_per_replica if job.gpus_per_replica else replicas
        run = 1.0
        if o.spot and job.runtime_estimate_s:
            rate = DEFAULT_INTERRUPTIONS_PER_H if o.interruptions_per_h is None else o.interruptions_per_h
            run = expected_run_s(job.runtime_estimate_s, rate, job.checkpoint_interval_s) / job.runtime_estimate_s
        return math.ceil(replicas / per) * o.usd_per_h * run

    def reclaimed(o: InstanceOffer) -> bool:
        return bool(reclaiming) and o.spot and (o.zone in reclaiming or not o.zone)

    return sorted(offers, key=lambda o: (pool.capacity_types.index(o.capacity_type), reclaimed(o), cost(o),
                                         o.instance_type, o.zone))


def _launch(offer: InstanceOffer, count: int, request_id: str, jobs: tuple[str, ...], reason: str) -> Launch:
    return Launch(request_id, offer.pool, offer.instance_type, count, offer.gpus, offer.usd_per_h, offer.gpu_type,
                  offer.spot, offer.zone, jobs, reason)


def _request_id(pool: str, now: float, serial: int) -> str:
    return f"{pool}-{int(round(now * 1000))}-{serial}"


def _release(snap: ScaleSnapshot, pools: dict[str, NodePoolSpec], count: dict[str, int],
             used: set[str]) -> tuple[list[Terminate], list[Drain]]:
    terminations: list[Terminate] = []
    drains: list[Drain] = []
    for i in sorted(snap.instances, key=_instance_order):
        if i.pool not in pools:
            continue
        pool = pools[i.pool]
        if i.state is InstanceState.FAILED:
            terminations.append(Terminate(i.id, i.pool, f"failed: {i.reason or 'the provider reported it'}; cleaning up"))
        elif i.state is InstanceState.READY and i.notice_at is not None:
            drains.append(Drain(i.id, i.pool, "spot interruption notice: cordon, checkpoint and requeue its jobs"))
        elif (i.state is InstanceState.READY and i.idle_since is not None and i.id not in used
              and snap.now - i.idle_since >= pool.idle_timeout_s and count[i.pool] > pool.min_nodes
              and snap.used_gpus.get(i.id, 0) == 0):
            terminations.append(Terminate(i.id, i.pool, f"idle for {snap.now - i.idle_since:.0f} s "
                                                        f"(idle timeout {pool.idle_timeout_s:.0f} s)"))
            count[i.pool] -= 1
    return terminations, drains


def _consolidate(snap: ScaleSnapshot, pools: dict[str, NodePoolSpec], count: dict[str, int], bins: list[_Bin],
                 launches: list[Launch], placed: dict[str, tuple[str, ...]], waiting: dict[str, str],
                 used: set[str], released: set[str]) -> list[Drain]:
    """Phase 6: at most one drain per pool, of an under-used instance whose movable tasks fit on
    the pool's other ready instances (``bins`` hold their free GPUs after phase 2). ``used``: the
    instances a job was placed on in this call; ``released``: those phase 5 terminates. ``count``
    (live instances and launches per pool) loses the drained ones."""
    wanted = {launch.pool for launch in launches}
    pool_of = {b.key: b.pool for b in bins}
    wanted |= {pool_of[key] for keys in placed.values() for key in keys if key in pool_of}
    demand = {d.job_id: d for d in snap.demand}
    for job_id in waiting:
        job = demand[job_id]
        wanted |= {name for name, p in pools.items() if job.pool in (None, name) and job.cluster == p.cluster}
    wanted |= {i.pool for i in snap.instances if i.state is InstanceState.DRAINING}  # its jobs need the room
    free = {b.key: b.free for b in bins}  # existing instances: ready or coming, not draining, no notice
    drains: list[Drain] = []
    for name, pool in sorted(pools.items()):
        after = pool.consolidate_after_s
        noticed = sum(1 for i in snap.instances if i.pool == name and i.state.live and i.notice_at is not None)
        if after is None or name in wanted or count[name] - noticed <= pool.min_nodes:  # noticed ones go anyway
            continue
        ready = [i for i in sorted(snap.instances, key=_instance_order)
                 if i.pool == name and i.state is InstanceState.READY and i.id in free and i.id not in released]
        candidates = sorted((i for i in ready if i.id not in used and _settled(i, snap, after)),
                            key=lambda i: (sum(t.gpus for t in snap.tasks[i.id]), -i.usd_per_h, i.id))
        for i in candidates:
            fit = _fit_tasks(snap.tasks[i.id], [o for o in ready if o.id != i.id], free)
            if fit is None:
                continue
            count[name] -= 1
            tasks = snap.tasks[i.id]
            drains.append(Drain(i.id, name, f"consolidation: its {len(tasks)} task(s) "
                                            f"({sum(t.gpus for t in tasks)} GPU(s)) fit on {', '.join(fit)}; "
                                            f"draining it saves ${i.usd_per_h:.2f}/h"))
            break
    return drains


def _settled(i: Instance, snap: ScaleSnapshot, after: float) -> bool:
    """Ready for ``after`` seconds and running only movable tasks, each for ``after`` seconds."""
    tasks = snap.tasks.get(i.id, ())
    return (bool(tasks) and i.ready_at is not None and snap.now - i.ready_at >= after
            and all(t.movable and snap.now - t.started_at >= after for t in tasks))


def _fit_tasks(tasks: tuple[TaskLoad, ...], targets: list[Instance], free: dict[str, int]) -> list[str] | None:
    """The instances the tasks go to, first fit by GPUs decreasing into ``free`` (not changed), or
    None when one does not fit. A task that asks for a GPU type fits only on an instance of it."""
    room = {o.id: free[o.id] for o in targets}
    where: dict[str, None] = {}
    for t in sorted(tasks, key=lambda t: (-t.gpus, t.job_id)):
        to = next((o for o in targets if room[o.id] >= t.gpus and (t.gpu_type is None or o.gpu_type == t.gpu_type)),
                  None)
        if to is None:
            return None
        room[to.id] -= t.gpus
        where[to.id] = None
    return list(where)

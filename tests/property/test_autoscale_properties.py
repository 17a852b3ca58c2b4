"""Properties of ``core.autoscale.reconcile`` on random pools, offers, instances and demand: no
pool goes past ``max_nodes``, launches use only what a pool allows, nothing busy or about to be
used is released, every pending job is either placed or told why not, and the plan is a function
of the snapshot. Consolidation drains at most one node per pool, never below ``min_nodes``, and only
one whose movable tasks fit in the free GPUs of the pool's other ready nodes."""

from __future__ import annotations

from itertools import product

from hypothesis import given, settings
from hypothesis import strategies as st

from hyperion.core.autoscale import reconcile
from hyperion.model.autoscale import (
    Demand,
    Instance,
    InstanceOffer,
    InstanceState,
    NodePoolSpec,
    ScalePlan,
    ScaleSnapshot,
    TaskLoad,
)

NOW = 1_800_000_000.0
POOLS = ("a", "b")
TYPES = ("V100", "A100")


@st.composite
def snapshots(draw) -> ScaleSnapshot:
    pools = []
    for name in POOLS:
        low = draw(st.integers(0, 2))
        pools.append(NodePoolSpec(name, "local", instance_types=tuple(draw(st.sets(st.sampled_from(("x1", "x4", "x8")), max_size=2))),
                                  capacity_types=draw(st.sampled_from((("spot", "on-demand"), ("on-demand",), ("on-demand", "spot")))),
                                  min_nodes=low, max_nodes=draw(st.integers(low, 5)),
                                  idle_timeout_s=draw(st.sampled_from((0.0, 300.0))),
                                  consolidate_after_s=draw(st.sampled_from((None, 0.0, 600.0)))))
    offers = tuple(InstanceOffer(pool, itype, gpus, price * gpus, gpu_type=t, spot=spot, interruptions_per_h=0.1 if spot else None)
                   for pool in POOLS for itype, gpus in (("x1", 1), ("x4", 4), ("x8", 8)) for t in TYPES
                   for spot, price in ((False, 3.0), (True, 1.0)) if draw(st.booleans()))
    states = st.sampled_from([*InstanceState, *[InstanceState.READY] * 6])  # ready ones more often
    instances = tuple(Instance(f"i{k}", draw(st.sampled_from(POOLS)), "x4", 4, draw(states), f"r{k}", NOW - 3600,
                               gpu_type=draw(st.sampled_from(TYPES)), spot=draw(st.booleans()),
                               idle_since=draw(st.sampled_from((None, NOW - 10, NOW - 1000))),
                               notice_at=draw(st.sampled_from((None, None, None, NOW - 5))),
                               ready_at=draw(st.sampled_from((None, NOW - 10, NOW - 3600, NOW - 3600))),
                               usd_per_h=draw(st.sampled_from((0.0, 4.0, 12.0))))
                      for k in range(draw(st.integers(0, 8))))
    tasks = {}
    for i in instances:
        if i.state is InstanceState.READY:
            loads, room = [], 4
            for n in range(draw(st.sampled_from((0, 1, 1, 2, 3)))):
                gpus = draw(st.integers(0, min(room, 2)))
                room -= gpus
                loads.append(TaskLoad(f"t{i.id}.{n}", gpus, movable=draw(st.sampled_from((True, True, False))),
                                      started_at=draw(st.sampled_from((NOW - 10, NOW - 3600, NOW - 3600))),
                                      gpu_type=draw(st.sampled_from((None, *TYPES)))))
            tasks[i.id] = tuple(loads)
    used = {iid: sum(t.gpus for t in loads) for iid, loads in tasks.items()}
    demand = tuple(Demand(f"j{k}", draw(st.integers(0, 8)), draw(st.integers(1, 3)), gpu_type=draw(st.sampled_from((None, *TYPES))),
                          spot_ok=draw(st.booleans()), deadline=draw(st.sampled_from((None, NOW + 3600, NOW + 86400))),
                          runtime_estimate_s=draw(st.sampled_from((None, 1800.0, 7200.0))), submitted_at=NOW - k,
                          priority=draw(st.integers(0, 2)), pool=draw(st.sampled_from((None, *POOLS))))
                   for k in range(draw(st.sampled_from((0, 0, 1, 3, 6)))))  # often none: consolidation may run
    return ScaleSnapshot(NOW, 0, tuple(pools), offers, instances, demand, used, tasks)


@settings(max_examples=200, deadline=None)
@given(snapshots())
def test_reconcile_keeps_its_promises(snap: ScaleSnapshot) -> None:
    plan = reconcile(snap)
    pools = {p.name: p for p in snap.pools}
    offers = {(o.pool, o.instance_type, o.gpu_type, o.spot) for o in snap.offers}
    for name, pool in pools.items():
        live = sum(1 for i in snap.instances if i.pool == name and i.state.live)
        launched = sum(launch.count for launch in plan.launches if launch.pool == name)
        assert launched == 0 or live + launched <= pool.max_nodes, (name, live, launched)
    for launch in plan.launches:
        pool = pools[launch.pool]
        assert (launch.pool, launch.instance_type, launch.gpu_type, launch.spot) in offers
        assert not pool.instance_types or launch.instance_type in pool.instance_types
        assert ("spot" if launch.spot else "on-demand") in pool.capacity_types
        jobs = [d for d in snap.demand if d.job_id in launch.jobs]
        assert all(d.spot_ok or not launch.spot for d in jobs)
    assert len({launch.request_id for launch in plan.launches}) == len(plan.launches)
    used_keys = {k for keys in plan.placed.values() for k in keys}
    for t in plan.terminations:
        i = next(i for i in snap.instances if i.id == t.instance_id)
        assert i.state is InstanceState.FAILED or (snap.used_gpus.get(i.id, 0) == 0 and i.id not in used_keys)
    assert set(plan.placed) | set(plan.waiting) == {d.job_id for d in snap.demand}
    assert not set(plan.placed) & set(plan.waiting)
    assert reconcile(snap) == plan


@settings(max_examples=500, deadline=None)
@given(snapshots())
def test_consolidation_moves_only_what_fits_and_keeps_the_floor(snap: ScaleSnapshot) -> None:
    plan = reconcile(snap)
    pools = {p.name: p for p in snap.pools}
    by_id = {i.id: i for i in snap.instances}
    drains = [d for d in plan.drains if d.reason.startswith("consolidation: ")]
    assert len({d.pool for d in drains}) == len(drains)  # at most one per pool
    gone = {t.instance_id for t in plan.terminations} | {d.instance_id for d in plan.drains}
    for d in drains:
        i, pool = by_id[d.instance_id], pools[d.pool]
        after = pool.consolidate_after_s
        assert after is not None and i.state is InstanceState.READY and i.notice_at is None
        assert i.ready_at is not None and NOW - i.ready_at >= after
        tasks = snap.tasks[i.id]
        assert tasks and all(t.movable and NOW - t.started_at >= after for t in tasks)
        assert not any(launch.pool == d.pool for launch in plan.launches)
        assert not any(i.id in keys for keys in plan.placed.values())
        targets = [o for o in snap.instances if o.pool == d.pool and o.id != i.id and o.state is InstanceState.READY
                   and o.notice_at is None and o.id not in gone]
        assert _fits(tasks, targets, snap, plan), (d, targets)
        live = sum(1 for o in snap.instances if o.pool == d.pool and o.state.live and o.id not in gone)
        launched = sum(launch.count for launch in plan.launches if launch.pool == d.pool)
        assert live + launched >= pool.min_nodes


def _fits(tasks: tuple[TaskLoad, ...], targets: list[Instance], snap: ScaleSnapshot, plan: ScalePlan) -> bool:
    """Some assignment of the tasks to the targets holds, each target's room its GPUs less what
    its tasks hold and at least one replica of each job placed on it in this plan."""
    demand = {d.job_id: d for d in snap.demand}
    room = {o.id: o.gpus - snap.used_gpus.get(o.id, 0)
            - sum(demand[j].gpus_per_replica for j, keys in plan.placed.items() if o.id in keys) for o in targets}
    for choice in product(targets, repeat=len(tasks)):
        left = dict(room)
        for t, o in zip(tasks, choice, strict=True):
            left[o.id] -= t.gpus
        if all(v >= 0 for v in left.values()) and all(t.gpu_type in (None, o.gpu_type) for t, o in zip(tasks, choice, strict=True)):
            return True
    return False

"""Properties of ``core.autoscale.reconcile`` on random pools, offers, instances and demand: no
pool goes past ``max_nodes``, launches use only what a pool allows, nothing busy or about to be
used is released, every pending job is either placed or told why not, and the plan is a function
of the snapshot."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from hyperion.core.autoscale import reconcile
from hyperion.model.autoscale import Demand, Instance, InstanceOffer, InstanceState, NodePoolSpec, ScaleSnapshot

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
                                  idle_timeout_s=draw(st.sampled_from((0.0, 300.0)))))
    offers = tuple(InstanceOffer(pool, itype, gpus, price * gpus, gpu_type=t, spot=spot, interruptions_per_h=0.1 if spot else None)
                   for pool in POOLS for itype, gpus in (("x1", 1), ("x4", 4), ("x8", 8)) for t in TYPES
                   for spot, price in ((False, 3.0), (True, 1.0)) if draw(st.booleans()))
    states = st.sampled_from(list(InstanceState))
    instances = tuple(Instance(f"i{k}", draw(st.sampled_from(POOLS)), "x4", 4, draw(states), f"r{k}", NOW - 3600,
                               gpu_type=draw(st.sampled_from(TYPES)), spot=draw(st.booleans()),
                               idle_since=draw(st.sampled_from((None, NOW - 10, NOW - 1000))),
                               notice_at=draw(st.sampled_from((None, NOW - 5))))
                      for k in range(draw(st.integers(0, 6))))
    used = {i.id: draw(st.integers(0, 4)) for i in instances if i.state is InstanceState.READY}
    demand = tuple(Demand(f"j{k}", draw(st.integers(0, 8)), draw(st.integers(1, 3)), gpu_type=draw(st.sampled_from((None, *TYPES))),
                          spot_ok=draw(st.booleans()), deadline=draw(st.sampled_from((None, NOW + 3600, NOW + 86400))),
                          runtime_estimate_s=draw(st.sampled_from((None, 1800.0, 7200.0))), submitted_at=NOW - k,
                          priority=draw(st.integers(0, 2)), pool=draw(st.sampled_from((None, *POOLS))))
                   for k in range(draw(st.integers(0, 6))))
    return ScaleSnapshot(NOW, 0, tuple(pools), offers, instances, demand, used)


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

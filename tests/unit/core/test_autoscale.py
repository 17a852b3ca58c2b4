"""The pure autoscaler (``core.autoscale.reconcile``) and the instance lifecycle table: scale from
zero, packing into capacity on hand or on its way, gangs whole or not at all, spot versus on
demand by deadline, max and min nodes, scale to zero after the idle timeout, failed instances,
interruption notices, idempotent request ids, consolidation of under-used nodes."""

from __future__ import annotations

import pytest

from hyperion.core.autoscale import reconcile
from hyperion.model.autoscale import (
    INSTANCE_TRANSITIONS,
    Demand,
    Instance,
    InstanceOffer,
    InstanceState,
    InstanceTransitionError,
    NodePoolSpec,
    ScaleSnapshot,
    TaskLoad,
    check_instance_transition,
)

NOW = 1_800_000_000.0
H = 3600.0
POOL = NodePoolSpec("gpu", "local", max_nodes=4, idle_timeout_s=300)
OD = InstanceOffer("gpu", "g4", gpus=4, usd_per_h=12.0, gpu_type="V100")
OD1 = InstanceOffer("gpu", "g1", gpus=1, usd_per_h=3.5, gpu_type="V100")
SPOT = InstanceOffer("gpu", "g4", gpus=4, usd_per_h=4.0, gpu_type="V100", spot=True, interruptions_per_h=0.1)


def snap(demand=(), instances=(), pools=(POOL,), offers=(OD, OD1, SPOT), used=None, now=NOW, tasks=None) -> ScaleSnapshot:
    return ScaleSnapshot(now, 0, tuple(pools), tuple(offers), tuple(instances), tuple(demand), used or {}, tasks or {})


def job(id="j", gpus=1, replicas=1, **kw) -> Demand:
    return Demand(id, gpus, replicas, **kw)


def instance(id="i1", state=InstanceState.READY, gpus=4, spot=False, pool="gpu", **kw) -> Instance:
    return Instance(id, pool, "g4", gpus, state, "r", NOW - H, gpu_type="V100", spot=spot, **kw)


# ---- the lifecycle table --------------------------------------------------------------------
def test_every_state_has_a_row_and_only_listed_moves_pass() -> None:
    assert set(INSTANCE_TRANSITIONS) == set(InstanceState)
    check_instance_transition(InstanceState.REQUESTED, InstanceState.LAUNCHING)
    check_instance_transition(InstanceState.READY, InstanceState.READY)
    with pytest.raises(InstanceTransitionError, match="cannot go from terminated to ready"):
        check_instance_transition(InstanceState.TERMINATED, InstanceState.READY)
    with pytest.raises(InstanceTransitionError, match="from booting: failed, ready, terminating"):
        check_instance_transition(InstanceState.BOOTING, InstanceState.DRAINING)


# ---- scale up ---------------------------------------------------------------------------------
def test_from_zero_a_pending_job_gets_the_cheapest_on_demand_node_that_holds_it() -> None:
    plan = reconcile(snap([job(gpus=1)]))
    [launch] = plan.launches
    assert (launch.instance_type, launch.count, launch.spot, launch.jobs) == ("g1", 1, False, ("j",))
    assert launch.request_id == f"gpu-{int(NOW * 1000)}-0"
    assert plan.placed["j"] == (f"{launch.request_id}#0",) and not plan.waiting


def test_the_same_snapshot_gives_the_same_request_ids() -> None:
    s = snap([job("a", gpus=4), job("b", gpus=4)])
    assert reconcile(s) == reconcile(s)
    assert [launch.request_id for launch in reconcile(s).launches] == [f"gpu-{int(NOW * 1000)}-0", f"gpu-{int(NOW * 1000)}-1"]


def test_capacity_on_hand_or_on_its_way_is_used_before_launching() -> None:
    ready = instance("i1")
    booting = instance("i2", state=InstanceState.BOOTING)
    plan = reconcile(snap([job("a", gpus=2), job("b", gpus=4)], [ready, booting], used={"i1": 2}))
    assert not plan.launches
    assert plan.placed == {"a": ("i1",), "b": ("i2",)}


def test_jobs_share_a_machine_launched_for_an_earlier_one() -> None:
    plan = reconcile(snap([job("a", gpus=2), job("b", gpus=2)], offers=(OD,)))
    [launch] = plan.launches
    assert launch.count == 1 and plan.placed["a"] == plan.placed["b"]


def test_a_gang_gets_all_its_machines_or_none() -> None:
    plan = reconcile(snap([job("big", gpus=4, replicas=3)], offers=(OD,)))
    [launch] = plan.launches
    assert launch.count == 3 and len(plan.placed["big"]) == 3
    small_pool = NodePoolSpec("gpu", "local", max_nodes=2)
    plan = reconcile(snap([job("big", gpus=4, replicas=3)], pools=(small_pool,), offers=(OD,)))
    assert not plan.launches and "needs 3 more g4 node(s), 2 left under max_nodes 2" in plan.waiting["big"]


def test_max_nodes_counts_live_instances_and_earlier_launches() -> None:
    pool = NodePoolSpec("gpu", "local", max_nodes=2)
    busy = instance("i1")
    plan = reconcile(snap([job("a", gpus=4), job("b", gpus=4)], [busy], pools=(pool,), offers=(OD,), used={"i1": 4}))
    assert [launch.jobs for launch in plan.launches] == [("a",)]
    assert "1 more g4 node(s), 0 left under max_nodes 2" in plan.waiting["b"]


def test_a_job_no_offer_can_hold_waits_with_the_reason() -> None:
    plan = reconcile(snap([job("wide", gpus=8)]))
    assert not plan.launches
    assert plan.waiting["wide"] == "pool gpu: no offer holds a replica of 8 GPU(s)"
    plan = reconcile(snap([job("a100", gpus=1, gpu_type="A100")]))
    assert "no offer holds a replica of 1 GPU(s) A100" in plan.waiting["a100"]


def test_a_pinned_job_uses_only_its_pool() -> None:
    other = NodePoolSpec("cpu", "local")
    plan = reconcile(snap([job("p", gpus=1, pool="cpu")], pools=(POOL, other)))
    assert not plan.launches and "pool cpu: no offer holds" in plan.waiting["p"]


# ---- spot or on demand ------------------------------------------------------------------------
def test_a_tolerant_job_goes_to_spot_when_the_pool_prefers_it() -> None:
    plan = reconcile(snap([job("t", gpus=4, spot_ok=True, runtime_estimate_s=2 * H, checkpoint_interval_s=600)]))
    [launch] = plan.launches
    assert launch.spot and launch.usd_per_h == 4.0


def test_an_intolerant_job_never_goes_to_spot_nor_into_spot_capacity_on_hand() -> None:
    spot_node = instance("s1", spot=True)
    plan = reconcile(snap([job("i", gpus=4)], [spot_node]))
    [launch] = plan.launches
    assert not launch.spot and plan.placed["i"] == (f"{launch.request_id}#0",)


def test_close_to_its_deadline_a_tolerant_job_gets_on_demand() -> None:
    # 4 h of work; spot's expected run with rework + 25 % margin + boot would miss a deadline 4.5 h away
    urgent = job("u", gpus=4, spot_ok=True, runtime_estimate_s=4 * H, deadline=NOW + 4.5 * H)
    relaxed = job("r", gpus=4, spot_ok=True, runtime_estimate_s=4 * H, deadline=NOW + 12 * H)
    plan = reconcile(snap([urgent, relaxed], offers=(OD, SPOT)))
    by_job = {launch.jobs[0]: launch.spot for launch in plan.launches}
    assert by_job == {"u": False, "r": True}


def test_earliest_deadline_first_when_the_pool_runs_out() -> None:
    pool = NodePoolSpec("gpu", "local", max_nodes=1)
    late = job("late", gpus=4, deadline=NOW + 10 * H, submitted_at=NOW - H)
    soon = job("soon", gpus=4, deadline=NOW + 2 * H)
    plan = reconcile(snap([late, soon], pools=(pool,), offers=(OD,)))
    assert [launch.jobs for launch in plan.launches] == [("soon",)] and "late" in plan.waiting


# ---- floor, release, failures, notices --------------------------------------------------------
def test_min_nodes_are_kept_with_the_preferred_cheapest_offer() -> None:
    pool = NodePoolSpec("gpu", "local", min_nodes=2, capacity_types=("on-demand",))
    plan = reconcile(snap([], [instance("i1")], pools=(pool,)))
    [launch] = plan.launches
    assert (launch.count, launch.instance_type, launch.jobs) == (1, "g1", ())


def test_idle_nodes_go_after_the_timeout_down_to_min_nodes() -> None:
    long_idle = instance("i1", idle_since=NOW - 600)
    just_idle = instance("i2", idle_since=NOW - 60)
    busy = instance("i3", idle_since=None)
    plan = reconcile(snap([], [long_idle, just_idle, busy], used={"i3": 2}))
    assert [t.instance_id for t in plan.terminations] == ["i1"] and "idle for 600 s" in plan.terminations[0].reason
    keep_two = NodePoolSpec("gpu", "local", min_nodes=3, idle_timeout_s=300)
    assert not reconcile(snap([], [long_idle, just_idle, busy], pools=(keep_two,), used={"i3": 2})).terminations


def test_an_idle_node_a_pending_job_fits_on_is_kept() -> None:
    idle = instance("i1", idle_since=NOW - 600)
    plan = reconcile(snap([job("a", gpus=2)], [idle]))
    assert not plan.terminations and not plan.launches and plan.placed["a"] == ("i1",)


def test_failed_instances_are_cleaned_up_and_do_not_count() -> None:
    failed = instance("f1", state=InstanceState.FAILED, reason="InsufficientInstanceCapacity")
    plan = reconcile(snap([job("a", gpus=4)], [failed], offers=(OD,)))
    assert [t.instance_id for t in plan.terminations] == ["f1"] and "InsufficientInstanceCapacity" in plan.terminations[0].reason
    assert len(plan.launches) == 1


def test_an_interruption_notice_drains_the_node_and_replaces_its_capacity_at_once() -> None:
    noticed = instance("s1", spot=True, notice_at=NOW - 5)
    requeued = job("ckpt", gpus=4, spot_ok=True, runtime_estimate_s=H, checkpoint_interval_s=300)
    plan = reconcile(snap([requeued], [noticed], used={"s1": 4}))
    assert [d.instance_id for d in plan.drains] == ["s1"]
    [launch] = plan.launches
    assert launch.jobs == ("ckpt",) and plan.placed["ckpt"] != ("s1",)


def test_draining_instances_count_against_max_but_hold_nothing() -> None:
    pool = NodePoolSpec("gpu", "local", max_nodes=1)
    draining = instance("d1", state=InstanceState.DRAINING)
    plan = reconcile(snap([job("a", gpus=1)], [draining], pools=(pool,)))
    assert not plan.launches and "0 left under max_nodes 1" in plan.waiting["a"]


# ---- consolidation ----------------------------------------------------------------------------
CPOOL = NodePoolSpec("gpu", "local", max_nodes=4, idle_timeout_s=300, consolidate_after_s=600)


def task(job_id: str, gpus: int = 1, movable: bool = True, age: float = H, gpu_type: str | None = None) -> TaskLoad:
    return TaskLoad(job_id, gpus, movable, NOW - age, gpu_type)


def busy_node(id: str, *tasks: TaskLoad, usd_per_h: float = 12.0, **kw) -> tuple[Instance, tuple[TaskLoad, ...]]:
    return instance(id, ready_at=NOW - H, usd_per_h=usd_per_h, **kw), tasks


def consolidation(*nodes: tuple[Instance, tuple[TaskLoad, ...]], demand=(), pools=(CPOOL,), offers=(OD, OD1, SPOT)):
    """The plan for ready nodes with their tasks (``used_gpus`` their tasks' GPUs)."""
    instances = [i for i, _ in nodes]
    tasks = {i.id: ts for i, ts in nodes}
    used = {i.id: sum(t.gpus for t in ts) for i, ts in nodes}
    return reconcile(snap(demand, instances, pools=pools, offers=offers, used=used, tasks=tasks))


def test_an_under_used_node_whose_jobs_fit_elsewhere_is_drained() -> None:
    plan = consolidation(busy_node("i1", task("a", 1)), busy_node("i2", task("b", 2)), busy_node("i3", task("c", 3)))
    [drain] = plan.drains
    assert drain.instance_id == "i1" and drain.reason.startswith("consolidation: ")
    assert "fit on i2" in drain.reason and "$12.00/h" in drain.reason
    assert not plan.terminations and not plan.launches


def test_the_tasks_of_one_node_may_spread_over_several() -> None:
    pinned = {"movable": False}  # so that only i1 is a candidate
    plan = consolidation(busy_node("i1", task("a", 2), task("b", 2)), busy_node("i2", task("c", 2, **pinned)),
                         busy_node("i3", task("d", 2, **pinned)))
    [drain] = plan.drains  # 2 + 2 on i1 go one to i2, one to i3
    assert drain.instance_id == "i1" and "its 2 task(s) (4 GPU(s)) fit on i2, i3" in drain.reason


def test_candidates_go_fewest_used_gpus_first_then_dearest() -> None:
    plan = consolidation(busy_node("i1", task("a", 2)), busy_node("i2", task("b", 1), usd_per_h=5.0),
                         busy_node("i3", task("c", 1), usd_per_h=9.0))
    assert [d.instance_id for d in plan.drains] == ["i3"]


@pytest.mark.parametrize("case", [
    "not movable", "too young", "node too young", "does not fit", "min nodes", "demand waits", "demand placed",
    "notice on target", "target idle-released", "draining in the pool", "off",
])
def test_no_consolidation_when(case: str) -> None:
    control = consolidation(busy_node("i1", task("a", 1)), busy_node("i2", task("b", 2, movable=False)))
    assert [d.instance_id for d in control.drains] == ["i1"]  # each case changes one thing of this
    pools: tuple[NodePoolSpec, ...] = (CPOOL,)
    demand: tuple[Demand, ...] = ()
    small = busy_node("i1", task("a", 1))
    other = busy_node("i2", task("b", 2, movable=False))  # never a candidate itself
    extra: list = []
    if case == "not movable":
        small = busy_node("i1", task("a", 1, movable=False))
    elif case == "too young":
        small = busy_node("i1", task("a", 1, age=599))
    elif case == "node too young":
        small = (instance("i1", ready_at=NOW - 100, usd_per_h=12.0), (task("a", 1),))
    elif case == "does not fit":
        other = busy_node("i2", task("b", 4, movable=False))
    elif case == "min nodes":
        pools = (NodePoolSpec("gpu", "local", min_nodes=2, max_nodes=4, consolidate_after_s=600),)
    elif case == "demand waits":
        demand = (job("wide", gpus=8),)  # it could use the pool (no offer holds it): the pool is wanted
    elif case == "demand placed":
        demand = (job("next", gpus=1),)
    elif case == "notice on target":
        other = busy_node("i2", task("b", 2, movable=False), notice_at=NOW - 5)
    elif case == "target idle-released":
        other = busy_node("i2", idle_since=NOW - 600)  # the only room goes in phase 5
    elif case == "draining in the pool":
        extra = [(instance("d1", state=InstanceState.DRAINING), ())]
    elif case == "off":
        pools = (POOL,)
    plan = consolidation(small, other, *extra, demand=demand, pools=pools)
    assert not [d for d in plan.drains if d.reason.startswith("consolidation")], plan.drains


def test_demand_for_another_pool_or_member_does_not_hold_it_back() -> None:
    cloud = NodePoolSpec("cloud", "aws", cluster="aws")
    plan = consolidation(busy_node("i1", task("a", 1)), busy_node("i2", task("b", 2)),
                         demand=(job("routed", gpus=8, cluster="aws"), job("pinned", gpus=8, pool="cloud")),
                         pools=(CPOOL, cloud))
    assert [d.instance_id for d in plan.drains] == ["i1"]


def test_only_one_node_per_pool_per_call() -> None:
    other_pool = NodePoolSpec("b", "local", max_nodes=4, consolidate_after_s=600)
    nodes = [busy_node(f"i{k}", task(f"j{k}", 1)) for k in range(4)]
    nodes += [busy_node(f"b{k}", task(f"k{k}", 1), pool="b") for k in range(2)]
    plan = consolidation(*nodes, pools=(CPOOL, other_pool))
    assert sorted((d.pool, d.instance_id) for d in plan.drains) == [("b", "b0"), ("gpu", "i0")]


def test_a_task_that_asks_for_a_gpu_type_moves_only_to_that_type() -> None:
    a100 = Instance("i2", "gpu", "g4", 4, InstanceState.READY, "r", NOW - H, gpu_type="A100", ready_at=NOW - H)
    plan = consolidation(busy_node("i1", task("a", 1, gpu_type="V100")), (a100, (task("b", 2, movable=False),)))
    assert not plan.drains
    plan = consolidation(busy_node("i1", task("a", 1, gpu_type="A100")), (a100, (task("b", 2, movable=False),)))
    assert [d.instance_id for d in plan.drains] == ["i1"]


def test_an_idle_node_is_released_not_consolidated_and_is_no_target() -> None:
    idle = instance("i9", idle_since=NOW - 600, ready_at=NOW - H)
    plan = consolidation(busy_node("i1", task("a", 1)), (idle, ()))
    assert [t.instance_id for t in plan.terminations] == ["i9"] and not plan.drains


# ---- kind: NodePool ---------------------------------------------------------------------------
def test_a_node_pool_document_becomes_a_spec_and_bad_fields_are_named() -> None:
    from hyperion.api.spec import SpecError, load_documents

    [doc] = load_documents("kind: NodePool\nname: gpu\nprovider: aws\ncapacity_types: [on-demand]\n"
                           "max_nodes: 4\nidle_timeout: 5m\n", "pool.yaml")
    spec = doc.to_spec()
    assert (spec.capacity_types, spec.max_nodes, spec.idle_timeout_s) == (("on-demand",), 4, 300.0)
    with pytest.raises(SpecError) as err:
        load_documents("kind: NodePool\nname: gpu\nprovider: aws\nmin_nodes: 5\nmax_nodes: 4\n"
                       "capacity_types: [spot, spot]\n", "pool.yaml")
    text = str(err.value)
    assert "pool.yaml:4: min_nodes: must be at most max_nodes (4); got 5" in text
    assert "pool.yaml:6: capacity_types: list spot and/or on-demand, each once" in text
    with pytest.raises(ValueError, match="min_nodes"):
        NodePoolSpec("p", "local", min_nodes=3, max_nodes=1)


# ---- federation members (bursting) ----------------------------------------------------------------
def test_a_pool_that_joins_a_member_launches_only_for_jobs_routed_there() -> None:
    cloud = NodePoolSpec("cloud", "aws", max_nodes=2, cluster="aws-east")
    offers = (InstanceOffer("cloud", "g4", gpus=4, usd_per_h=12.0, gpu_type="V100"), OD)
    plan = reconcile(snap([job("routed", 2, cluster="aws-east"), job("plain", 2)], pools=(POOL, cloud), offers=offers))
    assert sorted((launch.pool, launch.jobs) for launch in plan.launches) == [("cloud", ("routed",)), ("gpu", ("plain",))]
    # a job routed to a member no pool joins waits, and says so
    plan = reconcile(snap([job("elsewhere", 2, cluster="gcp-west")], pools=(POOL, cloud), offers=offers))
    assert plan.launches == ()
    assert "routed to federation member 'gcp-west', and no pool's nodes join it" in plan.waiting["elsewhere"]
    # capacity on hand in the member's pool is used first; a plain pool's node is not the member's
    ready = instance("c1", pool="cloud", gpus=4)
    plan = reconcile(snap([job("routed", 2, cluster="aws-east")], instances=(ready, instance("p1")),
                          pools=(POOL, cloud), offers=offers))
    assert plan.launches == () and plan.placed["routed"] == ("c1",)


def test_a_replacement_for_a_reclaimed_spot_instance_goes_to_another_zone() -> None:
    zone_a = InstanceOffer("gpu", "g4", gpus=4, usd_per_h=3.0, gpu_type="V100", spot=True, zone="z-a")
    zone_b = InstanceOffer("gpu", "g4", gpus=4, usd_per_h=3.5, gpu_type="V100", spot=True, zone="z-b")
    anywhere = InstanceOffer("gpu", "g4", gpus=4, usd_per_h=3.0, gpu_type="V100", spot=True)
    offers = (zone_a, zone_b, anywhere, OD)
    work = job("j", 4, spot_ok=True)
    # no notice: the cheapest spot offer (the zone-less one ties with z-a and sorts first)
    [launch] = reconcile(snap([work], offers=offers)).launches
    assert (launch.spot, launch.zone) == (True, "")
    # a spot instance of the pool in z-a got its interruption notice: the replacement avoids z-a, and
    # the zone-less offer (it may land there), though dearer: z-b
    noticed = instance("i1", spot=True, zone="z-a", notice_at=NOW - 10)
    plan = reconcile(snap([work], instances=(noticed,), offers=offers, used={"i1": 4}))
    [launch] = plan.launches
    assert (launch.spot, launch.zone) == (True, "z-b")
    assert [d.instance_id for d in plan.drains] == ["i1"]
    # another pool's notice, or an on-demand instance's, changes nothing
    other = instance("o1", pool="cpu", spot=True, zone="z-a", notice_at=NOW - 10)
    cpu = NodePoolSpec("cpu", "local")
    [launch] = reconcile(snap([work], instances=(other,), pools=(POOL, cpu), offers=offers)).launches
    assert launch.zone == ""

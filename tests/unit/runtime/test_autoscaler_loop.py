"""The live autoscaler loop with a fake provider on the in-memory store: what counts as demand,
the instance lifecycle it drives (requested, launching, booting, ready, idle, terminating,
terminated), idempotent launches, provider errors polled into failed instances, drains, consolidation
of an under-used node (the snapshot's tasks, drain, then terminate once its task left), a restart
that launches a recorded request again under its own id, pools deleted with live instances, and
the versioned, transition-checked instance writes. No processes, no sleeps: the clock is manual
and each test drives ``tick`` itself."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import pytest

from hyperion.api import auth
from hyperion.api.errors import Forbidden, Invalid, NotFound
from hyperion.api.logs import LogStore
from hyperion.api.nodepools import NodePools, StaleInstanceError
from hyperion.api.service import ControlService
from hyperion.core import lifecycle
from hyperion.model import NodeState, Placement, Verdict, VerdictCode
from hyperion.model.autoscale import Instance, InstanceState, InstanceTransitionError, NodePoolSpec
from hyperion.model.codec import instance_from_dict, instance_to_dict, nodepool_from_dict, nodepool_to_dict
from hyperion.ports.provider import Capability, ProviderError, ProviderNode
from hyperion.runtime.autoscaler_loop import AutoscalerLoop
from hyperion.runtime.scale_inputs import demand_of, offers_of, tasks_of
from hyperion.store import MemoryStore
from hyperion.store.objects import ClusterState
from hyperion.testing.builders import a_node
from hyperion.testing.clock import ManualClock

S = InstanceState
POOL = {"kind": "NodePool", "name": "gpu", "provider": "local", "max_nodes": 4, "idle_timeout": "30s",
        "capacity_types": ["on-demand"]}
NO_ROOM = Verdict(VerdictCode.UNSCHEDULABLE, ("no nodes registered",), "node-fit")


class FakeProvider:
    """Nodes in a dict; a launch makes them ``running`` at once, a terminate ``terminated``."""

    name = "fake"
    capabilities = Capability.NONE

    def __init__(self, gpus: int = 2) -> None:
        self.gpus = gpus
        self.nodes: dict[str, ProviderNode] = {}
        self.launches: list[str] = []  # request ids the provider acted on
        self.errors: list[ProviderError] = []
        self.refuse: str | None = None  # the next launch fails with this message

    def offers(self) -> list[dict]:
        return [{"node_type": "g2", "gpus": self.gpus, "gpu_type": "logical", "price_per_hour": 0.0}]

    async def list_nodes(self) -> list[ProviderNode]:
        return list(self.nodes.values())

    async def launch(self, node_type: str, count: int, request_id: str) -> list[ProviderNode]:
        done = [n for n in self.nodes.values() if n.request_id == request_id]
        if done:
            return done
        if self.refuse is not None:
            self.errors.append(ProviderError(request_id, self.refuse))
            self.refuse = None
            return []
        self.launches.append(request_id)
        new = [ProviderNode(f"fake-{len(self.nodes) + k + 1}", node_type, "running", request_id) for k in range(count)]
        self.nodes.update((n.id, n) for n in new)
        return new

    async def terminate(self, ids: Sequence[str], request_id: str) -> None:
        for i in ids:
            if i in self.nodes:
                self.nodes[i] = replace(self.nodes[i], state="terminated")

    def drain_errors(self) -> list[ProviderError]:
        errors, self.errors = self.errors, []
        return errors


class FakeHub:
    def __init__(self) -> None:
        self.drained: list[str] = []
        self.last_seen: dict[str, float] = {}

    def drain(self, node_id: str, reason: str) -> None:
        self.drained.append(node_id)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def store() -> MemoryStore:
    return MemoryStore()


def make_service(store: MemoryStore, clock: ManualClock, tmp_path: Path) -> ControlService:
    return ControlService(ClusterState(store), clock, LogStore(tmp_path / "logs"), "admin-token")


@pytest.fixture
def service(store: MemoryStore, clock: ManualClock, tmp_path: Path) -> ControlService:
    return make_service(store, clock, tmp_path)


@pytest.fixture
def provider() -> FakeProvider:
    return FakeProvider()


@pytest.fixture
def hub() -> FakeHub:
    return FakeHub()


@pytest.fixture
def loop(service: ControlService, provider: FakeProvider, hub: FakeHub) -> AutoscalerLoop:
    return AutoscalerLoop(service, hub, lambda pool: provider if pool.provider == "local" else None)  # type: ignore[arg-type]


def submit(service: ControlService, gpus: int = 1, replicas: int = 1, verdict: Verdict | None = NO_ROOM) -> str:
    job_id = service.submit(auth.ADMIN, {"name": "j", "command": "true", "replicas": replicas,
                                         "resources": {"gpus": gpus, "cpus": "100m", "memory": "16Mi"}})["id"]
    if verdict is not None:
        service.verdicts[job_id] = verdict
    return job_id


def join(service: ControlService, node_id: str, gpus: int = 2) -> None:
    """The agent of a launched machine says Hello."""
    service.state.put_node(replace(a_node(node_id).gpus(gpus).cpus(4).memory("8Gi").build(), state=NodeState.READY))


def run(service: ControlService, job_id: str, node_id: str) -> None:
    """The scheduler placed the job on the node and it runs."""
    job = service.state.jobs[job_id]
    placed = lifecycle.assign(job, (Placement(0, node_id, (0,)),), at=0.0)
    service.state.update_jobs([placed])
    service.state.update_jobs([lifecycle.task_running(placed, placed.attempt, 0, 1.0)])
    service.verdicts.pop(job_id, None)


def finish(service: ControlService, job_id: str) -> None:
    job = service.state.jobs[job_id]
    new, _ = lifecycle.task_exited(job, job.attempt, 0, 0, 2.0, "")
    service.state.update_jobs([new])


def states(service: ControlService) -> list[str]:
    return [i.state.value for i in sorted(service.nodepools.instances.values(), key=lambda i: i.id)]


def events(service: ControlService, kind: str) -> list[dict]:
    return service.events.recent(100, [kind])


async def settle(loop: AutoscalerLoop) -> None:
    """Let the launches and terminations the last tick started finish."""
    for _ in range(10):
        await asyncio.sleep(0)
    assert not loop._inflight


def apply_pool(service: ControlService, **changes) -> None:
    service.apply(auth.ADMIN, [{**POOL, **changes}])


# ---- demand and offers ------------------------------------------------------------------------
@pytest.mark.parametrize(("verdict", "is_demand"), [
    (NO_ROOM, True),
    (Verdict(VerdictCode.UNRESOLVABLE, ("no node is large enough",), "node-fit"), True),
    (Verdict(VerdictCode.UNSCHEDULABLE, ("backfill: reserved",), "backfill"), True),
    (Verdict(VerdictCode.UNRESOLVABLE, ("over budget",), "budget"), False),
    (Verdict(VerdictCode.UNSCHEDULABLE, ("over quota",), "quota"), False),
    (Verdict(VerdictCode.UNRESOLVABLE, ("routed to member cloud, waits until t=5",), "federation"), False),
    (Verdict(VerdictCode.UNSCHEDULABLE, ("preemption: waiting for 1 job(s) to stop",), "preemption"), False),
    (None, False),  # not yet seen by the scheduler
])
def test_demand_is_what_more_capacity_would_start(service: ControlService, verdict: Verdict | None, is_demand: bool) -> None:
    job_id = submit(service, gpus=2, replicas=3, verdict=verdict)
    demand = demand_of(service.state, service.verdicts, service.clock.now())
    if not is_demand:
        assert demand == ()
        return
    [d] = demand
    assert (d.job_id, d.gpus_per_replica, d.replicas, d.gpu_type) == (job_id, 2, 3, None)


def test_a_routed_job_held_because_its_member_has_no_node_is_demand_for_that_member(service: ControlService) -> None:
    from hyperion.model.federation import Routing

    held = Verdict(VerdictCode.UNRESOLVABLE, ("routed to member cloud, which has no node yet",), "federation")
    job_id = submit(service, gpus=2, verdict=held)
    now = service.clock.now()
    for start_after, demand in ((now + 60, False), (None, True)):  # a delayed start is not demand; no node is
        job = service.state.jobs[job_id]
        service.state.update_jobs([replace(job, routed=Routing("cloud", "default", now, gpu_type="A100",
                                                               start_after=start_after))])
        got = demand_of(service.state, service.verdicts, now)
        assert [(d.job_id, d.cluster, d.gpu_type) for d in got] == ([(job_id, "cloud", "A100")] if demand else [])


def test_offers_take_the_gpus_of_local_agents_when_the_provider_does_not_say() -> None:
    pool = NodePoolSpec("gpu", "local")
    [o] = offers_of(pool, [{"node_type": "local", "gpus": None, "gpu_type": "logical", "price_per_hour": 0.0}], 8)
    assert (o.pool, o.instance_type, o.gpus, o.usd_per_h, o.spot) == ("gpu", "local", 8, 0.0, False)


# ---- the lifecycle ------------------------------------------------------------------------------
def test_no_pool_no_work(loop: AutoscalerLoop, service: ControlService, store: MemoryStore) -> None:
    submit(service)
    before = store.revision
    assert asyncio.run(loop.tick()) is None
    assert store.revision == before and service.nodepools.instances == {}


def test_a_job_brings_a_node_that_is_released_after_its_idle_timeout(
        loop: AutoscalerLoop, service: ControlService, provider: FakeProvider, clock: ManualClock) -> None:
    async def body() -> None:
        apply_pool(service)
        job_id = submit(service)
        plan = await loop.tick()
        assert plan is not None and [(launch.count, launch.jobs) for launch in plan.launches] == [(1, (job_id,))]
        assert states(service) == ["requested"]  # recorded before the provider is asked
        await settle(loop)
        [i] = service.nodepools.instances.values()
        assert (i.state, i.provider_id, provider.launches) == (S.LAUNCHING, "fake-1", [i.request_id])
        assert [e["job"] for e in events(service, "scale-up")] == [job_id]

        await loop.tick()  # the job still waits: the booting machine is counted, not launched again
        assert states(service) == ["booting"] and len(provider.launches) == 1

        join(service, "fake-1")
        await loop.tick()
        [i] = service.nodepools.instances.values()
        assert (i.state, i.node_id, i.ready_at, i.idle_since) == (S.READY, "fake-1", clock.t, clock.t)

        run(service, job_id, "fake-1")
        clock.advance(60)
        await loop.tick()  # busy: not idle, not released
        [i] = service.nodepools.instances.values()
        assert (i.state, i.idle_since) == (S.READY, None)

        finish(service, job_id)
        await loop.tick()
        idle_from = clock.t
        assert service.nodepools.instances[i.id].idle_since == idle_from
        clock.advance(29)
        await loop.tick()
        assert states(service) == ["ready"]

        clock.advance(1)  # the pool's idle timeout
        await loop.tick()
        assert states(service) == ["terminating"]
        node = service.state.nodes["fake-1"]
        assert node.cordoned and node.state is NodeState.NOT_READY  # no job lands on it meanwhile
        await settle(loop)
        await loop.tick()
        assert states(service) == ["terminated"]
        assert "fake-1" not in service.state.nodes and provider.nodes["fake-1"].state == "terminated"
        assert "idle for 30 s" in events(service, "scale-down")[0]["message"]
        versions = service.nodepools.instances[i.id].version
        assert versions >= 6  # one versioned write per change

    asyncio.run(body())


def test_a_gang_gets_all_its_nodes_in_one_request(loop: AutoscalerLoop, service: ControlService,
                                                  provider: FakeProvider) -> None:
    async def body() -> None:
        apply_pool(service)
        submit(service, gpus=2, replicas=3)  # 2 GPUs a node: three nodes
        await loop.tick()
        await settle(loop)
        assert states(service) == ["launching"] * 3 and len(provider.launches) == 1
        assert len({i.provider_id for i in service.nodepools.instances.values()}) == 3

    asyncio.run(body())


def test_max_nodes_holds_and_the_reason_is_kept(loop: AutoscalerLoop, service: ControlService) -> None:
    async def body() -> None:
        apply_pool(service, max_nodes=1)
        job_id = submit(service, gpus=2, replicas=2)
        plan = await loop.tick()
        assert plan is not None and plan.launches == () and "max_nodes 1" in plan.waiting[job_id]
        assert service.nodepools.instances == {}

    asyncio.run(body())


def test_the_same_plan_applied_twice_launches_once(loop: AutoscalerLoop, service: ControlService,
                                                   provider: FakeProvider, clock: ManualClock) -> None:
    async def body() -> None:
        apply_pool(service)
        submit(service)
        plan = await loop.tick()
        assert plan is not None
        await settle(loop)
        loop._apply(plan, clock.t)
        await settle(loop)
        assert len(service.nodepools.instances) == 1 and len(provider.launches) == 1

    asyncio.run(body())


def test_provider_errors_fail_the_request_and_never_raise(loop: AutoscalerLoop, service: ControlService,
                                                          provider: FakeProvider, clock: ManualClock) -> None:
    async def body() -> None:
        apply_pool(service)
        submit(service)
        provider.refuse = "quota exceeded for g2"
        await loop.tick()
        await settle(loop)
        await loop.tick()  # the error is polled: failed with the message, then cleaned up
        [i] = service.nodepools.instances.values()
        assert i.state in (S.FAILED, S.TERMINATED)
        assert any("quota exceeded for g2" in e["message"] for e in events(service, "scale-failed"))
        await loop.tick()
        failed = [i for i in service.nodepools.instances.values() if i.reason == "quota exceeded for g2"]
        assert failed and failed[0].state is S.TERMINATED
        assert "retrying in 10 s" in service.list_nodepools(auth.ADMIN)["items"][0]["status"]
        clock.advance(10)  # the job still waits: a new request once the pool's retry delay passed
        await loop.tick()
        await settle(loop)
        assert any(i.state is S.LAUNCHING for i in service.nodepools.instances.values())

    asyncio.run(body())


def test_a_launch_that_raises_fails_its_instances(service: ControlService, hub: FakeHub) -> None:
    class Broken(FakeProvider):
        async def launch(self, node_type: str, count: int, request_id: str) -> list[ProviderNode]:
            raise RuntimeError("credentials expired")

    loop = AutoscalerLoop(service, hub, lambda pool: Broken())  # type: ignore[arg-type]

    async def body() -> None:
        apply_pool(service)
        submit(service)
        await loop.tick()
        await settle(loop)
        [i] = service.nodepools.instances.values()
        assert i.state is S.FAILED and "credentials expired" in i.reason

    asyncio.run(body())


def test_a_pool_without_a_provider_here_says_so(loop: AutoscalerLoop, service: ControlService) -> None:
    async def body() -> None:
        apply_pool(service, provider="aws")
        submit(service)
        plan = await loop.tick()
        assert plan is not None and plan.launches == ()
        [view] = service.list_nodepools(auth.ADMIN)["items"]
        assert "not available" in view["status"]

    asyncio.run(body())


def test_a_spot_notice_drains_then_terminates(loop: AutoscalerLoop, service: ControlService, hub: FakeHub,
                                              clock: ManualClock) -> None:
    async def body() -> None:
        apply_pool(service)
        submit(service)
        await loop.tick()
        await settle(loop)
        join(service, "fake-1")
        await loop.tick()
        [i] = service.nodepools.instances.values()
        service.nodepools.write([replace(i, notice_at=clock.t)])
        plan = await loop.tick()
        assert plan is not None and [d.instance_id for d in plan.drains] == [i.id]
        assert hub.drained == ["fake-1"] and service.state.nodes["fake-1"].cordoned
        assert states(service) in (["draining"], ["terminating"])
        await loop.tick()  # nothing runs there: drained
        assert states(service) == ["terminating"]

    asyncio.run(body())


def test_an_under_used_node_is_consolidated_then_terminated_once_its_job_left(
        loop: AutoscalerLoop, service: ControlService, hub: FakeHub, clock: ManualClock) -> None:
    def submit_checkpointing(checkpoint: bool) -> str:
        doc = {"name": "c", "command": "true", "resources": {"gpus": 1, "cpus": "100m", "memory": "16Mi"}}
        return service.submit(auth.ADMIN, {**doc, "checkpoint_dir": "/ckpt"} if checkpoint else doc)["id"]

    async def body() -> None:
        apply_pool(service, consolidate_after="10s")
        gang = submit(service, gpus=2, replicas=2)  # brings two nodes of 2 GPUs
        await loop.tick()
        await settle(loop)
        join(service, "fake-1")
        join(service, "fake-2")
        service.cancel_job(auth.ADMIN, gang)
        service.verdicts.pop(gang, None)
        await loop.tick()
        assert states(service) == ["ready", "ready"]
        movable, pinned = submit_checkpointing(True), submit_checkpointing(False)
        run(service, movable, "fake-1")
        run(service, pinned, "fake-2")
        by_node = {i.node_id: i for i in service.nodepools.instances.values()}
        loads = tasks_of(service.state, service.nodepools.instances.values())
        assert loads[by_node["fake-1"].id][0].movable and not loads[by_node["fake-2"].id][0].movable
        assert loads[by_node["fake-1"].id][0].job_id == movable and loads[by_node["fake-1"].id][0].gpus == 1

        clock.advance(9)
        plan = await loop.tick()  # ready for 9 s of the pool's 10: not yet
        assert plan is not None and plan.drains == () and hub.drained == []
        clock.advance(1)
        plan = await loop.tick()
        assert plan is not None and [d.instance_id for d in plan.drains] == [by_node["fake-1"].id]
        assert hub.drained == ["fake-1"] and service.state.nodes["fake-1"].cordoned
        assert service.nodepools.instances[by_node["fake-1"].id].state is S.DRAINING
        [event] = [e for e in events(service, "scale-down") if "consolidation" in e["message"]]
        assert f"fit on {by_node['fake-2'].id}" in event["message"]

        await loop.tick()  # its job still runs (checkpointing): it stays draining, nothing else drains
        assert service.nodepools.instances[by_node["fake-1"].id].state is S.DRAINING and hub.drained == ["fake-1"]
        service.state.update_jobs([lifecycle.requeue(lifecycle.preempt(service.state.jobs[movable], "drained")[0])])
        await loop.tick()  # no task left: terminated
        assert service.nodepools.instances[by_node["fake-1"].id].state is S.TERMINATING
        assert service.nodepools.instances[by_node["fake-2"].id].state is S.READY

    asyncio.run(body())


def test_a_restart_launches_a_recorded_request_again_under_its_id(
        store: MemoryStore, clock: ManualClock, tmp_path: Path, provider: FakeProvider, hub: FakeHub) -> None:
    async def body() -> None:
        first = make_service(store, clock, tmp_path)
        apply_pool(first)
        submit(first)
        crashed = AutoscalerLoop(first, hub, lambda pool: provider)  # type: ignore[arg-type]
        crashed._start_launch = lambda pool, request_id: None  # type: ignore[method-assign]  # died before asking
        await crashed.tick()
        [i] = first.nodepools.instances.values()
        assert i.state is S.REQUESTED

        again = make_service(store, clock, tmp_path)  # a new control plane on the same store
        assert again.nodepools.instances == {i.id: i} and "gpu" in again.nodepools.pools
        loop = AutoscalerLoop(again, hub, lambda pool: provider)  # type: ignore[arg-type]
        await loop.tick()
        await settle(loop)
        assert provider.launches == [i.request_id]
        assert [x.state for x in again.nodepools.instances.values() if x.request_id == i.request_id] == [S.LAUNCHING]

    asyncio.run(body())


def test_deleting_a_pool_terminates_its_instances(loop: AutoscalerLoop, service: ControlService,
                                                  provider: FakeProvider) -> None:
    async def body() -> None:
        apply_pool(service)
        job_id = submit(service)
        await loop.tick()
        await settle(loop)
        join(service, "fake-1")
        await loop.tick()
        service.cancel_job(auth.ADMIN, job_id)
        assert service.delete_nodepool(auth.ADMIN, "gpu") == {"kind": "NodePool", "name": "gpu", "action": "deleted"}
        [view] = service.list_nodepools(auth.ADMIN)["items"]
        assert view["deleted"] and view["instances"][0]["state"] == "ready"
        await loop.tick()
        await settle(loop)
        await loop.tick()
        assert states(service) == ["terminated"] and provider.nodes["fake-1"].state == "terminated"
        assert service.list_nodepools(auth.ADMIN)["items"] == [] and service.nodepools.retired == {}

    asyncio.run(body())


# ---- the service and the records --------------------------------------------------------------
def test_apply_list_and_delete_node_pools(service: ControlService, store: MemoryStore) -> None:
    assert service.apply(auth.ADMIN, [POOL])["results"] == [{"kind": "NodePool", "name": "gpu", "action": "created"}]
    assert service.apply(auth.ADMIN, [POOL])["results"][0]["action"] == "unchanged"
    assert service.apply(auth.ADMIN, [{**POOL, "max_nodes": 8}])["results"][0]["action"] == "configured"
    [view] = service.list_nodepools(auth.Principal("vision"))["items"]
    assert (view["name"], view["provider"], view["max_nodes"], view["idle_timeout_s"], view["instances"]) == (
        "gpu", "local", 8, 30.0, [])
    before = store.revision
    with pytest.raises(Invalid):  # a rejected document changes nothing, even next to a valid one
        service.apply(auth.ADMIN, [{**POOL, "name": "other"}, {**POOL, "name": "bad", "min_nodes": 5, "max_nodes": 2}])
    assert store.revision == before and set(service.nodepools.pools) == {"gpu"}
    with pytest.raises(Invalid) as bad_region:
        service.apply(auth.ADMIN, [{**POOL, "name": "r", "region": "us-west-2"}])
    assert "only aws pools launch in a region" in str(bad_region.value.detail)
    with pytest.raises(Forbidden):
        service.apply(auth.Principal("vision"), [POOL])
    with pytest.raises(Forbidden):
        service.delete_nodepool(auth.Principal("vision"), "gpu")
    with pytest.raises(NotFound):
        service.delete_nodepool(auth.ADMIN, "nope")
    assert service.delete_nodepool(auth.ADMIN, "gpu")["action"] == "deleted"
    assert service.list_nodepools(auth.ADMIN)["items"] == [] and NodePools(service.state).pools == {}


def test_instance_writes_are_versioned_and_checked(service: ControlService, clock: ManualClock) -> None:
    pools = service.nodepools
    new = Instance("i1", "gpu", "g2", 2, S.REQUESTED, "r1", clock.t)
    [stored] = pools.write([new])
    assert stored.version == 1
    with pytest.raises(StaleInstanceError):
        pools.write([replace(new, state=S.LAUNCHING)])  # from version 0: stale
    with pytest.raises(InstanceTransitionError):
        pools.write([replace(stored, state=S.TERMINATED)])  # requested -> terminated is not in the table
    assert pools.instances["i1"] == stored
    assert NodePools(service.state).instances == {"i1": stored}  # what the store holds


def test_codec_round_trips() -> None:
    i = Instance("i1", "gpu", "g2", 2, S.READY, "r1", 5.0, gpu_type="A100", spot=True, provider_id="p", node_id="n",
                 ready_at=6.0, idle_since=7.0, reason="why", version=3)
    assert instance_from_dict(instance_to_dict(i)) == i
    pool = NodePoolSpec("gpu", "aws", ("p4d.24xlarge",), ("A100",), ("on-demand",), 1, 3, 60.0, 90.0)
    assert nodepool_from_dict(nodepool_to_dict(pool)) == pool


# ---- interruption notices (runtime.cloud_chores, the agents' spot notices) -----------------------
def test_a_notice_marks_the_instance_once_and_its_job_gets_a_replacement(
        loop: AutoscalerLoop, service: ControlService, hub: FakeHub, provider: FakeProvider, clock: ManualClock) -> None:
    from hyperion.providers.aws_events import InterruptionEvent
    from hyperion.runtime.cloud_chores import CloudChores

    class Queue:
        def __init__(self, *events: InterruptionEvent) -> None:
            self.events = list(events)

        async def poll(self, max_messages: int = 10, wait_s: int = 0) -> list[InterruptionEvent]:
            events, self.events = self.events, []
            return events

        def drain_errors(self) -> list[ProviderError]:
            return [ProviderError("sqs-interruptions", "throttled")]

    async def body() -> None:
        apply_pool(service, max_nodes=2)
        job_id = submit(service)
        await loop.tick()
        await settle(loop)
        join(service, "fake-1")
        await loop.tick()
        run(service, job_id, "fake-1")
        [i] = service.nodepools.instances.values()
        chores = CloudChores(loop, Queue(InterruptionEvent("spot-interruption", "fake-1", 50.0, "terminate"),
                                         InterruptionEvent("rebalance-recommendation", "i-not-ours", 51.0)))
        assert await chores.poll_interruptions() == 1  # the other instance is not ours: ignored
        marked = service.nodepools.instances[i.id]
        assert (marked.notice_at, marked.version, marked.state) == (50.0, i.version + 1, S.READY)
        assert loop.notice(60.0, "spot-interruption", "the node's agent", node_id="fake-1") == marked  # told already
        [event] = events(service, "spot-interruption")
        assert "fake-1" in event["message"] and "SQS" in event["message"]
        plan = await loop.tick()
        assert plan is not None and [d.instance_id for d in plan.drains] == [i.id] and hub.drained == ["fake-1"]
        service.state.update_jobs([lifecycle.requeue(lifecycle.preempt(service.state.jobs[job_id], "drained")[0])])
        service.verdicts[job_id] = NO_ROOM
        clock.advance(1.0)
        plan = await loop.tick()  # the requeued job is demand: a replacement, while the drained one ends
        await settle(loop)
        assert plan is not None and len(plan.launches) == 1 and len(provider.launches) == 2
        assert sorted(states(service)) in (["launching", "terminating"], ["booting", "terminating"])

    asyncio.run(body())


def test_a_pool_of_instance_types_allows_their_spot_node_types() -> None:
    from hyperion.runtime.scale_inputs import with_node_types

    offers = [{"node_type": "g5.xlarge", "instance_type": "g5.xlarge"}, {"node_type": "g5.xlarge:spot", "instance_type": "g5.xlarge"},
              {"node_type": "p5.48xlarge:spot", "instance_type": "p5.48xlarge"}, {"node_type": "local"}]
    pool = NodePoolSpec("gpu", "aws", instance_types=("g5.xlarge",))
    assert with_node_types(pool, offers).instance_types == ("g5.xlarge", "g5.xlarge:spot")
    assert with_node_types(NodePoolSpec("any", "aws"), offers).instance_types == ()

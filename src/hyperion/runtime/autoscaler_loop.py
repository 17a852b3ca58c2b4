"""The autoscaler loop: node pools (``kind: NodePool``) get machines when jobs wait for capacity
and give them back when idle.

Each tick (every ``interval`` seconds, and right after a scheduling cycle):

1. *poll*: each pool's provider lists its nodes; its errors (``drain_errors``) mark the instances
   of the failed request FAILED with the message, and a ``scale-failed`` event says so. Nothing a
   provider does is raised into this loop or any other.
2. *follow*: instances move along the lifecycle table as the world moves: LAUNCHING -> BOOTING when
   the provider says the machine runs, -> READY when its agent's node joined (the provider's node
   id is the agent's node id); TERMINATING -> TERMINATED when the provider says it is gone (its
   node object is then forgotten); a READY machine the provider lost is FAILED. A ready instance
   without tasks is idle since the first tick that saw it so.
3. *decide*: ``core.autoscale.reconcile`` on a ``ScaleSnapshot`` of the pools, their offers, the
   instances, the demand the scheduler's verdicts show (``runtime.scale_inputs``) and the GPUs
   each instance's tasks hold, and the tasks on each ready node (what consolidation may move).
4. *apply*: a launch becomes instances recorded REQUESTED (before the provider is asked, so a crash
   never loses one), then ``provider.launch(node_type, count, request_id)`` in the background;
   a request already recorded is not launched again, and a REQUESTED instance left by a restart is
   launched again under its own request id (providers are idempotent by request id). A
   termination cordons the node and takes it out of scheduling in the same step (so no job lands
   on it), marks the instance TERMINATING and asks the provider; a drain cordons the node and asks
   its jobs to checkpoint and requeue (``AgentHub.drain``), and once no task is left it is
   terminated. Live instances of a deleted pool are terminated. After a failed launch, the pool
   launches nothing new for ``retry_s`` seconds (the pool's status says so).

Every instance write is a versioned, guarded commit checked against the transition table
(``api.nodepools.NodePools.write``). Launches and terminations are ``scale-up`` / ``scale-down``
events. With no pool and no instance, a tick does nothing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import replace

from hyperion.api.agents import AgentHub
from hyperion.api.service import ControlService
from hyperion.core.autoscale import reconcile
from hyperion.model import NodeState
from hyperion.model.autoscale import Instance, InstanceState, Launch, NodePoolSpec, ScalePlan, ScaleSnapshot
from hyperion.ports.provider import NodeProvider, ProviderNode
from hyperion.runtime.scale_inputs import busy, demand_of, offers_of, tasks_of, used_gpus, with_node_types

log = logging.getLogger("hyperion.autoscaler")

S = InstanceState
KEEP_ENDED = 50  # terminated instances kept (shown) per pool; older ones are forgotten
ProviderFactory = Callable[[NodePoolSpec], "NodeProvider | None"]


class AutoscalerLoop:
    def __init__(self, service: ControlService, hub: AgentHub | None, providers: ProviderFactory,
                 interval: float = 0.5, min_interval: float = 0.02, default_gpus: Callable[[], int] = lambda: 0,
                 retry_s: float = 10.0) -> None:
        self.service = service
        self.state = service.state
        self.pools = service.nodepools
        self.hub = hub
        self._factory = providers
        self._providers: dict[str, tuple[NodePoolSpec, NodeProvider | None]] = {}
        self.interval = interval
        self.min_interval = min_interval
        self.default_gpus = default_gpus
        self._wake = asyncio.Event()
        self._inflight: dict[str, asyncio.Task] = {}  # request id -> its launch or termination
        self.retry_s = retry_s
        self._retry_at: dict[str, float] = {}  # pool -> no new launch before (a launch of it failed)
        self.ticks = 0
        self.last_plan: ScalePlan | None = None

    def wake(self) -> None:
        self._wake.set()

    # ---- providers -----------------------------------------------------------------------
    def provider(self, pool: NodePoolSpec) -> NodeProvider | None:
        """The pool's provider, built again only when what it is built from changes (``_provider_key``)."""
        cached = self._providers.get(pool.name)
        if cached is not None and _provider_key(cached[0]) == _provider_key(pool):
            return cached[1]
        try:
            p = self._factory(pool)
        except Exception as exc:  # a provider that cannot be built is a status, not a crash
            log.exception("cannot build provider %s for pool %s", pool.provider, pool.name)
            self.pools.status[pool.name] = f"provider {pool.provider!r} failed to start: {exc}"
            p = None
        if p is None and pool.name not in self.pools.status:
            self.pools.status[pool.name] = f"provider {pool.provider!r} is not available in this control plane"
        elif p is not None:
            self.pools.status.pop(pool.name, None)
        self._providers[pool.name] = (pool, p)
        return p

    def _all_pools(self) -> dict[str, NodePoolSpec]:
        return {**self.pools.retired, **self.pools.pools}

    # ---- the tick ------------------------------------------------------------------------
    async def tick(self) -> ScalePlan | None:
        pools = self._all_pools()
        if not pools and not any(i.state.live for i in self.pools.instances.values()):
            return None
        listed: dict[str, dict[str, ProviderNode] | None] = {}
        for name, pool in pools.items():
            p = self.provider(pool)
            if p is None:
                continue
            try:
                listed[name] = {n.id: n for n in await p.list_nodes()}
            except Exception as exc:
                log.warning("pool %s: listing nodes failed: %s", name, exc)
                listed[name] = None  # unknown this tick: nothing is concluded from it
            self._take_errors(name, p)
        # from here to the end of apply: no await, so no job is placed on a node being released
        now = self.service.clock.now()
        self._follow(listed, now)
        plan = reconcile(self.snapshot(now))
        self._apply(plan, now)
        self._prune()
        self.ticks += 1
        self.last_plan = plan
        return plan

    def snapshot(self, now: float) -> ScaleSnapshot:
        offers = []
        pools = []
        for pool in self.pools.pools.values():
            p = self.provider(pool)
            if p is not None:
                try:
                    provided = p.offers()
                    offers += offers_of(pool, provided, self.default_gpus())
                    pool = with_node_types(pool, provided)
                except Exception as exc:
                    self.pools.status[pool.name] = f"offers failed: {exc}"
            pools.append(pool)
        instances = tuple(self.pools.instances.values())
        return ScaleSnapshot(now=now, seed=self.ticks, pools=tuple(pools), offers=tuple(offers),
                             instances=instances, demand=demand_of(self.state, self.service.verdicts, now),
                             used_gpus=used_gpus(self.state, instances), tasks=tasks_of(self.state, instances))

    # ---- phase 1: provider errors ----------------------------------------------------------
    def _take_errors(self, pool: str, p: NodeProvider) -> None:
        try:
            errors = p.drain_errors()
        except Exception as exc:
            errors = []
            log.warning("pool %s: drain_errors failed: %s", pool, exc)
        for err in errors:
            failed = []
            for i in self.pools.by_request(err.request_id):
                if i.state in (S.REQUESTED, S.LAUNCHING, S.BOOTING):
                    failed.append(replace(i, state=S.FAILED, reason=err.message))
            if failed:
                self.pools.write(failed)
                self._failed_launch(pool, err.message)
            target = _terminated_instance(err.request_id)
            if target in self.pools.instances:
                i = self.pools.instances[target]
                self.pools.write([replace(i, reason=err.message)])
            self.service.events.emit("scale-failed", f"pool {pool}: provider {p.name}: {err.message} "
                                                     f"(request {err.request_id})", node=None)

    # ---- phase 2: follow the world -------------------------------------------------------
    def _follow(self, listed: dict[str, dict[str, ProviderNode] | None], now: float) -> None:
        changed: list[Instance] = []
        for i in list(self.pools.instances.values()):
            nodes = listed.get(i.pool)
            new = self._followed(i, nodes, now)
            if new is not i:
                changed.append(new)
        self.pools.write(changed)
        for i in list(self.pools.instances.values()):  # a terminated machine's node object goes too
            node_id = _node_of(i, self.state.nodes)
            if i.state is S.TERMINATED and node_id:
                self._forget_node(node_id)

    def _followed(self, i: Instance, nodes: dict[str, ProviderNode] | None, now: float) -> Instance:
        if nodes is None or i.request_id in self._inflight:
            return i
        pn = nodes.get(i.provider_id) if i.provider_id else None
        if pn is not None and pn.zone and pn.zone != i.zone:
            i = replace(i, zone=pn.zone)  # where it actually runs (spot replacements avoid a zone being reclaimed)
        running = pn is not None and pn.state != "terminated"
        node = self.state.nodes.get(i.provider_id) if i.provider_id else None
        if i.state in (S.LAUNCHING, S.BOOTING):
            if node is not None and node.state is NodeState.READY and running:
                idle = None if busy(self.state, node.id) else now
                return replace(i, state=S.READY, node_id=node.id, ready_at=now, idle_since=idle,
                               gpus=node.capacity.gpus or i.gpus)
            if i.state is S.LAUNCHING and running:
                return replace(i, state=S.BOOTING)
            if pn is not None and not running:
                return replace(i, state=S.FAILED, reason="the machine ended before its agent joined")
            return i
        if i.state in (S.READY, S.DRAINING):
            if not running:
                return replace(i, state=S.FAILED, reason="the provider no longer runs this machine")
            if i.state is S.READY:
                working = busy(self.state, i.node_id)
                if working and i.idle_since is not None:
                    return replace(i, idle_since=None)
                if not working and i.idle_since is None:
                    return replace(i, idle_since=now)
            return i
        if i.state is S.TERMINATING and not running:
            return replace(i, state=S.TERMINATED, idle_since=None)
        return i

    # ---- phase 4: apply the plan -----------------------------------------------------------
    def _apply(self, plan: ScalePlan, now: float) -> None:
        pools = self.pools.pools
        for launch in plan.launches:
            if self.pools.by_request(launch.request_id):
                continue  # recorded already: the same plan applied twice launches once
            if now < self._retry_at.get(launch.pool, float("-inf")):
                continue
            if self._retry_at.pop(launch.pool, None) is not None:
                self.pools.status.pop(launch.pool, None)
            self._record_launch(launch, now)
        for i in sorted(self.pools.instances.values(), key=lambda i: i.id):  # left by a restart: ask again
            if i.state is S.REQUESTED and i.request_id not in self._inflight and i.pool in pools:
                self._start_launch(pools[i.pool], i.request_id)
        for t in plan.terminations:
            self._terminate(t.instance_id, t.reason)
        for d in plan.drains:
            self._drain(d.instance_id, d.reason)
        for i in list(self.pools.instances.values()):
            if i.state is S.DRAINING and not busy(self.state, i.node_id):
                self._terminate(i.id, "drained: no task left")
            elif i.pool not in pools and i.state.live:
                self._terminate(i.id, f"its pool {i.pool} was deleted")
            elif i.state is S.TERMINATING and _termination(i) not in self._inflight and i.pool in self._all_pools():
                self._start_terminate(i)  # a restart interrupted it
        for name in list(self.pools.retired):
            if all(i.state is S.TERMINATED for i in self.pools.of_pool(name)):
                self.pools.forget_retired(name)

    def _record_launch(self, launch: Launch, now: float) -> None:
        pool = self.pools.pools[launch.pool]
        created = [Instance(id=f"{launch.request_id}.{k}", pool=launch.pool, instance_type=launch.instance_type,
                            gpus=launch.gpus, state=S.REQUESTED, request_id=launch.request_id, created_at=now,
                            gpu_type=launch.gpu_type, spot=launch.spot, zone=launch.zone, usd_per_h=launch.usd_per_h,
                            reason=launch.reason) for k in range(launch.count)]
        self.pools.write(created)
        jobs = f" for job(s) {', '.join(launch.jobs)}" if launch.jobs else ""
        self.service.events.emit("scale-up", f"pool {launch.pool}: launching {launch.count} {launch.instance_type} "
                                             f"node(s){jobs} (request {launch.request_id}): {launch.reason}",
                                 job=launch.jobs[0] if len(launch.jobs) == 1 else None)
        self._start_launch(pool, launch.request_id)

    def _start_launch(self, pool: NodePoolSpec, request_id: str) -> None:
        p = self.provider(pool)
        mine = [i for i in self.pools.by_request(request_id) if i.state is S.REQUESTED]
        if not mine:
            return
        if p is None:
            self.pools.write([replace(i, state=S.FAILED, reason=self.pools.status.get(pool.name, "no provider"))
                              for i in mine])
            return
        task = asyncio.get_running_loop().create_task(self._launch(pool.name, p, mine[0].instance_type, len(mine), request_id),
                                                      name=f"launch {request_id}")
        self._inflight[request_id] = task

    async def _launch(self, pool: str, p: NodeProvider, node_type: str, count: int, request_id: str) -> None:
        try:
            nodes = await p.launch(node_type, count, request_id)
            why = f"the provider launched {len(nodes)} of {count}"
        except Exception as exc:  # never raised into the loop: the instances fail with the message
            log.warning("launch %s failed: %s", request_id, exc)
            nodes, why = [], f"launch failed: {exc}"
        finally:
            self._inflight.pop(request_id, None)
        if len(nodes) < count:
            self._take_errors(pool, p)  # the provider's own message first
        waiting = [i for i in self.pools.by_request(request_id) if i.state is S.REQUESTED]
        known = {i.provider_id for i in self.pools.by_request(request_id)}
        fresh = [n for n in nodes if n.id not in known]
        changed = [replace(i, state=S.LAUNCHING, provider_id=n.id) for i, n in zip(waiting, fresh, strict=False)]
        failed = [replace(i, state=S.FAILED, reason=why) for i in waiting[len(fresh):]]
        self.pools.write(changed + failed)
        if failed:
            self.service.events.emit("scale-failed", f"pool {waiting[0].pool}: {why} (request {request_id})")
            self._failed_launch(pool, why)
        self.wake()

    def _failed_launch(self, pool: str, why: str) -> None:
        """No new launch for the pool for ``retry_s`` (a provider out of capacity is not asked every tick)."""
        self._retry_at[pool] = self.service.clock.now() + self.retry_s
        self.pools.status[pool] = f"a launch failed ({why}); retrying in {self.retry_s:.0f} s"

    def _terminate(self, instance_id: str, reason: str) -> None:
        i = self.pools.instances.get(instance_id)
        if i is None or i.state in (S.TERMINATING, S.TERMINATED):
            return
        node_id = _node_of(i, self.state.nodes)
        if node_id:  # out of scheduling before anything else
            node = self.state.nodes[node_id]
            if busy(self.state, node.id):
                log.warning("not terminating %s: its node %s runs tasks", i.id, node.id)
                return
            self.state.put_node(replace(node, cordoned=True, state=NodeState.NOT_READY))
        nothing = not i.provider_id and i.request_id not in self._inflight
        [i] = self.pools.write([replace(i, state=S.TERMINATED if nothing and i.state is S.FAILED else S.TERMINATING,
                                        reason=i.reason if i.state is S.FAILED and i.reason else reason,
                                        idle_since=None)])
        self.service.events.emit("scale-down", f"pool {i.pool}: terminating {i.id}"
                                               f"{' (node ' + i.node_id + ')' if i.node_id else ''}: {reason}",
                                 node=i.node_id or None)
        if i.state is S.TERMINATING:
            self._start_terminate(i)

    def _start_terminate(self, i: Instance) -> None:
        pool = self._all_pools().get(i.pool)
        p = self.provider(pool) if pool is not None else None
        if p is None or not i.provider_id:
            return
        key = _termination(i)
        self._inflight[key] = asyncio.get_running_loop().create_task(self._end(p, i.provider_id, key), name=key)

    async def _end(self, p: NodeProvider, provider_id: str, key: str) -> None:
        try:
            await p.terminate([provider_id], key)
        except Exception as exc:
            log.warning("%s failed: %s", key, exc)
        finally:
            self._inflight.pop(key, None)
        self.wake()

    def _drain(self, instance_id: str, reason: str) -> None:
        i = self.pools.instances.get(instance_id)
        if i is None or i.state is not S.READY:
            return
        node = self.state.nodes.get(i.node_id)
        if node is not None and not node.cordoned:
            self.state.put_node(replace(node, cordoned=True))
        self.pools.write([replace(i, state=S.DRAINING, reason=reason, idle_since=None)])
        if self.hub is not None and node is not None:
            self.hub.drain(node.id, f"node {node.id} drained by the autoscaler: {reason}")
        self.service.events.emit("scale-down", f"pool {i.pool}: draining {i.id} (node {i.node_id}): {reason}",
                                 node=i.node_id or None)

    def _forget_node(self, node_id: str) -> None:
        if busy(self.state, node_id):
            return  # its tasks end first (node loss); tried again next tick
        self.state.delete_node(node_id)
        self.service.metrics.pop(node_id, None)
        if self.hub is not None:
            self.hub.last_seen.pop(node_id, None)
            tokens = getattr(self.hub, "bootstrap", None)  # api.bootstrap.BootstrapTokens
            if tokens is not None:
                tokens.revoke_node(node_id)  # the machine is gone: its bootstrap token admits nobody
        self.service.wake()

    def _prune(self) -> None:
        for name in {i.pool for i in self.pools.instances.values()}:
            ended = [i for i in self.pools.of_pool(name) if i.state is S.TERMINATED]
            if len(ended) > KEEP_ENDED:
                self.pools.forget(i.id for i in ended[:len(ended) - KEEP_ENDED])

    # ---- interruptions (runtime.cloud_chores, the agents' spot notices) ---------------------
    def notice(self, at: float, kind: str, source: str, *, provider_id: str = "", node_id: str = "") -> Instance | None:
        """An interruption notice (``spot-interruption`` or ``rebalance-recommendation``) for the
        live instance whose provider id is ``provider_id`` (or whose node is ``node_id``): its
        ``notice_at`` is set (a versioned write) and a ``spot-interruption`` event says so; the
        next reconcile drains it (its jobs checkpoint and requeue) and launches a replacement.
        Returns the instance, or None when no live instance matches (not ours, or gone)."""
        for i in sorted(self.pools.instances.values(), key=lambda i: i.id):
            if not i.state.live or not ((provider_id and i.provider_id == provider_id)
                                        or (node_id and node_id in (i.node_id, i.provider_id))):
                continue
            if i.notice_at is not None:
                return i  # told already (the queue and the agent both say so)
            [i] = self.pools.write([replace(i, notice_at=at)])
            self.service.events.emit("spot-interruption", f"pool {i.pool}: {kind} for {i.id} (instance {i.provider_id}) "
                                                          f"from {source}: draining it and launching a replacement",
                                     node=i.node_id or None)
            log.warning("pool %s: %s for %s (instance %s) from %s", i.pool, kind, i.id, i.provider_id, source)
            self.wake()
            return i
        return None

    def providers_named(self, name: str) -> list[NodeProvider]:
        """The built providers of that kind (e.g. ``aws``), one per pool, live and retired pools."""
        return [p for spec, p in self._providers.values() if p is not None and spec.provider == name]

    # ---- running -------------------------------------------------------------------------
    async def run(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self._wake.wait(), self.interval)
            except TimeoutError:
                pass
            self._wake.clear()
            try:
                await self.tick()
            except Exception:
                log.exception("autoscaler tick failed; retrying on the next one")
            await asyncio.sleep(self.min_interval)

    async def stop(self) -> None:
        """Wait for launches and terminations in flight (the provider's records stay consistent)."""
        tasks = list(self._inflight.values())
        if tasks:
            await asyncio.wait(tasks, timeout=10)


def _provider_key(pool: NodePoolSpec) -> tuple:
    """What a pool's provider is built from: its kind, region, member (node labels), instance and
    capacity types (offers); a change of any of these builds it again."""
    return pool.provider, pool.region, pool.cluster, pool.instance_types, pool.capacity_types


def _node_of(i: Instance, nodes) -> str:
    """The id of the instance's node object, if it has one (its agent joined)."""
    for candidate in (i.node_id, i.provider_id):
        if candidate and candidate in nodes:
            return candidate
    return ""


def _termination(i: Instance) -> str:
    return f"terminate-{i.id}"


def _terminated_instance(request_id: str) -> str:
    return request_id.removeprefix("terminate-") if request_id.startswith("terminate-") else ""

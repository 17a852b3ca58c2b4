"""The autoscaler's objects as the control plane keeps them: node pools (``kind: NodePool``) and
the instances each pool asked its provider for.

Both are store records (``records/nodepools/<name>``, ``records/instances/<id>``), cached in memory
(the control plane is the single writer of its store) and written through with guarded commits.
Every instance write is checked twice: its state change against ``INSTANCE_TRANSITIONS``, and its
``version`` against the cached one (a writer holding a stale copy is refused), then the version
moves on by one.

Glossary:
- *retired pool*: a pool that was deleted while it still had live instances; its spec is kept
  (``records/nodepools-retired/<name>``) so the loop knows their provider and terminates them,
  then forgets it. Applying a pool of the same name again adopts them.
- *pool status*: what the autoscaler loop last said about a pool that it could not act on (no
  such provider here, a provider error); kept in memory only, shown by ``GET /v1/nodepools``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

from hyperion.core.plugins.federation import CLUSTER_LABEL
from hyperion.model.autoscale import Instance, InstanceState, NodePoolSpec, check_instance_transition
from hyperion.model.codec import instance_from_dict, instance_to_dict, nodepool_from_dict, nodepool_to_dict
from hyperion.store.objects import ClusterState

POOLS, RETIRED, INSTANCES = "nodepools/", "nodepools-retired/", "instances/"
POOL_LABEL = "hyperion.io/pool"  # the label a pool's nodes carry: its name


class StaleInstanceError(RuntimeError):
    """An instance write was based on an older version than the one stored."""


class NodePools:
    def __init__(self, state: ClusterState) -> None:
        self.state = state
        self.pools: dict[str, NodePoolSpec] = {}
        self.retired: dict[str, NodePoolSpec] = {}
        self.instances: dict[str, Instance] = {}
        self.status: dict[str, str] = {}  # pool -> what the loop could not do (in memory)
        self.version = 0  # +1 on every change to pools or instances
        for _, data in state.records(POOLS):
            pool = nodepool_from_dict(data)
            self.pools[pool.name] = pool
        for _, data in state.records(RETIRED):
            pool = nodepool_from_dict(data)
            self.retired[pool.name] = pool
        for _, data in state.records(INSTANCES):
            instance = instance_from_dict(data)
            self.instances[instance.id] = instance

    # ---- pools ---------------------------------------------------------------------------
    def put_pool(self, pool: NodePoolSpec) -> str:
        """Create or replace a pool; returns ``created``, ``configured`` or ``unchanged``."""
        old = self.pools.get(pool.name)
        if old == pool:
            return "unchanged"
        self.state.write_records({POOLS + pool.name: nodepool_to_dict(pool)},
                                 [RETIRED + pool.name] if pool.name in self.retired else [])
        self.pools[pool.name] = pool
        self.retired.pop(pool.name, None)
        self.version += 1
        return "configured" if old else "created"

    def delete_pool(self, name: str) -> bool:
        """Remove a pool (its live instances are then terminated by the loop); False if unknown."""
        if name not in self.pools:
            return False
        pool = self.pools[name]
        live = any(i.pool == name and i.state.live for i in self.instances.values())
        self.state.write_records({RETIRED + name: nodepool_to_dict(pool)} if live else {}, [POOLS + name])
        del self.pools[name]
        if live:
            self.retired[name] = pool
        self.status.pop(name, None)
        self.version += 1
        return True

    def forget_retired(self, name: str) -> None:
        """The retired pool's instances have all ended: forget its spec."""
        if name in self.retired:
            self.state.write_records({}, [RETIRED + name])
            del self.retired[name]
            self.version += 1

    # ---- instances -----------------------------------------------------------------------
    def of_pool(self, name: str) -> list[Instance]:
        return sorted((i for i in self.instances.values() if i.pool == name), key=lambda i: (i.created_at, i.id))

    def by_request(self, request_id: str) -> list[Instance]:
        return sorted((i for i in self.instances.values() if i.request_id == request_id), key=lambda i: i.id)

    def write(self, changed: Iterable[Instance]) -> list[Instance]:
        """Create or update instances in one guarded commit. Each must carry the version of the
        copy it was derived from (0 for a new one) and may move only along the transition table;
        returns what was stored (versions moved on)."""
        stored = []
        for new in changed:
            old = self.instances.get(new.id)
            if old is None:
                if new.version != 0:
                    raise StaleInstanceError(f"instance {new.id} does not exist; a new instance has version 0")
            else:
                if new.version != old.version:
                    raise StaleInstanceError(f"instance {new.id}: written from version {new.version}, "
                                             f"but version {old.version} is stored")
                check_instance_transition(old.state, new.state)
                if new == old:
                    continue
            stored.append(replace(new, version=new.version + 1))
        if not stored:
            return []
        self.state.write_records({INSTANCES + i.id: instance_to_dict(i) for i in stored})
        for i in stored:
            self.instances[i.id] = i
        self.version += 1
        return stored

    def forget(self, ids: Iterable[str]) -> None:
        """Delete the records of final instances (pruning old history)."""
        ids = [i for i in ids if i in self.instances]
        for i in ids:
            if self.instances[i].state not in (InstanceState.TERMINATED, InstanceState.FAILED):
                raise ValueError(f"instance {i} is {self.instances[i].state.value}; only ended instances are forgotten")
        if ids:
            self.state.write_records({}, [INSTANCES + i for i in ids])
            for i in ids:
                del self.instances[i]
            self.version += 1

    # ---- views ---------------------------------------------------------------------------
    def views(self) -> list[dict]:
        """Every pool with its instances (and instances of pools deleted while they lived)."""
        out = [{**pool_view(p), "status": self.status.get(p.name, ""),
                "instances": [instance_view(i) for i in self.of_pool(p.name)]} for _, p in sorted(self.pools.items())]
        for name in sorted(self.retired):
            out.append({"name": name, "deleted": True, "status": "deleted: its instances are being terminated",
                        "instances": [instance_view(i) for i in self.of_pool(name)]})
        return out


def pool_labels(p: NodePoolSpec) -> dict[str, str]:
    """The labels a pool's nodes' agents carry: the pool, and the federation member they join."""
    return {POOL_LABEL: p.name, **({CLUSTER_LABEL: p.cluster} if p.cluster else {})}


def pool_view(p: NodePoolSpec) -> dict:
    return {"name": p.name, "provider": p.provider, "instance_types": list(p.instance_types), "gpu_types": list(p.gpu_types),
            "capacity_types": list(p.capacity_types), "min_nodes": p.min_nodes, "max_nodes": p.max_nodes,
            "idle_timeout_s": p.idle_timeout_s, "boot_s": p.boot_s, "cluster": p.cluster,
            "consolidate_after_s": p.consolidate_after_s, "region": p.region}


def instance_view(i: Instance) -> dict:
    return instance_to_dict(i)

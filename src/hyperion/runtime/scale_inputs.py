"""What the autoscaler's snapshot (``model.autoscale.ScaleSnapshot``) is built from in the live
control plane: demand from the scheduler's verdicts, offers from the pools' providers, GPUs held
on each instance's node. Functions of the state they are given: no I/O, no clock.

Glossary:
- *demand*: a pending job the last scheduling cycle could not place for lack of capacity: its
  verdict is UNSCHEDULABLE or UNRESOLVABLE and came from node fit or a backfill reservation
  (``DEMAND_PLUGINS``), or the federation gate holds it because its member has no node yet. A
  job held by its budget, its quota, the federation's delayed start or waiting for preemption
  victims to stop is not demand: more machines would not start it. A routed job is demand for the
  pools whose nodes join its member only (``Demand.cluster``).
- *offer*: one node type a pool's provider launches (the ``NodeProvider.offers`` dicts), as an
  ``InstanceOffer`` of that pool.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace

from hyperion.model import Verdict, VerdictCode
from hyperion.model.autoscale import Demand, Instance, InstanceOffer, InstanceState, NodePoolSpec
from hyperion.model.federation import Routing
from hyperion.store.objects import ClusterState

DEMAND_PLUGINS = frozenset({"node-fit", "backfill"})
DEMAND_CODES = frozenset({VerdictCode.UNSCHEDULABLE, VerdictCode.UNRESOLVABLE})


def is_demand(verdict: Verdict | None) -> bool:
    return verdict is not None and verdict.code in DEMAND_CODES and verdict.plugin in DEMAND_PLUGINS


def demand_of(state: ClusterState, verdicts: Mapping[str, Verdict], now: float) -> tuple[Demand, ...]:
    """The pending jobs that more capacity would start, as the autoscaler's ``Demand``."""
    out = []
    for job_id in state.pending:
        job = state.jobs[job_id]
        routed = job.routed
        verdict = verdicts.get(job_id)
        if not (is_demand(verdict) or (routed is not None and _waits_for_member_nodes(verdict, routed, now))):
            continue
        s = job.spec
        estimate = s.runtime_estimate_s if s.runtime_estimate_s is not None else state.runtime_estimate(s.team, s.user)
        out.append(Demand(job_id=job.id, gpus_per_replica=s.resources.gpus, replicas=s.replicas,
                          gpu_type=s.gpu_type or (routed.gpu_type if routed is not None else None) or None,
                          spot_ok=bool(s.checkpoint_dir) or job.last_checkpoint_at is not None,
                          deadline=s.deadline, runtime_estimate_s=estimate, submitted_at=job.submitted_at,
                          priority=int(s.priority) * 1_000_000 + s.priority_value,
                          cluster=routed.cluster if routed is not None else None))
    return tuple(out)


def _waits_for_member_nodes(verdict: Verdict | None, routed: Routing, now: float) -> bool:
    """The federation gate holds the job because its member has no node yet (not because it
    waits for a later hour): nodes of a pool that joins the member would start it."""
    return (verdict is not None and verdict.plugin == "federation" and verdict.code in DEMAND_CODES
            and (routed.start_after is None or routed.start_after <= now))


def offers_of(pool: NodePoolSpec, provider_offers: Iterable[Mapping], default_gpus: int = 0) -> tuple[InstanceOffer, ...]:
    """A provider's offers as the pool's ``InstanceOffer``s; an offer that does not say how many
    GPUs its nodes have gets ``default_gpus`` (what this machine's agents report)."""
    out = []
    for o in provider_offers:
        gpus = o.get("gpus")
        out.append(InstanceOffer(pool=pool.name, instance_type=str(o["node_type"]),
                                 gpus=int(gpus) if gpus is not None else default_gpus,
                                 usd_per_h=float(o.get("price_per_hour") or 0.0), gpu_type=o.get("gpu_type") or None,
                                 spot=bool(o.get("spot", False)), zone=str(o.get("zone") or ""),
                                 interruptions_per_h=o.get("interruptions_per_h")))
    return tuple(out)


def with_node_types(pool: NodePoolSpec, provider_offers: Iterable[Mapping]) -> NodePoolSpec:
    """The pool as the decision sees it: its ``instance_types`` name instance types (``g5.xlarge``),
    the offers name node types (``g5.xlarge:spot`` for the aws provider's spot market), so every
    node type whose offer's ``instance_type`` the pool allows is added. An empty list stays empty
    (any type)."""
    if not pool.instance_types:
        return pool
    extra = tuple(sorted({str(o["node_type"]) for o in provider_offers
                          if o.get("instance_type") in pool.instance_types and o["node_type"] not in pool.instance_types}))
    return replace(pool, instance_types=pool.instance_types + extra) if extra else pool


def used_gpus(state: ClusterState, instances: Iterable[Instance]) -> dict[str, int]:
    """Instance id -> GPUs the live tasks on its node hold (ready instances with a node)."""
    out = {}
    for i in instances:
        if i.node_id and i.state in (InstanceState.READY, InstanceState.DRAINING):
            out[i.id] = state.allocated(i.node_id)[0].gpus
    return out


def busy(state: ClusterState, node_id: str) -> bool:
    """Whether any live task is on the node (it is not idle)."""
    return bool(state.node_tasks.get(node_id))

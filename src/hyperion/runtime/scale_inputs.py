"""What the autoscaler's snapshot (``model.autoscale.ScaleSnapshot``) is built from in the live
control plane: demand from the scheduler's verdicts, offers from the pools' providers, GPUs held
on each instance's node. Functions of the state they are given: no I/O, no clock.

Glossary:
- *demand*: a pending job the last scheduling cycle could not place for lack of capacity
  (``core.explain.waits_for_capacity``): its verdict is UNSCHEDULABLE or UNRESOLVABLE and came
  from node fit or a backfill reservation, or the federation gate holds it because its member has
  no node yet. A job held by its budget, its quota, the federation's delayed start or waiting for preemption
  victims to stop is not demand: more machines would not start it. A routed job is demand for the
  pools whose nodes join its member only (``Demand.cluster``).
- *task load*: a live task on a ready instance's node, as consolidation sees it: the GPUs of a
  replica of its job, when its current attempt started (or, not running yet, was placed), and
  whether it may move: its job checkpoints (a checkpoint dir, or a checkpoint taken), as for a
  job's tolerance of spot. A task whose resources went to an urgent job (handed over) is left out.
- *offer*: one node type a pool's provider launches (the ``NodeProvider.offers`` dicts), as an
  ``InstanceOffer`` of that pool.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import replace

from hyperion.core.explain import waits_for_capacity
from hyperion.model import Verdict
from hyperion.model.autoscale import Demand, Instance, InstanceOffer, InstanceState, NodePoolSpec, TaskLoad
from hyperion.store.objects import ClusterState, holds


def demand_of(state: ClusterState, verdicts: Mapping[str, Verdict], now: float) -> tuple[Demand, ...]:
    """The pending jobs that more capacity would start, as the autoscaler's ``Demand``."""
    out = []
    for job_id in state.pending:
        job = state.jobs[job_id]
        routed = job.routed
        verdict = verdicts.get(job_id)
        if not waits_for_capacity(verdict, routed, now):
            continue
        s = job.spec
        out.append(Demand(job_id=job.id, gpus_per_replica=s.resources.gpus, replicas=s.replicas,
                          gpu_type=s.gpu_type or (routed.gpu_type if routed is not None else None) or None,
                          spot_ok=bool(s.checkpoint_dir) or job.last_checkpoint_at is not None,
                          deadline=s.deadline, runtime_estimate_s=state.estimate_for(s), submitted_at=job.submitted_at,
                          priority=int(s.priority) * 1_000_000 + s.priority_value,
                          cluster=routed.cluster if routed is not None else None))
    return tuple(out)


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


def tasks_of(state: ClusterState, instances: Iterable[Instance]) -> dict[str, tuple[TaskLoad, ...]]:
    """Instance id -> the live tasks on its node (ready instances with a node), in (job, rank)
    order. A task not yet started counts from when it was placed; one neither: never long enough."""
    out = {}
    for i in instances:
        if not i.node_id or i.state is not InstanceState.READY:
            continue
        loads = []
        for job_id, _rank in sorted(state.node_tasks.get(i.node_id, {})):
            job = state.jobs.get(job_id)
            if job is None or not holds(job):
                continue
            start = job.attempt_started_at if job.attempt_started_at is not None else job.scheduled_at
            loads.append(TaskLoad(job_id=job.id, gpus=job.spec.resources.gpus,
                                  movable=bool(job.spec.checkpoint_dir) or job.last_checkpoint_at is not None,
                                  started_at=start if start is not None else math.inf,
                                  gpu_type=job.spec.gpu_type or None))
        out[i.id] = tuple(loads)
    return out


def busy(state: ClusterState, node_id: str) -> bool:
    """Whether any live task is on the node (it is not idle)."""
    return bool(state.node_tasks.get(node_id))

"""The JSON shapes the API returns for jobs, nodes and queues (REST bodies and `-o json` output).

Queue amounts are objects keyed by resource key (``gpus/A100``: GPUs, ``cpus``: millicores,
``memory``: bytes), as in ``model.queue``."""

from __future__ import annotations

from hyperion.model import Job, Node, NodeMetrics, Resources, Verdict
from hyperion.model.codec import metrics_to_dict, spec_to_dict
from hyperion.model.queue import QueueSpec


def job_view(job: Job, verdict: Verdict | None = None) -> dict:
    spec = job.spec
    reason = job.reason
    if verdict is not None and job.phase.value == "pending":
        reason = "; ".join(verdict.reasons) or verdict.code.value
    nodes = sorted({p.node_id for p in job.placements})
    return {
        "id": job.id,
        "name": spec.name,
        "team": spec.team,
        "user": spec.user,
        "phase": job.phase.value,
        "exit_code": job.exit_code,
        "node": job.node,
        "nodes": nodes,
        "attempt": job.attempt,
        "priority": spec.priority.label,
        "priority_value": spec.priority_value,
        "replicas": spec.replicas,
        "min_available": spec.min_available,
        "gpus": spec.resources.gpus,
        "gpu_type": spec.gpu_type,
        "queue": spec.queue,
        "submitted_at": job.submitted_at,
        "started_at": job.started_at,
        "attempt_started_at": job.attempt_started_at,
        "attained_gpu_hours": round(job.attained_gpu_s / 3600.0, 6),  # over earlier attempts
        "finished_at": job.finished_at,
        "reason": reason,
        "failures": job.failures,
        "placements": [{"rank": p.rank, "node": p.node_id, "gpus": list(p.gpu_indices)} for p in job.placements],
        "rank_exits": {str(r): c for r, c in job.rank_exits},
        "scheduled_at": job.scheduled_at,
        "last_checkpoint_at": job.last_checkpoint_at,
        "checkpoint_path": job.checkpoint_path,
        "verdict": verdict.code.value if verdict is not None else None,
        "spec": spec_to_dict(spec),
    }


def node_view(node: Node, used: Resources, used_gpus: set[int], tasks: int, metrics: NodeMetrics | None) -> dict:
    return {
        "id": node.id,
        "hostname": node.hostname,
        "state": node.state.value,
        "cordoned": node.cordoned,
        "condition": node.condition,
        "gpus": len(node.gpus),
        "free_gpus": len(node.gpus) - len(used_gpus),
        "gpu_type": node.gpu_type,
        "gpus_logical": node.gpus_logical,
        "gpu_devices": [{"index": g.index, "uuid": g.uuid, "name": g.name, "memory_mb": g.memory_mb} for g in node.gpus],
        "cpus": node.capacity.cpus_milli / 1000,
        "memory": node.capacity.memory,
        "cpus_allocated": used.cpus_milli / 1000,
        "memory_allocated": used.memory,
        "tasks": tasks,
        "labels": dict(node.labels),
        "registered_at": node.registered_at,
        "last_seen": node.last_seen,
        "version": node.version,
        "metrics": metrics_to_dict(metrics) if metrics else None,
    }


def queue_view(q: QueueSpec, usage: dict[str, int], pending: int, defined: bool) -> dict:
    """``defined``: a ``kind: Queue`` object governs it (else it has no quota: ``default``, or a
    queue that jobs name without one)."""
    return {
        "name": q.name,
        "cohort": q.cohort,
        "weight": q.weight,
        "nominal": dict(q.nominal),
        "borrowing_limit": dict(q.borrowing_limit),
        "lending_limit": dict(q.lending_limit),
        "usage": dict(sorted(usage.items())),
        "pending": pending,
        "defined": defined,
    }

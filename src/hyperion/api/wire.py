"""Conversions between protobuf wire types and the domain model; nothing else crosses the boundary."""

from __future__ import annotations

from hyperion.api._generated.hyperion.v1 import hyperion_pb2 as pb
from hyperion.model import GpuMetrics, NodeMetrics

_FRAMEWORKS = {pb.AIJob.PYTORCH: "pytorch", pb.AIJob.JAX: "jax", pb.AIJob.TENSORFLOW: "tensorflow",
               pb.AIJob.CUSTOM_CONTAINER: "custom-container", pb.AIJob.COMMAND: "command"}
_PRIORITIES = {pb.AIJob.BATCH: "batch", pb.AIJob.LATENCY_CRITICAL: "latency-critical",
               pb.AIJob.ULTRA_LOW_LATENCY: "ultra-low-latency"}


def metrics_from_pb(m: pb.NodeMetrics, node_id: str | None = None) -> NodeMetrics:
    return NodeMetrics(
        node_id=node_id or m.node_id,
        timestamp=m.timestamp,
        cpu_utilization_percent=m.cpu_utilization_percent,
        memory_used_mb=m.memory_used_mb,
        memory_total_mb=m.memory_total_mb,
        gpu_utilization_percent=m.gpu_utilization_percent,
        disk_used_percent=m.disk_used_percent,
        network_tx_gbps=m.network_tx_gbps,
        network_rx_gbps=m.network_rx_gbps,
        gpus=tuple(GpuMetrics(
            index=g.index, uuid=g.uuid, utilization_percent=g.utilization_percent, memory_used_mb=g.memory_used_mb,
            memory_total_mb=g.memory_total_mb, temperature_c=g.temperature_c, power_w=g.power_w,
            ecc_errors=g.ecc_errors, xid_errors=g.xid_errors, last_xid=g.last_xid,
        ) for g in m.gpus),
    )


def job_doc_from_pb(job: pb.AIJob) -> dict:
    """An AIJob as the same document a REST client would send; the service validates it."""
    doc: dict = {"name": job.name or (job.job_id or "job")}
    if job.user_id:
        doc["user"] = job.user_id
    if job.team:
        doc["team"] = job.team
    if job.framework in _FRAMEWORKS:
        doc["framework"] = _FRAMEWORKS[job.framework]
    if job.priority in _PRIORITIES:
        doc["priority"] = _PRIORITIES[job.priority]
    if job.priority_value:
        doc["priority_value"] = job.priority_value
    if job.HasField("resources"):
        r = job.resources
        res: dict = {"gpus": r.gpus}
        if r.gpu_type:
            res["gpu_type"] = r.gpu_type
        if r.cpus_milli:
            res["cpus"] = f"{r.cpus_milli}m"
        if r.memory_mb:
            res["memory"] = f"{r.memory_mb}Mi"
        doc["resources"] = res
    if job.replicas:
        doc["replicas"] = job.replicas
    if job.min_available:
        doc["min_available"] = job.min_available
    if job.metadata:
        doc["labels"] = dict(job.metadata)
    for field in ("queue", "image", "working_dir", "checkpoint_dir", "deadline"):
        if getattr(job, field):
            doc[field] = getattr(job, field)
    if job.command:
        doc["command"] = list(job.command) if len(job.command) > 1 else job.command[0]
    if job.env:
        doc["env"] = dict(job.env)
    if job.data_location or job.data_size_bytes:
        doc["data"] = {k: v for k, v in (("location", job.data_location), ("size", job.data_size_bytes)) if v}
    if job.max_price_per_hour:
        doc["max_price_per_hour"] = job.max_price_per_hour
    if job.max_retries:
        doc["max_retries"] = job.max_retries
    if job.runtime_estimate_s:
        doc["runtime_estimate"] = job.runtime_estimate_s
    if job.HasField("placement"):
        p = job.placement
        placement: dict = {k: list(getattr(p, k)) for k in ("regions", "providers", "residency") if getattr(p, k)}
        if p.weights:
            placement["weights"] = dict(p.weights)
        if p.spot:
            placement["spot"] = True
        if p.checkpoint_interval_s:
            placement["checkpoint_interval"] = p.checkpoint_interval_s
        if p.caller_region:
            placement["caller_region"] = p.caller_region
        doc["placement"] = placement
    return doc

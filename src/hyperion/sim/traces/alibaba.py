"""Reader for the Alibaba heterogeneous GPU cluster trace (``cluster-trace-gpu-v2023``, "openb").

Format: CSV files with a header line; may be gzip-compressed (``.gz``).
- Pod list (``openb_pod_list_*.csv``): one row per task (a Kubernetes pod), header
  ``name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec,qos,pod_phase,creation_time,deletion_time,scheduled_time``.
- Node list (``openb_node_list_*.csv``): one row per node, header ``sn,cpu_milli,memory_mib,gpu,model``.

Origin: ``alibaba/clusterdata:cluster-trace-gpu-v2023/csv/`` (Weng et al., "Beware of
Fragmentation", USENIX ATC'23). Column meanings are the origin README's.

Pod columns:
- ``name``: pod id (unique). ``cpu_milli``: CPU request in milli-cores. ``memory_mib``: memory
  request in MiB.
- ``num_gpu``: GPUs requested (0-8). ``gpu_milli``: the share of one GPU, in thousandths, a
  GPU-sharing pod asks for (``num_gpu == 1``); 1000 for whole-GPU pods, 0 for CPU pods.
- ``gpu_spec``: GPU types the pod may run on, several separated by ``|``; empty = any.
- ``qos``: ``LS`` (latency-sensitive), ``BE`` (best-effort), ``Burstable``, ``Guaranteed``.
- ``pod_phase``: Kubernetes phase at the end of observation (``Pending``, ``Running``,
  ``Succeeded``, ``Failed``; ``Unknown`` is accepted too).
- ``creation_time``, ``scheduled_time``, ``deletion_time``: seconds from the trace's start;
  ``scheduled_time`` is empty for pods never scheduled (their ``deletion_time`` may be empty
  too). For pods still ``Running`` at the end, ``deletion_time`` is the end of observation, not
  a completion.

Our interpretation of a pod:
- ``submit_s`` = ``creation_time``, re-based so the earliest kept pod is at 0; the trace has
  only relative times, so ``Trace.start`` is None.
- ``duration_s`` = ``deletion_time - scheduled_time``: how long it held its resources (for
  still-running pods, until the observation ended). Pods with an empty ``scheduled_time`` are
  counted in ``Trace.skipped["never scheduled"]``; pods whose duration is <= 0 in
  ``Trace.skipped["zero duration"]``.
- ``gpus`` = ``num_gpu``. Our scheduler hands out whole GPUs, so a GPU-sharing pod
  (``0 < gpu_milli < 1000``) takes one whole GPU (also when ``num_gpu`` says 0).
- ``gpu_type``: the ``gpu_spec`` when it names exactly one type; None (any GPU) when it is empty
  *or* lists several, since a job can require only one type: we loosen the constraint rather
  than pin the pod to one type it did not insist on.
- ``priority``: ``LS`` and ``Guaranteed`` are LATENCY_CRITICAL; ``BE`` and ``Burstable`` BATCH.
- ``cpus_milli`` = ``cpu_milli``, ``memory`` = ``memory_mib`` in bytes, ``id`` = ``name``,
  ``team`` = "default" (the trace has no user or queue column).

A node becomes a ``NodeRow``: ``sn`` is its name, ``model`` its GPU type ("" for CPU-only nodes:
P100, T4, V100M16, V100M32, A10 or the undisclosed G1-G3 in the published list).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from hyperion.model.job import Priority
from hyperion.sim.traces.base import Trace, TraceError, TraceJob
from hyperion.sim.traces.csvfile import FIX, rows, whole

POD_COLUMNS = ("name", "cpu_milli", "memory_mib", "num_gpu", "gpu_milli", "gpu_spec", "qos", "pod_phase",
               "creation_time", "deletion_time", "scheduled_time")
NODE_COLUMNS = ("sn", "cpu_milli", "memory_mib", "gpu", "model")
QOS_PRIORITY = {"LS": Priority.LATENCY_CRITICAL, "Guaranteed": Priority.LATENCY_CRITICAL,
                "BE": Priority.BATCH, "Burstable": Priority.BATCH}
POD_PHASES = ("Pending", "Running", "Succeeded", "Failed", "Unknown")
MIB = 2**20


@dataclass(frozen=True, slots=True)
class NodeRow:
    """One node of an ``openb_node_list_*.csv`` file."""

    name: str
    cpus_milli: int
    memory: int     # bytes
    gpus: int
    gpu_type: str   # "" for a CPU-only node
    line: int


def read(path: str) -> Trace:
    """Read an ``openb_pod_list_*.csv`` file (any number of rows, any window of the trace)."""
    kept: list[tuple[float, str, float, int, str | None, int, int, Priority, int]] = []
    never_scheduled = zero_duration = 0
    first_line: dict[str, int] = {}
    for line, row in rows(path, POD_COLUMNS, "an Alibaba GPU v2023 pod list (openb_pod_list_*.csv)"):
        name, cpu_milli, memory_mib, num_gpu, gpu_milli, gpu_spec, qos, phase, created, deleted, scheduled = row
        name = _unique_name(name, "name", "pod", first_line, path, line)
        cpus = whole(cpu_milli, path, line, "cpu_milli")
        memory = whole(memory_mib, path, line, "memory_mib") * MIB
        gpus = whole(num_gpu, path, line, "num_gpu")
        share = whole(gpu_milli, path, line, "gpu_milli")
        if share > 1000:
            raise TraceError(f"{path}:{line}: gpu_milli: expected thousandths of one GPU, 0 to 1000, got {gpu_milli!r}; {FIX}")
        if 0 < share < 1000:
            gpus = max(gpus, 1)
        gpu_type = _gpu_type(gpu_spec, path, line)
        priority = QOS_PRIORITY.get(qos.strip())
        if priority is None:
            raise TraceError(f"{path}:{line}: qos: expected one of {', '.join(QOS_PRIORITY)}, got {qos!r}; {FIX}")
        if phase.strip() not in POD_PHASES:
            raise TraceError(f"{path}:{line}: pod_phase: expected one of {', '.join(POD_PHASES)}, got {phase!r}; {FIX}")
        created_s = _seconds(created, path, line, "creation_time")
        if not scheduled.strip():  # its deletion_time is not needed and may be empty
            if deleted.strip():
                _seconds(deleted, path, line, "deletion_time")
            never_scheduled += 1
            continue
        duration = _seconds(deleted, path, line, "deletion_time") - _seconds(scheduled, path, line, "scheduled_time")
        if duration <= 0:
            zero_duration += 1
            continue
        kept.append((created_s, name, duration, gpus, gpu_type, cpus, memory, priority, line))
    origin = min((k[0] for k in kept), default=0.0)
    kept.sort(key=lambda k: (k[0], k[1]))
    jobs = tuple(
        TraceJob(id=name, submit_s=created_s - origin, duration_s=duration, gpus=gpus, gpu_type=gpu_type,
                 cpus_milli=cpus, memory=memory, priority=priority, line=line, one_node=True)
        for created_s, name, duration, gpus, gpu_type, cpus, memory, priority, line in kept
    )
    skipped = {reason: count for reason, count in (("never scheduled", never_scheduled), ("zero duration", zero_duration))
               if count}
    return Trace(name=f"alibaba:{path}", jobs=jobs, start=None, skipped=skipped)


def read_nodes(path: str) -> list[NodeRow]:
    """Read an ``openb_node_list_*.csv`` file, in file order."""
    nodes: list[NodeRow] = []
    first_line: dict[str, int] = {}
    for line, (sn, cpu_milli, memory_mib, gpu, model) in rows(path, NODE_COLUMNS, "an Alibaba GPU v2023 node list"):
        name = _unique_name(sn, "sn", "node", first_line, path, line)
        gpus = whole(gpu, path, line, "gpu")
        gpu_type = model.strip()
        if gpus and not gpu_type:
            raise TraceError(f"{path}:{line}: model: a node with {gpus} GPUs needs a GPU model, got ''; {FIX}")
        nodes.append(NodeRow(name=name, cpus_milli=whole(cpu_milli, path, line, "cpu_milli"),
                             memory=whole(memory_mib, path, line, "memory_mib") * MIB,
                             gpus=gpus, gpu_type=gpu_type, line=line))
    return nodes


def _unique_name(text: str, column: str, what: str, first_line: dict[str, int], path: str, line: int) -> str:
    """The ``what`` (pod or node) name in ``text``, stripped; TraceError when it is empty or already in
    ``first_line`` (name -> line it was first seen on), which it is added to."""
    name = text.strip()
    if not name:
        raise TraceError(f"{path}:{line}: {column}: expected a {what} name, got ''; {FIX}")
    if name in first_line:
        raise TraceError(f"{path}:{line}: {column}: {name!r} already named the {what} on line {first_line[name]}; "
                         f"{what} names must be unique, remove the duplicate")
    first_line[name] = line
    return name


def _gpu_type(spec: str, path: str, line: int) -> str | None:
    types = [t.strip() for t in spec.split("|")] if spec.strip() else []
    if any(not t for t in types):
        raise TraceError(f"{path}:{line}: gpu_spec: expected GPU types separated by '|', got {spec!r}; {FIX}")
    return types[0] if len(types) == 1 else None


def _seconds(text: str, path: str, line: int, column: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value >= 0):
        raise TraceError(f"{path}:{line}: {column}: expected seconds since the trace start (a number >= 0), "
                         f"got {text!r}; {FIX}")
    return value

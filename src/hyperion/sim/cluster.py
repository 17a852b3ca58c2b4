"""What a simulation runs on: the cluster (node pools), the workload model, the power and carbon
models, read from a YAML file of ``kind: Cluster`` (and optional ``kind: Queue``) documents.

Glossary:
- *pool*: ``count`` identical nodes (GPU type and count, CPUs, memory, price per GPU-hour).
  Nodes are named ``<pool>-<n>``. A pool may fail (``mtbf``: mean time between failures per node,
  exponential; ``repair``: how long a failed node stays down) and may be *spot*: it follows a
  SkyPilot availability series (each node from its own seeded offset into the series); while the
  series says unavailable the node is reclaimed.
- *workload model*: how a trace job's runtime changes with GPU type (``speed``: throughput
  relative to ``reference_gpu_type``, the GPUs the trace ran on), how often jobs checkpoint, what a
  restart costs, and the grace period an evicted job gets to stop.
- *data dir*: relative paths of data files (GPU power table, carbon series, spot series, node
  lists) are looked up there (``--data``, else ``$HYPERION_DATA``), then next to the YAML file.

Every error names the file, the line and the field (``api.spec.SpecError``), or the data file.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pydantic import Field

from hyperion.api.spec import (
    BudgetDoc,
    CpuAmount,
    DocumentModel,
    FieldError,
    Name,
    PositiveSeconds,
    QueueDoc,
    Seconds,
    Size,
    SpecError,
    StrictModel,
    Text,
    load_documents,
)
from hyperion.model.cost import BudgetSpec
from hyperion.model.queue import QueueSpec
from hyperion.providers.grid import HourlySeries, SeriesError, constant, read_series
from hyperion.sim.energy import PowerModel, load_gpu_power, match_gpu
from hyperion.sim.traces import alibaba, skypilot_spot
from hyperion.sim.traces.base import TraceError
from hyperion.sim.traces.skypilot_spot import SpotSeries


class ClusterError(ValueError):
    """A cluster file that cannot be used (beyond field errors: a data file missing or unreadable)."""


# ---- the documents --------------------------------------------------------------------------
class PoolDoc(StrictModel):
    name: Name
    count: int = Field(ge=1, le=1_000_000)
    gpu_type: Text
    gpus: int = Field(ge=0, le=64)
    cpus: CpuAmount = 64_000
    memory: Size = 512 * 2**30
    cost_per_gpu_hour: float = Field(0.0, ge=0, allow_inf_nan=False)  # on-prem: amortised; cloud: the price
    tdp_watts: float | None = Field(None, gt=0, allow_inf_nan=False)   # else from the power table
    mtbf: PositiveSeconds | None = None
    repair: PositiveSeconds = 4 * 3600.0
    spot_trace: Text | None = None


class NodeListDoc(StrictModel):
    """Pools from a node inventory (``alibaba:PATH``, the Alibaba v2023 node list)."""

    source: Text
    cost_per_gpu_hour: dict[Text, float] = {}  # GPU type -> price; others: ``default_cost_per_gpu_hour``
    default_cost_per_gpu_hour: float = Field(0.0, ge=0, allow_inf_nan=False)
    tdp_watts: dict[Text, float] = {}


class PowerDoc(StrictModel):
    gpu_table: Text | None = None
    idle_fraction: float = Field(0.3, ge=0, le=1)
    pue: float = Field(1.0, ge=1, le=5)
    # what the energy costs: an hourly price series (USD/MWh), or a flat price; neither: not reported
    electricity_prices: Text | None = None
    electricity_usd_per_mwh: float | None = Field(None, ge=0, allow_inf_nan=False)


class CarbonDoc(StrictModel):
    series: Text | None = None
    column: Literal["direct", "lca"] = "direct"
    intensity: float | None = Field(None, ge=0, allow_inf_nan=False)  # gCO2/kWh when no series


class WorkloadDoc(StrictModel):
    reference_gpu_type: Text | None = None
    speed: dict[Text, float] = {}
    checkpoint_interval: PositiveSeconds = 1800.0
    restart_cost: Seconds = 60.0
    preemption_grace: Seconds = 30.0


class ClusterDoc(DocumentModel):
    kind: Literal["Cluster"] = "Cluster"
    name: Name
    nodes: list[PoolDoc] = []
    node_lists: list[NodeListDoc] = []
    power: PowerDoc = PowerDoc()
    carbon: CarbonDoc = CarbonDoc()
    workload: WorkloadDoc = WorkloadDoc()
    sample_interval: PositiveSeconds = 600.0       # metrics samples (utilisation, fairness, queue length)
    schedule_interval: Seconds = 0.0             # 0: a cycle at every instant something changed


KINDS = {"Cluster": ClusterDoc, "Queue": QueueDoc, "Budget": BudgetDoc}


# ---- the model --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Pool:
    name: str
    count: int
    gpu_type: str
    gpus: int
    cpus_milli: int
    memory: int
    cost_per_gpu_hour: float
    mtbf_s: float | None = None
    repair_s: float = 4 * 3600.0
    spot: SpotSeries | None = None


@dataclass(frozen=True)
class WorkloadModel:
    reference_gpu_type: str | None = None
    speed: Mapping[str, float] = field(default_factory=dict)
    checkpoint_interval_s: float = 1800.0
    restart_cost_s: float = 60.0
    preemption_grace_s: float = 30.0

    def speedup(self, gpu_type: str) -> float:
        """How much faster a job runs on ``gpu_type`` than on the trace's GPUs."""
        ref = self.speed.get(self.reference_gpu_type or "", 1.0)
        return self.speed.get(gpu_type, ref) / ref


@dataclass(frozen=True)
class ClusterModel:
    name: str
    pools: tuple[Pool, ...]
    queues: Mapping[str, QueueSpec]
    power: PowerModel
    carbon: HourlySeries
    workload: WorkloadModel
    sample_interval_s: float = 600.0
    schedule_interval_s: float = 0.0
    source: str = ""
    electricity: HourlySeries | None = None  # USD/MWh; None: energy cost not reported
    budgets: tuple[BudgetSpec, ...] = ()     # teams' budgets (``kind: Budget``), enforced as live

    @property
    def gpus(self) -> int:
        return sum(p.count * p.gpus for p in self.pools)


def data_dir(given: str | Path | None = None) -> Path | None:
    if given:
        return Path(given)
    env = os.environ.get("HYPERION_DATA")
    return Path(env) if env else None


def load_cluster(path: str | Path, data: str | Path | None = None) -> ClusterModel:
    """Read and validate a cluster file; raises ``SpecError`` (fields) or ``ClusterError`` (data files)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ClusterError(f"cannot read cluster file {path}: {e.strerror or e}") from None
    docs = load_documents(text, str(path), kinds=KINDS)
    clusters = [d for d in docs if isinstance(d, ClusterDoc)]
    if len(clusters) != 1:
        raise SpecError([FieldError("kind", None, f"expected exactly one `kind: Cluster` document, found {len(clusters)}")],
                        str(path))
    doc = clusters[0]
    if not doc.nodes and not doc.node_lists:
        raise SpecError([FieldError("nodes", None, "the cluster has no nodes: add a pool under `nodes:` "
                                                   "(name, count, gpu_type, gpus) or a `node_lists:` entry")], str(path))
    queues = {q.name: q.to_spec() for q in docs if isinstance(q, QueueDoc)}
    budgets = tuple(b.to_spec() for b in docs if isinstance(b, BudgetDoc))
    base = data_dir(data)

    def find(rel: str, what: str) -> Path:
        for root in ([base] if base else []) + [path.parent]:
            p = root / rel
            if p.exists():
                return p
        if Path(rel).is_absolute() and Path(rel).exists():
            return Path(rel)
        where = f"{base} (the data dir) or {path.parent}" if base else f"{path.parent} (no data dir given: pass --data DIR)"
        raise ClusterError(f"{path}: {what} {rel!r} not found in {where}")

    pools = [_pool(p, find) for p in doc.nodes]
    tdp_override = {p.gpu_type: p.tdp_watts for p in doc.nodes if p.tdp_watts}
    for nl in doc.node_lists:
        made, tdp = _pools_from_list(nl, find)
        pools += made
        tdp_override.update(tdp)
    names = [p.name for p in pools]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ClusterError(f"{path}: pool name(s) {', '.join(dup)} used twice; give every pool its own name")
    power = _power(doc.power, {p.gpu_type for p in pools if p.gpus}, tdp_override, find, path)
    carbon = _carbon(doc.carbon, find, path)
    w = doc.workload
    workload = WorkloadModel(w.reference_gpu_type, dict(w.speed), w.checkpoint_interval, w.restart_cost, w.preemption_grace)
    bad = [t for t, v in w.speed.items() if not v > 0]
    if bad:
        raise ClusterError(f"{path}: workload.speed of {', '.join(bad)} must be a positive number")
    return ClusterModel(doc.name, tuple(pools), queues, power, carbon, workload, doc.sample_interval,
                        doc.schedule_interval, str(path), _electricity(doc.power, find), budgets)


def _pool(p: PoolDoc, find) -> Pool:
    spot = None
    if p.spot_trace:
        try:
            spot = skypilot_spot.read(str(find(p.spot_trace, f"pool {p.name}: spot_trace")))
        except TraceError as e:
            raise ClusterError(str(e)) from None
    return Pool(p.name, p.count, p.gpu_type, p.gpus, p.cpus, p.memory, p.cost_per_gpu_hour, p.mtbf, p.repair, spot)


def _pools_from_list(nl: NodeListDoc, find) -> tuple[list[Pool], dict[str, float]]:
    fmt, _, rel = nl.source.partition(":")
    if fmt != "alibaba" or not rel:
        raise ClusterError(f"node_lists source {nl.source!r}: expected alibaba:PATH (the Alibaba v2023 node list)")
    try:
        rows = alibaba.read_nodes(str(find(rel, "node list")))
    except TraceError as e:
        raise ClusterError(str(e)) from None
    shapes: dict[tuple, int] = {}
    for r in rows:
        key = (r.gpu_type or "cpu", r.gpus, r.cpus_milli, r.memory)
        shapes[key] = shapes.get(key, 0) + 1
    pools = []
    for (gpu_type, gpus, cpus, memory), count in sorted(shapes.items()):
        name = f"{gpu_type}-{gpus}g-{cpus // 1000}c-{memory // 2**30}gi".lower().replace("_", "-")
        cost = nl.cost_per_gpu_hour.get(gpu_type, nl.default_cost_per_gpu_hour)
        pools.append(Pool(name, count, gpu_type, gpus, cpus, memory, cost))
    return pools, dict(nl.tdp_watts)


def _power(doc: PowerDoc, types: set[str], override: dict[str, float], find, path: Path) -> PowerModel:
    table: dict[str, float] = {}
    if doc.gpu_table:
        try:
            table = load_gpu_power(find(doc.gpu_table, "power.gpu_table"))
        except ValueError as e:
            raise ClusterError(str(e)) from None
    tdp: dict[str, float] = {}
    missing = []
    for t in sorted(types):
        if t in override:
            tdp[t] = override[t]
        elif (row := match_gpu(t, table)) is not None:
            tdp[t] = table[row]
        else:
            missing.append(t)
    if missing:
        hint = "give the pool `tdp_watts`" + ("" if doc.gpu_table else " or set power.gpu_table (mlco2 gpus.csv)")
        raise ClusterError(f"{path}: no power figure for GPU type(s) {', '.join(missing)}: {hint}")
    return PowerModel(tdp, idle_fraction=doc.idle_fraction, pue=doc.pue)


def _electricity(doc: PowerDoc, find) -> HourlySeries | None:
    if doc.electricity_prices:
        try:
            return read_series(find(doc.electricity_prices, "power.electricity_prices"))
        except (SeriesError, ValueError) as e:
            raise ClusterError(str(e)) from None
    if doc.electricity_usd_per_mwh is not None:
        return constant(doc.electricity_usd_per_mwh, "USD/MWh", "flat price")
    return None


def _carbon(doc: CarbonDoc, find, path: Path) -> HourlySeries:
    if doc.series:
        try:
            return read_series(find(doc.series, "carbon.series"), column=doc.column)
        except (SeriesError, ValueError) as e:
            raise ClusterError(str(e)) from None
    if doc.intensity is None:
        raise ClusterError(f"{path}: carbon: give `series:` (an hourly intensity file) or `intensity:` (gCO2/kWh)")
    return constant(doc.intensity, "gCO2/kWh", "constant")

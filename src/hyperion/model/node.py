"""Nodes (machines running a ``hyperiond`` agent) and their telemetry."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from hyperion.model.resources import Resources


class NodeState(enum.Enum):
    READY = "ready"          # connected and heartbeating
    NOT_READY = "not-ready"  # missed heartbeats; its tasks are being failed or requeued
    DOWN = "down"            # the agent said goodbye, or the provider removed it


@dataclass(frozen=True, slots=True)
class Gpu:
    index: int
    uuid: str = ""
    name: str = ""
    memory_mb: int = 0


@dataclass(frozen=True, slots=True)
class Node:
    id: str
    hostname: str = ""
    gpus: tuple[Gpu, ...] = ()
    gpu_type: str = ""
    capacity: Resources = Resources()
    labels: tuple[tuple[str, str], ...] = ()
    state: NodeState = NodeState.READY
    cordoned: bool = False
    gpus_logical: bool = True
    registered_at: float = 0.0
    last_seen: float = 0.0
    version: str = ""
    # the agent's health verdict: empty when healthy, else why not (an over-temperature GPU, ECC or
    # XID errors). An unhealthy node takes no new work, like a cordoned one; the agent clears it
    condition: str = ""

    @property
    def schedulable(self) -> bool:
        """Whether new work may be placed here (ready, not cordoned, healthy)."""
        return self.state is NodeState.READY and not self.cordoned and not self.condition


@dataclass(frozen=True, slots=True)
class GpuMetrics:
    index: int
    uuid: str = ""
    utilization_percent: float = 0.0
    memory_used_mb: float = 0.0
    memory_total_mb: float = 0.0
    temperature_c: float = 0.0
    power_w: float = 0.0
    ecc_errors: int = 0
    xid_errors: int = 0  # critical XID events since the agent started
    last_xid: int = 0    # the latest one's code


@dataclass(frozen=True, slots=True)
class NodeMetrics:
    node_id: str
    timestamp: float
    cpu_utilization_percent: float = 0.0
    memory_used_mb: float = 0.0
    memory_total_mb: float = 0.0
    gpu_utilization_percent: float = 0.0
    disk_used_percent: float = 0.0
    network_tx_gbps: float = 0.0
    network_rx_gbps: float = 0.0
    gpus: tuple[GpuMetrics, ...] = ()

"""Node telemetry: one reading of the host (psutil) and its GPUs (NVML), turned into NodeMetrics.

Glossary:
    reading     a ``NodeReading``: plain numbers, no protobuf, no clock. Anything that can
                produce readings (the host, a replayed trace, a test) is a ``TelemetrySource``.
    rates       network throughput is a rate, so ``HostTelemetry`` remembers the previous
                counters and reports the delta over the time since its last reading.

``metrics_message`` converts a reading into the wire ``NodeMetrics`` the agent sends every
``--metrics-interval``. To inject readings (simulated GPUs, fault injection), hand the agent a
``FixedTelemetry`` or any object with a ``read()`` method.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Protocol

import psutil

from hyperion.agent.inventory import load_nvml
from hyperion.api._generated.hyperion.v1 import hyperion_pb2
from hyperion.model import GpuMetrics

log = logging.getLogger("hyperiond.telemetry")


GpuReading = GpuMetrics  # one GPU's sample: the model's type, no copy of it


@dataclass(frozen=True, slots=True)
class NodeReading:
    cpu_percent: float = 0.0
    memory_used_mb: float = 0.0
    memory_total_mb: float = 0.0
    disk_used_percent: float = 0.0
    network_tx_gbps: float = 0.0
    network_rx_gbps: float = 0.0
    gpus: tuple[GpuReading, ...] = ()
    custom: dict[str, float] = field(default_factory=dict)


class TelemetrySource(Protocol):
    def read(self) -> NodeReading: ...


@dataclass
class FixedTelemetry:
    """Returns the readings it was given, the last one forever; for tests and injection."""

    readings: list[NodeReading]

    def read(self) -> NodeReading:
        return self.readings.pop(0) if len(self.readings) > 1 else self.readings[0]


class HostTelemetry:
    """Reads this machine: CPU, memory, the data dir's disk, network, and NVML GPUs if any."""

    def __init__(self, disk_path: str, with_gpus: bool) -> None:
        self._disk_path = disk_path
        self._nvml = load_nvml() if with_gpus else None
        psutil.cpu_percent(interval=None)  # the first call only starts the measurement
        self._net = psutil.net_io_counters()
        self._net_at = time.monotonic()

    def read(self) -> NodeReading:
        memory = psutil.virtual_memory()
        try:
            disk = psutil.disk_usage(self._disk_path).percent
        except OSError:
            disk = 0.0
        tx, rx = self._network_gbps()
        return NodeReading(
            cpu_percent=psutil.cpu_percent(interval=None),
            memory_used_mb=(memory.total - memory.available) / 2**20,
            memory_total_mb=memory.total / 2**20,
            disk_used_percent=disk,
            network_tx_gbps=tx,
            network_rx_gbps=rx,
            gpus=self._gpus(),
        )

    def _network_gbps(self) -> tuple[float, float]:
        now, counters = time.monotonic(), psutil.net_io_counters()
        elapsed = max(now - self._net_at, 1e-6)
        if counters is None or self._net is None:
            return 0.0, 0.0
        tx = max(counters.bytes_sent - self._net.bytes_sent, 0) * 8 / 1e9 / elapsed
        rx = max(counters.bytes_recv - self._net.bytes_recv, 0) * 8 / 1e9 / elapsed
        self._net, self._net_at = counters, now
        return tx, rx

    def _gpus(self) -> tuple[GpuReading, ...]:
        nvml = self._nvml
        if nvml is None:
            return ()
        try:
            count = nvml.nvmlDeviceGetCount()
        except nvml.NVMLError as exc:
            log.warning("NVML device count failed: %s", exc)
            return ()
        return tuple(_gpu_reading(nvml, i) for i in range(count))


def _gpu_reading(nvml, index: int) -> GpuReading:
    try:
        handle = nvml.nvmlDeviceGetHandleByIndex(index)
    except nvml.NVMLError:  # the GPU fell off the bus or is being reset: report it idle
        return GpuReading(index=index)

    def ask(fn, *args, default=0):
        try:
            return fn(handle, *args)
        except nvml.NVMLError:  # not supported on this model, or transiently unavailable
            return default

    uuid = ask(nvml.nvmlDeviceGetUUID, default="")
    memory = ask(nvml.nvmlDeviceGetMemoryInfo, default=None)
    utilization = ask(nvml.nvmlDeviceGetUtilizationRates, default=None)
    return GpuReading(
        index=index,
        uuid=uuid.decode() if isinstance(uuid, bytes) else uuid,
        utilization_percent=float(utilization.gpu) if utilization else 0.0,
        memory_used_mb=memory.used / 2**20 if memory else 0.0,
        memory_total_mb=memory.total / 2**20 if memory else 0.0,
        temperature_c=float(ask(nvml.nvmlDeviceGetTemperature, nvml.NVML_TEMPERATURE_GPU)),
        power_w=ask(nvml.nvmlDeviceGetPowerUsage) / 1000.0,
        ecc_errors=int(ask(nvml.nvmlDeviceGetTotalEccErrors, nvml.NVML_MEMORY_ERROR_TYPE_UNCORRECTED,
                           nvml.NVML_VOLATILE_ECC)),
    )


def metrics_message(node_id: str, reading: NodeReading, now: float) -> hyperion_pb2.NodeMetrics:
    gpus = reading.gpus
    mean_util = sum(g.utilization_percent for g in gpus) / len(gpus) if gpus else 0.0
    return hyperion_pb2.NodeMetrics(
        node_id=node_id,
        timestamp=now,
        gpu_utilization_percent=mean_util,
        cpu_utilization_percent=reading.cpu_percent,
        memory_used_mb=reading.memory_used_mb,
        memory_total_mb=reading.memory_total_mb,
        disk_used_percent=reading.disk_used_percent,
        network_tx_gbps=reading.network_tx_gbps,
        network_rx_gbps=reading.network_rx_gbps,
        custom_metrics=reading.custom,
        gpus=[hyperion_pb2.GpuMetrics(
            index=g.index, uuid=g.uuid, utilization_percent=g.utilization_percent,
            memory_used_mb=g.memory_used_mb, memory_total_mb=g.memory_total_mb,
            temperature_c=g.temperature_c, power_w=g.power_w, ecc_errors=g.ecc_errors,
        ) for g in gpus],
    )

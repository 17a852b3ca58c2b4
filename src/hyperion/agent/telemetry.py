"""Node telemetry: one reading of the host (psutil) and its GPUs (NVML), turned into NodeMetrics.

Glossary:
    reading     a ``NodeReading``: plain numbers, no protobuf, no clock. Anything that can
                produce readings (the host, a replayed trace, a test) is a ``TelemetrySource``.
    rates       network throughput is a rate, so ``HostTelemetry`` remembers the previous
                counters and reports the delta over the time since its last reading.
    XID         an NVIDIA driver error event. ``HostTelemetry`` registers every GPU for critical
                XID events through an NVML event set and drains it at each reading, without
                waiting; ``xid_errors`` counts them per GPU since the agent started and
                ``last_xid`` is the latest one's code. Where NVML has no event support, both stay 0.

``metrics_message`` converts a reading into the wire ``NodeMetrics`` the agent sends every
``--metrics-interval``. To inject readings (simulated GPUs, fault injection), hand the agent a
``FixedTelemetry`` or any object with a ``read()`` method.

The telemetry file (``FileTelemetry``, the agent's ``--telemetry-file``) is the port for fault
injection (an over-temperature drill, a fake XID) and for nodes whose GPUs are logical. It is read
at every reading; whatever it sets replaces the host's value, the rest comes from the host::

    {"cpu_percent": 12.5, "memory_used_mb": 4096, "memory_total_mb": 65536,
     "disk_used_percent": 40, "network_tx_gbps": 0.5, "network_rx_gbps": 1.2,
     "custom": {"fan_rpm": 3000},
     "gpus": [{"index": 0, "temperature_c": 95, "utilization_percent": 80, "power_w": 300,
               "ecc_errors": 0, "xid_errors": 1, "last_xid": 79,
               "memory_used_mb": 1024, "memory_total_mb": 81920, "uuid": "GPU-..."}]}

Every key is optional except a GPU's ``index``. A GPU entry overrides the host's GPU of the same
index field by field; a GPU only in the file is added. ``custom`` metrics are merged by name. No
file: the host's reading unchanged. A file that cannot be used (bad JSON, an unknown key, a
value of the wrong type) is ignored as a whole: the host's reading is used and a warning naming
the file and the fault is logged once, until the fault changes or the file is fixed. Write the
file elsewhere and rename it into place, so a reading never sees half of it.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

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


class FileTelemetry:
    """A reading from ``fallback``, overridden by what the JSON file at ``path`` sets (see above)."""

    def __init__(self, path: str | Path, fallback: TelemetrySource) -> None:
        self.path = Path(path)
        self._fallback = fallback
        self._fault = ""  # the fault last warned about; "" while the file is fine or absent

    def read(self) -> NodeReading:
        reading = self._fallback.read()
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            self._fault = ""
            return reading
        except (OSError, UnicodeDecodeError) as exc:
            return self._ignore(reading, f"cannot read it: {exc}")
        try:
            overridden = _overridden(reading, json.loads(text))
        except json.JSONDecodeError as exc:
            return self._ignore(reading, f"line {exc.lineno} column {exc.colno}: not valid JSON: {exc.msg}")
        except _FileFault as exc:
            return self._ignore(reading, str(exc))
        self._fault = ""
        return overridden

    def _ignore(self, reading: NodeReading, fault: str) -> NodeReading:
        if fault != self._fault:
            log.warning("telemetry file %s ignored, using the host's readings until it is fixed: %s", self.path, fault)
            self._fault = fault
        return reading


class _FileFault(ValueError):
    """What is wrong with the telemetry file, with the field's path."""


_NODE_NUMBERS = ("cpu_percent", "memory_used_mb", "memory_total_mb", "disk_used_percent", "network_tx_gbps",
                 "network_rx_gbps")
_GPU_NUMBERS = ("utilization_percent", "memory_used_mb", "memory_total_mb", "temperature_c", "power_w")
_GPU_COUNTS = ("ecc_errors", "xid_errors", "last_xid")


def _overridden(reading: NodeReading, doc: Any) -> NodeReading:
    """``reading`` with the file's values in place; raises _FileFault naming the first bad field."""
    _check_keys(doc, "the top level", (*_NODE_NUMBERS, "custom", "gpus"))
    node = {key: _number(doc[key], key) for key in _NODE_NUMBERS if key in doc}
    custom = doc.get("custom", {})
    _check_keys(custom, "custom", None)
    custom = {name: _number(value, f"custom.{name}") for name, value in custom.items()}
    entries = doc.get("gpus", [])
    if not isinstance(entries, list):
        raise _FileFault(f"gpus: expected a list of GPU objects, got {_shown(entries)}")
    gpus = {g.index: g for g in reading.gpus}
    seen: set[int] = set()
    for n, entry in enumerate(entries):
        where = f"gpus[{n}]"
        _check_keys(entry, where, ("index", "uuid", *_GPU_NUMBERS, *_GPU_COUNTS))
        if "index" not in entry:
            raise _FileFault(f"{where}.index: missing; every GPU entry needs the index of the GPU it describes")
        index = _count(entry["index"], f"{where}.index")
        if index in seen:
            raise _FileFault(f"{where}.index: GPU {index} is listed twice")
        seen.add(index)
        fields: dict[str, Any] = {key: _number(entry[key], f"{where}.{key}") for key in _GPU_NUMBERS if key in entry}
        fields.update({key: _count(entry[key], f"{where}.{key}") for key in _GPU_COUNTS if key in entry})
        if "uuid" in entry:
            if not isinstance(entry["uuid"], str):
                raise _FileFault(f"{where}.uuid: expected a string, got {_shown(entry['uuid'])}")
            fields["uuid"] = entry["uuid"]
        gpus[index] = replace(gpus.get(index, GpuReading(index=index)), **fields)
    return replace(reading, **node, gpus=tuple(gpus[i] for i in sorted(gpus)), custom={**reading.custom, **custom})


def _check_keys(value: Any, where: str, allowed: tuple[str, ...] | None) -> None:
    if not isinstance(value, dict):
        raise _FileFault(f"{where}: expected a JSON object, got {_shown(value)}")
    unknown = sorted(set(value) - set(allowed)) if allowed is not None else []
    if unknown:
        raise _FileFault(f"{where}: unknown key {unknown[0]!r}; known keys: {', '.join(allowed)}")


def _shown(value: Any) -> str:
    text = json.dumps(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _number(value: Any, where: str) -> float:
    try:
        ok = not isinstance(value, bool) and isinstance(value, int | float) and math.isfinite(value)
    except OverflowError:  # an integer too large for a float
        ok = False
    if not ok:
        raise _FileFault(f"{where}: expected a number, got {_shown(value)}")
    return float(value)


def _count(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise _FileFault(f"{where}: expected a whole number, 0 or more, got {_shown(value)}")
    return value


class HostTelemetry:
    """Reads this machine: CPU, memory, the data dir's disk, network, and NVML GPUs if any."""

    def __init__(self, disk_path: str, with_gpus: bool) -> None:
        self._disk_path = disk_path
        self._nvml = load_nvml() if with_gpus else None
        self._xids = XidEvents(self._nvml) if self._nvml is not None else None
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
        xids = self._xids.poll() if self._xids is not None else {}
        return tuple(_gpu_reading(nvml, i, *xids.get(i, (0, 0))) for i in range(count))


class XidEvents:
    """Critical XID events through an NVML event set: per GPU index, how many and the last code.

    Silent where unsupported: no event API in the installed pynvml, no event set, or a GPU that
    cannot be registered (``NVMLError_NotSupported`` on some models) just never counts."""

    MAX_PER_POLL = 1000  # an event storm is drained over several readings, never in one long loop

    def __init__(self, nvml) -> None:
        self._nvml = nvml
        self._set = None
        self._wait = getattr(nvml, "nvmlEventSetWait_v2", None) or getattr(nvml, "nvmlEventSetWait", None)
        self._totals: dict[int, tuple[int, int]] = {}  # gpu index -> (events, last XID code)
        needed = ("nvmlEventSetCreate", "nvmlDeviceRegisterEvents", "nvmlEventTypeXidCriticalError", "nvmlDeviceGetIndex")
        if self._wait is None or not all(hasattr(nvml, name) for name in needed):
            return
        try:
            count = nvml.nvmlDeviceGetCount()
            event_set = nvml.nvmlEventSetCreate() if count else None
        except nvml.NVMLError as exc:
            log.debug("no NVML event set, so no XID events: %s", exc)
            return
        registered = 0
        for index in range(count):
            try:
                handle = nvml.nvmlDeviceGetHandleByIndex(index)
                nvml.nvmlDeviceRegisterEvents(handle, nvml.nvmlEventTypeXidCriticalError, event_set)
                registered += 1
            except nvml.NVMLError as exc:  # NotSupported on this model, or the GPU is gone
                log.debug("GPU %d reports no XID events: %s", index, exc)
        if registered:
            self._set = event_set
        elif event_set is not None:
            try:
                nvml.nvmlEventSetFree(event_set)
            except (nvml.NVMLError, AttributeError):
                pass

    def poll(self) -> dict[int, tuple[int, int]]:
        """Drains the events that arrived since the last poll; the running totals, by GPU index."""
        nvml = self._nvml
        if self._set is None:
            return self._totals
        for _ in range(self.MAX_PER_POLL):
            try:
                event = self._wait(self._set, 0)
            except nvml.NVMLError:  # NVMLError_Timeout: none pending; anything else: try again next time
                break
            if not event.eventType & nvml.nvmlEventTypeXidCriticalError:
                continue
            try:
                index = nvml.nvmlDeviceGetIndex(event.device)
            except nvml.NVMLError:
                continue
            events, _ = self._totals.get(index, (0, 0))
            self._totals[index] = (events + 1, int(event.eventData))
        return self._totals


def _gpu_reading(nvml, index: int, xid_errors: int = 0, last_xid: int = 0) -> GpuReading:
    try:
        handle = nvml.nvmlDeviceGetHandleByIndex(index)
    except nvml.NVMLError:  # the GPU fell off the bus or is being reset: report it idle, with its XIDs
        return GpuReading(index=index, xid_errors=xid_errors, last_xid=last_xid)

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
        xid_errors=xid_errors,
        last_xid=last_xid,
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
            xid_errors=g.xid_errors, last_xid=g.last_xid,
        ) for g in gpus],
    )

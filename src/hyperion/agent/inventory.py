"""What this node offers: GPUs (declared or discovered through NVML), CPUs, memory, labels.

Glossary:
    logical GPUs   GPUs declared on the command line (``--gpus N``): indices 0..N-1, no NVML
                   behind them. Used for development machines and tests; ``gpus_logical`` is
                   true in the Hello so the control plane knows no telemetry will back them.
    discovered     GPUs read from NVML (``nvidia-ml-py``); without NVML the node has none.
    gpu type       the short model name jobs ask for ("H100", "A100"), taken from the first
                   GPU's NVML name unless ``--gpu-type`` says otherwise.

Also parses the human inputs that describe a node: memory sizes ("64Gi", "512M", bytes) and
``k=v`` labels. Parse errors raise ``ValueError`` with a message fit for the command line.
"""

from __future__ import annotations

import logging
import re
import socket
from dataclasses import dataclass, field

import psutil

import hyperion
from hyperion.api._generated.hyperion.v1 import agent_pb2
from hyperion.model import Gpu
from hyperion.model.quantity import size_in_bytes

log = logging.getLogger("hyperiond.inventory")

_MODEL_RE = re.compile(r"^[A-Z]{1,3}\d{1,4}[A-Z]?$")


GpuInfo = Gpu  # the model's GPU description, used as discovered


@dataclass(frozen=True, slots=True)
class Inventory:
    node_id: str
    hostname: str
    gpus: tuple[GpuInfo, ...] = ()
    gpu_type: str = ""
    gpus_logical: bool = False
    cpus_milli: int = 0
    memory_mb: int = 0
    labels: dict[str, str] = field(default_factory=dict)

    def hello(self, tasks: list[agent_pb2.TaskReport]) -> agent_pb2.Hello:
        return agent_pb2.Hello(
            node_id=self.node_id, hostname=self.hostname, gpu_type=self.gpu_type,
            gpus=[agent_pb2.Gpu(index=g.index, uuid=g.uuid, name=g.name, memory_mb=g.memory_mb)
                  for g in self.gpus],
            cpus_milli=self.cpus_milli, memory_mb=self.memory_mb, labels=self.labels,
            tasks=tasks, version=hyperion.__version__, gpus_logical=self.gpus_logical,
        )


def parse_memory(text: str) -> int:
    """Bytes in ``text``: a plain byte count, or a number with a unit.

    The same syntax as job documents (``hyperion.model.quantity``): K/M/G/T are powers of 1000,
    Ki/Mi/Gi/Ti powers of 1024; a trailing "B" is allowed ("16GB", "16GiB").
    """
    size = size_in_bytes(text)
    if size is None:
        raise ValueError(f"invalid memory size {text!r}: expected bytes or a number with a unit "
                         "(e.g. 64Gi, 512M, 1073741824)")
    if size <= 0:
        raise ValueError(f"invalid memory size {text!r}: must be more than zero")
    return size


def parse_labels(items: list[str]) -> dict[str, str]:
    labels: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"invalid label {item!r}: expected key=value")
        labels[key.strip()] = value.strip()
    return labels


def short_gpu_type(name: str) -> str:
    """"NVIDIA H100 80GB HBM3" -> "H100"; names without a model token stay as they are."""
    for token in re.split(r"[\s\-_]+", name):
        if _MODEL_RE.match(token):
            return token
    return name.strip()


def logical_gpus(count: int) -> tuple[GpuInfo, ...]:
    return tuple(GpuInfo(index=i, name="logical") for i in range(count))


def nvml_gpus() -> tuple[GpuInfo, ...]:
    """GPUs visible through NVML, in NVML (PCI bus) order; () when NVML is unavailable."""
    pynvml = load_nvml()
    if pynvml is None:
        log.info("NVML unavailable; declaring no GPUs")
        return ()
    gpus = []
    try:
        for i in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(i)
            gpus.append(GpuInfo(
                index=i,
                uuid=_text(pynvml.nvmlDeviceGetUUID(handle)),
                name=_text(pynvml.nvmlDeviceGetName(handle)),
                memory_mb=int(pynvml.nvmlDeviceGetMemoryInfo(handle).total // 2**20),
            ))
    except pynvml.NVMLError as exc:
        log.warning("NVML device query failed after %d GPUs: %s", len(gpus), exc)
    return tuple(gpus)


def discover(
    node_id: str,
    *,
    gpus: int | None = None,
    gpu_type: str | None = None,
    cpus: float | None = None,
    memory_bytes: int | None = None,
    labels: dict[str, str] | None = None,
) -> Inventory:
    """The node's inventory: declared values win, the rest is read from the host."""
    if gpus is not None:
        found, logical = logical_gpus(gpus), True
        kind = gpu_type or "logical"
    else:
        found, logical = nvml_gpus(), False
        kind = gpu_type or (short_gpu_type(found[0].name) if found else "")
    cpu_count = cpus if cpus is not None else float(psutil.cpu_count(logical=True) or 1)
    memory = memory_bytes if memory_bytes is not None else psutil.virtual_memory().total
    return Inventory(
        node_id=node_id, hostname=socket.gethostname(), gpus=found, gpu_type=kind,
        gpus_logical=logical, cpus_milli=round(cpu_count * 1000),
        memory_mb=int(memory // 2**20), labels=dict(labels or {}),
    )


def load_nvml():
    """The initialised ``pynvml`` module, or None without a driver or the library."""
    try:
        import pynvml
    except ImportError:
        return None
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError:  # no driver, no libnvidia-ml, no permission
        return None
    return pynvml


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value

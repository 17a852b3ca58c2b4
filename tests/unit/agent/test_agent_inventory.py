"""Inventory: sizes, labels, GPU type names, declared vs discovered GPUs, the Hello they make."""

from __future__ import annotations

import pytest

from hyperion.agent.inventory import (
    discover,
    load_nvml,
    parse_labels,
    parse_memory,
    short_gpu_type,
)
from hyperion.api._generated.hyperion.v1 import agent_pb2


@pytest.mark.parametrize(("text", "size"), [
    ("1073741824", 2**30), ("64Gi", 64 * 2**30), ("64GiB", 64 * 2**30), ("512M", 512 * 10**6),
    ("512Mi", 512 * 2**20), ("1Pi", 2**50), ("1.5Ti", int(1.5 * 2**40)), ("2k", 2000), (" 8 Gi ", 8 * 2**30),
])
def test_parse_memory_accepts_bytes_and_units(text, size):
    assert parse_memory(text) == size


@pytest.mark.parametrize("text", ["", "lots", "64 gigs", "-1Gi", "0", "512mi", "Gi"])
def test_parse_memory_rejects_garbage_with_an_example(text):
    with pytest.raises(ValueError, match="invalid memory size"):
        parse_memory(text)


def test_parse_labels_splits_on_the_first_equals_sign():
    assert parse_labels(["zone=a", "expr=x=y", "empty="]) == {"zone": "a", "expr": "x=y", "empty": ""}
    with pytest.raises(ValueError, match="key=value"):
        parse_labels(["novalue"])
    with pytest.raises(ValueError, match="key=value"):
        parse_labels(["=v"])


@pytest.mark.parametrize(("name", "short"), [
    ("NVIDIA H100 80GB HBM3", "H100"), ("NVIDIA A100-SXM4-80GB", "A100"), ("Tesla V100-SXM2-16GB", "V100"),
    ("NVIDIA L40S", "L40S"), ("Tesla T4", "T4"), ("NVIDIA GH200 480GB", "GH200"),
    ("NVIDIA GeForce RTX 4090", "NVIDIA GeForce RTX 4090"),
])
def test_short_gpu_type_keeps_the_model_token(name, short):
    assert short_gpu_type(name) == short


def test_declared_gpus_are_logical_and_numbered_from_zero():
    inv = discover("n1", gpus=3, cpus=2.5, memory_bytes=4 * 2**30, labels={"a": "b"})
    assert [g.index for g in inv.gpus] == [0, 1, 2]
    assert (inv.gpus_logical, inv.gpu_type, inv.cpus_milli, inv.memory_mb) == (True, "logical", 2500, 4096)
    assert discover("n1", gpus=1, gpu_type="H100").gpu_type == "H100"
    assert discover("n1", gpus=0).gpus == ()


def test_without_declared_gpus_they_are_discovered_and_host_sizes_read():
    inv = discover("n1")
    assert not inv.gpus_logical and inv.cpus_milli >= 1000 and inv.memory_mb > 0
    if load_nvml() is None:
        assert inv.gpus == () and inv.gpu_type == ""
    else:
        assert [g.index for g in inv.gpus] == list(range(len(inv.gpus)))
        assert all(g.uuid and g.memory_mb > 0 for g in inv.gpus)


def test_hello_carries_the_inventory_and_the_tasks():
    inv = discover("n7", gpus=2, gpu_type="A100", cpus=4, memory_bytes=2**30, labels={"z": "1"})
    report = agent_pb2.TaskReport(task=agent_pb2.TaskRef(job_id="j"), state=agent_pb2.TaskReport.EXITED)
    hello = inv.hello([report])
    assert (hello.node_id, hello.gpu_type, hello.gpus_logical, hello.cpus_milli, hello.memory_mb) == (
        "n7", "A100", True, 4000, 1024)
    assert [g.index for g in hello.gpus] == [0, 1] and dict(hello.labels) == {"z": "1"}
    assert list(hello.tasks) == [report] and hello.version

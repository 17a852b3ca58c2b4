"""Readers of the public price catalogs the GPU catalog is built from, one function per format.

- ``read_gcp_vms``: SkyPilot-format GCP catalog (``gcp_vms.csv``), priced per zone. Rows with an
  empty ``InstanceType`` are attachable accelerators priced alone (``AcceleratorCount`` GPUs per
  row); a GPU machine's price is its host row plus the accelerator row of the same zone for its GPU
  count (or the one-GPU row times the count when that count has no row). Spot likewise, when both
  rows give one. Which GPUs a host carries: the host row's own ``AcceleratorName``/``Count`` when
  filled, else GCP's machine naming (``GCP_GPU_FAMILIES``: ``a2-highgpu-4g`` = 4 x A100,
  ``g2-standard-24`` = 2 x L4 ...). GPUs that attach to general-purpose N1 machines (T4, P4, P100,
  V100, K80) become one offer per zone and count on the host ``n1-highmem-<8 x count>`` (capped at
  96 vCPUs), SkyPilot's default host for them. TPU slices are skipped.
- ``read_azure_vms``: SkyPilot-format Azure catalog (``azure_vms.csv``), priced per region; a row
  with an ``AcceleratorName`` is a GPU machine. Machines with a fraction of a GPU are skipped.
- ``read_aws_gpu_instances``: AWS on-demand prices per instance type and region
  (``aws_gpu_instances_by_region.csv``; no spot prices). Non-GPU accelerators (Inferentia,
  Trainium, Qualcomm AI 100), fractional GPUs and rows without a region or price are skipped.

Every reader reads any file of its format (columns found by header name, extra trailing fields
ignored), returns the offers and the count of rows skipped per reason, and raises ``ValueError``
naming ``file:line``, the column and what to do for a row it needs and cannot read (values of rows
that cannot become a GPU offer, such as CPU-only machines, are not checked).
"""

from __future__ import annotations

import csv
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from hyperion.model.offer import Offer, is_gpu, normalise_gpu

# GCP accelerator-optimised machine families: (family, kind before "gpu") -> accelerator row name.
# The GPU count is the number before "g" at the end of the type (a2-highgpu-4g -> 4).
GCP_GPU_FAMILIES = {
    ("a2", "high"): "A100",
    ("a2", "mega"): "A100",
    ("a2", "ultra"): "A100-80GB",
    ("a3", "high"): "H100",
    ("a3", "edge"): "H100",
    ("a3", "mega"): "H100-MEGA",
    ("a3", "ultra"): "H200",
    ("a4", "high"): "B200",
    ("a4x", "high"): "GB200",
}
# G2 machines carry L4 GPUs; the count follows from the machine size (GCP's G2 table).
GCP_G2_L4_COUNT = {4: 1, 8: 1, 12: 1, 16: 1, 32: 1, 24: 2, 48: 4, 96: 8}
# GPUs attached to N1 hosts, and the host chosen for them.
GCP_N1_ATTACHABLE = frozenset({"T4", "P4", "P100", "V100", "K80"})
_GCP_FAMILY_TYPE = re.compile(r"^(a\d+x?)-([a-z]+)gpu-(\d+)g(-[a-z0-9-]+)?$")
_GCP_G2_TYPE = re.compile(r"^g2-standard-(\d+)$")
_MEMORY = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*(GiB|GB|TiB|TB)?\b", re.IGNORECASE)

GCP_COLUMNS = ("InstanceType", "vCPUs", "MemoryGiB", "AcceleratorName", "AcceleratorCount", "Region",
               "AvailabilityZone", "Price", "SpotPrice")
AZURE_COLUMNS = ("InstanceType", "AcceleratorName", "AcceleratorCount", "vCPUs", "MemoryGiB", "Price", "SpotPrice",
                 "Region")
AWS_COLUMNS = ("instance_type", "gpu", "gpu_count", "gpu_memory", "vcpu", "memory", "region",
               "on_demand_usd_per_hour")


@dataclass
class SourceRead:
    """What a reader found: the offers, and how many rows it skipped for each reason."""

    offers: list[Offer] = field(default_factory=list)
    skipped: Counter = field(default_factory=Counter)


@dataclass(frozen=True, slots=True)
class _Row:
    file: str
    line: int
    values: dict[str, str]

    def __getitem__(self, column: str) -> str:
        return self.values[column]

    def fail(self, column: str, what: str) -> ValueError:
        return ValueError(f"{self.file}:{self.line}: column {column!r}: {what}")

    def number(self, column: str, *, required: bool = True) -> float | None:
        text = self.values[column]
        if not text:
            if required:
                raise self.fail(column, "is empty; write a number")
            return None
        try:
            value = float(text)
        except ValueError:
            raise self.fail(column, f"{text!r} is not a number; write a decimal number") from None
        if not value >= 0 or value == float("inf"):
            raise self.fail(column, f"{text!r} is not a finite number >= 0; fix the value")
        return value


def _rows(path: str | Path, required: tuple[str, ...]) -> Iterator[_Row]:
    name = str(path)
    with open(path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        header = [h.strip() for h in next(reader, [])]
        missing = [c for c in required if c not in header]
        if missing:
            raise ValueError(f"{name}:1: header lacks column(s) {', '.join(missing)}; "
                             f"is this the right file for this reader? (needs {', '.join(required)})")
        for row in reader:
            if not row or all(not v.strip() for v in row):
                continue
            if len(row) < len(header):
                raise ValueError(f"{name}:{reader.line_num}: {len(row)} fields; the header has {len(header)} "
                                 f"({','.join(header)}); fix or remove the line")
            yield _Row(name, reader.line_num, {h: v.strip() for h, v in zip(header, row, strict=False)})


def _gpu_count(row: _Row, column: str) -> int | None:
    """A whole GPU count; ``None`` for a fraction of a GPU (skipped by the callers)."""
    count = row.number(column)
    if count == 0:
        raise row.fail(column, "is 0 on a GPU row; write the GPU count")
    return int(count) if count == int(count) else None


def _whole_gpus(row: _Row, name: str, provider: str, not_gpu: str, result: SourceRead) -> int | None:
    """The GPU count of an accelerator row, or None (counted in ``result.skipped``) when it is
    not a GPU or a fraction of one."""
    if not is_gpu(name):
        result.skipped[f"{provider}: {not_gpu}"] += 1
        return None
    count = _gpu_count(row, "AcceleratorCount")
    if count is None:
        result.skipped[f"{provider}: fraction of a GPU"] += 1
    return count


def _price(value: float | None) -> float | None:
    return None if value is None else round(value, 6)


def read_gcp_vms(path: str | Path) -> SourceRead:
    """GPU offers from a SkyPilot-format GCP catalog (see the module docstring)."""
    result = SourceRead()
    hosts: list[_Row] = []
    accelerators: dict[tuple[str, str, int], _Row] = {}
    n1_hosts: dict[tuple[str, str], _Row] = {}
    for row in _rows(path, GCP_COLUMNS):
        if not row["InstanceType"]:
            name = row["AcceleratorName"]
            if not name:
                raise row.fail("AcceleratorName", "is empty on a row without InstanceType; an accelerator row names it")
            count = _whole_gpus(row, name, "gcp", "not a GPU (TPU)", result)
            if count is None:
                continue
            accelerators.setdefault((row["AvailabilityZone"], name, count), row)
        elif row["InstanceType"].startswith("n1-highmem-"):
            n1_hosts.setdefault((row["AvailabilityZone"], row["InstanceType"]), row)
        elif row["AcceleratorName"] or _gcp_family_gpus(row["InstanceType"]) is not None:
            hosts.append(row)
    for host in hosts:
        if host["AcceleratorName"]:
            name, count = host["AcceleratorName"], _gpu_count(host, "AcceleratorCount")
            if count is None:
                result.skipped["gcp: fraction of a GPU"] += 1
                continue
        else:
            name, count = _gcp_family_gpus(host["InstanceType"])
        _add_gcp_offer(result, host, name, count, accelerators)
    for zone, name, count in accelerators:  # file order
        if name not in GCP_N1_ATTACHABLE:
            continue
        host = n1_hosts.get((zone, f"n1-highmem-{min(8 * count, 96)}"))
        if host is None:
            result.skipped["gcp: no N1 host in the accelerator's zone"] += 1
            continue
        _add_gcp_offer(result, host, name, count, accelerators)
    return result


def _gcp_family_gpus(instance_type: str) -> tuple[str, int] | None:
    match = _GCP_FAMILY_TYPE.match(instance_type)
    if match:
        name = GCP_GPU_FAMILIES.get((match.group(1), match.group(2)))
        return None if name is None else (name, int(match.group(3)))
    match = _GCP_G2_TYPE.match(instance_type)
    if match and int(match.group(1)) in GCP_G2_L4_COUNT:
        return "L4", GCP_G2_L4_COUNT[int(match.group(1))]
    return None


def _add_gcp_offer(result: SourceRead, host: _Row, name: str, count: int,
                   accelerators: dict[tuple[str, str, int], _Row]) -> None:
    zone = host["AvailabilityZone"]
    accelerator = accelerators.get((zone, name, count))
    times = 1
    if accelerator is None:
        accelerator, times = accelerators.get((zone, name, 1)), count
    if accelerator is None:
        result.skipped["gcp: no accelerator price in the host's zone"] += 1
        return
    host_price, gpu_price = host.number("Price", required=False), accelerator.number("Price", required=False)
    if host_price is None or gpu_price is None:
        result.skipped["gcp: no on-demand price"] += 1
        return
    host_spot, gpu_spot = host.number("SpotPrice", required=False), accelerator.number("SpotPrice", required=False)
    spot = None if host_spot is None or gpu_spot is None else host_spot + gpu_spot * times
    result.offers.append(Offer(
        provider="gcp", region=host["Region"], zone=zone, instance_type=host["InstanceType"],
        gpu_type=normalise_gpu(name), gpus=count, vcpus=host.number("vCPUs"), memory_gib=host.number("MemoryGiB"),
        usd_per_hour=_price(host_price + gpu_price * times), spot_usd_per_hour=_price(spot),
    ))


def read_azure_vms(path: str | Path) -> SourceRead:
    """GPU offers from a SkyPilot-format Azure catalog (see the module docstring)."""
    result = SourceRead()
    for row in _rows(path, AZURE_COLUMNS):
        name = row["AcceleratorName"]
        if not name:
            continue
        count = _whole_gpus(row, name, "azure", "not a GPU", result)
        if count is None:
            continue
        price = row.number("Price", required=False)
        if price is None or price == 0:
            result.skipped["azure: no on-demand price"] += 1
            continue
        spot = row.number("SpotPrice", required=False)
        result.offers.append(Offer(
            provider="azure", region=row["Region"], zone="", instance_type=row["InstanceType"],
            gpu_type=normalise_gpu(name), gpus=count, vcpus=row.number("vCPUs"), memory_gib=row.number("MemoryGiB"),
            usd_per_hour=_price(price), spot_usd_per_hour=_price(spot) if spot else None,
        ))
    return result


def read_aws_gpu_instances(path: str | Path) -> SourceRead:
    """GPU offers from the AWS on-demand prices by instance type and region (see the module docstring)."""
    result = SourceRead()
    for row in _rows(path, AWS_COLUMNS):
        name = row["gpu"]
        if not name or not is_gpu(name):
            result.skipped["aws: not a GPU"] += 1
            continue
        count = _gpu_count(row, "gpu_count")
        if count is None:
            result.skipped["aws: fraction of a GPU"] += 1
            continue
        price = row.number("on_demand_usd_per_hour", required=False)
        if not row["region"] or price is None or price == 0:
            result.skipped["aws: no region or on-demand price"] += 1
            continue
        result.offers.append(Offer(
            provider="aws", region=row["region"], zone="", instance_type=row["instance_type"],
            gpu_type=normalise_gpu(name, _aws_memory_per_gpu(row["gpu_memory"], count)), gpus=count,
            vcpus=row.number("vcpu"), memory_gib=_memory_gib(row, "memory"), usd_per_hour=_price(price),
        ))
    return result


def _memory_gib(row: _Row, column: str) -> float:
    match = _MEMORY.match(row[column])
    if not match:
        raise row.fail(column, f"{row[column]!r} is not a size; write e.g. '768 GB' or '2048 GiB'")
    value = float(match.group(1))
    unit = (match.group(2) or "GiB").lower()
    return value * 1024 if unit in ("tib", "tb") else value


def _aws_memory_per_gpu(text: str, count: int) -> float | None:
    """GPU memory of one GPU. The source gives the instance's total for most multi-GPU types
    (p4de: "640 GB" for 8 x 80) but one GPU's for some (p3dn: "32 GB" for 8 x 32): a total
    divided by the count that falls under 8 GiB is read as per-GPU."""
    match = _MEMORY.match(text)
    if not match:
        return None
    value = float(match.group(1))
    return value / count if value / count >= 8 else value

"""The GPU price catalog: source readers on tiny files of each format, the catalog file format and
its errors, the queries federation asks, the shipped file, and its rebuild from the shared data."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from hyperion.model.offer import Catalog, Offer, is_gpu, normalise_gpu
from hyperion.providers.catalog import COLUMNS, format_catalog, load_catalog, read_catalog
from hyperion.providers.catalog_sources import read_aws_gpu_instances, read_azure_vms, read_gcp_vms

REPO = Path(__file__).resolve().parents[3]
DATA = Path(os.environ.get("HYPERION_DATA") or REPO / ".." / "shared" / "data")
SHIPPED = REPO / "src" / "hyperion" / "providers" / "data" / "gpu_catalog.csv"

GCP_HEADER = "InstanceType,vCPUs,MemoryGiB,AcceleratorName,AcceleratorCount,GpuInfo,Region,AvailabilityZone,Price,SpotPrice\n"
GCP = GCP_HEADER + """\
a2-highgpu-1g,12.0,85.0,,,,us-central1,us-central1-a,0.73948,0.36975
a2-highgpu-2g,24.0,170.0,,,,us-central1,us-central1-a,1.47895,0.7395
a3-highgpu-8g,208.0,1872.0,,,,us-central1,us-central1-a,9.46006,3.86318
g2-standard-24,24.0,96.0,,,,us-central1,us-central1-b,0.88075,
n1-highmem-8,8.0,52.0,,,,us-central1,us-central1-a,0.47321,0.17276
e2-standard-2,2.0,8.0,,,,us-central1,us-central1-a,0.067,0.02
,,,A100,1,"{'Gpus': [{'MemoryInfo': {'SizeInMiB': 40960}}]}",us-central1,us-central1-a,2.93391,1.4341
,,,L4,2,"{'Gpus': [{'MemoryInfo': {'SizeInMiB': 24576}}]}",us-central1,us-central1-b,1.12008,0.4686
,,,T4,1,"{'Gpus': [{'MemoryInfo': {'SizeInMiB': 16384}}]}",us-central1,us-central1-a,0.35,0.1654
,,,T4,2,"{'Gpus': [{'MemoryInfo': {'SizeInMiB': 16384}}]}",us-central1,us-central1-a,0.7,0.3308
,,,tpu-v3-8,1,tpu-v3-8,us-central1,us-central1-a,8.0,2.04
"""

AZURE = """\
InstanceType,AcceleratorName,AcceleratorCount,vCPUs,MemoryGiB,GpuInfo,Price,SpotPrice,Region,Generation
Standard_B12ms,,,12,48,,0.634,,australiacentral,V1,V2
Standard_NC24ads_A100_v4,A100-80GB,1,24,220,A100-80GB,3.673,0.7346,eastus,V2
Standard_NC6s_v3,V100,1,6,112,V100,3.06,,eastus,V1,V2
Standard_NV6ads_A10_v5,A10,0.167,6,55,A10,0.454,0.0908,eastus,V2
"""

AWS = """\
instance_type,gpu,gpu_count,gpu_memory,vcpu,memory,family,generation,region,on_demand_usd_per_hour,reserved_usd_per_hour
p4d.24xlarge,NVIDIA A100,8,320 GB HBM2,96,1152 GiB,GPU instance,current,us-east-1,21.96,13.44
p4de.24xlarge,NVIDIA A100,8,640 GB HBM2e,96,1152 GiB,GPU instance,current,us-east-1,27.44705,
p3dn.24xlarge,NVIDIA V100,8,32 GB HBM2,96,768 GB,GPU instance,current,us-east-1,31.212,
g5.xlarge,NVIDIA A10G,1,24 GB GDDR6,4,16 GB,GPU instance,current,eu-west-1,1.123,0.7
inf2.xlarge,AWS Inferentia2,1,32 GB,4,16 GB,Machine Learning ASIC Instances,current,us-east-1,0.7582,
g6f.large,NVIDIA L4,0.125,3 GB,2,8 GB,GPU instance,current,us-east-1,0.2,
p5e.48xlarge,NVIDIA H200,8,1128 GB HBM3e,192,2048 GiB,GPU instance,preview,,,
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def by_type(offers: list[Offer]) -> dict[tuple[str, str, str, int], Offer]:
    return {(o.zone or o.region, o.instance_type, o.gpu_type, o.gpus): o for o in offers}


# --- source readers -----------------------------------------------------------------------------

def test_gcp_price_is_host_plus_accelerators_of_the_same_zone(tmp_path):
    result = read_gcp_vms(write(tmp_path, "gcp_vms.csv", GCP))
    offers = by_type(result.offers)
    a2 = offers[("us-central1-a", "a2-highgpu-1g", "A100", 1)]
    assert a2.usd_per_hour == pytest.approx(0.73948 + 2.93391) == pytest.approx(3.67339)
    assert a2.spot_usd_per_hour == pytest.approx(0.36975 + 1.4341)
    assert (a2.provider, a2.region, a2.vcpus, a2.memory_gib) == ("gcp", "us-central1", 12, 85)
    # no A100 x2 row in the zone: the one-GPU row times two
    assert offers[("us-central1-a", "a2-highgpu-2g", "A100", 2)].usd_per_hour == pytest.approx(1.47895 + 2 * 2.93391)
    # G2 sizes carry L4s by size; the host has no spot price, so the machine has none
    g2 = offers[("us-central1-b", "g2-standard-24", "L4", 2)]
    assert g2.usd_per_hour == pytest.approx(0.88075 + 1.12008) and g2.spot_usd_per_hour is None
    # N1-attachable GPUs priced on n1-highmem-<8 x count>; only the zone's hosts that exist
    t4 = offers[("us-central1-a", "n1-highmem-8", "T4", 1)]
    assert t4.usd_per_hour == pytest.approx(0.47321 + 0.35)
    assert ("us-central1-a", "n1-highmem-16", "T4", 2) not in offers
    assert len(result.offers) == 4
    assert result.skipped["gcp: not a GPU (TPU)"] == 1
    assert result.skipped["gcp: no accelerator price in the host's zone"] == 1   # a3 without an H100 row
    assert result.skipped["gcp: no N1 host in the accelerator's zone"] == 1      # T4 x2, no n1-highmem-16


def test_azure_reads_gpu_rows_per_region_and_tolerates_extra_trailing_fields(tmp_path):
    result = read_azure_vms(write(tmp_path, "azure_vms.csv", AZURE))
    offers = by_type(result.offers)
    assert set(offers) == {("eastus", "Standard_NC24ads_A100_v4", "A100-80GB", 1), ("eastus", "Standard_NC6s_v3", "V100", 1)}
    a100 = offers[("eastus", "Standard_NC24ads_A100_v4", "A100-80GB", 1)]
    assert (a100.zone, a100.usd_per_hour, a100.spot_usd_per_hour) == ("", 3.673, 0.7346)
    assert offers[("eastus", "Standard_NC6s_v3", "V100", 1)].spot_usd_per_hour is None
    assert result.skipped["azure: fraction of a GPU"] == 1


def test_aws_normalises_names_by_memory_and_skips_what_is_not_a_whole_gpu_with_a_price(tmp_path):
    result = read_aws_gpu_instances(write(tmp_path, "aws.csv", AWS))
    offers = by_type(result.offers)
    assert set(offers) == {
        ("us-east-1", "p4d.24xlarge", "A100", 8), ("us-east-1", "p4de.24xlarge", "A100-80GB", 8),
        ("us-east-1", "p3dn.24xlarge", "V100-32GB", 8), ("eu-west-1", "g5.xlarge", "A10G", 1),
    }
    p4d = offers[("us-east-1", "p4d.24xlarge", "A100", 8)]
    assert (p4d.vcpus, p4d.memory_gib, p4d.usd_per_hour, p4d.spot_usd_per_hour) == (96, 1152, 21.96, None)
    assert result.skipped == {"aws: not a GPU": 1, "aws: fraction of a GPU": 1, "aws: no region or on-demand price": 1}


BAD_SOURCES = [
    (read_gcp_vms, GCP_HEADER + "a2-highgpu-1g,12.0,85.0,,,,us-central1,us-central1-a,0.73948,0.1\n"
                                ",,,A100,1,,us-central1,us-central1-a,cheap,1.4341\n", 3, "Price"),
    (read_gcp_vms, GCP_HEADER + ",,,A100,x,,us-central1,us-central1-a,2.9,1.4\n", 2, "AcceleratorCount"),
    (read_gcp_vms, GCP_HEADER + "a2-highgpu-1g,twelve,85.0,,,,us-central1,us-central1-a,0.7,0.3\n"
                                ",,,A100,1,,us-central1,us-central1-a,2.9,1.4\n", 2, "vCPUs"),
    (read_azure_vms, AZURE.splitlines()[0] + "\n\nStandard_NC6s_v3,V100,1,6,112,V100,-3,,eastus,V1\n", 3, "Price"),
    (read_aws_gpu_instances, AWS.splitlines()[0] + "\ng5.xlarge,NVIDIA A10G,1,24 GB,4,lots,GPU,current,eu-west-1,1.1,\n",
     2, "memory"),
]


@pytest.mark.parametrize(("reader", "text", "line", "column"), BAD_SOURCES)
def test_a_bad_source_value_names_file_line_and_column(tmp_path, reader, text, line, column):
    path = write(tmp_path, "source.csv", text)
    with pytest.raises(ValueError, match=rf"source\.csv:{line}: column '{column}': .*; "):
        reader(path)


@pytest.mark.parametrize("reader", [read_gcp_vms, read_azure_vms, read_aws_gpu_instances])
def test_a_short_line_or_a_missing_column_names_file_and_line(tmp_path, reader):
    with pytest.raises(ValueError, match=r"source\.csv:1: header lacks column"):
        reader(write(tmp_path, "source.csv", "InstanceType,Price\nx,1\n"))
    header = {read_gcp_vms: GCP_HEADER, read_azure_vms: AZURE.splitlines()[0] + "\n", read_aws_gpu_instances: AWS.splitlines()[0] + "\n"}
    with pytest.raises(ValueError, match=r"source\.csv:2: 2 fields; the header has"):
        reader(write(tmp_path, "source.csv", header[reader] + "a,b\n"))


# --- GPU names ----------------------------------------------------------------------------------

@pytest.mark.parametrize(("name", "memory", "expected"), [
    ("NVIDIA A100", 40, "A100"), ("NVIDIA A100", 80, "A100-80GB"), ("A100-80GB", None, "A100-80GB"),
    ("NVIDIA V100", 16, "V100"), ("NVIDIA V100", 32, "V100-32GB"), ("V100-32GB", None, "V100-32GB"),
    ("H100-MEGA", None, "H100"), ("NVIDIA H100", 80, "H100"), ("NVIDIA A10G", 24, "A10G"), ("l4", None, "L4"),
    ("NVIDIA B200 Blackwell", None, "B200"), ("NVIDIA GB200 Grace Blackwell", None, "GB200"),
    ("NVIDIA GRID K520", None, "K520"), ("AMD Radeon Pro V520", None, "V520"), ("NVIDIA RTX PRO 6000 Blackwell", None, "RTX-PRO-6000"),
    ("Some New GPU", None, "SOME-NEW-GPU"),
])
def test_normalise_gpu(name, memory, expected):
    assert normalise_gpu(name, memory) == expected
    assert normalise_gpu(expected) == expected   # normalised names are fixed points


@pytest.mark.parametrize(("name", "gpu"), [("tpu-v5p-8", False), ("AWS Inferentia2", False), ("AWS Trainium", False),
                                           ("Qualcomm AI 100", False), ("", False), ("NVIDIA T4", True), ("MI300X", True)])
def test_is_gpu(name, gpu):
    assert is_gpu(name) is gpu


# --- catalog file format ------------------------------------------------------------------------

def offer(provider="gcp", region="us-central1", zone="", instance_type="vm", gpu_type="A100", gpus=1, price=1.0, spot=None):
    return Offer(provider, region, zone, instance_type, gpu_type, gpus, 8, 32, price, spot)


def test_format_and_read_round_trip(tmp_path):
    offers = [offer(price=3.67339, spot=1.80385, zone="us-central1-a"), offer("aws", "us-east-1", gpus=8, price=21.96)]
    text = format_catalog(offers)
    assert text.splitlines()[0] == ",".join(COLUMNS)
    assert "gcp,us-central1,us-central1-a,vm,A100,1,8,32,3.67339,1.80385" in text.splitlines()
    assert list(load_catalog(write(tmp_path, "c.csv", text))) == sorted(offers, key=Offer.sort_key)
    assert format_catalog(reversed(offers)) == text


HEADER = ",".join(COLUMNS)
BAD_ROWS = [
    ("oracle,r,,vm,A100,1,8,32,1.0,", "provider"),
    ("gcp,,,vm,A100,1,8,32,1.0,", "region"),
    ("gcp,r,,vm,nvidia a100,1,8,32,1.0,", "gpu_type"),
    ("gcp,r,,vm,A100,0.5,8,32,1.0,", "gpus"),
    ("gcp,r,,vm,A100,1,8,32,0,", "usd_per_hour"),
    ("gcp,r,,vm,A100,1,8,32,1.0,free", "spot_usd_per_hour"),
    ("gcp,r,,vm,A100,1,eight,32,1.0,", "vcpus"),
]


@pytest.mark.parametrize(("row", "column"), BAD_ROWS)
def test_a_bad_catalog_row_names_file_line_column_and_what_to_do(tmp_path, row, column):
    path = write(tmp_path, "cat.csv", f"{HEADER}\ngcp,r,,vm,A100,1,8,32,1.0,\n{row}\n")
    with pytest.raises(ValueError, match=rf"cat\.csv:3: column '{column}': .*(write|use|every offer)"):
        load_catalog(path)


def test_a_bad_catalog_header_or_field_count_is_named(tmp_path):
    with pytest.raises(ValueError, match=r"cat\.csv:1: header is .*build_catalog"):
        load_catalog(write(tmp_path, "cat.csv", "provider,region\n"))
    with pytest.raises(ValueError, match=r"cat\.csv:2: 3 fields; expected 10"):
        load_catalog(write(tmp_path, "cat.csv", f"{HEADER}\ngcp,r,z\n"))
    with pytest.raises(ValueError, match=r"mine\.csv:1: the catalog is empty"):
        read_catalog("", name="mine.csv")


# --- queries ------------------------------------------------------------------------------------

QUERY = Catalog([
    offer("gcp", "us-central1", "us-central1-a", "a2-highgpu-1g", "A100", 1, 3.67, 1.80),
    offer("gcp", "us-central1", "us-central1-a", "a2-highgpu-8g", "A100", 8, 28.0, 14.4),
    offer("azure", "eastus", "", "ND96asr_v4", "A100", 8, 27.2, None),
    offer("aws", "us-east-1", "", "p4d.24xlarge", "A100", 8, 21.96, None),
    offer("aws", "us-east-1", "", "p5.48xlarge", "H100", 8, 55.04, None),
    offer("aws", "us-east-1", "", "g5.xlarge", "A10G", 1, 1.006, None),
])


def test_offers_filters():
    assert len(QUERY.offers()) == 6
    assert [o.instance_type for o in QUERY.offers(provider="aws", gpu_type="a100")] == ["p4d.24xlarge"]
    assert {o.provider for o in QUERY.offers(region="us-central1")} == {"gcp"}
    assert QUERY.offers(gpu_type="V100") == []


def test_cheapest_takes_the_cheapest_machine_with_enough_gpus():
    assert QUERY.cheapest("A100", 1).instance_type == "a2-highgpu-1g"
    assert QUERY.cheapest("A100", 2).instance_type == "p4d.24xlarge"
    assert QUERY.cheapest("A100", 2, spot=True).instance_type == "a2-highgpu-8g"   # only GCP gives spot
    assert QUERY.cheapest("A100", 8, regions=["eastus", "us-central1"]).instance_type == "ND96asr_v4"
    assert QUERY.cheapest("A100", 16) is None
    assert QUERY.cheapest("H100", 1, spot=True) is None
    with pytest.raises(ValueError, match="at least 1"):
        QUERY.cheapest("A100", 0)


def test_gpu_hour_price_is_the_lowest_price_of_one_gpu_in_the_region():
    assert QUERY.gpu_hour_price("gcp", "us-central1", "A100") == pytest.approx(28.0 / 8)
    assert QUERY.gpu_hour_price("gcp", "us-central1", "A100", spot=True) == pytest.approx(1.80)
    assert QUERY.gpu_hour_price("aws", "us-east-1", "A100", spot=True) is None
    assert QUERY.gpu_hour_price("aws", "eu-west-1", "A10G") is None


# --- the shipped catalog ------------------------------------------------------------------------

def test_the_shipped_catalog_loads_with_offers_of_every_provider():
    catalog = load_catalog()
    assert {o.provider for o in catalog} == {"aws", "azure", "gcp"}
    assert all(o.usd_per_hour > 0 and o.gpus >= 1 for o in catalog)
    assert all(o.spot_usd_per_hour is None or o.spot_usd_per_hour > 0 for o in catalog)
    assert all(o.zone for o in catalog.offers(provider="gcp")) and not any(o.zone for o in catalog.offers(provider="aws"))
    for provider in ("aws", "azure", "gcp"):
        assert {"A100", "H100"} <= {o.gpu_type for o in catalog.offers(provider=provider)}
    a2 = [o for o in catalog.offers("gcp", "us-central1", "A100") if o.zone == "us-central1-a" and o.instance_type == "a2-highgpu-1g"]
    assert [o.usd_per_hour for o in a2] == [pytest.approx(3.67339)]
    h100 = catalog.cheapest("H100", 8)
    assert h100 is not None and h100.gpus >= 8
    assert catalog.gpu_hour_price(h100.provider, h100.region, "H100") <= h100.usd_per_hour / h100.gpus
    assert SHIPPED.stat().st_size < 300_000


@pytest.mark.skipif(not (DATA / "cloud_catalog_gcp_azure" / "gcp_vms.csv").is_file(),
                    reason=f"shared data not found at {DATA} (set HYPERION_DATA)")
def test_the_build_reproduces_the_shipped_files_byte_for_byte(tmp_path):
    out = tmp_path / "gpu_catalog.csv"
    subprocess.run([sys.executable, str(REPO / "scripts" / "build_catalog.py"), "--data", str(DATA), "--out", str(out)],
                   check=True, capture_output=True, text=True, timeout=240)
    assert out.read_bytes() == SHIPPED.read_bytes()
    assert (tmp_path / "CATALOG.md").read_bytes() == (SHIPPED.parent / "CATALOG.md").read_bytes()

"""Trace readers: small files for parsing and every kind of bad input, then the real data in
/work/shared/data when it is there."""

from __future__ import annotations

import gzip
import json
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest

from hyperion.model.job import Priority
from hyperion.sim.traces import READERS, TraceError, alibaba, azure_llm, philly, read_trace, skypilot_spot, window

DATA = Path("/work/shared/data")
PHILLY_HEADER = "timestamp,duration,num_gpus,gpu_time,cluster\n"
POD_HEADER = "name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec,qos,pod_phase,creation_time,deletion_time,scheduled_time\n"
NODE_HEADER = "sn,cpu_milli,memory_mib,gpu,model\n"
AZURE_HEADER = "TIMESTAMP,ContextTokens,GeneratedTokens\n"


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def utc(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


# --- parsing -----------------------------------------------------------------------------------

def test_philly_reads_pacific_time_sorts_and_skips_zero_durations(tmp_path):
    path = write(tmp_path, "philly.csv", PHILLY_HEADER
                 + "2017-10-09 07:01:55,66.0,1,66.0,vc1\n"
                 + "2017-10-09 07:00:00,10,2.0,20,vc2\n"
                 + "2017-10-09 07:01:55,5,4,20,vc1\n"
                 + "2017-10-09 08:00:00,0.0,1,0,vc1\n\n")
    trace = philly.read(path)
    assert [job.id for job in trace.jobs] == ["philly-3", "philly-2", "philly-4"]
    assert [job.submit_s for job in trace.jobs] == [0.0, 115.0, 115.0]
    assert trace.start == utc("2017-10-09 14:00:00")  # PDT = UTC-7
    assert trace.skipped == {"zero duration": 1}
    first = trace.jobs[0]
    assert (first.gpus, first.team, first.duration_s, first.priority, first.line) == (2, "vc2", 10.0, Priority.BATCH, 3)


def test_philly_repeated_dst_hour_is_its_first_occurrence(tmp_path):
    path = write(tmp_path, "philly.csv", PHILLY_HEADER + "2017-11-05 01:30:00,1,1,1,vc\n")
    assert philly.read(path).start == utc("2017-11-05 08:30:00")  # still PDT
    assert philly.read(path, tz="UTC").start == utc("2017-11-05 01:30:00")


def test_alibaba_pods(tmp_path):
    path = write(tmp_path, "pods.csv", POD_HEADER
                 + "p0,12000,16384,1,1000,,LS,Running,100,1100,100\n"
                 + "p1,6000,1024,1,460,V100M16,BE,Failed,150,400,200\n"
                 + "p2,1000,512,8,1000,V100M16|V100M32,Guaranteed,Succeeded,160,300,170\n"
                 + "p3,1000,512,0,0,,Burstable,Pending,170,,\n"
                 + "p4,1000,512,0,0,,Burstable,Failed,180,200,200\n")
    trace = alibaba.read(path)
    assert trace.start is None and trace.skipped == {"never scheduled": 1, "zero duration": 1}
    p0, p1, p2 = trace.jobs
    assert (p0.id, p0.submit_s, p0.duration_s, p0.priority) == ("p0", 0.0, 1000.0, Priority.LATENCY_CRITICAL)
    assert (p0.cpus_milli, p0.memory) == (12000, 16384 * 2**20)
    assert (p1.gpus, p1.gpu_type, p1.priority, p1.submit_s) == (1, "V100M16", Priority.BATCH, 50.0)  # a 0.46 GPU share
    assert (p2.gpus, p2.gpu_type, p2.priority) == (8, None, Priority.LATENCY_CRITICAL)


def test_alibaba_nodes(tmp_path):
    path = write(tmp_path, "nodes.csv", NODE_HEADER + "n0,32000,262144,0,\nn1,64000,1024,2,P100\n")
    assert alibaba.read_nodes(path) == [
        alibaba.NodeRow("n0", 32000, 262144 * 2**20, 0, "", 2), alibaba.NodeRow("n1", 64000, 2**30, 2, "P100", 3)]


def test_azure_llm_requests(tmp_path):
    path = write(tmp_path, "AzureLLMInferenceTrace_code.csv", AZURE_HEADER
                 + "2023-11-16 18:17:03.9799600,5000,10\n"
                 + "2023-11-16 18:17:04.0000001,0,0\n"
                 + "2023-11-16 18:17:03.9799601,1000,50")  # no newline at the end
    trace = azure_llm.read(path, prefill_tokens_per_s=1000.0, decode_tokens_per_s=10.0, gpus_per_request=2)
    assert [job.id for job in trace.jobs] == ["code-2", "code-4"]
    assert trace.jobs[1].submit_s == pytest.approx(1e-7, abs=1e-9)
    assert [job.duration_s for job in trace.jobs] == [6.0, 6.0]
    assert {(job.team, job.gpus, job.priority) for job in trace.jobs} == {("code", 2, Priority.LATENCY_CRITICAL)}
    assert trace.start == pytest.approx(utc("2023-11-16 18:17:03.979960"))
    assert trace.skipped == {"zero duration": 1}
    assert azure_llm.service_name("/x/requests.csv.gz") == "requests"


def test_spot_series_outages(tmp_path):
    path = write(tmp_path, "us-east-1c_v100_1.json", json.dumps({"metadata": {"gap_seconds": 10}, "data": [1, 1, 0, 0, 2, 0, 1]}))
    series = skypilot_spot.read(path)
    assert (series.name, series.gap_s, series.duration_s) == ("us-east-1c_v100_1", 10.0, 70.0)
    assert series.outages() == [(0.0, 20.0), (40.0, 50.0), (60.0, 70.0)]


def test_read_trace_and_window(tmp_path):
    path = write(tmp_path, "philly.csv", PHILLY_HEADER + "".join(
        f"2017-10-09 07:00:{second:02d},10,1,10,vc\n" for second in range(0, 50, 10)))
    trace = read_trace(f"philly:{path}")
    assert trace.name == f"philly:{path}" and set(READERS) == {"philly", "alibaba", "azure-llm"}
    cut = window(trace, 15, 40)
    assert [(job.id, job.submit_s) for job in cut.jobs] == [("philly-4", 0.0), ("philly-5", 10.0)]
    assert cut.start == trace.start + 20
    assert window(trace).jobs == trace.jobs and window(trace, 100).jobs == ()
    with gzip.open(tmp_path / "philly.csv.gz", "wt") as packed:
        packed.write(Path(path).read_text())
    assert read_trace(f"philly:{tmp_path / 'philly.csv.gz'}").jobs == trace.jobs


# --- bad input ---------------------------------------------------------------------------------

BAD_INPUT = [
    (philly.read, "philly.csv", "", "philly.csv: empty file"),
    (philly.read, "philly.csv", PHILLY_HEADER, "no data rows"),
    (philly.read, "philly.csv", "time,duration\n1,2\n", "philly.csv:1: header: expected columns timestamp,duration,num_gpus"),
    (philly.read, "philly.csv", PHILLY_HEADER + "2017-10-09 07:01:55,66.0,x,66.0,vc\n",
     "philly.csv:2: num_gpus: expected a whole number >= 0, got 'x'"),
    (philly.read, "philly.csv", PHILLY_HEADER + "2017-10-09 07:01:55,1,1,1,vc\n2017-10-09 07:01:55,1,1.5,1,vc\n",
     "philly.csv:3: num_gpus: expected a whole number >= 0, got '1.5'"),
    (philly.read, "philly.csv", PHILLY_HEADER + "2017-10-09,1,1,1,vc\n", "philly.csv:2: timestamp: expected YYYY-MM-DD"),
    (philly.read, "philly.csv", PHILLY_HEADER + "2017-10-09 07:01:55,nan,1,1,vc\n", "philly.csv:2: duration: expected"),
    (philly.read, "philly.csv", PHILLY_HEADER + "2017-10-09 07:01:55,1,1,1,\n", "philly.csv:2: cluster: expected"),
    (philly.read, "philly.csv", PHILLY_HEADER + "2017-10-09 07:01:55,1,1,1\n", "philly.csv:2: expected 5 columns"),
    (alibaba.read, "pods.csv", POD_HEADER + "p0,1,1,1,1000,,XX,Running,0,10,0\n", "pods.csv:2: qos: expected one of LS"),
    (alibaba.read, "pods.csv", POD_HEADER + "p0,1,1,1,1500,,LS,Running,0,10,0\n", "pods.csv:2: gpu_milli: expected"),
    (alibaba.read, "pods.csv", POD_HEADER + "p0,1,1,1,1000,,LS,Running,-5,10,0\n", "pods.csv:2: creation_time: expected"),
    (alibaba.read, "pods.csv", POD_HEADER + "p0,1,1,1,1000,,LS,Running,0,,0\n", "pods.csv:2: deletion_time: expected"),
    (alibaba.read, "pods.csv", POD_HEADER + "p0,1,1,1,1000,,LS,Done,0,10,0\n", "pods.csv:2: pod_phase: expected one of"),
    (alibaba.read, "pods.csv", POD_HEADER + "p0,1,1,1,1000,A|,LS,Running,0,10,0\n", "pods.csv:2: gpu_spec: expected"),
    (alibaba.read, "pods.csv", POD_HEADER + "p0,1,1,1,1000,,LS,Running,0,10,0\np0,1,1,1,1000,,LS,Running,0,10,0\n",
     "pods.csv:3: name: 'p0' already named the pod on line 2"),
    (alibaba.read, "pods.csv", NODE_HEADER + "n0,1,1,0,\n", "pods.csv:1: header: expected columns name,cpu_milli"),
    (alibaba.read_nodes, "nodes.csv", NODE_HEADER + "n0,1,1,2,\n", "nodes.csv:2: model: a node with 2 GPUs needs"),
    (alibaba.read_nodes, "nodes.csv", NODE_HEADER + "n0,1,-1,0,\n", "nodes.csv:2: memory_mib: expected a whole number"),
    (azure_llm.read, "conv.csv", AZURE_HEADER + "2023-11-16 18:17:03.97x,1,1\n", "conv.csv:2: TIMESTAMP: expected"),
    (azure_llm.read, "conv.csv", AZURE_HEADER + "2023-11-16 18:17:03,1,1\n2023-11-16 18:17:04,-1,1\n",
     "conv.csv:3: ContextTokens: expected a whole number of tokens >= 0, got '-1'"),
    (azure_llm.read, "conv.csv", AZURE_HEADER + "2023-11-16 18:17:03,1,1.5\n", "conv.csv:2: GeneratedTokens: expected"),
]


@pytest.mark.parametrize(("reader", "name", "text", "message"), BAD_INPUT, ids=[case[3][:40] for case in BAD_INPUT])
def test_bad_input_names_file_line_and_column(tmp_path, reader, name, text, message):
    with pytest.raises(TraceError) as error:
        reader(write(tmp_path, name, text))
    assert message in str(error.value)


@pytest.mark.parametrize(("name", "document", "message"), [
    ("us-east-1c_v100_1.json", {"metadata": {"gap_seconds": 10}, "data": [0, 1, "x"]}, "data[2]: expected a number >= 0"),
    ("us-east-1c_v100_1.json", {"metadata": {"gap_seconds": 10}, "data": [0, -1]}, "data[1]: expected a number >= 0"),
    ("us-east-1c_v100_1.json", {"metadata": {"gap_seconds": 0}, "data": [0]}, "metadata.gap_seconds: expected"),
    ("us-east-1c_v100_1.json", {"metadata": {}, "data": [0]}, "metadata.gap_seconds: expected"),
    ("us-east-1c_v100_1.json", {"metadata": {"gap_seconds": 10}, "data": []}, "data: expected a non-empty list"),
    ("us-east-1c_v100_1.json", [0, 1], "metadata: expected an object"),
    ("us-east-1c_v100_1.json", None, "not valid JSON (empty file)"),
    ("us-east-1c_v100_1.json", {"metadata": {"gap_seconds": True}, "data": [0]}, "metadata.gap_seconds: expected"),
])
def test_bad_spot_series(tmp_path, name, document, message):
    path = write(tmp_path, name, "" if document is None else json.dumps(document))
    with pytest.raises(TraceError) as error:
        skypilot_spot.read(path)
    assert message in str(error.value) and name in str(error.value)


@pytest.mark.parametrize(("spec", "message"), [
    ("philly.csv", "expected FORMAT:PATH"),
    ("helios:x.csv", "unknown format 'helios'; known formats: philly, alibaba, azure-llm"),
    ("philly:/nonexistent/philly.csv", "trace file not found: /nonexistent/philly.csv"),
])
def test_bad_trace_spec(spec, message):
    with pytest.raises(TraceError) as error:
        read_trace(spec)
    assert message in str(error.value)


# --- the real data -----------------------------------------------------------------------------

@pytest.fixture
def data() -> Path:
    if not DATA.is_dir():
        pytest.skip(f"{DATA} is not here")
    return DATA


def assert_well_formed(trace):
    assert trace.jobs[0].submit_s == 0.0
    assert all(a.submit_s <= b.submit_s for a, b in zip(trace.jobs, trace.jobs[1:], strict=False))
    assert list(trace.jobs) == sorted(trace.jobs, key=lambda job: (job.submit_s, job.id))
    assert len({job.id for job in trace.jobs}) == len(trace.jobs)
    assert all(job.duration_s > 0 and job.gpus >= 0 for job in trace.jobs)


def test_real_philly(data):
    trace = read_trace(f"philly:{data / 'philly_pollux/philly.csv'}")
    assert_well_formed(trace)
    assert len(trace.jobs) + sum(trace.skipped.values()) == 82_247
    gpus = Counter(job.gpus for job in trace.jobs)
    # README: 1: 76,627; 2: 1,818; 4: 1,870; 8: 1,643; 12/16/24/32: 280; the README leaves out 64 (6) and 128 (3)
    assert (gpus[1], gpus[2], gpus[4], gpus[8]) == (76_627, 1_818, 1_870, 1_643)
    assert gpus[12] + gpus[16] + gpus[24] + gpus[32] == 280 and (gpus[64], gpus[128]) == (6, 3)
    assert len({job.team for job in trace.jobs}) == 15
    assert trace.start == utc("2017-09-04 17:30:41")  # 10:30:41 PDT


def test_real_alibaba(data):
    trace = alibaba.read(str(data / "alibaba_gpu_v2023/openb_pod_list_sample300.csv"))
    assert_well_formed(trace)
    assert len(trace.jobs) + sum(trace.skipped.values()) == 300
    nodes = alibaba.read_nodes(str(data / "alibaba_gpu_v2023/openb_node_list_gpu_node.csv"))
    assert (len(nodes), sum(node.gpus for node in nodes)) == (1_213, 6_212)
    all_nodes = alibaba.read_nodes(str(data / "alibaba_gpu_v2023/openb_node_list_all_node.csv"))
    assert len(all_nodes) == 1_523 and sum(node.gpus == 0 and node.gpu_type == "" for node in all_nodes) == 310


@pytest.mark.parametrize(("service", "requests"), [("code", 8_819), ("conv", 19_366)])
def test_real_azure_llm(data, service, requests):
    trace = read_trace(f"azure-llm:{data / f'azure_llm_inference_2023/AzureLLMInferenceTrace_{service}.csv'}")
    assert_well_formed(trace)
    assert len(trace.jobs) + sum(trace.skipped.values()) == requests
    assert {job.team for job in trace.jobs} == {service}
    assert trace.jobs[-1].submit_s < 3_600


def test_real_spot_series(data):
    files = sorted((data / "skypilot_spot_traces").rglob("*.json"))
    assert len(files) == 28
    for path in files:
        series = skypilot_spot.read(str(path))
        outages = series.outages()
        assert all(0 <= start < end <= series.duration_s for start, end in outages), path
        assert all(a[1] < b[0] for a, b in zip(outages, outages[1:], strict=False)), path
        down_s = sum(end - start for start, end in outages)
        assert down_s == pytest.approx(sum(series.unavailable) * series.gap_s), path

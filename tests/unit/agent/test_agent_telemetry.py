"""Telemetry: host readings are sane, injected readings reach the NodeMetrics message, the telemetry
file overrides what it sets (and is ignored, with one warning, when malformed), and critical XID
events from NVML are counted per GPU (against a fake NVML: no GPU needed)."""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from types import SimpleNamespace

import pytest

from hyperion.agent import telemetry
from hyperion.agent.telemetry import (
    FileTelemetry,
    FixedTelemetry,
    GpuReading,
    HostTelemetry,
    NodeReading,
    metrics_message,
)
from hyperion.api.wire import metrics_from_pb


def test_host_readings_are_within_physical_bounds(tmp_path):
    source = HostTelemetry(str(tmp_path), with_gpus=True)
    for _ in range(2):
        r = source.read()
        assert 0.0 <= r.cpu_percent <= 100.0
        assert 0.0 < r.memory_used_mb <= r.memory_total_mb
        assert 0.0 <= r.disk_used_percent <= 100.0
        assert r.network_tx_gbps >= 0.0 and r.network_rx_gbps >= 0.0


def test_injected_readings_become_node_metrics_with_the_mean_gpu_use():
    gpus = (GpuReading(0, "GPU-a", utilization_percent=90, memory_total_mb=80_000, ecc_errors=2),
            GpuReading(1, "GPU-b", utilization_percent=30, power_w=300.5))
    source = FixedTelemetry([NodeReading(cpu_percent=12.5, gpus=gpus, custom={"x": 1.0}), NodeReading()])
    first = metrics_message("n1", source.read(), now=1700.0)
    assert (first.node_id, first.timestamp, first.cpu_utilization_percent) == ("n1", 1700.0, 12.5)
    assert first.gpu_utilization_percent == 60.0 and dict(first.custom_metrics) == {"x": 1.0}
    assert [(g.index, g.uuid, g.ecc_errors, g.power_w) for g in first.gpus] == [
        (0, "GPU-a", 2, 0.0), (1, "GPU-b", 0, 300.5)]
    later = metrics_message("n1", source.read(), now=1705.0)
    assert later.gpu_utilization_percent == 0.0 and not later.gpus
    assert source.read() == NodeReading()  # the last reading repeats


def test_gpu_error_counts_survive_the_wire_both_ways():
    gpus = (GpuReading(0, "GPU-a", temperature_c=91.5, ecc_errors=3, xid_errors=2, last_xid=79), GpuReading(1))
    back = metrics_from_pb(metrics_message("n1", NodeReading(gpus=gpus), now=1.0))
    assert back.node_id == "n1" and back.gpus == gpus


# ---- the telemetry file ------------------------------------------------------------------------
HOST = NodeReading(cpu_percent=10.0, memory_used_mb=1000.0, memory_total_mb=8000.0, custom={"a": 1.0},
                   gpus=(GpuReading(0, "GPU-a", utilization_percent=5.0, temperature_c=40.0, power_w=90.0),
                         GpuReading(1, "GPU-b", temperature_c=41.0)))


def file_source(tmp_path, doc=None, text=None) -> FileTelemetry:
    path = tmp_path / "telemetry.json"
    if doc is not None or text is not None:
        path.write_text(text if text is not None else json.dumps(doc))
    return FileTelemetry(path, FixedTelemetry([HOST]))


def test_without_the_file_the_fallbacks_reading_is_returned_unchanged(tmp_path, caplog):
    assert file_source(tmp_path).read() is HOST
    assert not caplog.records


@pytest.mark.parametrize("doc, expected", [
    ({}, HOST),
    ({"cpu_percent": 99, "network_rx_gbps": 2.5}, replace(HOST, cpu_percent=99.0, network_rx_gbps=2.5)),
    ({"custom": {"b": 2}}, replace(HOST, custom={"a": 1.0, "b": 2.0})),
    ({"gpus": []}, HOST),  # an empty list overrides nothing
    # a GPU entry overrides the host's GPU of that index field by field
    ({"gpus": [{"index": 1, "temperature_c": 95, "xid_errors": 1, "last_xid": 79}]},
     replace(HOST, gpus=(HOST.gpus[0], GpuReading(1, "GPU-b", temperature_c=95.0, xid_errors=1, last_xid=79)))),
    ({"gpus": [{"index": 0, "uuid": "GPU-z", "ecc_errors": 2, "memory_used_mb": 10, "memory_total_mb": 20}]},
     replace(HOST, gpus=(GpuReading(0, "GPU-z", 5.0, 10.0, 20.0, 40.0, 90.0, ecc_errors=2), HOST.gpus[1]))),
    # a GPU only in the file is added, in index order
    ({"gpus": [{"index": 3, "temperature_c": 70}, {"index": 2, "utilization_percent": 50}]},
     replace(HOST, gpus=(*HOST.gpus, GpuReading(2, utilization_percent=50.0), GpuReading(3, temperature_c=70.0)))),
])
def test_the_file_overrides_what_it_sets(tmp_path, doc, expected):
    assert file_source(tmp_path, doc).read() == expected


def test_the_file_is_read_again_at_every_reading(tmp_path):
    source = file_source(tmp_path, {"gpus": [{"index": 0, "temperature_c": 95}]})
    assert source.read().gpus[0].temperature_c == 95.0
    source.path.write_text(json.dumps({"gpus": [{"index": 0, "temperature_c": 60}]}))
    assert source.read().gpus[0].temperature_c == 60.0
    source.path.unlink()
    assert source.read() is HOST


@pytest.mark.parametrize("text, fault", [
    ('{"cpu_percent": 1,\n "gpus": [}', "line 2 column 11: not valid JSON"),
    ("", "line 1 column 1: not valid JSON"),
    ("[1, 2]", "the top level: expected a JSON object, got [1, 2]"),
    ('{"cpu_pct": 1}', "the top level: unknown key 'cpu_pct'; known keys: cpu_percent,"),
    ('{"cpu_percent": "high"}', 'cpu_percent: expected a number, got "high"'),
    ('{"cpu_percent": true}', "cpu_percent: expected a number, got true"),
    ('{"cpu_percent": NaN}', "cpu_percent: expected a number, got NaN"),
    ('{"cpu_percent": 1' + "0" * 400 + '}', "cpu_percent: expected a number, got 1000"),
    ('{"custom": {"x": "y"}}', 'custom.x: expected a number, got "y"'),
    ('{"custom": 3}', "custom: expected a JSON object, got 3"),
    ('{"gpus": {"index": 0}}', 'gpus: expected a list of GPU objects, got {"index": 0}'),
    ('{"gpus": [{"index": 0}, 7]}', "gpus[1]: expected a JSON object, got 7"),
    ('{"gpus": [{"temperature_c": 95}]}', "gpus[0].index: missing"),
    ('{"gpus": [{"index": -1}]}', "gpus[0].index: expected a whole number, 0 or more, got -1"),
    ('{"gpus": [{"index": 0}, {"index": 0}]}', "gpus[1].index: GPU 0 is listed twice"),
    ('{"gpus": [{"index": 0, "temprature_c": 95}]}', "gpus[0]: unknown key 'temprature_c'"),
    ('{"gpus": [{"index": 0, "xid_errors": 1.5}]}', "gpus[0].xid_errors: expected a whole number, 0 or more, got 1.5"),
    ('{"gpus": [{"index": 0, "uuid": 5}]}', "gpus[0].uuid: expected a string, got 5"),
    ('{"gpus": [{"index": 0, "power_w": "' + "x" * 100 + '"}]}', 'gpus[0].power_w: expected a number, got "xxx'),
])
def test_a_malformed_file_is_ignored_with_a_warning_naming_the_file_and_the_fault(tmp_path, caplog, text, fault):
    source = file_source(tmp_path, text=text)
    with caplog.at_level(logging.WARNING, logger="hyperiond.telemetry"):
        assert source.read() is HOST
    [record] = caplog.records
    assert str(source.path) in record.getMessage() and fault in record.getMessage()
    assert len(record.getMessage()) < 400  # a huge bad value is not copied whole into the log


def test_a_fault_is_warned_about_once_until_it_changes_or_is_fixed(tmp_path, caplog):
    source = file_source(tmp_path, text="{")
    bad_type = json.dumps({"cpu_percent": "x"})
    steps = ["{", "{", bad_type, bad_type, "{}", "{}", "{", "{"]
    warned = []
    with caplog.at_level(logging.WARNING, logger="hyperiond.telemetry"):
        for text in steps:
            source.path.write_text(text)
            caplog.clear()
            source.read()
            warned.append(len(caplog.records))
    assert warned == [1, 0, 1, 0, 0, 0, 1, 0]


def test_an_unreadable_file_is_ignored_with_a_warning(tmp_path, caplog):
    (tmp_path / "telemetry.json").mkdir()  # a directory where the file should be
    source = file_source(tmp_path)
    with caplog.at_level(logging.WARNING, logger="hyperiond.telemetry"):
        assert source.read() is HOST
    assert "cannot read it" in caplog.text


# ---- critical XID events through NVML, against a fake NVML -------------------------------------
class FakeNvml:
    """The part of pynvml that HostTelemetry uses: GPUs with a temperature, and an event queue."""

    class NVMLError(Exception):
        pass

    class NVMLError_Timeout(NVMLError):  # pynvml's name
        pass

    class NVMLError_NotSupported(NVMLError):  # pynvml's name
        pass

    NVML_TEMPERATURE_GPU = 0
    NVML_MEMORY_ERROR_TYPE_UNCORRECTED = 1
    NVML_VOLATILE_ECC = 0
    nvmlEventTypeXidCriticalError = 0x8
    nvmlEventTypeClock = 0x10

    def __init__(self, gpus: int = 2, unsupported: tuple[int, ...] = (), wait: str = "nvmlEventSetWait_v2",
                 no_event_set: bool = False) -> None:
        self.gpus, self.unsupported, self.no_event_set = gpus, unsupported, no_event_set
        self.queue: list[SimpleNamespace] = []
        self.registered: list[tuple[int, int, str]] = []
        self.timeouts: list[int] = []
        setattr(self, wait, self._wait)

    def xid(self, index: int, code: int, event_type: int = 0x8) -> None:
        self.queue.append(SimpleNamespace(device=("handle", index), eventType=event_type, eventData=code))

    def _wait(self, event_set, timeout_ms):
        assert event_set == "set"
        self.timeouts.append(timeout_ms)
        if not self.queue:
            raise self.NVMLError_Timeout("Timeout")
        return self.queue.pop(0)

    def nvmlDeviceGetCount(self):
        return self.gpus

    def nvmlDeviceGetHandleByIndex(self, index):
        return ("handle", index)

    def nvmlDeviceGetIndex(self, handle):
        return handle[1]

    def nvmlDeviceGetTemperature(self, handle, sensor):
        return 40 + handle[1]

    def nvmlDeviceGetUUID(self, handle):
        return f"GPU-{handle[1]}".encode()

    def nvmlEventSetCreate(self):
        if self.no_event_set:
            raise self.NVMLError_NotSupported("Not Supported")
        return "set"

    def nvmlDeviceRegisterEvents(self, handle, types, event_set):
        if handle[1] in self.unsupported:
            raise self.NVMLError_NotSupported("Not Supported")
        self.registered.append((handle[1], types, event_set))

    def nvmlEventSetFree(self, event_set):
        self.freed = event_set

    def __getattr__(self, name):  # memory, utilization, power, ECC: not supported on this "model"
        if name.startswith("nvmlDevice"):
            def unsupported(*args):
                raise self.NVMLError_NotSupported("Not Supported")
            return unsupported
        raise AttributeError(name)


def host_with(monkeypatch, tmp_path, nvml) -> HostTelemetry:
    monkeypatch.setattr(telemetry, "load_nvml", lambda: nvml)
    return HostTelemetry(str(tmp_path), with_gpus=True)


def xids(reading: NodeReading) -> list[tuple[int, int, int]]:
    return [(g.index, g.xid_errors, g.last_xid) for g in reading.gpus]


@pytest.mark.parametrize("wait", ["nvmlEventSetWait_v2", "nvmlEventSetWait"])
def test_critical_xid_events_are_counted_per_gpu_with_the_last_code(monkeypatch, tmp_path, wait):
    nvml = FakeNvml(gpus=3, wait=wait)
    host = host_with(monkeypatch, tmp_path, nvml)
    assert nvml.registered == [(0, 0x8, "set"), (1, 0x8, "set"), (2, 0x8, "set")]
    assert xids(host.read()) == [(0, 0, 0), (1, 0, 0), (2, 0, 0)]
    nvml.xid(1, 48)
    nvml.xid(1, 79)
    nvml.xid(2, 31)
    nvml.xid(0, 99, event_type=0x10)  # not an XID event: not counted
    first = host.read()
    assert xids(first) == [(0, 0, 0), (1, 2, 79), (2, 1, 31)]
    assert [(g.uuid, g.temperature_c) for g in first.gpus] == [("GPU-0", 40.0), ("GPU-1", 41.0), ("GPU-2", 42.0)]
    nvml.xid(1, 13)
    assert xids(host.read()) == [(0, 0, 0), (1, 3, 13), (2, 1, 31)]  # running totals
    assert xids(host.read()) == [(0, 0, 0), (1, 3, 13), (2, 1, 31)]
    assert set(nvml.timeouts) == {0}  # never waits


def test_a_gpu_without_xid_events_is_skipped_and_the_others_still_count(monkeypatch, tmp_path):
    nvml = FakeNvml(gpus=2, unsupported=(0,))
    host = host_with(monkeypatch, tmp_path, nvml)
    nvml.xid(1, 79)
    assert [r[0] for r in nvml.registered] == [1]
    assert xids(host.read()) == [(0, 0, 0), (1, 1, 79)]


@pytest.mark.parametrize("nvml", [
    FakeNvml(no_event_set=True),         # the event set cannot be made
    FakeNvml(unsupported=(0, 1)),        # no GPU supports XID events
    FakeNvml(wait="nvmlEventSetWaitNever"),  # a pynvml without the wait call
    FakeNvml(gpus=0),                    # no GPUs at all
])
def test_without_xid_event_support_readings_go_on_with_zero_counts(monkeypatch, tmp_path, nvml):
    host = host_with(monkeypatch, tmp_path, nvml)
    nvml.xid(0, 79)
    reading = host.read()
    assert xids(reading) == [(i, 0, 0) for i in range(nvml.gpus)]
    assert all(g.temperature_c >= 40.0 for g in reading.gpus)


def test_a_storm_of_events_is_drained_over_several_readings(monkeypatch, tmp_path):
    nvml = FakeNvml(gpus=1)
    host = host_with(monkeypatch, tmp_path, nvml)
    for _ in range(telemetry.XidEvents.MAX_PER_POLL + 5):
        nvml.xid(0, 79)
    assert xids(host.read()) == [(0, telemetry.XidEvents.MAX_PER_POLL, 79)]
    assert xids(host.read()) == [(0, telemetry.XidEvents.MAX_PER_POLL + 5, 79)]

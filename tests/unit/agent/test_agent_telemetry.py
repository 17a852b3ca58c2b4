"""Telemetry: host readings are sane, injected readings reach the NodeMetrics message."""

from __future__ import annotations

from hyperion.agent.telemetry import FixedTelemetry, GpuReading, HostTelemetry, NodeReading, metrics_message


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

"""``/metrics``: the Prometheus exposition of a control service on an in-memory store.

What is read at scrape time (jobs by phase, pending jobs per queue, nodes, allocated and idle GPUs,
each GPU's latest telemetry, what teams accrued, budgets, events), what the live loops report
(queue wait, placements, preemptions and how long they took), the naming conventions, that no
label carries a job id, that ``render`` says what ``generate_latest`` says, and who may read it.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
from prometheus_client import REGISTRY, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from hyperion.api import auth
from hyperion.api.logs import LogStore
from hyperion.api.metrics import CONTENT_TYPE, Instruments
from hyperion.api.rest import build_app
from hyperion.api.service import ControlService
from hyperion.core import lifecycle
from hyperion.model import GpuMetrics, Job, NodeMetrics, NodeState, Phase, Placement, Priority
from hyperion.model.cost import BudgetSpec
from hyperion.store import MemoryStore
from hyperion.store.objects import ClusterState
from hyperion.testing.builders import a_job, a_node
from hyperion.testing.clock import ManualClock as Clock

T0 = 1_700_000_000.0
MiB = 2**20



@pytest.fixture
def clock() -> Clock:
    return Clock(T0)


@pytest.fixture
def service(clock: Clock, tmp_path: Path) -> ControlService:
    return ControlService(ClusterState(MemoryStore()), clock, LogStore(tmp_path / "logs"), "admin-token")


def samples(service: ControlService) -> dict[tuple[str, frozenset], float]:
    """(sample name, labels) -> value, parsed from what Prometheus would scrape."""
    out = {}
    for family in text_string_to_metric_families(service.instruments.render().decode()):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def value(found: dict, name: str, **labels: str) -> float:
    return found[(name, frozenset(labels.items()))]


def place(service: ControlService, job: Job, node: str, gpus: tuple[int, ...], at: float) -> Job:
    placed = lifecycle.assign(job, (Placement(0, node, gpus),), at=at)
    service.state.update_jobs([placed])
    return placed


def run_to_success(service: ControlService, clock: Clock, job: Job, node: str, gpus: tuple[int, ...], seconds: float) -> Job:
    job = place(service, job, node, gpus, clock.now())
    job = lifecycle.task_running(job, job.attempt, 0, clock.now())
    service.state.update_jobs([job])
    clock.t += seconds
    job, _ = lifecycle.task_exited(job, job.attempt, 0, 0, clock.now())
    service.state.update_jobs([job])
    return job


@pytest.fixture
def cluster(service: ControlService, clock: Clock) -> ControlService:
    """Two ready nodes (4 A100, 2 H100), one not ready (8 A100); in queue research two pending
    batch jobs and one latency-critical one, in default one pending and one holding GPUs 0-1 of
    n1; one job that ran 2 GPUs for 100 s and succeeded; telemetry of n1 (fresh) and n2 (stale)."""
    state = service.state
    state.put_node(a_node("n1").gpus(4).gpu_type("A100").build())
    state.put_node(replace(a_node("n2").gpus(2).gpu_type("H100").build(), cordoned=True))
    state.put_node(replace(a_node("n3").gpus(8).gpu_type("A100").build(), state=NodeState.NOT_READY, condition='XID "79"'))
    done = a_job("done-0001").gpus(2).team("vision").submitted(T0 - 50).build()
    state.create_job(done)
    run_to_success(service, clock, done, "n1", (2, 3), 100.0)
    for name, queue, prio in (("r-1", "research", Priority.BATCH), ("r-2", "research", Priority.BATCH),
                              ("r-3", "research", Priority.LATENCY_CRITICAL), ("d-1", "default", Priority.BATCH)):
        state.create_job(a_job(name).queue(queue).priority(prio).gpus(1).submitted(clock.now() - 30).build())
    busy = a_job("busy-0001").gpus(2).team("vision").build()
    state.create_job(busy)
    place(service, busy, "n1", (0, 1), clock.now())
    service.record_metrics(NodeMetrics("n1", clock.now() - 5, cpu_utilization_percent=50.0, memory_used_mb=1024.0,
                                       memory_total_mb=4096.0, gpus=(
        GpuMetrics(0, utilization_percent=90.0, memory_used_mb=2048.0, temperature_c=71.0, power_w=250.0, xid_errors=1),
        GpuMetrics(1, utilization_percent=10.0, memory_used_mb=0.0, temperature_c=40.0, power_w=60.0))))
    service.record_metrics(NodeMetrics("n2", clock.now() - 3600, cpu_utilization_percent=99.0,
                                       gpus=(GpuMetrics(0, temperature_c=95.0),)))
    return service


def test_pending_jobs_per_queue_and_priority_class(cluster):
    found = samples(cluster)
    assert value(found, "hyperion_queue_pending_jobs", queue="research", priority="batch") == 2
    assert value(found, "hyperion_queue_pending_jobs", queue="research", priority="latency-critical") == 1
    assert value(found, "hyperion_queue_pending_jobs", queue="default", priority="batch") == 1
    assert value(found, "hyperion_queue_pending_jobs", queue="default", priority="ultra-low-latency") == 0
    assert value(found, "hyperion_queue_oldest_pending_seconds", queue="research") == 30.0
    assert value(found, "hyperion_jobs", phase="pending") == 4
    assert value(found, "hyperion_jobs", phase="scheduled") == 1
    assert value(found, "hyperion_jobs_finished_total", outcome="succeeded") == 1
    assert value(found, "hyperion_jobs_finished_total", outcome="failed") == 0


def test_gpus_allocated_and_idle_by_type_and_nodes_by_state(cluster):
    found = samples(cluster)
    assert value(found, "hyperion_gpus", gpu_type="A100", state="allocated") == 2  # busy-0001 on n1
    assert value(found, "hyperion_gpus", gpu_type="A100", state="idle") == 2 + 8
    assert value(found, "hyperion_gpus", gpu_type="H100", state="idle") == 2
    assert value(found, "hyperion_gpus", gpu_type="H100", state="allocated") == 0
    assert value(found, "hyperion_nodes", state="ready") == 2
    assert value(found, "hyperion_nodes", state="not-ready") == 1
    assert value(found, "hyperion_node_info", node="n2", hostname="n2", gpu_type="H100", state="ready", cordoned="true",
                 condition="") == 1
    assert value(found, "hyperion_node_info", node="n3", hostname="n3", gpu_type="A100", state="not-ready",
                 cordoned="false", condition='XID "79"') == 1


def test_latest_fresh_telemetry_per_node_and_gpu_in_base_units(cluster, clock):
    cluster.record_metrics(NodeMetrics("n1", clock.now() - 20, gpus=(GpuMetrics(0, temperature_c=30.0),)))
    cluster.record_metrics(NodeMetrics("n1", clock.now() - 1, cpu_utilization_percent=25.0, memory_used_mb=1024.0, gpus=(
        GpuMetrics(0, utilization_percent=90.0, memory_used_mb=2048.0, temperature_c=71.0, power_w=250.0, xid_errors=1),)))
    found = samples(cluster)
    assert value(found, "hyperion_gpu_temperature_celsius", node="n1", gpu="0") == 71.0  # the newest sample
    assert value(found, "hyperion_gpu_utilization_ratio", node="n1", gpu="0") == pytest.approx(0.9)
    assert value(found, "hyperion_gpu_memory_used_bytes", node="n1", gpu="0") == 2048 * MiB
    assert value(found, "hyperion_gpu_power_watts", node="n1", gpu="0") == 250.0
    assert value(found, "hyperion_gpu_xid_errors", node="n1", gpu="0") == 1
    assert value(found, "hyperion_node_cpu_utilization_ratio", node="n1") == 0.25
    assert value(found, "hyperion_node_memory_used_bytes", node="n1") == 1024 * MiB
    # n2 said nothing for an hour: its old readings are not shown as current
    assert not [k for k in found if k[0].startswith(("hyperion_gpu_", "hyperion_node_cpu")) and ("node", "n2") in k[1]]


def test_team_usage_budgets_events_and_cycles(cluster, clock):
    cluster.accountant.set_budget(BudgetSpec("vision-monthly", "vision", "month", usd=1.0, gpu_hours=10.0))
    cluster.events.emit("preempted", "job x preempted", job="x", team="vision")
    cluster.scheduler_stats = lambda: {"cycles": 7, "placed": 0, "evicted": 0}
    found = samples(cluster)
    gpu_s = value(found, "hyperion_team_gpu_seconds_total", team="vision")
    assert gpu_s >= 200.0  # 2 GPUs x 100 s, plus what busy-0001 accrued so far
    assert value(found, "hyperion_team_cost_usd_total", team="vision") == pytest.approx(gpu_s / 3600 * 1.0)  # $1/GPU-h
    energy = value(found, "hyperion_team_energy_joules_total", team="vision")
    assert energy > 0
    assert value(found, "hyperion_team_carbon_grams_total", team="vision") == pytest.approx(energy / 3.6e6 * 400.0)
    labels = {"team": "vision", "budget": "vision-monthly"}
    assert value(found, "hyperion_budget_limit", **labels, resource="usd") == 1.0
    assert value(found, "hyperion_budget_spent", **labels, resource="gpu_hours") == pytest.approx(gpu_s / 3600)
    assert value(found, "hyperion_budget_used_ratio", **labels, resource="gpu_hours") == pytest.approx(gpu_s / 3600 / 10)
    assert value(found, "hyperion_budget_warnings_total", team="vision", level="80") == 0
    assert value(found, "hyperion_events_total", kind="preempted") == 1
    assert value(found, "hyperion_events_total", kind="node-lost") == 0
    assert value(found, "hyperion_scheduler_cycles_total") == 7


def test_queue_wait_placements_and_preemption_duration(cluster, clock):
    ins, state = cluster.instruments, cluster.state
    ins.cycle(0.004)
    job = state.jobs["r-1"]  # pending for 30 s
    placed = place(cluster, job, "n1", (2,), clock.now())
    ins.placed(placed, clock.now())
    preempted, _ = lifecycle.preempt(placed, "for an urgent job")
    state.update_jobs([preempted])
    ins.preempted(preempted, False, clock.now())
    ins.preempted(preempted, True, clock.now())  # then handed over while it stops: one preemption, not two
    clock.t += 4.0
    stopped, _ = lifecycle.task_exited(preempted, preempted.attempt, 0, 143, clock.now())
    assert stopped.phase is Phase.PENDING
    state.update_jobs([stopped])
    ins.victim_stopped(stopped, clock.now())
    clock.t += 6.0
    again = place(cluster, stopped, "n1", (2,), clock.now())
    ins.placed(again, clock.now())
    found = samples(cluster)
    wait = {"queue": "research", "priority": "batch"}
    assert value(found, "hyperion_queue_wait_seconds_count", **wait) == 2
    assert value(found, "hyperion_queue_wait_seconds_sum", **wait) == pytest.approx(30.0 + 6.0)  # since it last became pending
    assert value(found, "hyperion_placements_total", **wait) == 2
    assert value(found, "hyperion_preemptions_total", **wait, path="ordinary") == 1
    assert ("hyperion_preemptions_total", frozenset({**wait, "path": "fast"}.items())) not in found
    assert value(found, "hyperion_preemption_duration_seconds_count", path="ordinary") == 1
    assert value(found, "hyperion_preemption_duration_seconds_sum", path="ordinary") == pytest.approx(4.0)
    assert value(found, "hyperion_preemption_duration_seconds_count", path="fast") == 0
    assert value(found, "hyperion_scheduling_cycle_duration_seconds_count") == 1
    assert value(found, "hyperion_scheduling_cycle_duration_seconds_bucket", le="0.005") == 1


def test_names_units_and_labels_follow_the_conventions(cluster):
    cluster.accountant.set_budget(BudgetSpec("b", "vision", usd=5.0))
    ins = cluster.instruments
    ins.cycle(0.01)
    ins.placed(cluster.state.jobs["busy-0001"], T0)
    families = list(text_string_to_metric_families(ins.render().decode()))
    job_ids = set(cluster.state.jobs)
    seen = set()
    for f in families:
        name = f.name
        seen.add(name)
        assert re.fullmatch(r"hyperion_[a-z0-9_]+", name), name
        if f.type == "counter":
            assert all(s.name.endswith(("_total", "_created")) for s in f.samples), name
        elif f.type == "histogram":
            assert name.endswith("_seconds"), name
        elif f.type == "gauge" and not name.endswith("_created"):
            assert not name.endswith("_total"), name
        assert not re.search(r"_(percent|ms|milliseconds|mb|megabytes|kwh|celsius_total)$", name), name
        for s in f.samples:
            assert not job_ids & set(s.labels.values()), (name, s.labels)  # no job id as a label value
            assert "job" not in s.labels and "job_id" not in s.labels, name
            if name.endswith("_ratio") and name != "hyperion_budget_used_ratio":  # a budget may be overspent
                assert 0.0 <= s.value <= 1.0, (name, s.value)
    assert {"hyperion_jobs", "hyperion_gpus", "hyperion_queue_wait_seconds", "hyperion_scheduling_cycle_duration_seconds",
            "hyperion_budget_used_ratio", "hyperion_team_energy_joules", "hyperion_events"} <= seen


def test_render_says_what_generate_latest_says(cluster):
    cluster.instruments.cycle(0.02)
    cluster.instruments.placed(cluster.state.jobs["busy-0001"], T0)

    def parsed(text: str) -> dict:
        return {(f.name, f.type, f.documentation): sorted((s.name, sorted(s.labels.items()), s.value) for s in f.samples)
                for f in text_string_to_metric_families(text)}

    ours = cluster.instruments.render().decode()
    assert parsed(ours) == parsed(generate_latest(cluster.instruments.registry).decode())
    assert 'condition="XID \\"79\\""' in ours  # label values are escaped


def test_each_service_has_its_own_registry(cluster, clock, tmp_path):
    other = ControlService(ClusterState(MemoryStore()), clock, LogStore(tmp_path / "other"), "admin-token")
    other.instruments.cycle(1.0)
    cluster.instruments.placed(cluster.state.jobs["busy-0001"], T0)
    assert value(samples(other), "hyperion_scheduling_cycle_duration_seconds_count") == 1
    assert value(samples(cluster), "hyperion_scheduling_cycle_duration_seconds_count") == 0
    assert ("hyperion_placements_total", frozenset({"queue": "default", "priority": "batch"}.items())) not in samples(other)
    assert not [m for m in REGISTRY.collect() if m.name.startswith("hyperion_")]
    assert isinstance(other.instruments, Instruments) and other.instruments.registry is not cluster.instruments.registry


def test_state_at_scale_is_counted_once_per_gpu(service, clock):
    """200 nodes x 8 GPUs, 2,000 jobs: every GPU counted once, allocated or idle."""
    state = service.state
    for n in range(200):
        state.put_node(a_node(f"node-{n:03d}").gpus(8).build())
        service.record_metrics(NodeMetrics(f"node-{n:03d}", clock.now(), gpus=tuple(GpuMetrics(g, temperature_c=50.0 + g)
                                                                                         for g in range(8))))
    for i in range(2000):
        job = a_job(f"j-{i:05d}").gpus(1).build()
        state.create_job(job)
        if i < 600:
            place(service, job, f"node-{i % 200:03d}", (i // 200,), clock.now())
    found = samples(service)
    assert value(found, "hyperion_gpus", gpu_type="A100", state="allocated") == 600
    assert value(found, "hyperion_gpus", gpu_type="A100", state="idle") == 1600 - 600
    assert value(found, "hyperion_queue_pending_jobs", queue="default", priority="batch") == 1400
    assert len([k for k in found if k[0] == "hyperion_gpu_temperature_celsius"]) == 1600
    assert value(found, "hyperion_gpu_temperature_celsius", node="node-199", gpu="7") == 57.0


# ---- who may read it ------------------------------------------------------------------------------
METRICS_TOKEN = "metrics-token-for-prometheus"


class Api:
    """The REST app in process (no server): ``request`` returns the response."""

    def __init__(self, app) -> None:
        self.app = app

    def request(self, method: str, path: str, token: str | None = None, **kwargs) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}

        async def go() -> httpx.Response:
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app), base_url="http://hyperion") as c:
                return await c.request(method, path, headers=headers, **kwargs)

        return asyncio.run(go())


@pytest.fixture
def api(cluster) -> Api:
    r = cluster.apply(auth.ADMIN, [{"kind": "Team", "name": "vision", "token": "vision-team-token-0123456789"}])
    assert r["results"][0]["action"] == "created"
    return Api(build_app(cluster, auth.digest(METRICS_TOKEN)))


@pytest.mark.parametrize(("token", "status"), [
    (METRICS_TOKEN, 200), ("admin-token", 200), (None, 401), ("wrong", 401), ("vision-team-token-0123456789", 403)])
def test_metrics_needs_the_admin_or_the_metrics_token(api, token, status):
    r = api.request("GET", "/metrics", token)
    assert r.status_code == status, r.text
    if status == 200:
        assert r.headers["content-type"] == CONTENT_TYPE
        assert "hyperion_gpus{" in r.text


def test_the_metrics_token_opens_nothing_else_and_metrics_is_not_in_the_schema(api):
    for path in ("/v1/jobs", "/v1/nodes", "/v1/queues"):
        assert api.request("GET", path, METRICS_TOKEN).status_code == 401, path
    assert api.request("POST", "/v1/jobs", METRICS_TOKEN, json={"name": "x", "command": ["true"]}).status_code == 401
    assert api.request("GET", "/v1/jobs", "admin-token").status_code == 200  # the same routes do answer the admin
    assert "/metrics" not in api.request("GET", "/openapi.json").json()["paths"]

"""Idle GPU reclaim in the service: telemetry follows each rank's idle time; a job whose every rank
stayed idle for its window is cancelled with a checkpoint request and an ``idle-reclaimed`` event."""

from __future__ import annotations

from pathlib import Path

import pytest

from hyperion.api import auth
from hyperion.api.logs import LogStore
from hyperion.api.service import ControlService
from hyperion.core import lifecycle
from hyperion.model import GpuMetrics, NodeMetrics, Phase, Placement
from hyperion.store import MemoryStore
from hyperion.store.objects import ClusterState
from hyperion.testing.builders import a_node
from hyperion.testing.clock import ManualClock as Clock


class Stops:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    def stop(self, job, placements, reason: str) -> None:
        self.calls.append((job.id, reason))


@pytest.fixture
def service(tmp_path: Path) -> ControlService:
    svc = ControlService(ClusterState(MemoryStore()), Clock(), LogStore(tmp_path / "logs"), "admin-token")
    svc.wake = lambda: None
    svc.dispatcher = Stops()
    for n in ("a", "b"):
        svc.state.put_node(a_node(n).gpus(4).build())
    return svc


def start(service: ControlService, doc: dict, placements: tuple[Placement, ...]) -> str:
    job_id = service.submit(auth.ADMIN, {"name": "nb", "team": "vision", "command": "true", **doc})["id"]
    job = lifecycle.assign(service.state.jobs[job_id], placements, at=service.clock.now())
    service.state.update_jobs([job])
    for p in placements:
        job = lifecycle.task_running(job, job.attempt, p.rank, service.clock.now())
    service.state.update_jobs([job])
    return job_id


def sample(service: ControlService, node: str, **util: float) -> None:
    gpus = tuple(GpuMetrics(int(i[1:]), utilization_percent=u) for i, u in util.items())
    service.record_metrics(NodeMetrics(node, service.clock.now(), gpus=gpus))


def test_a_job_idle_for_its_window_is_stopped_with_an_event(service: ControlService) -> None:
    job_id = start(service, {"resources": {"gpus": 2}, "idle_policy": {"gpu_utilization": 10, "window": "60s"}},
                   (Placement(0, "a", (0, 1)),))
    clock = service.clock
    sample(service, "a", g0=2, g1=3, g2=99)  # GPU 2 is someone else's
    clock.t += 30
    sample(service, "a", g0=50, g1=3)        # busy again: the window starts over
    clock.t += 10
    sample(service, "a", g0=1, g1=1)
    clock.t += 59
    assert service.reclaim_idle() == []
    clock.t += 1
    sample(service, "a", g0=1, g1=1)
    assert service.reclaim_idle() == [job_id]
    job = service.state.jobs[job_id]
    assert job.phase is Phase.CANCELLED and job.reason.startswith("reclaimed: every GPU stayed below 10%")
    assert service.dispatcher.calls == [(job_id, job.reason)]
    [event] = service.events.recent(kinds=["idle-reclaimed"])
    assert event["job"] == job_id and event["team"] == "vision" and "60 s" in event["message"]


def test_every_rank_must_be_idle_and_the_team_policy_applies(service: ControlService) -> None:
    service.apply(auth.ADMIN, [{"kind": "Team", "name": "vision", "idle_policy": {"gpu_utilization": 5, "window": 10}}])
    job_id = start(service, {"resources": {"gpus": 1}, "replicas": 2},
                   (Placement(0, "a", (0,)), Placement(1, "b", (0,))))
    sample(service, "a", g0=0)
    service.clock.t += 20
    sample(service, "a", g0=0)
    assert service.reclaim_idle() == []   # rank 1 never reported idle
    sample(service, "b", g0=0)
    service.clock.t += 10
    assert service.reclaim_idle() == [job_id]


def test_jobs_without_a_policy_are_never_reclaimed(service: ControlService) -> None:
    start(service, {"resources": {"gpus": 1}}, (Placement(0, "a", (0,)),))
    for _ in range(3):
        sample(service, "a", g0=0)
        service.clock.t += 10_000
    assert service.reclaim_idle() == [] and service.idle_since == {}

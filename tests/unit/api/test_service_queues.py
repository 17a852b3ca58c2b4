"""ControlService and queues: applying ``kind: Queue`` (created / configured / unchanged, a wake-up
for the scheduler), refusing jobs for a queue that does not exist without writing anything, and
listing queues with what their jobs hold and how many wait."""

from __future__ import annotations

from pathlib import Path

import pytest

from hyperion.api import auth
from hyperion.api.errors import Forbidden, Invalid
from hyperion.api.logs import LogStore
from hyperion.api.service import ControlService
from hyperion.core import lifecycle
from hyperion.model import Placement
from hyperion.model.queue import QueueSpec
from hyperion.store import MemoryStore
from hyperion.store.objects import ClusterState
from hyperion.testing.builders import a_node

GiB = 2**30
RESEARCH = {"kind": "Queue", "name": "research", "cohort": "lab", "quota": {"gpus": {"A100": 8}, "cpus": 64}}
VISION = auth.Principal("vision")


class Wakes:
    """Stands in for the scheduler loop's wake-up: counts the calls."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self) -> None:
        self.count += 1


class FixedClock:
    def now(self) -> float:
        return 1000.0

    def monotonic(self) -> float:
        return 0.0


@pytest.fixture
def store() -> MemoryStore:
    return MemoryStore()


@pytest.fixture
def service(store: MemoryStore, tmp_path: Path) -> ControlService:
    svc = ControlService(ClusterState(store), FixedClock(), LogStore(tmp_path / "logs"), "admin-token")
    svc.wake = Wakes()
    return svc


def wakes(service: ControlService) -> int:
    assert isinstance(service.wake, Wakes)
    return service.wake.count


def job(name: str, queue: str | None = None, gpus: int = 0, team: str | None = None) -> dict:
    doc: dict = {"name": name, "command": "true", "resources": {"gpus": gpus, "cpus": 2, "memory": "4Gi"}}
    if queue is not None:
        doc["queue"] = queue
    if team is not None:
        doc["team"] = team
    return doc


# ---- apply --------------------------------------------------------------------------------
def test_apply_creates_configures_and_leaves_unchanged(service: ControlService) -> None:
    results = lambda body: service.apply(auth.ADMIN, body)["results"]
    assert results([RESEARCH]) == [{"kind": "Queue", "name": "research", "action": "created"}]
    assert service.state.queues["research"] == QueueSpec("research", cohort="lab",
                                                         nominal=(("cpus", 64000), ("gpus/A100", 8)))
    assert (service.state.queues_version, wakes(service)) == (1, 1)
    assert results([RESEARCH]) == [{"kind": "Queue", "name": "research", "action": "unchanged"}]
    assert (service.state.queues_version, wakes(service)) == (1, 1)
    assert results([{**RESEARCH, "weight": 2}]) == [{"kind": "Queue", "name": "research", "action": "configured"}]
    assert service.state.queues["research"].weight == 2.0
    assert (service.state.queues_version, wakes(service)) == (2, 2)


def test_apply_with_a_bad_queue_changes_nothing(service: ControlService, store: MemoryStore) -> None:
    revision = store.revision()
    bad = {**RESEARCH, "name": "prod", "cohort": None, "lending_limit": {"cpus": 1}}
    with pytest.raises(Invalid) as info:
        service.apply(auth.ADMIN, [RESEARCH, bad])
    assert info.value.detail[0]["loc"] == ["documents", 1, "lending_limit"]
    assert "cohort" in info.value.detail[0]["msg"]
    assert (service.state.queues, store.revision(), wakes(service)) == ({}, revision, 0)


def test_only_the_admin_applies_queues(service: ControlService) -> None:
    with pytest.raises(Forbidden):
        service.apply(VISION, [RESEARCH])


# ---- submitting to a queue ----------------------------------------------------------------
def test_a_job_for_a_queue_that_does_not_exist_is_refused_and_nothing_is_written(
        service: ControlService, store: MemoryStore) -> None:
    revision = store.revision()
    with pytest.raises(Invalid) as info:
        service.submit(auth.ADMIN, job("train", queue="research"))
    assert info.value.message == ("queue 'research' does not exist; create it with "
                                  "'hyperion apply -f queues.yaml' (kind: Queue)")
    assert info.value.detail == [{"loc": ["queue"], "line": None, "msg": "no such queue; known queues: default"}]
    assert (service.state.jobs, store.revision(), wakes(service)) == ({}, revision, 0)


def test_jobs_go_to_default_or_an_applied_queue(service: ControlService) -> None:
    assert service.submit(auth.ADMIN, job("a"))["queue"] == "default"
    assert service.submit(auth.ADMIN, job("b", queue="default"))["queue"] == "default"
    service.apply(auth.ADMIN, [RESEARCH])
    assert service.submit(auth.ADMIN, job("c", queue="research"))["queue"] == "research"
    assert len(service.state.jobs) == 3


# ---- listing ------------------------------------------------------------------------------
def place(service: ControlService, job_id: str, *placements: Placement) -> None:
    service.state.update_jobs([lifecycle.assign(service.state.jobs[job_id], placements)])


def test_default_is_listed_without_a_quota(service: ControlService) -> None:
    assert service.list_queues(VISION) == {"items": [{
        "name": "default", "cohort": None, "weight": 1.0, "nominal": {}, "borrowing_limit": {}, "lending_limit": {},
        "usage": {}, "pending": 0, "defined": False}]}


def test_list_queues_shows_what_live_tasks_hold_and_how_many_wait(service: ControlService) -> None:
    service.state.put_node(a_node("n1").gpus(8).gpu_type("A100").build())
    service.state.put_node(a_node("n2").gpus(8).gpu_type("H100").build())
    service.apply(auth.ADMIN, [RESEARCH, {"kind": "Queue", "name": "prod", "weight": 2}])
    gang = service.submit(auth.ADMIN, job("gang", queue="research", gpus=2, team="vision"))["id"]
    place(service, gang, Placement(0, "n1", (0, 1)), Placement(1, "n2", (0, 1)))
    other = service.submit(auth.ADMIN, job("solo", queue="research", gpus=1, team="nlp"))["id"]
    place(service, other, Placement(0, "n1", (2,)))
    for name in ("w1", "w2"):
        service.submit(auth.ADMIN, job(name, queue="research", gpus=4, team="nlp"))
    service.submit(auth.ADMIN, job("w3", gpus=1))
    done, _ = lifecycle.task_exited(service.state.jobs[other], 1, 0, 0, at=1.0)
    service.state.update_jobs([done])  # an exited task holds nothing

    items = {q["name"]: q for q in service.list_queues(VISION)["items"]}
    assert list(items) == ["default", "prod", "research"]
    research = items["research"]
    assert research["usage"] == {"cpus": 4000, "gpus/A100": 2, "gpus/H100": 2, "memory": 8 * GiB}
    assert (research["pending"], research["defined"]) == (2, True)
    assert (research["nominal"], research["cohort"]) == ({"cpus": 64000, "gpus/A100": 8}, "lab")
    assert (items["prod"]["weight"], items["prod"]["usage"], items["prod"]["pending"]) == (2.0, {}, 0)
    assert (items["default"]["pending"], items["default"]["defined"]) == (1, False)
    assert service.list_queues(auth.ADMIN) == service.list_queues(VISION)  # totals only: the same for everyone

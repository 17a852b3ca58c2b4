"""ClusterState over a MemoryStore: put-if-absent job creation, guarded and transition-checked
updates, the live-task indexes (node_tasks, allocated, pending), queues and their version, and
reloading from the store."""

from __future__ import annotations

import orjson
import pytest

from hyperion.core import lifecycle
from hyperion.model import Job, Phase, Placement, Resources, Team, TransitionError
from hyperion.model.codec import job_to_dict, queue_to_dict
from hyperion.model.queue import QueueSpec
from hyperion.ports.store import Put
from hyperion.store import MemoryStore
from hyperion.store.objects import JOBS, QUEUES, ClusterState, ConflictError
from hyperion.testing.builders import a_job, a_node

GiB = 2**30


@pytest.fixture
def store() -> MemoryStore:
    return MemoryStore()


@pytest.fixture
def state(store: MemoryStore) -> ClusterState:
    return ClusterState(store)


def stored_job(store: MemoryStore, job_id: str) -> dict:
    kv = store.get(JOBS + job_id)
    assert kv is not None
    return orjson.loads(kv.value)


def indexes(state: ClusterState) -> tuple:
    """Everything derived from the jobs, in a comparable form (empty node entries dropped)."""
    tasks = {n: dict(t) for n, t in state.node_tasks.items() if t}
    return tasks, list(state.pending), {n: state.allocated(n) for n in state.nodes}


# ---- creating jobs -----------------------------------------------------------------------
def test_create_job_is_put_if_absent(store, state):
    first = a_job("j1").gpus(1).build()
    assert state.create_job(first) is True
    assert state.create_job(a_job("j1").gpus(8).build()) is False
    assert state.jobs["j1"] == first
    assert stored_job(store, "j1") == job_to_dict(first)


def test_create_job_refuses_an_id_another_writer_took(store, state):
    store.txn([], [Put(JOBS + "j1", orjson.dumps(job_to_dict(a_job("j1").build())))])
    assert state.create_job(a_job("j1").gpus(2).build()) is False
    assert "j1" not in state.jobs


# ---- updating jobs -----------------------------------------------------------------------
def test_update_jobs_writes_through(store, state):
    job = a_job("j1").build()
    state.create_job(job)
    placed = lifecycle.assign(job, (Placement(0, "n1", (0,)),))
    state.update_jobs([placed])
    assert state.jobs["j1"] == placed
    assert stored_job(store, "j1") == job_to_dict(placed)
    state.update_jobs([lifecycle.task_running(placed, 1, 0, at=1.0)])  # the cached revision moved on
    assert stored_job(store, "j1")["phase"] == "running"


# (case, phase the job is in, phase a write tries to give it)
ILLEGAL = [
    ("pending -> running", Phase.PENDING, Phase.RUNNING),
    ("pending -> succeeded", Phase.PENDING, Phase.SUCCEEDED),
    ("pending -> preempted", Phase.PENDING, Phase.PREEMPTED),
    ("succeeded -> pending", Phase.SUCCEEDED, Phase.PENDING),
    ("cancelled -> running", Phase.CANCELLED, Phase.RUNNING),
    ("failed -> scheduled", Phase.FAILED, Phase.SCHEDULED),
    ("preempted -> scheduled", Phase.PREEMPTED, Phase.SCHEDULED),
]


@pytest.mark.parametrize(("old", "new"), [c[1:] for c in ILLEGAL], ids=[c[0] for c in ILLEGAL])
def test_update_jobs_rejects_an_illegal_phase_change_and_writes_nothing(store, state, old, new):
    job = Job("j1", a_job("j1").spec(), phase=old)
    other = a_job("j2").build()
    state.create_job(job)
    state.create_job(other)
    revision = store.revision()
    legal = lifecycle.assign(other, (Placement(0, "n1", (0,)),))
    with pytest.raises(TransitionError, match=f"{old.value} -> {new.value}"):
        state.update_jobs([legal, Job("j1", job.spec, phase=new)])  # the legal one is not written either
    assert store.revision() == revision
    assert state.jobs == {"j1": job, "j2": other}
    assert stored_job(store, "j2")["phase"] == "pending"


def test_update_jobs_of_an_unknown_job(state):
    with pytest.raises(KeyError, match="ghost"):
        state.update_jobs([a_job("ghost").build()])


def test_concurrent_write_makes_update_jobs_conflict_and_leaves_the_cache(store, state):
    job = a_job("j1").build()
    state.create_job(job)
    state.create_job(a_job("j2").build())
    before = indexes(state)
    # someone else writes j1 behind the control plane's back
    store.txn([], [Put(JOBS + "j1", orjson.dumps(job_to_dict(Job("j1", job.spec, reason="external"))))])
    placed = lifecycle.assign(job, (Placement(0, "n1", (0,)),))
    other = lifecycle.assign(state.jobs["j2"], (Placement(0, "n1", (1,)),))
    with pytest.raises(ConflictError, match="jobs/j1"):
        state.update_jobs([placed, other])
    assert state.jobs["j1"] == job
    assert state.jobs["j2"].phase is Phase.PENDING
    assert indexes(state) == before
    assert stored_job(store, "j1")["reason"] == "external"
    assert stored_job(store, "j2")["phase"] == "pending"  # one transaction: nothing of it applied


def test_put_node_conflicts_with_an_external_write(store, state):
    state.put_node(a_node("n1").build())
    store.txn([], [Put("nodes/n1", b"{}")])
    with pytest.raises(ConflictError, match="nodes/n1"):
        state.put_node(a_node("n1").gpus(4).build())


# ---- live-task indexes -------------------------------------------------------------------
def two_rank_job(state: ClusterState) -> Job:
    state.put_node(a_node("n1").gpus(8).build())
    state.put_node(a_node("n2").gpus(8).build())
    job = a_job("g").gpus(2).cpus(4).memory("8Gi").gang(2).build()
    state.create_job(job)
    return job


def per_replica(n: int) -> Resources:
    return Resources(2, 4000, 8 * GiB).scaled(n)


NOTHING = (Resources(), set())
P0, P1 = Placement(0, "n1", (2, 3)), Placement(1, "n2", (0, 1))


def test_placed_job_holds_its_resources(state):
    job = two_rank_job(state)
    assert state.allocated("n1") == NOTHING
    assert list(state.pending) == ["g"]
    state.update_jobs([lifecycle.assign(job, (P0, P1))])
    assert state.allocated("n1") == (per_replica(1), {2, 3})
    assert state.allocated("n2") == (per_replica(1), {0, 1})
    assert state.node_tasks["n1"] == {("g", 0): P0}
    assert state.node_tasks_of("g") == [P0, P1]
    assert list(state.pending) == []


def test_two_ranks_on_one_node_add_up(state):
    job = two_rank_job(state)
    state.update_jobs([lifecycle.assign(job, (P0, Placement(1, "n1", (4, 5))))])
    assert state.allocated("n1") == (per_replica(2), {2, 3, 4, 5})


def test_rank_exit_releases_only_that_rank(state):
    job = lifecycle.assign(two_rank_job(state), (P0, P1))
    state.update_jobs([job])
    job, _ = lifecycle.task_exited(job, 1, 0, 0, at=1.0)
    state.update_jobs([job])
    assert state.allocated("n1") == NOTHING
    assert state.allocated("n2") == (per_replica(1), {0, 1})
    job, _ = lifecycle.task_exited(job, 1, 1, 0, at=2.0)
    state.update_jobs([job])
    assert job.phase is Phase.SUCCEEDED
    assert state.allocated("n2") == NOTHING
    assert state.node_tasks_of("g") == []


def test_cancel_keeps_the_allocation_until_exits_are_recorded(state):
    job = lifecycle.assign(two_rank_job(state), (P0, P1))
    state.update_jobs([job])
    job, stops = lifecycle.cancel(job, at=1.0)
    state.update_jobs([job])
    assert stops == [P0, P1]
    assert state.allocated("n1") == (per_replica(1), {2, 3})
    assert state.allocated("n2") == (per_replica(1), {0, 1})
    job, _ = lifecycle.task_exited(job, 1, 1, 143, at=2.0)
    state.update_jobs([job])
    assert state.allocated("n2") == NOTHING
    assert state.allocated("n1") == (per_replica(1), {2, 3})
    job, _ = lifecycle.task_exited(job, 1, 0, 143, at=3.0)
    state.update_jobs([job])
    assert (job.phase, state.allocated("n1")) == (Phase.CANCELLED, NOTHING)


def test_retry_releases_everything_and_requeues(state):
    job = a_job("r").gpus(1).max_retries(1).build()
    state.create_job(job)
    job = lifecycle.assign(job, (Placement(0, "n1", (0,)),))
    state.update_jobs([job])
    job, _ = lifecycle.task_exited(job, 1, 0, 1, at=1.0)
    state.update_jobs([job])
    assert job.phase is Phase.PENDING
    assert state.allocated("n1") == NOTHING
    assert list(state.pending) == ["r"]


# ---- pending order and reload -------------------------------------------------------------
def test_pending_is_in_submission_order_not_key_order(store, state):
    for name, at in [("d", 1.0), ("c", 2.0), ("b", 3.0), ("a", 4.0)]:
        state.create_job(a_job(name).submitted(at).build())
    state.update_jobs([lifecycle.assign(state.jobs["c"], (Placement(0, "n1"),))])
    assert list(state.pending) == ["d", "b", "a"]
    assert list(ClusterState(store).pending) == ["d", "b", "a"]


def populate(state: ClusterState) -> None:
    state.put_team(Team("team-a", "0" * 64, created_at=1.0))
    state.put_node(a_node("n1").gpus(8).build())
    state.put_node(a_node("n2").gpus(4).gpu_type("H100").unschedulable().build())
    jobs = {name: a_job(name).gpus(1).submitted(at).build()
            for name, at in [("e", 1.0), ("d", 2.0), ("c", 3.0), ("b", 4.0), ("a", 5.0)]}  # ids not in time order
    for job in sorted(jobs.values(), key=lambda j: j.submitted_at):
        state.create_job(job)
    running = lifecycle.assign(jobs["e"], (Placement(0, "n1", (0,)),))
    cancelled = lifecycle.assign(jobs["c"], (Placement(0, "n2", (3,)),))
    done = lifecycle.assign(jobs["b"], (Placement(0, "n1", (1,)),))
    state.update_jobs([running, cancelled, done])
    state.update_jobs([lifecycle.task_running(running, 1, 0, at=6.0), lifecycle.cancel(cancelled, at=7.0)[0],
                       lifecycle.task_exited(done, 1, 0, 0, at=8.0)[0]])


def test_reload_reproduces_objects_and_indexes(store, state):
    populate(state)
    again = ClusterState(store)
    assert again.jobs == state.jobs
    assert again.nodes == state.nodes
    assert again.teams == state.teams
    assert indexes(again) == indexes(state)
    assert list(again.pending) == ["d", "a"]
    assert again.allocated("n2") == (Resources(1, 1000, GiB), {3})  # the cancelled job still holds it


def test_reloaded_state_can_write(store, state):
    populate(state)
    again = ClusterState(store)
    again.update_jobs([lifecycle.assign(again.jobs["d"], (Placement(0, "n1", (2,)),))])
    assert again.allocated("n1") == (Resources(1, 1000, GiB).scaled(2), {0, 2})
    with pytest.raises(ConflictError):  # the first instance is now stale
        state.update_jobs([lifecycle.assign(state.jobs["d"], (Placement(0, "n1", (3,)),))])


def test_a_retried_job_keeps_its_place_in_submission_order(store, state):
    for name, at in [("a", 1.0), ("b", 2.0)]:
        state.create_job(a_job(name).max_retries(1).submitted(at).build())
    job = lifecycle.assign(state.jobs["a"], (Placement(0, "n1"),))
    state.update_jobs([job])
    job, _ = lifecycle.task_exited(job, 1, 0, 1, at=3.0)
    state.update_jobs([job])
    assert job.phase is Phase.PENDING
    assert list(ClusterState(store).pending) == ["a", "b"]
    assert list(state.pending) == ["a", "b"]


# ---- queues -------------------------------------------------------------------------------
RESEARCH = QueueSpec("research", cohort="lab", weight=2.0, nominal=(("cpus", 64000), ("gpus/A100", 8)),
                     borrowing_limit=(("gpus/A100", 4),))


def test_put_queue_writes_through_and_survives_a_reload(store, state):
    state.put_queue(RESEARCH)
    state.put_queue(QueueSpec("prod", cohort="lab"))
    kv = store.get(QUEUES + "research")
    assert kv is not None and orjson.loads(kv.value) == queue_to_dict(RESEARCH)
    again = ClusterState(store)
    assert again.queues == state.queues == {"research": RESEARCH, "prod": QueueSpec("prod", cohort="lab")}
    assert again.queues_version == 0  # counts changes made through this instance
    again.put_queue(QueueSpec("research", weight=1.0))  # the reloaded cache knows the key's revision
    assert ClusterState(store).queues["research"] == QueueSpec("research", weight=1.0)


def test_queues_version_moves_on_every_change_and_only_then(state):
    assert (state.queues, state.queues_version) == ({}, 0)
    state.put_queue(RESEARCH)
    assert state.queues_version == 1
    state.put_queue(RESEARCH)
    assert state.queues_version == 1
    state.put_queue(QueueSpec("research", cohort="lab", weight=3.0))
    assert state.queues_version == 2


def test_put_queue_conflicts_with_an_external_write_and_keeps_the_cache(store, state):
    state.put_queue(RESEARCH)
    store.txn([], [Put(QUEUES + "research", b"{}")])
    with pytest.raises(ConflictError, match="queues/research"):
        state.put_queue(QueueSpec("research"))
    assert (state.queues["research"], state.queues_version) == (RESEARCH, 1)


def test_records_survive_a_reload_and_are_guarded():
    store = MemoryStore()
    state = ClusterState(store)
    assert state.get_record("fair-share-history") is None
    state.put_record("fair-share-history", {"at": 5.0, "history": {"q": {"gpus/A100": 1.5}}})
    state.put_record("fair-share-history", {"at": 6.0, "history": {}})
    again = ClusterState(store)
    assert again.get_record("fair-share-history") == {"at": 6.0, "history": {}}
    again.put_record("fair-share-history", {"at": 7.0, "history": {}})
    with pytest.raises(ConflictError):  # the first instance's view of the key is stale now
        state.put_record("fair-share-history", {"at": 8.0, "history": {}})

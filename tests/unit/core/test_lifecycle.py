"""The pure job lifecycle: how reports of running and exited ranks, cancellations and lost nodes
move a job through its phases, and which ranks must be stopped.

Each case plays a script of events against a freshly placed job and checks where it ends up and
what every step asked to stop. Every step is also checked against the phase transition table."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from hyperion.core import lifecycle
from hyperion.model import Job, Phase, Placement, check_transition
from hyperion.testing.builders import JobBuilder, a_job

# A gang of 3: ranks 0 and 1 on n1, rank 2 on n2.
GANG = (Placement(0, "n1", (0,)), Placement(1, "n1", (1,)), Placement(2, "n2", (0,)))


def placed(builder: JobBuilder, placements: tuple[Placement, ...] = GANG) -> Job:
    return lifecycle.assign(builder.build(), placements)


# ---- events ---------------------------------------------------------------------------------
# ("run", rank) | ("exit", rank, code) | ("stale-exit", rank, code) | ("stale-run", rank)
# | ("cancel",) | ("lost", node) | ("assign",)
def step(job: Job, event: tuple, at: float) -> tuple[Job, list[Placement]]:
    kind = event[0]
    if kind == "run":
        return lifecycle.task_running(job, job.attempt, event[1], at), []
    if kind == "stale-run":
        return lifecycle.task_running(job, job.attempt - 1, event[1], at), []
    if kind == "exit":
        return lifecycle.task_exited(job, job.attempt, event[1], event[2], at)
    if kind == "stale-exit":
        return lifecycle.task_exited(job, job.attempt - 1, event[1], event[2], at)
    if kind == "cancel":
        return lifecycle.cancel(job, at)
    if kind == "lost":
        return lifecycle.node_lost(job, event[1], at)
    if kind == "assign":
        return lifecycle.assign(job, GANG), []
    raise AssertionError(f"unknown event {event}")


def play(job: Job, events: list[tuple]) -> tuple[Job, list[list[int]]]:
    """Apply events in order; returns the final job and the ranks each event asked to stop."""
    stops = []
    for i, event in enumerate(events, start=1):
        new, to_stop = step(job, event, at=float(i))
        check_transition(job.phase, new.phase)  # lifecycle never takes an edge the table forbids
        stops.append(sorted({p.rank for p in to_stop}))  # which ranks; duplicates: test_node_lost_stops_each_rank_once
        job = new
    return job, stops


@dataclass
class Case:
    name: str
    job: JobBuilder
    events: list[tuple]
    phase: Phase
    exit_code: int | None = None
    stops: list[list[int]] | None = None  # per event; None: nothing stopped at all
    failures: int = 0
    attempt: int = 1
    placements: tuple[Placement, ...] | None = None  # at the end; None: as first placed
    rank_exits: dict[int, int] | None = None  # None: don't check
    start: tuple[Placement, ...] = GANG  # where the job was first placed


gang3 = a_job("g").gang(3)
CASES = [
    Case("first rank running makes the job running", gang3, [("run", 0)], Phase.RUNNING),
    Case("more running reports change nothing", gang3, [("run", 0), ("run", 1), ("run", 2)], Phase.RUNNING),
    Case("running report of a stale attempt ignored", gang3, [("stale-run", 0)], Phase.SCHEDULED),
    Case("all ranks exit 0: succeeded", gang3, [("run", 0), ("exit", 0, 0), ("exit", 1, 0), ("exit", 2, 0)],
         Phase.SUCCEEDED, exit_code=0, rank_exits={0: 0, 1: 0, 2: 0}),
    Case("ranks may finish before a running report", gang3, [("exit", 2, 0), ("exit", 0, 0), ("exit", 1, 0)],
         Phase.SUCCEEDED, exit_code=0),
    Case("some ranks exited 0: still running", gang3, [("run", 0), ("exit", 0, 0), ("exit", 1, 0)], Phase.RUNNING),
    Case("one rank fails: the other live ranks are stopped", gang3, [("run", 0), ("exit", 1, 3)],
         Phase.RUNNING, stops=[[], [0, 2]]),
    Case("one rank fails: failed once the last rank exits", gang3,
         [("run", 0), ("exit", 1, 3), ("exit", 0, 0), ("exit", 2, 0)],
         Phase.FAILED, exit_code=3, stops=[[], [0, 2], [], []], failures=1),
    Case("a rank that fails after others exited 0 stops only the live ones", gang3,
         [("run", 0), ("exit", 0, 0), ("exit", 2, 1)], Phase.RUNNING, stops=[[], [], [1]]),
    Case("exit code is that of the first rank to fail, in time", gang3,
         [("run", 0), ("exit", 2, 5), ("exit", 1, 0), ("exit", 0, 7)],
         Phase.FAILED, exit_code=5, stops=[[], [0, 1], [], []], failures=1),
    Case("a single-rank job that fails", a_job("s"), [("run", 0), ("exit", 0, 2)], Phase.FAILED, exit_code=2,
         failures=1, start=GANG[:1]),
    Case("failure with a retry left: back to pending, placements cleared", gang3.max_retries(1),
         [("run", 0), ("exit", 0, 1), ("exit", 1, 0), ("exit", 2, 0)],
         Phase.PENDING, exit_code=1, stops=[[], [1, 2], [], []], failures=1, placements=(), rank_exits={}),
    Case("retried job placed again starts a new attempt", gang3.max_retries(1),
         [("run", 0), ("exit", 0, 1), ("exit", 1, 0), ("exit", 2, 0), ("assign",), ("run", 1)],
         Phase.RUNNING, exit_code=None, stops=[[], [1, 2], [], [], [], []], failures=1, attempt=2, rank_exits={}),
    Case("failed after retries are exhausted", gang3.max_retries(1),
         [("run", 0), ("exit", 0, 1), ("exit", 1, 0), ("exit", 2, 0),
          ("assign",), ("run", 0), ("exit", 2, 4), ("exit", 0, 0), ("exit", 1, 0)],
         Phase.FAILED, exit_code=4, stops=[[], [1, 2], [], [], [], [], [0, 1], [], []], failures=2, attempt=2),
    Case("a success after a retry", gang3.max_retries(2),
         [("exit", 0, 1), ("exit", 1, 1), ("exit", 2, 1), ("assign",), ("exit", 0, 0), ("exit", 1, 0), ("exit", 2, 0)],
         Phase.SUCCEEDED, exit_code=0, stops=[[1, 2], [2], [], [], [], [], []], failures=1, attempt=2),
    Case("exit report of a stale attempt ignored", gang3.max_retries(1),
         [("exit", 0, 1), ("exit", 1, 0), ("exit", 2, 0), ("assign",), ("stale-exit", 0, 9), ("stale-exit", 1, 9)],
         Phase.SCHEDULED, stops=[[1, 2], [], [], [], [], []], failures=1, attempt=2, rank_exits={}),
    Case("duplicate exit report ignored", gang3, [("run", 0), ("exit", 0, 0), ("exit", 0, 1), ("exit", 0, 0)],
         Phase.RUNNING, rank_exits={0: 0}),
    Case("exit of a rank that was never placed ignored", a_job("s"), [("run", 0), ("exit", 5, 1)], Phase.RUNNING,
         start=GANG[:1]),
    Case("cancel a running job: its live ranks are stopped", gang3, [("run", 0), ("exit", 1, 0), ("cancel",)],
         Phase.CANCELLED, stops=[[], [], [0, 2]]),
    Case("cancel before any rank runs", gang3, [("cancel",)], Phase.CANCELLED, stops=[[0, 1, 2]]),
    Case("exits after cancel are recorded, the job stays cancelled", gang3,
         [("run", 0), ("cancel",), ("exit", 0, 143), ("exit", 1, 1), ("exit", 2, 0)],
         Phase.CANCELLED, exit_code=143, stops=[[], [0, 1, 2], [], [], []], rank_exits={0: 143, 1: 1, 2: 0}),
    Case("cancel twice: the second is a no-op", gang3, [("run", 0), ("cancel",), ("cancel",)],
         Phase.CANCELLED, stops=[[], [0, 1, 2], []]),
    Case("cancel after success is a no-op", a_job("s"), [("exit", 0, 0), ("cancel",)], Phase.SUCCEEDED, exit_code=0,
         start=GANG[:1]),
    Case("node lost: its ranks exit 137, the job is preempted, others on other nodes are stopped", gang3,
         [("run", 0), ("lost", "n1")], Phase.PREEMPTED, stops=[[], [2]], rank_exits={0: 137, 1: 137}),
    Case("node lost, then the stopped rank exits: back to pending, no failure counted", gang3,
         [("run", 0), ("lost", "n1"), ("exit", 2, 143)], Phase.PENDING, stops=[[], [2], []], failures=0,
         placements=()),
    Case("node lost, even without retries: back to pending", gang3.max_retries(0),
         [("run", 0), ("lost", "n2"), ("exit", 0, 0), ("exit", 1, 0)],
         Phase.PENDING, stops=[[], [0, 1], [], []], failures=0, placements=()),
    Case("node lost holding every rank: pending at once, nothing to stop", gang3.max_retries(0),
         [("run", 0), ("lost", "n1"), ("lost", "n2")], Phase.PENDING, stops=[[], [2], []], failures=0,
         placements=()),
    Case("node lost after a cancel: stays cancelled", gang3,
         [("run", 0), ("cancel",), ("lost", "n1"), ("lost", "n2")], Phase.CANCELLED, exit_code=137,
         stops=[[], [0, 1, 2], [], []]),
    Case("a node the job does not use", gang3, [("run", 0), ("lost", "n9")], Phase.RUNNING, rank_exits={}),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_lifecycle(case: Case):
    start = placed(case.job, case.start)
    assert (start.phase, start.attempt) == (Phase.SCHEDULED, 1)
    job, stops = play(start, case.events)
    assert job.phase is case.phase, job.reason
    assert job.exit_code == case.exit_code
    assert job.failures == case.failures
    assert job.attempt == case.attempt
    assert job.placements == (case.start if case.placements is None else case.placements)
    assert stops == (case.stops or [[] for _ in case.events])
    if case.rank_exits is not None:
        assert dict(job.rank_exits) == case.rank_exits


def test_running_and_finished_times():
    job = placed(gang3)
    job = lifecycle.task_running(job, 1, 1, at=5.0)
    job = lifecycle.task_running(job, 1, 0, at=6.0)
    assert job.started_at == 5.0
    for rank in range(3):
        job, _ = lifecycle.task_exited(job, 1, rank, 0, at=9.0 + rank)
    assert job.finished_at == 11.0


def test_each_attempt_keeps_its_own_start_and_the_service_of_earlier_ones_accrues():
    job = lifecycle.assign(a_job("g").gpus(2).gang(3).build(), GANG, estimate=600.0)
    assert job.placed_estimate_s == 600.0
    job = lifecycle.task_running(job, 1, 0, at=10.0)
    job, stops = lifecycle.preempt(job, "for a test")
    for p in GANG:  # every rank stops at 40: 3 ranks x 2 GPUs x 30 s
        job, _ = lifecycle.task_exited(job, 1, p.rank, 143, at=40.0)
    assert (job.phase, job.attained_gpu_s) == (Phase.PENDING, 180.0)
    job = lifecycle.assign(job, GANG)
    assert (job.attempt_started_at, job.placed_estimate_s) == (None, None)
    job = lifecycle.task_running(job, 2, 0, at=100.0)
    assert (job.started_at, job.attempt_started_at) == (10.0, 100.0)  # the first start stays the job's


def test_failure_reasons_name_the_rank_and_the_retry():
    job = placed(gang3.max_retries(1))
    job, _ = lifecycle.task_exited(job, 1, 1, 3, at=1.0, why="OOM")
    assert job.reason == "rank 1 failed (OOM); stopping the other ranks"
    for rank in (0, 2):
        job, _ = lifecycle.task_exited(job, 1, rank, 0, at=2.0)
    assert job.reason == "attempt 1 failed (rank 1: exit code 3); retry 1 of 1"


def test_node_lost_reason_names_the_node():
    job = placed(a_job("s"), GANG[:1])
    job, stops = lifecycle.node_lost(job, "n1", at=1.0)
    assert (job.phase, job.failures, stops) == (Phase.PENDING, 0, [])
    assert "node n1 lost" in job.reason


def test_cancel_pending_job_has_no_stops_and_no_placements():
    job = a_job("p").build()
    new, stops = lifecycle.cancel(job, at=3.0, reason="user said so")
    assert (new.phase, stops, new.placements, new.finished_at, new.reason) == (Phase.CANCELLED, [], (), 3.0, "user said so")


def test_assign_starts_a_clean_attempt():
    job = placed(gang3.max_retries(1))
    job, _ = lifecycle.task_exited(job, 1, 0, 1, at=1.0)
    job, _ = lifecycle.task_exited(job, 1, 1, 0, at=1.0)
    job, _ = lifecycle.task_exited(job, 1, 2, 0, at=1.0)
    again = lifecycle.assign(job, GANG[:2], reason="placed again")
    assert (again.phase, again.attempt, again.placements, again.rank_exits, again.exit_code, again.reason) == (
        Phase.SCHEDULED, 2, GANG[:2], (), None, "placed again")


def test_live_ranks():
    job = placed(gang3)
    assert lifecycle.live(a_job("p").build()) == []
    job, _ = lifecycle.task_exited(job, 1, 1, 0, at=1.0)
    assert lifecycle.live(job) == [GANG[0], GANG[2]]


def test_node_lost_stops_each_rank_once():
    job = lifecycle.task_running(placed(gang3), 1, 0, at=1.0)
    _, stops = lifecycle.node_lost(job, "n1", at=2.0)
    assert stops == [GANG[2]]


def test_preempted_gang_stops_every_rank_then_goes_back_to_its_queue_without_a_failure():
    job = lifecycle.task_running(placed(gang3), 1, 0, at=1.0)
    job, stops = lifecycle.preempt(job, "preempted for job x")
    assert (job.phase, stops) == (Phase.PREEMPTED, list(GANG))
    job, more = lifecycle.task_exited(job, 1, 0, 143, at=2.0)  # a non-zero exit here is not a failure
    assert more == [] and job.phase is Phase.PREEMPTED
    for rank in (1, 2):
        job, _ = lifecycle.task_exited(job, 1, rank, 143, at=3.0)
    assert (job.phase, job.attempt, job.failures, job.placements, job.rank_exits) == (Phase.PENDING, 1, 0, (), ())
    assert "preempted for job x" in job.reason and "requeued" in job.reason
    again = lifecycle.assign(job, GANG)
    assert again.attempt == 2


def test_preempting_a_job_with_no_live_rank_requeues_it_at_once_and_pending_jobs_are_left_alone():
    job = placed(a_job("s"), GANG[:1])
    job, _ = lifecycle.task_exited(job, 1, 0, 0, at=1.0)  # succeeded: not preemptible
    assert lifecycle.preempt(job, "x") == (job, [])
    pending = a_job("p").build()
    assert lifecycle.preempt(pending, "x") == (pending, [])


def test_cancelling_a_preempted_job_keeps_stopping_it():
    job, _ = lifecycle.preempt(placed(gang3), "for y")
    job, stops = lifecycle.cancel(job, at=4.0)
    assert job.phase is Phase.CANCELLED and stops == list(GANG)


def test_handover_releases_at_once_and_requeues_when_the_ranks_exit():
    job = lifecycle.task_running(placed(gang3), 1, 0, at=1.0)
    job, stops = lifecycle.preempt(job, "preempted for u", handover=True)
    assert (job.phase, job.handed_over, stops) == (Phase.PREEMPTED, True, list(GANG))
    for rank in (0, 1, 2):
        job, _ = lifecycle.task_exited(job, 1, rank, 143, at=2.0)
    assert (job.phase, job.handed_over, job.failures) == (Phase.PENDING, False, 0)


def test_handover_of_a_job_already_stopping():
    job, _ = lifecycle.preempt(placed(gang3), "preempted for x")
    again, stops = lifecycle.preempt(job, "preempted for u", handover=True)
    assert (again.handed_over, again.reason, stops) == (True, "preempted for x", list(GANG))
    assert lifecycle.preempt(again, "y", handover=True) == (again, [])  # told once is enough


@pytest.mark.parametrize(("reports", "expected"), [
    ([(1, 10.0, "a")], (10.0, "a")),
    ([(1, 10.0, "a"), (1, 5.0, "old")], (10.0, "a")),       # an older report never wins
    ([(1, 10.0, "a"), (1, 12.0, "b")], (12.0, "b")),
    ([(2, 10.0, "future")], (None, None)),                 # an attempt that does not exist yet
])
def test_checkpointed_keeps_the_newest(reports, expected):
    job = placed(a_job("c"), GANG[:1])
    for attempt, at, path in reports:
        job = lifecycle.checkpointed(job, attempt, at, path)
    assert (job.last_checkpoint_at, job.checkpoint_path) == expected

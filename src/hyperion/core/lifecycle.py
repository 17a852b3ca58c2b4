"""How a job moves through its phases as its tasks start, exit, get cancelled or lose their node.

Pure functions over ``Job`` values, used by the live control plane and the simulator alike. Each
returns the new job and the tasks that must be stopped (for example the other ranks of a gang
whose rank failed).

Rules:
- A job is RUNNING when its first rank reports running.
- An attempt ends when every placed rank has exited. Then: all exit codes 0 -> SUCCEEDED;
  otherwise the attempt failed: with retries left (``spec.max_retries``) the job goes back to
  PENDING, else FAILED with the exit code of the first rank that failed (first in time: the ranks
  stopped because of it exit later, with 143, and must not take the blame).
- When one rank fails, the other live ranks of the attempt are stopped (a gang runs together).
- A cancelled job is terminal at once; its live tasks are stopped and keep holding their
  resources until they are reported exited.
- A lost node counts as an exit with code 137 for each of its tasks.
- A preempted job (``preempt``) is PREEMPTED while its ranks stop (they get the grace period to
  checkpoint); once every rank has exited it goes back to PENDING in its queue, keeping its
  attempt count and failures: its exit codes are not failures. The next attempt resumes from
  the job's checkpoint directory. On the fast path (``handover``) the job's resources go to
  the urgent job at once (``Job.handed_over``): its ranks still run their grace period, frozen
  then checkpointing, but hold nothing.
- A lost node is not the job's fault: a job with a rank on it is stopped like a preempted one
  and requeued (resuming from its checkpoint), without counting a failure.
- A checkpoint a rank reports (``checkpointed``) is remembered across attempts: the next attempt
  resumes from it, and the preemption planner counts the work since it as what an eviction loses.
"""

from __future__ import annotations

from dataclasses import replace

from hyperion.model import Job, Phase, Placement

LOST_EXIT_CODE = 137
SPAWN_FAILED_EXIT_CODE = 127


def live(job: Job) -> list[Placement]:
    if job.phase is Phase.PENDING:
        return []
    exited = {rank for rank, _ in job.rank_exits}
    return [p for p in job.placements if p.rank not in exited]


def assign(job: Job, placements: tuple[Placement, ...], reason: str = "", estimate: float | None = None,
           at: float | None = None) -> Job:
    """Place the job's next attempt at ``at``; ``estimate``: the runtime estimate it was placed
    with (what backfill expects of it while it runs)."""
    return replace(job, phase=Phase.SCHEDULED, attempt=job.attempt + 1, placements=placements,
                   rank_exits=(), exit_code=None, reason=reason, attempt_started_at=None, placed_estimate_s=estimate,
                   scheduled_at=at)


def task_running(job: Job, attempt: int, rank: int, at: float) -> Job:
    if attempt != job.attempt or job.phase is not Phase.SCHEDULED:
        return job
    return replace(job, phase=Phase.RUNNING, started_at=job.started_at or at,
                   attempt_started_at=job.attempt_started_at or at, reason="")


def task_exited(job: Job, attempt: int, rank: int, exit_code: int, at: float, why: str = "") -> tuple[Job, list[Placement]]:
    """Record one rank's exit; returns the new job and the ranks to stop."""
    if attempt != job.attempt or rank in {r for r, _ in job.rank_exits} or rank not in {p.rank for p in job.placements}:
        return job, []
    exits = job.rank_exits + ((rank, exit_code),)
    job = replace(job, rank_exits=exits)
    remaining = live(job)
    stops: list[Placement] = []
    if exit_code != 0 and remaining and not job.phase.terminal and job.phase is not Phase.PREEMPTED:
        detail = why or f"exit code {exit_code}"
        job = replace(job, reason=f"rank {rank} failed ({detail}); stopping the other ranks")
        stops = remaining
    if remaining:
        return job, stops
    return _attempt_over(job, at, why), stops


def _attempt_over(job: Job, at: float, why: str) -> Job:
    if job.attempt_started_at is not None:  # the service it got counts whatever becomes of it
        ran = max(0.0, at - job.attempt_started_at)
        job = replace(job, attained_gpu_s=job.attained_gpu_s + job.spec.resources.gpus * len(job.placements) * ran)
    if job.phase is Phase.PREEMPTED:
        return requeue(job)
    if job.phase.terminal:  # cancelled: just record the exits
        codes = [c for _, c in job.rank_exits]
        return replace(job, exit_code=job.exit_code if job.exit_code is not None else (codes[0] if codes else None))
    failed = [(r, c) for r, c in job.rank_exits if c != 0]  # in the order they happened
    if not failed:
        return replace(job, phase=Phase.SUCCEEDED, exit_code=0, finished_at=at, reason="")
    rank, code = failed[0]
    failures = job.failures + 1
    detail = why or f"exit code {code}"
    if failures <= job.spec.max_retries:
        return replace(job, phase=Phase.PENDING, placements=(), rank_exits=(), failures=failures, exit_code=code,
                       reason=f"attempt {job.attempt} failed (rank {rank}: {detail}); retry {failures} of {job.spec.max_retries}")
    phase_reason = f"rank {rank}: {detail}"
    if job.spec.max_retries:
        phase_reason += f" (after {job.spec.max_retries} retries)"
    return replace(job, phase=Phase.FAILED, failures=failures, exit_code=code, finished_at=at, reason=phase_reason)


def preempt(job: Job, reason: str, handover: bool = False) -> tuple[Job, list[Placement]]:
    """Stop a placed job to make room; returns the new job and the ranks to stop. ``handover``:
    its resources are given to the preemptor now (the fast path), even if it is already stopping."""
    if job.phase is Phase.PREEMPTED and handover and not job.handed_over:
        stops = live(job)
        return (replace(job, handed_over=True), stops) if stops else (job, [])
    if job.phase not in (Phase.SCHEDULED, Phase.RUNNING):
        return job, []
    stops = live(job)
    job = replace(job, phase=Phase.PREEMPTED, reason=reason, handed_over=handover and bool(stops))
    if not stops:
        return requeue(job), []
    return job, stops


def checkpointed(job: Job, attempt: int, at: float, path: str) -> Job:
    """A rank of ``attempt`` saved a complete checkpoint at ``at``; the newest one wins."""
    if attempt > job.attempt or attempt < 1 or (job.last_checkpoint_at is not None and at <= job.last_checkpoint_at):
        return job
    return replace(job, last_checkpoint_at=at, checkpoint_path=path)


def requeue(job: Job) -> Job:
    """A preempted job whose ranks have all stopped goes back to its queue."""
    return replace(job, phase=Phase.PENDING, placements=(), rank_exits=(), handed_over=False,
                   reason=f"{job.reason}; requeued after attempt {job.attempt}" if job.reason else "requeued")


def cancel(job: Job, at: float, reason: str = "cancelled by user") -> tuple[Job, list[Placement]]:
    if job.phase.terminal:
        return job, []
    stops = live(job)
    if job.phase is Phase.PENDING:
        job = replace(job, placements=())
    return replace(job, phase=Phase.CANCELLED, finished_at=at, reason=reason), stops


def node_lost(job: Job, node_id: str, at: float) -> tuple[Job, list[Placement]]:
    """Every live rank of ``job`` on ``node_id`` is gone (exit 137): the job is preempted, its other
    ranks are stopped, and it goes back to its queue without a failure counted against it."""
    lost = [p for p in live(job) if p.node_id == node_id]
    if not lost:
        return job, []
    why = f"node {node_id} lost"
    stopping = job.phase in (Phase.SCHEDULED, Phase.RUNNING)  # else its other ranks were told already
    job, _ = preempt(job, why)  # a cancelled job stays cancelled; its exits are recorded below
    for p in lost:
        job, _ = task_exited(job, job.attempt, p.rank, LOST_EXIT_CODE, at, why)
    return job, [p for p in live(job) if p.node_id != node_id] if stopping else []

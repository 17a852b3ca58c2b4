"""Job commands: ``submit``, ``queue``, ``status``, ``logs``, ``cancel``.

Each is a thin shell over one or two ``Client`` calls; formatting lives in ``cli.output`` and
user-facing failures are raised as ``CliError``/``ApiError`` and reported once by the group in
``cli.main``. Human progress goes to stderr, results to stdout, and ``-o json`` writes only JSON.
"""

from __future__ import annotations

import sys
import time
from typing import Any

import click

from hyperion.api.client import Client
from hyperion.cli.cluster import read_documents
from hyperion.cli.context import CliError, CliState
from hyperion.cli.output import (
    TERMINAL_PHASES,
    dump_json,
    explanation,
    job_detail,
    jobs_table,
    output_option,
    wait_exit_code,
)

ACTIVE_PHASES = ("pending", "scheduled", "running", "preempted")
POLL_INTERVAL_S = 0.2
WAIT_TIMEOUT_EXIT = 124  # as timeout(1) does


@click.command()
@click.argument("file", metavar="FILE.yaml|-")
@click.option("--wait", is_flag=True, help="Wait until the job ends; exit with its exit code.")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=None, metavar="S",
              help=f"With --wait: give up after S seconds (exit {WAIT_TIMEOUT_EXIT}); "
                   "the job keeps running.")
@output_option
@click.pass_obj
def submit(state: CliState, file: str, wait: bool, timeout: float | None, output: str) -> None:
    """Submit the Job documents in FILE.yaml (or - for stdin); print their ids.

    With --wait the exit code is the job's (1 if it failed without one, 130 if cancelled).
    """
    if timeout is not None and not wait:
        raise click.UsageError("--timeout only makes sense with --wait")
    documents = read_documents(file)
    others = [d for d in documents if d.kind != "Job"]
    if others:
        listed = ", ".join(f"{d.kind.lower()}/{d.name}" for d in others)
        raise CliError(f"{file}: {listed}: only Job documents can be submitted; "
                       f"use `hyperion apply -f {file}` for these", exit_code=2)
    client = state.client()
    human = output == "table"
    jobs: list[dict[str, Any]] = []
    for document in documents:
        try:
            job = client.submit_job(document.body)
        except Exception:
            if jobs and not human:  # the ids already printed in table mode; say them here too
                click.echo("submitted before the error: " + " ".join(j["id"] for j in jobs), err=True)
            raise
        jobs.append(job)
        if human:
            click.echo(job["id"])
    if not wait:
        if not human:
            click.echo(dump_json(jobs[0] if len(jobs) == 1 else {"items": jobs}))
        return
    finals = wait_for_jobs(client, [j["id"] for j in jobs], timeout,
                           on_change=_print_progress if human else None)
    if human:
        for job in finals:
            code = job.get("exit_code")
            suffix = f" (exit code {code})" if code is not None else ""
            click.echo(f"{job['id']} {job.get('phase')}{suffix}")
    else:
        click.echo(dump_json(finals[0] if len(finals) == 1 else {"items": finals}))
    codes = [wait_exit_code(job) for job in finals]
    raise click.exceptions.Exit(next((c for c in codes if c != 0), 0))


def _print_progress(job: dict[str, Any]) -> None:
    where = f" on {job['node']}" if job.get("node") else ""
    reason = f": {job['reason']}" if job.get("reason") and job.get("phase") == "pending" else ""
    click.echo(f"{job['id']}: {job.get('phase')}{where}{reason}", err=True)


def wait_for_jobs(client: Client, job_ids: list[str], timeout: float | None,
                  on_change: Any = None, sleep: Any = time.sleep,
                  clock: Any = time.monotonic) -> list[dict[str, Any]]:
    """Poll each job until its phase is terminal; return the final job objects in input order.

    ``on_change(job)`` is called whenever a job's phase is first seen or changes. Raises
    ``CliError`` (exit 124) after ``timeout`` seconds and (exit 130) on Ctrl-C; the jobs keep
    running either way.
    """
    deadline = None if timeout is None else clock() + timeout
    last_phase: dict[str, str | None] = {}
    final: dict[str, dict[str, Any]] = {}
    try:
        while True:
            for job_id in job_ids:
                if job_id in final:
                    continue
                job = client.get_job(job_id)
                phase = job.get("phase")
                if on_change is not None and last_phase.get(job_id, "") != phase:
                    on_change(job)
                last_phase[job_id] = phase
                if phase in TERMINAL_PHASES:
                    final[job_id] = job
            waiting = [j for j in job_ids if j not in final]
            if not waiting:
                return [final[j] for j in job_ids]
            if deadline is not None and clock() >= deadline:
                raise CliError(
                    f"timed out after {timeout:g} s waiting for {', '.join(waiting)} "
                    f"(phase {last_phase.get(waiting[0])}); it keeps running: "
                    f"`hyperion status {waiting[0]}`", exit_code=WAIT_TIMEOUT_EXIT)
            sleep(POLL_INTERVAL_S)
    except KeyboardInterrupt:
        waiting = [j for j in job_ids if j not in final]
        raise CliError(f"stopped waiting; {', '.join(waiting)} keeps running "
                       f"(stop it with `hyperion cancel {waiting[0]}`)", exit_code=130) from None


@click.command()
@click.option("--all", "all_phases", is_flag=True, help="Include finished jobs.")
@click.option("--team", metavar="T", help="Only jobs of team T.")
@output_option
@click.pass_obj
def queue(state: CliState, all_phases: bool, team: str | None, output: str) -> None:
    """List jobs: pending, scheduled, running and preempted (all phases with --all)."""
    body = state.client().list_jobs(None if all_phases else ACTIVE_PHASES, team=team)
    if output == "json":
        click.echo(dump_json(body))
        return
    items = body.get("items") or []
    if not items:
        what = "jobs" if all_phases else "active jobs (--all includes finished ones)"
        click.echo(f"no {what}" + (f" for team {team}" if team else ""), err=True)
        return
    click.echo(jobs_table(items, now=time.time()))
    total = body.get("total")
    if isinstance(total, int) and total > len(items):
        click.echo(f"(showing {len(items)} of {total})", err=True)


@click.command()
@click.argument("job")
@output_option
@click.pass_obj
def status(state: CliState, job: str, output: str) -> None:
    """Show everything about JOB: fields, placements and why it is where it is."""
    body = state.client().get_job(job)
    click.echo(dump_json(body) if output == "json" else job_detail(body, now=time.time()))


@click.command()
@click.argument("job")
@output_option
@click.pass_obj
def explain(state: CliState, job: str, output: str) -> None:
    """Why JOB is pending: its place in the queue, who is ahead, the reasons, an estimated start."""
    body = state.client().explain_job(job)
    click.echo(dump_json(body) if output == "json" else explanation(body, now=time.time()))


@click.command()
@click.argument("job")
@click.option("-f", "--follow", is_flag=True, help="Keep streaming until the job ends.")
@click.option("--rank", type=click.IntRange(min=0), default=0, show_default=True,
              help="Which replica's log.")
@click.pass_obj
def logs(state: CliState, job: str, follow: bool, rank: int) -> None:
    """Print JOB's output (stdout and stderr of one rank), as bytes."""
    out = sys.stdout.buffer
    for chunk in state.client().job_logs(job, rank=rank, follow=follow):
        out.write(chunk)
        out.flush()


@click.command()
@click.argument("job")
@click.pass_obj
def cancel(state: CliState, job: str) -> None:
    """Cancel JOB (its processes are stopped; it is not run again)."""
    body = state.client().cancel_job(job)
    click.echo(f"{job} {body.get('phase') or 'cancelled'}")


COMMANDS = (submit, queue, status, explain, logs, cancel)

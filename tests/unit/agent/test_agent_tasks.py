"""TaskSupervisor in-process: real processes, real journal, reports collected from the callback."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time

from hyperion.agent.records import TaskJournal, TaskRecord, boot_ticks, load_records
from hyperion.agent.tasks import RESTART_MESSAGE, TaskSupervisor, kill_leftover_group, report_message
from hyperion.api._generated.hyperion.v1 import agent_pb2

WAIT = 10.0


def start_msg(job: str, command: list[str], **fields) -> agent_pb2.StartTask:
    return agent_pb2.StartTask(task=agent_pb2.TaskRef(job_id=job), command=command, **fields)


def supervise(tmp_path, scenario):
    """Runs ``scenario(supervisor, reports)`` inside an event loop with a fresh supervisor."""
    async def main():
        reports: list[tuple[str, str, int]] = []
        journal = TaskJournal(tmp_path / "tasks.jsonl")
        sup = TaskSupervisor(tmp_path, "n1", journal,
                             lambda r: reports.append((r.job_id, r.state, r.exit_code)),
                             base_env={"PATH": os.environ["PATH"], "CUDA_VISIBLE_DEVICES": "0,1,2,3"})
        try:
            return await asyncio.wait_for(scenario(sup, reports), WAIT)
        finally:
            await sup.stop_all(0.1, "test over")
            sup.close()
    return asyncio.run(main())


async def finished(reports, job: str) -> tuple[str, str, int]:
    while True:
        for r in reports:
            if r[0] == job and r[1] in ("exited", "failed"):
                return r
        await asyncio.sleep(0.01)


def test_exit_codes_signals_and_failures(tmp_path):
    async def scenario(sup, reports):
        sup.start(start_msg("ok", ["true"]))
        sup.start(start_msg("three", ["sh", "-c", "exit 3"]))
        sup.start(start_msg("term", ["kill -TERM $$"]))
        sup.start(start_msg("nope", ["/definitely/missing", "--flag"]))
        sup.start(start_msg("shell", ["/definitely/missing"]))  # the shell says 127
        sup.start(start_msg("empty", []))
        return {job: await finished(reports, job) for job in ("ok", "three", "term", "nope", "shell", "empty")}
    got = supervise(tmp_path, scenario)
    assert got == {"ok": ("ok", "exited", 0), "three": ("three", "exited", 3),
                   "term": ("term", "exited", 143), "nope": ("nope", "failed", 127),
                   "shell": ("shell", "exited", 127), "empty": ("empty", "failed", 127)}
    assert "hyperiond: cannot run '/definitely/missing'" in (tmp_path / "tasks/nope/0-0.log").read_text()


def test_env_overrides_the_agents_and_gpus_are_exactly_the_tasks(tmp_path):
    async def scenario(sup, reports):
        sup.start(start_msg("env", ["env"], env={"RANK": "99", "X": "1"}, world_size=2))
        await finished(reports, "env")
    supervise(tmp_path, scenario)
    env = dict(line.split("=", 1) for line in (tmp_path / "tasks/env/0-0.log").read_text().splitlines())
    assert env["X"] == "1" and env["RANK"] == "0" and env["WORLD_SIZE"] == "2"
    assert env["CUDA_VISIBLE_DEVICES"] == "" and "HYPERION_CHECKPOINT_DIR" not in env


def test_job_ids_cannot_escape_the_data_dir(tmp_path):
    async def scenario(sup, reports):
        sup.start(start_msg("../../evil", ["pwd"]))
        await finished(reports, "../../evil")
        return sup.log_path(("../../evil", 0, 0))
    (tmp_path / "data").mkdir()
    log_path = supervise(tmp_path / "data", scenario)
    assert log_path == f"{tmp_path}/data/tasks/%2E%2E%2F%2E%2E%2Fevil/0-0.log"
    assert os.path.exists(log_path) and not (tmp_path / "evil").exists()


def test_the_exit_of_a_task_kills_what_it_left_in_its_group(tmp_path):
    async def scenario(sup, reports):
        sup.start(start_msg("bg", [f"sleep 60 & echo $! > {tmp_path}/bg.pid"]))
        await finished(reports, "bg")
        return int((tmp_path / "bg.pid").read_text())
    pid = supervise(tmp_path, scenario)
    deadline = time.monotonic() + 5
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not _alive(pid)


def test_recover_kills_leftover_groups_but_not_a_reused_pid(tmp_path):
    ticks = boot_ticks()
    ours = subprocess.Popen(["sleep", "60"], start_new_session=True)
    reused = subprocess.Popen(["sleep", "60"], start_new_session=True)
    journal = TaskJournal(tmp_path / "tasks.jsonl")
    for job, proc, start in (("ours", ours, ticks), ("reused", reused, ticks - 10_000)):
        record = TaskRecord(job, 0, 0, pid=proc.pid, pgid=proc.pid, start_ticks=start)
        journal.put(record)
        journal.put(record, "running")
    journal.close()
    try:
        async def scenario(sup, reports):
            return sup.recover()
        killed = supervise(tmp_path, scenario)
        assert {r.job_id for r in killed} == {"ours", "reused"}
        assert ours.wait(5) == -signal.SIGKILL
        assert reused.poll() is None, "a process that merely reused the pid was killed"
        records = load_records(tmp_path / "tasks.jsonl")
        assert {(r.state, r.exit_code, r.message) for r in records.values()} == {
            ("exited", 137, RESTART_MESSAGE)}
        report = report_message(records[("ours", 0, 0)], 12)
        assert (report.state, report.exit_code, report.log_size) == (agent_pb2.TaskReport.EXITED, 137, 12)
    finally:
        reused.kill()
        reused.wait()
    assert kill_leftover_group(reused.pid, 0) is False  # gone


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_without_pidfds_exits_are_reaped_on_sigchld(tmp_path):
    async def scenario(sup, reports):
        sup._use_pidfd = False  # as on a kernel older than 5.3
        sup._reap_on_sigchld()
        sup.start(start_msg("a", ["exit 5"]))
        sup.start(start_msg("b", ["sleep 0.2; exit 6"]))
        return await finished(reports, "a"), await finished(reports, "b")
    assert supervise(tmp_path, scenario) == (("a", "exited", 5), ("b", "exited", 6))


# ---- the fast path: standby workers and freezing ------------------------------------------------
def supervise_with_pool(tmp_path, scenario):
    from hyperion.agent.standby import StandbyPool

    async def main():
        reports: list[tuple[str, str, int]] = []
        pool = StandbyPool(1)
        pool.fill()
        sup = TaskSupervisor(tmp_path, "n1", TaskJournal(tmp_path / "tasks.jsonl"),
                             lambda r: reports.append((r.job_id, r.state, r.exit_code)),
                             base_env={"PATH": os.environ["PATH"]}, standby=pool)
        try:
            return await asyncio.wait_for(scenario(sup, reports, pool), WAIT)
        finally:
            await sup.stop_all(0.1, "test over")
            sup.close()
            pool.close()
    return asyncio.run(main())


def process_state(pid: int) -> str:
    try:
        stat = open(f"/proc/{pid}/stat").read()
    except OSError:
        return "gone"
    return stat[stat.rfind(")") + 2]


def test_an_urgent_task_starts_from_the_standby_worker_and_a_frozen_one_checkpoints_when_stopped(tmp_path):
    import sys

    async def scenario(sup, reports, pool):
        worker_pid = pool._ready[0].proc.pid
        code = ("import signal, sys, time\n"
                "signal.signal(signal.SIGTERM, lambda *a: (print('checkpointed', flush=True), sys.exit(143)))\n"
                "print('up', flush=True)\n"
                "while True: time.sleep(0.01)\n")
        sup.start(start_msg("victim", [sys.executable, "-c", code]))
        log = tmp_path / "tasks/victim/0-0.log"
        while "up" not in (log.read_text() if log.exists() else ""):
            await asyncio.sleep(0.01)
        victim_pid = sup.journal.records[("victim", 0, 0)].pid
        assert sup.freeze(("victim", 0, 0)) and not sup.freeze(("victim", 0, 0))  # frozen once
        while process_state(victim_pid) != "T":
            await asyncio.sleep(0.01)
        sup.start(start_msg("urgent", [sys.executable, "-c", "print('urgent ran')"], urgent=True))
        urgent = sup.journal.records[("urgent", 0, 0)]
        sup.stop(("victim", 0, 0), 5.0, "preempted for urgent")  # thaws it with the request
        return worker_pid, urgent.pid, await finished(reports, "urgent"), await finished(reports, "victim")

    worker_pid, urgent_pid, urgent, victim = supervise_with_pool(tmp_path, scenario)
    assert urgent_pid == worker_pid and urgent == ("urgent", "exited", 0)
    assert "urgent ran" in (tmp_path / "tasks/urgent/0-0.log").read_text()
    assert victim == ("victim", "exited", 143) and "checkpointed" in (tmp_path / "tasks/victim/0-0.log").read_text()


def test_an_urgent_task_is_spawned_when_its_standby_worker_died_after_it_was_taken(tmp_path):
    import sys

    async def scenario(sup, reports, pool):
        worker = pool.take()
        worker.proc.kill()  # it dies after it was taken: handing it the task breaks its pipe
        worker.proc.wait()
        pool.take = lambda: worker
        sup.start(start_msg("urgent", [sys.executable, "-c", "print('spawned')"], urgent=True))
        return worker.proc.pid, sup.journal.records[("urgent", 0, 0)].pid, await finished(reports, "urgent")

    worker_pid, pid, urgent = supervise_with_pool(tmp_path, scenario)
    assert pid != worker_pid and urgent == ("urgent", "exited", 0)
    assert "spawned" in (tmp_path / "tasks/urgent/0-0.log").read_text()

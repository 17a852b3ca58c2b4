"""The durable task journal: replay, transitions, torn lines, compaction, pid-reuse checks."""

from __future__ import annotations

import os
import subprocess

import pytest

from hyperion.agent.records import (
    START_SLACK_TICKS,
    TaskJournal,
    TaskRecord,
    TransitionError,
    boot_ticks,
    is_recorded_process,
    load_records,
    process_start_ticks,
)


def test_the_last_line_per_task_wins_and_survives_a_reopen(tmp_path):
    path = tmp_path / "tasks.jsonl"
    journal = TaskJournal(path)
    a, b = TaskRecord("j", 0, 0), TaskRecord("j", 0, 1)
    journal.put(a)
    journal.put(b)
    a.pid = a.pgid = 42
    journal.put(a, "running")
    a.exit_code = 3
    journal.put(a, "exited")
    journal.close()
    again = TaskJournal(path)
    assert set(again.records) == {("j", 0, 0), ("j", 0, 1)}
    got = again.records[("j", 0, 0)]
    assert (got.state, got.pid, got.exit_code) == ("exited", 42, 3)


def test_acked_tasks_are_forgotten_only_when_final(tmp_path):
    journal = TaskJournal(tmp_path / "tasks.jsonl")
    running = TaskRecord("r", 0, 0)
    journal.put(running)
    journal.put(running, "running")
    assert journal.forget(running.key) is None  # a running task cannot be acked away
    done = TaskRecord("d", 1, 0)
    journal.put(done)
    journal.put(done, "failed")
    assert journal.forget(done.key) is done
    assert journal.forget(done.key) is None
    journal.close()
    assert set(load_records(tmp_path / "tasks.jsonl")) == {("r", 0, 0)}


@pytest.mark.parametrize(("path", "bad"), [
    (["running"], "starting"), (["running", "exited"], "running"), (["failed"], "running"),
    (["exited"], "starting"),
])
def test_transitions_outside_the_table_are_refused(tmp_path, path, bad):
    journal = TaskJournal(tmp_path / "tasks.jsonl")
    record = TaskRecord("j", 0, 0)
    journal.put(record)
    for state in path:
        journal.put(record, state)
    with pytest.raises(TransitionError, match="not allowed"):
        journal.put(TaskRecord("j", 0, 0), bad)


def test_a_torn_last_line_is_ignored(tmp_path):
    path = tmp_path / "tasks.jsonl"
    journal = TaskJournal(path)
    journal.put(TaskRecord("j", 0, 0))
    journal.close()
    with open(path, "a") as f:
        f.write('{"job_id": "k", "attempt": 0, "ra')
    assert set(load_records(path)) == {("j", 0, 0)}


def test_compaction_keeps_one_line_per_live_task(tmp_path):
    path = tmp_path / "tasks.jsonl"
    journal = TaskJournal(path)
    for i in range(700):
        record = TaskRecord(f"j{i}", 0, 0)
        journal.put(record)
        journal.put(record, "failed")
        journal.forget(record.key)
    keep = TaskRecord("keep", 0, 0)
    journal.put(keep)
    journal.close()
    lines = path.read_text().splitlines()
    assert len(lines) < 1000
    assert set(load_records(path)) == {("keep", 0, 0)}


def test_a_recorded_process_is_told_from_one_that_reused_its_pid():
    before = boot_ticks()
    proc = subprocess.Popen(["sleep", "5"])
    try:
        assert is_recorded_process(proc.pid, before) is True
        assert is_recorded_process(proc.pid, before - START_SLACK_TICKS - 100) is False
        assert is_recorded_process(proc.pid, 0) is None
        assert process_start_ticks(proc.pid) >= before - 1
    finally:
        proc.kill()
        proc.wait()
    assert is_recorded_process(proc.pid, before) is None
    assert process_start_ticks(os.getpid()) <= before

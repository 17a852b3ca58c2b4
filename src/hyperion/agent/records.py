"""Durable task records: what this agent started, so that a restarted agent never starts a task
twice and can kill the process groups its previous incarnation left behind.

The journal is ``DATA/tasks.jsonl``: one JSON object per line, appended with a single
``write``; for each task the last line wins. It is rewritten atomically (temp file + rename)
when it holds mostly dead lines, and once at start-up. A torn last line (the agent was killed
mid-write) is ignored. Example line::

    {"job_id": "j1", "attempt": 0, "rank": 2, "state": "running", "pid": 4242, "pgid": 4242,
     "start_ticks": 918273, "exit_code": 0, "message": "", "at": 1700000000.5}

States (allowed transitions in ``TRANSITIONS``):
    starting   written before the process is spawned (crash-safe: never started twice)
    running    spawned; ``pid``/``pgid`` name the process group. ``start_ticks`` is the boot
               clock (CLOCK_BOOTTIME, in clock ticks) read just before the spawn: the leader's
               start time in /proc/PID/stat (field 22) is at most ``START_SLACK_TICKS`` away
               from it, which tells our process from an unrelated one that reused the pid
    exited     the process exited, or was killed; ``exit_code`` is final
    failed     it could not be started (FAILED_TO_START)
    acked      the control plane recorded the final report; the task is forgotten

This file format is an interface: ``providers/local.py`` reads it to clean up after an agent
that died, and must be kept in step.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

TaskKey = tuple[str, int, int]  # (job_id, attempt, rank)

LIVE = frozenset({"starting", "running"})
FINAL = frozenset({"exited", "failed"})
TRANSITIONS: dict[str, frozenset[str]] = {
    "starting": frozenset({"running", "failed", "exited"}),
    "running": frozenset({"exited"}),
    "exited": frozenset({"acked"}),
    "failed": frozenset({"acked"}),
    "acked": frozenset(),
}


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
START_SLACK_TICKS = 2 * CLOCK_TICKS  # how late after start_ticks a spawned process may start


class TransitionError(ValueError):
    pass


@dataclass(slots=True)
class TaskRecord:
    job_id: str
    attempt: int
    rank: int
    state: str = "starting"
    pid: int = 0
    pgid: int = 0
    start_ticks: int = 0
    exit_code: int = 0
    message: str = ""
    at: float = 0.0

    @property
    def key(self) -> TaskKey:
        return (self.job_id, self.attempt, self.rank)


class TaskJournal:
    """The agent's task records, in memory and in the append-only journal file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.records: dict[TaskKey, TaskRecord] = load_records(path)
        self._lines = 0
        self._fd = -1
        self.compact()

    def put(self, record: TaskRecord, state: str | None = None) -> None:
        """Writes ``record`` (moved to ``state`` when given) after checking the transition."""
        old = self.records.get(record.key)
        if state is not None:
            if old is not None and state not in TRANSITIONS[old.state]:
                raise TransitionError(f"task {record.key}: {old.state} -> {state} is not allowed")
            record.state = state
        os.write(self._fd, _line(record).encode())
        self._lines += 1
        if record.state == "acked":
            self.records.pop(record.key, None)
        else:
            self.records[record.key] = record
        if self._lines > 1000 and self._lines > 4 * len(self.records):
            self.compact()

    def forget(self, key: TaskKey) -> TaskRecord | None:
        record = self.records.get(key)
        if record is not None and record.state in FINAL:
            self.put(record, "acked")
            return record
        return None

    def compact(self) -> None:
        """Rewrites the journal with one line per known task, atomically."""
        tmp = self.path.with_suffix(".tmp")
        with open(tmp, "w") as out:
            out.writelines(_line(record) for record in self.records.values())
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, self.path)
        if self._fd >= 0:
            os.close(self._fd)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
        self._lines = len(self.records)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def _line(r: TaskRecord) -> str:
    return json.dumps({
        "job_id": r.job_id, "attempt": r.attempt, "rank": r.rank, "state": r.state, "pid": r.pid,
        "pgid": r.pgid, "start_ticks": r.start_ticks, "exit_code": r.exit_code,
        "message": r.message, "at": r.at}, separators=(",", ":")) + "\n"


def load_records(path: Path) -> dict[TaskKey, TaskRecord]:
    """Replays a journal: the last line per task wins; acked tasks and torn lines are dropped."""
    records: dict[TaskKey, TaskRecord] = {}
    try:
        text = path.read_text()
    except FileNotFoundError:
        return records
    for line in text.splitlines():
        try:
            record = TaskRecord(**json.loads(line))
        except (ValueError, TypeError):
            continue  # a line torn by a crash mid-write
        if record.state == "acked":
            records.pop(record.key, None)
        else:
            records[record.key] = record
    return records


def boot_ticks() -> int:
    """Now, in clock ticks since boot: the unit of a process's start time in /proc."""
    return int(time.clock_gettime(time.CLOCK_BOOTTIME) * CLOCK_TICKS)


def process_start_ticks(pid: int) -> int | None:
    """The start time of process ``pid`` in clock ticks since boot; None if there is none."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    fields = stat[stat.rfind(b")") + 2:].split()
    return int(fields[19]) if len(fields) > 19 else None


def is_recorded_process(pid: int, start_ticks: int) -> bool | None:
    """Whether the live process ``pid`` is the one recorded with ``start_ticks``.

    None when no process ``pid`` exists (its group may still have members), or when the
    record has no start time to compare with.
    """
    actual = process_start_ticks(pid)
    if actual is None or not start_ticks:
        return None
    return -1 <= actual - start_ticks <= START_SLACK_TICKS

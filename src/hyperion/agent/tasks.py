"""Task lifecycle on the node: spawn, reap, stop, and recover after an agent restart.

Glossary:
    task        one rank of one attempt of a job, named by its key (job_id, attempt, rank)
    group       every task runs in its own session, so its process group id is its pid; stops
                and kills always address the whole group (the task and everything it forked).
                The group's leader is killed when the agent dies (PR_SET_PDEATHSIG)
    reap        collect an exit status. Each task's pid gets a pidfd watched by the event loop
                (``loop.add_reader``): no polling, no thread per task. When the leader exits
                the rest of its group is killed, so an EXITED task has no processes left and
                its log is final.
    finished    exited or failed to start; the record stays (and is reported in every Hello)
                until the control plane acks it
    urgent      a task the control plane marks urgent starts from a warm standby worker when
                one is ready (``standby.py``): no fork or interpreter start on its path
    frozen      stopped in place by the freezer to hand its GPUs to an urgent task; a stop
                thaws it (SIGTERM, then SIGCONT) so that it can checkpoint in its grace period

Every state change is written to the ``TaskJournal`` before it is reported. Reports go out
through the ``on_report`` callback as ``TaskRecord``s; ``report_message`` makes the wire form.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import os
import re
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from hyperion.agent.records import (
    LIVE,
    TaskJournal,
    TaskKey,
    TaskRecord,
    boot_ticks,
    is_recorded_process,
)
from hyperion.agent.standby import SignalFreezer, StandbyPool, python_entry, task_argv
from hyperion.api._generated.hyperion.v1 import agent_pb2

log = logging.getLogger("hyperiond.tasks")

FAILED_TO_START_CODE = 127
RESTART_MESSAGE = "agent restarted; task was killed"
STATES = {"running": agent_pb2.TaskReport.RUNNING, "starting": agent_pb2.TaskReport.RUNNING,
          "exited": agent_pb2.TaskReport.EXITED, "failed": agent_pb2.TaskReport.FAILED_TO_START}


@dataclass(slots=True)
class _Live:
    proc: subprocess.Popen
    pidfd: int = -1
    kill_timer: asyncio.TimerHandle | None = None
    stop_reason: str = ""
    checkpoint_dir: str = ""
    frozen: bool = False
    status_fd: int = -1  # a standby worker's status pipe, until it reads EOF (started) or an error


class TaskSupervisor:
    """Runs the node's tasks; construct it inside the running event loop."""

    def __init__(self, data_dir: Path, node_id: str, journal: TaskJournal,
                 on_report: Callable[[TaskRecord], None], base_env: dict[str, str] | None = None,
                 standby: StandbyPool | None = None, freezer: SignalFreezer | None = None,
                 agent_socket: str = ""):
        self.data_dir, self.node_id, self.journal, self.on_report = data_dir, node_id, journal, on_report
        self.base_env = dict(os.environ if base_env is None else base_env)
        self.standby = standby
        self.freezer = freezer or SignalFreezer()
        self.agent_socket = agent_socket
        self._tasks_dir = os.path.join(data_dir, "tasks")
        self._live: dict[TaskKey, _Live] = {}
        self._idle = asyncio.Event()
        self._idle.set()
        self._loop = asyncio.get_running_loop()
        self._devnull = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
        self._use_pidfd = hasattr(os, "pidfd_open")
        self._sigchld = False
        if not self._use_pidfd:
            self._reap_on_sigchld()

    # ---- paths -------------------------------------------------------------------------------
    def log_path(self, key: TaskKey) -> str:
        """DATA/tasks/<job_id>/<attempt>-<rank>.log"""
        return f"{self._tasks_dir}/{_safe_name(key[0])}/{key[1]}-{key[2]}.log"

    def default_workdir(self, key: TaskKey) -> str:
        """DATA/tasks/<job_id>/<attempt>-<rank>/"""
        return f"{self._tasks_dir}/{_safe_name(key[0])}/{key[1]}-{key[2]}"

    # ---- commands ----------------------------------------------------------------------------
    def start(self, msg: agent_pb2.StartTask) -> None:
        key: TaskKey = (msg.task.job_id, msg.task.attempt, msg.task.rank)
        known = self.journal.records.get(key)
        if known is not None:  # idempotent: say where it is instead of starting it again
            self.on_report(known)
            return
        record = TaskRecord(*key, at=time.time())
        self.journal.put(record)
        if not msg.task.job_id:
            return self._fail(record, "StartTask has an empty job_id")
        if not msg.command:
            return self._fail(record, "StartTask has an empty command")
        log_path = self.log_path(key)
        try:
            os.makedirs(os.path.dirname(log_path), exist_ok=True)
        except OSError as exc:
            return self._fail(record, f"cannot create the log directory: {exc}")
        if msg.working_dir:
            cwd = msg.working_dir
            if not os.path.isdir(cwd):
                return self._fail(record, f"working_dir {cwd!r} does not exist on {self.node_id}")
        else:
            cwd = self.default_workdir(key)
            try:
                os.makedirs(cwd, exist_ok=True)
            except OSError as exc:
                return self._fail(record, f"cannot create the working directory: {exc}")
        worker = self.standby.take() if msg.urgent and self.standby is not None else None
        if worker is not None:
            argv, env = task_argv(list(msg.command)), self._env(msg)
            try:
                worker.hand({"argv": argv, "env": env, "cwd": cwd, "log": log_path,
                             "python": python_entry(argv, env, self.standby.python)})
            except OSError as exc:  # it died since it was taken: the ordinary path then
                log.warning("standby worker %d lost (%s); spawning %s", worker.proc.pid, exc, key)
                worker.discard()
                worker = None
            self._loop.call_later(0.05, self.standby.fill)  # a replacement, off the critical path
        if worker is not None:
            proc, start_ticks = worker.proc, worker.start_ticks
        else:
            proc, start_ticks = self._spawn(record, msg, cwd, log_path)
            if proc is None:
                return None
            self.freezer.adopt(proc.pid)
        record.pid = record.pgid = proc.pid
        record.start_ticks = start_ticks
        record.at = time.time()
        self.journal.put(record, "running")
        live = self._live[key] = _Live(proc, checkpoint_dir=msg.checkpoint_dir)
        self._idle.clear()
        if worker is not None:
            live.status_fd = worker.status_fd
            self._loop.add_reader(worker.status_fd, self._on_status, key)
        if self._use_pidfd:
            try:
                live.pidfd = os.pidfd_open(proc.pid)
                self._loop.add_reader(live.pidfd, self._on_exit, key)
            except OSError as exc:  # old kernel, or out of file descriptors
                log.warning("pidfd_open failed (%s): reaping on SIGCHLD", exc)
                self._use_pidfd = False
                self._reap_on_sigchld()
        log.debug("started %s pid %d%s", key, proc.pid, " (standby worker)" if worker else "")
        self.on_report(record)

    def _spawn(self, record: TaskRecord, msg: agent_pb2.StartTask, cwd: str,
               log_path: str) -> tuple[subprocess.Popen | None, int]:
        argv = ["/bin/sh", "-c", msg.command[0]] if len(msg.command) == 1 else list(msg.command)
        start_ticks = boot_ticks()
        try:
            log_fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            self._fail(record, f"cannot open the log file: {exc}")
            return None, 0
        try:
            proc = subprocess.Popen(
                argv, cwd=cwd, env=self._env(msg), stdin=self._devnull, stdout=log_fd,
                stderr=log_fd, start_new_session=True, close_fds=True, preexec_fn=_die_with_agent,
            )
        except (OSError, ValueError, subprocess.SubprocessError) as exc:
            detail = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            self._fail(record, f"cannot run {argv[0]!r}: {detail}")
            return None, 0
        finally:
            os.close(log_fd)
        return proc, start_ticks

    def freeze(self, key: TaskKey) -> bool:
        """Stop the task's processes in place (to hand its GPUs to an urgent task); a later
        ``stop`` thaws it so that it can checkpoint."""
        live = self._live.get(key)
        if live is None or live.frozen:
            return False
        live.frozen = self.freezer.freeze(live.proc.pid)
        return live.frozen

    def checkpoint_dir(self, key: TaskKey) -> str | None:
        """The checkpoint directory of a running task, None if it is not running."""
        live = self._live.get(key)
        return live.checkpoint_dir if live is not None else None

    def stop(self, key: TaskKey, grace_s: float, reason: str = "") -> None:
        """SIGTERM to the task's group; SIGKILL to the group if it is alive after ``grace_s``."""
        live = self._live.get(key)
        if live is None:
            known = self.journal.records.get(key)
            if known is not None:
                self.on_report(known)  # already finished: repeat the final report
            return
        if live.kill_timer is None:
            live.stop_reason = reason or "stopped"
            log.info("stopping %s (%s), grace %.1fs", key, live.stop_reason, grace_s)
            self._signal_group(live.proc.pid, signal.SIGTERM if grace_s > 0 else signal.SIGKILL)
            live.kill_timer = self._loop.call_later(max(grace_s, 0.0), self._force_kill, key)
        if live.frozen:  # SIGTERM is delivered as it continues: it checkpoints, then exits
            live.frozen = False
            self.freezer.thaw(live.proc.pid)

    def ack(self, key: TaskKey) -> bool:
        return self.journal.forget(key) is not None

    def running(self) -> list[TaskKey]:
        return list(self._live)

    async def stop_all(self, grace_s: float, reason: str) -> None:
        for key in list(self._live):
            self.stop(key, grace_s, reason)
        try:
            await asyncio.wait_for(self._idle.wait(), grace_s + 5.0)
        except TimeoutError:
            log.error("%d tasks did not exit after SIGKILL", len(self._live))

    def recover(self) -> list[TaskRecord]:
        """Kills the groups of tasks a previous agent left running; they are reported as 137."""
        killed = []
        for record in list(self.journal.records.values()):
            if record.state not in LIVE:
                continue
            if record.pgid:
                kill_leftover_group(record.pgid, record.start_ticks)
            record.exit_code, record.message, record.at = 137, RESTART_MESSAGE, time.time()
            self.journal.put(record, "exited")
            killed.append(record)
        if killed:
            log.warning("killed %d tasks left by a previous agent", len(killed))
        return killed

    def close(self) -> None:
        os.close(self._devnull)
        self.journal.close()

    # ---- reaping -----------------------------------------------------------------------------
    def _on_exit(self, key: TaskKey) -> None:
        live = self._live.get(key)
        if live is None or not _has_exited(live.proc.pid):
            return
        # The leader is a zombie until reaped, so its pgid cannot have been reused: kill the
        # rest of the group now, so that nothing of the task outlives its report.
        self._signal_group(live.proc.pid, signal.SIGKILL)
        code = live.proc.poll()
        if code is None:
            return
        if live.pidfd >= 0:
            self._loop.remove_reader(live.pidfd)
            os.close(live.pidfd)
        if live.status_fd >= 0:
            self._on_status(key)
        self.freezer.forget(live.proc.pid)
        if live.kill_timer is not None:
            live.kill_timer.cancel()
        del self._live[key]
        if not self._live:
            self._idle.set()
        record = self.journal.records[key]
        record.exit_code = 128 - code if code < 0 else code
        record.message = live.stop_reason or (f"killed by signal {-code}" if code < 0 else "")
        record.at = time.time()
        self.journal.put(record, "exited")
        log.debug("%s exited with %d", key, record.exit_code)
        self.on_report(record)

    def _on_status(self, key: TaskKey) -> None:
        """A standby worker's status pipe: EOF once the task runs; else why it could not run."""
        live = self._live.get(key)
        if live is None or live.status_fd < 0:
            return
        try:
            why = os.read(live.status_fd, 4096).decode(errors="replace")
        except BlockingIOError:
            return
        except OSError:
            why = ""
        self._loop.remove_reader(live.status_fd)
        os.close(live.status_fd)
        live.status_fd = -1
        if why:
            live.stop_reason = why
            try:
                with open(self.log_path(key), "a") as out:
                    out.write(f"hyperiond: {why}\n")
            except OSError:
                pass

    def _reap_on_sigchld(self) -> None:
        if not self._sigchld:
            self._sigchld = True
            self._loop.add_signal_handler(signal.SIGCHLD, self._reap_all)
            self._loop.call_soon(self._reap_all)  # children that exited before the handler

    def _reap_all(self) -> None:
        for key in list(self._live):
            self._on_exit(key)

    def _force_kill(self, key: TaskKey) -> None:
        live = self._live.get(key)
        if live is not None:
            log.info("%s still alive after its grace period: SIGKILL", key)
            self._signal_group(live.proc.pid, signal.SIGKILL)

    def _fail(self, record: TaskRecord, message: str) -> None:
        log.warning("task %s failed to start: %s", record.key, message)
        try:
            with open(self.log_path(record.key), "a") as out:
                out.write(f"hyperiond: {message}\n")
        except OSError:
            pass
        record.exit_code, record.message, record.at = FAILED_TO_START_CODE, message, time.time()
        self.journal.put(record, "failed")
        self.on_report(record)

    def _env(self, msg: agent_pb2.StartTask) -> dict[str, str]:
        env = dict(self.base_env)
        env.update(msg.env)
        t = msg.task
        world = str(msg.world_size or 1)
        env.update({
            "HYPERION_JOB_ID": t.job_id, "HYPERION_JOB_NAME": msg.name or t.job_id,
            "HYPERION_ATTEMPT": str(t.attempt), "HYPERION_RANK": str(t.rank),
            "HYPERION_WORLD_SIZE": world, "HYPERION_NODE_ID": self.node_id,
            "RANK": str(t.rank), "WORLD_SIZE": world,
            "CUDA_VISIBLE_DEVICES": ",".join(str(i) for i in msg.gpu_indices),
        })
        env.setdefault("CUDA_DEVICE_ORDER", "PCI_BUS_ID")  # CUDA numbering = NVML numbering
        if msg.checkpoint_dir:
            env["HYPERION_CHECKPOINT_DIR"] = msg.checkpoint_dir
        if msg.resume_from:
            env["HYPERION_RESUME_FROM"] = msg.resume_from
        if self.agent_socket:
            env["HYPERION_AGENT_SOCKET"] = self.agent_socket
        return env

    @staticmethod
    def _signal_group(pgid: int, sig: int) -> None:
        try:
            os.killpg(pgid, sig)
        except (ProcessLookupError, PermissionError):
            pass


_LIBC = ctypes.CDLL(None, use_errno=True)


def _die_with_agent() -> None:
    """In the child before exec: SIGKILL it when the agent dies (PR_SET_PDEATHSIG), so that a task
    never outlives its agent (a restarted agent kills what is left anyway) and a job requeued
    after its node was lost never runs twice."""
    _LIBC.prctl(1, signal.SIGKILL)


def _has_exited(pid: int) -> bool:
    """Whether child ``pid`` has exited, without reaping it."""
    try:
        return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return True  # already reaped; Popen.poll knows the status


def kill_leftover_group(pgid: int, start_ticks: int) -> bool:
    """SIGKILLs process group ``pgid`` unless its id now belongs to an unrelated process."""
    if pgid <= 1:
        return False
    if is_recorded_process(pgid, start_ticks) is False:
        return False  # the leader's pid was reused by a process that is not ours
    try:
        os.killpg(pgid, signal.SIGKILL)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def report_message(record: TaskRecord, log_size: int) -> agent_pb2.TaskReport:
    return agent_pb2.TaskReport(
        task=agent_pb2.TaskRef(job_id=record.job_id, attempt=record.attempt, rank=record.rank),
        state=STATES[record.state], exit_code=record.exit_code, at=record.at,
        log_size=log_size, message=record.message,
    )


def _safe_name(job_id: str) -> str:
    """A job id as a single path component: anything but [A-Za-z0-9_-] is %-escaped."""
    return re.sub(r"[^A-Za-z0-9_-]", lambda m: "".join(f"%{b:02X}" for b in m[0].encode()),
                  job_id) or "%"

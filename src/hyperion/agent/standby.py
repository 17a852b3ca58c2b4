"""The fast path's parts on the node: warm standby workers and the freezer.

Glossary:
    standby worker  a Python process started ahead of time (``standby_worker.py``), blocked on a
                    pipe until it is handed a task; handing it over is one ``write``, so an urgent
                    task starts without a fork, an interpreter start or (``--standby-preload``)
                    its heavy imports on its critical path. A Python command of the worker's own
                    interpreter runs in-process; anything else is ``exec``'d.
    pool            ``StandbyPool`` keeps ``size`` workers ready and starts a replacement, off the
                    critical path, for each one taken.
    freezer         stops a task's processes in place, in microseconds, so that its GPUs can be
                    handed to an urgent task before it has checkpointed: the cgroup v2 freezer
                    where the agent owns a cgroup it can write (``CgroupFreezer``), else SIGSTOP
                    to the process group (``SignalFreezer``). Thawing continues it.
"""

from __future__ import annotations

import collections
import json
import logging
import os
import shlex
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from hyperion.agent.records import boot_ticks

log = logging.getLogger("hyperiond.standby")

WORKER = str(Path(__file__).with_name("standby_worker.py"))
_SHELL_CHARS = set("|&;<>()$`\\\"'*?[]#~=%{}\n")


@dataclass(slots=True)
class Worker:
    proc: subprocess.Popen
    start_ticks: int
    status_fd: int  # read end of the close-on-exec status pipe: EOF once the task runs

    def hand(self, task: dict) -> None:
        """Give the worker its task (one write; the worker does the rest)."""
        stdin = self.proc.stdin
        assert stdin is not None
        stdin.write(json.dumps(task).encode())
        stdin.close()

    def discard(self) -> None:
        """Kill and reap a worker that will not be used."""
        if self.proc.stdin is not None:
            try:
                self.proc.stdin.close()
            except OSError:  # its pipe is broken: the worker is gone
                pass
        self.proc.kill()
        self.proc.wait()
        os.close(self.status_fd)


class StandbyPool:
    def __init__(self, size: int, preload: tuple[str, ...] = (), python: str = sys.executable) -> None:
        self.size, self.preload, self.python = size, preload, python
        self._ready: collections.deque[Worker] = collections.deque()

    def fill(self) -> None:
        while len(self._ready) < self.size:
            worker = self._spawn()
            if worker is None:
                return
            self._ready.append(worker)

    def take(self) -> Worker | None:
        """A ready worker, or None (the caller then spawns the task the ordinary way)."""
        while self._ready:
            worker = self._ready.popleft()
            if worker.proc.poll() is None:
                return worker
            worker.discard()
            log.warning("standby worker %d died (status %s); not used", worker.proc.pid, worker.proc.returncode)
        return None

    def close(self) -> None:
        while self._ready:
            worker = self._ready.popleft()
            if worker.proc.stdin is not None:
                worker.proc.stdin.close()  # EOF without a task: the worker exits
            os.close(worker.status_fd)
            try:
                worker.proc.wait(1.0)
            except subprocess.TimeoutExpired:
                worker.proc.kill()
                worker.proc.wait()

    def _spawn(self) -> Worker | None:
        status_r, status_w = os.pipe2(os.O_CLOEXEC)
        ticks = boot_ticks()
        try:
            proc = subprocess.Popen(
                [self.python, WORKER, str(os.getpid()), str(status_w), *self.preload],
                stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, start_new_session=True,
                close_fds=True, pass_fds=(status_w,))
        except OSError as exc:
            os.close(status_r)
            log.warning("cannot start a standby worker: %s", exc)
            return None
        finally:
            os.close(status_w)
        return Worker(proc, ticks, status_r)


def task_argv(command: list[str]) -> list[str]:
    """The argv a task runs: a single string goes through ``/bin/sh -c`` unless it is a plain
    command line without shell syntax, which is split as the shell would."""
    if len(command) != 1:
        return list(command)
    text = command[0]
    if not _SHELL_CHARS.isdisjoint(text):
        return ["/bin/sh", "-c", text]
    words = shlex.split(text)
    return words or ["/bin/sh", "-c", text]


def python_entry(argv: list[str], env: dict[str, str], python: str = sys.executable) -> list[str] | None:
    """How a standby worker of interpreter ``python`` can run ``argv`` in-process: ``["c", code,
    *args]``, ``["m", module, *args]`` or ``["script", path, *args]`` (prefixed with ``"u"`` for
    ``-u``); None if ``argv`` is not that interpreter with one of those forms."""
    if not argv or not os.path.basename(argv[0]).startswith("python"):
        return None
    exe = argv[0] if "/" in argv[0] else shutil.which(argv[0], path=env.get("PATH", os.defpath))
    # the same binary in the same directory: a venv's python is a link to its base interpreter,
    # but the two see different site-packages
    if exe is None or os.path.dirname(os.path.abspath(exe)) != os.path.dirname(os.path.abspath(python)) \
            or os.path.realpath(exe) != os.path.realpath(python):
        return None
    rest, unbuffered = argv[1:], False
    if rest and rest[0] == "-u":
        rest, unbuffered = rest[1:], True
    if len(rest) >= 2 and rest[0] in ("-c", "-m"):
        entry = [rest[0][1], rest[1], *rest[2:]]
    elif rest and not rest[0].startswith("-"):
        entry = ["script", *rest]
    else:
        return None
    return ["u", *entry] if unbuffered else entry


# ---- freezing -------------------------------------------------------------------------------
class SignalFreezer:
    """SIGSTOP / SIGCONT to a task's process group."""

    name = "sigstop"

    def freeze(self, pgid: int) -> bool:
        try:
            os.killpg(pgid, signal.SIGSTOP)
            return True
        except (ProcessLookupError, PermissionError):
            return False

    def thaw(self, pgid: int) -> None:
        try:
            os.killpg(pgid, signal.SIGCONT)
        except (ProcessLookupError, PermissionError):
            pass

    def adopt(self, pid: int) -> None:
        """Nothing to do: a process group needs no set-up."""

    def forget(self, pgid: int) -> None:
        """Nothing to clean up."""


class CgroupFreezer(SignalFreezer):
    """The cgroup v2 freezer: each task's process group gets a child cgroup of ``root`` (a cgroup
    the agent may write, e.g. a systemd unit with ``Delegate=yes``); freezing writes
    ``cgroup.freeze``, which also catches processes that left the group. Falls back to signals
    for a task it could not adopt."""

    name = "cgroup"

    def __init__(self, root: Path) -> None:
        self.root = root
        self._adopted: set[int] = set()  # process groups moved into their own cgroup

    def _dir(self, pgid: int) -> Path:
        return self.root / f"task-{pgid}"

    def adopt(self, pid: int) -> None:
        d = self._dir(pid)
        try:
            d.mkdir(exist_ok=True)
            (d / "cgroup.procs").write_text(str(pid))
            self._adopted.add(pid)
        except OSError as exc:
            log.debug("cannot move %d into %s: %s; it will be frozen with signals", pid, d, exc)
            self.forget(pid)

    def freeze(self, pgid: int) -> bool:
        if pgid in self._adopted:
            try:
                (self._dir(pgid) / "cgroup.freeze").write_text("1")
                return True
            except OSError:
                pass
        return super().freeze(pgid)

    def thaw(self, pgid: int) -> None:
        if pgid in self._adopted:
            try:
                (self._dir(pgid) / "cgroup.freeze").write_text("0")
                return
            except OSError:
                pass
        super().thaw(pgid)

    def forget(self, pgid: int) -> None:
        self._adopted.discard(pgid)
        try:
            self._dir(pgid).rmdir()
        except OSError:
            pass


def freezer(cgroup_root: Path | None = None) -> SignalFreezer:
    """The cgroup freezer under ``cgroup_root`` when it is a writable cgroup v2 directory (or,
    without one, the agent's own cgroup when it may create children there), else signals."""
    root = cgroup_root or _own_cgroup()
    if root is not None and (root / "cgroup.controllers").exists() and os.access(root, os.W_OK):
        sub = root / f"hyperiond-{os.getpid()}"
        try:
            sub.mkdir(exist_ok=True)
            return CgroupFreezer(sub)
        except OSError:
            pass
    return SignalFreezer()


def _own_cgroup() -> Path | None:
    try:
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            if line.startswith("0::"):
                return Path("/sys/fs/cgroup") / line[3:].lstrip("/")
    except OSError:
        pass
    return None

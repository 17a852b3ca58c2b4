"""A warm standby worker: a Python process the agent starts ahead of time, so that an urgent
task pays neither a fork nor an interpreter start (nor, with ``--standby-preload``, the import of
its heavy modules) on its critical path.

Run by path, not as part of the package (it must stay light):

    python standby_worker.py AGENT_PID STATUS_FD [MODULE ...]

It arranges to die with the agent (``PR_SET_PDEATHSIG``), imports the preload modules (and
everything it needs itself: nothing is imported once the task has arrived), then
blocks reading one JSON task from stdin until the agent writes it and closes the pipe:

    {"argv": [...], "env": {...}, "cwd": "...", "log": "...", "python": [kind, target, args...] | null}

It sets up the task's log (stdout and stderr), working directory and environment, and then:

- ``python`` null: ``execvpe`` of ``argv``; on success the close-on-exec status pipe reads EOF,
  on failure the worker writes why to it and exits 127;
- ``python`` ``["c", code, *args]``, ``["m", module, *args]`` or ``["script", path, *args]``
  (prefixed by ``"u"`` for ``python -u``):
  the command is this very interpreter (``python -c``, ``python -m``, ``python script.py``), so it
  runs here, in-process, after closing the status pipe. Interpreter options read at start-up
  (PYTHONHASHSEED, -X ...) are those of the worker; PYTHONPATH is applied to ``sys.path``.

It runs in its own session (the agent starts it so): its pid is the task's process group.
"""

import json
import os
import runpy
import signal
import sys


def _die_with_parent(agent_pid: int) -> None:
    try:
        import ctypes
        ctypes.CDLL(None, use_errno=True).prctl(1, 9)  # PR_SET_PDEATHSIG, SIGKILL
    except (OSError, AttributeError):
        pass
    if os.getppid() != agent_pid:  # the agent died before the line above took effect
        os._exit(0)


def _read_task() -> dict:
    chunks = []
    while True:
        chunk = os.read(0, 1 << 16)
        if not chunk:
            break
        chunks.append(chunk)
    if not chunks:  # the agent closed the pipe without a task: it is shutting down
        os._exit(0)
    return json.loads(b"".join(chunks))


def _setup(task: dict) -> None:
    log = os.open(task["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(log)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    os.chdir(task["cwd"])
    os.environ.clear()
    os.environ.update(task["env"])


def _run_python(kind: str, target: str, args: list[str]) -> None:
    env = os.environ
    extra = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    if env.get("PYTHONUNBUFFERED"):
        sys.stdout.reconfigure(write_through=True)
        sys.stderr.reconfigure(write_through=True)
    if kind == "c":
        sys.argv = ["-c", *args]
        sys.path[:0] = ["", *extra]
        code = compile(target, "<string>", "exec")
        exec(code, {"__name__": "__main__", "__builtins__": __builtins__})  # noqa: S102 - the task's own code
    elif kind == "m":
        sys.argv = [target, *args]
        sys.path[:0] = [os.getcwd(), *extra]
        runpy.run_module(target, run_name="__main__", alter_sys=True)
    else:
        sys.argv = [target, *args]
        sys.path[:0] = [os.path.dirname(os.path.abspath(target)), *extra]
        runpy.run_path(target, run_name="__main__")


def main() -> None:
    agent_pid, status_fd = int(sys.argv[1]), int(sys.argv[2])
    os.set_inheritable(status_fd, False)  # EOF on exec: an exec'd task must not hold it open
    preload = sys.argv[3:]
    del sys.path[0]  # this file's directory: the task's imports must not see the agent's modules
    _die_with_parent(agent_pid)
    for name in preload:
        try:
            __import__(name)
        except Exception as exc:  # noqa: BLE001 - a bad preload must not cost the node its fast path
            print(f"hyperiond standby worker: cannot preload {name}: {exc}", file=sys.stderr)
    task = _read_task()
    _setup(task)
    python = task.get("python")
    if python is None:
        for sig in (signal.SIGPIPE, signal.SIGXFSZ):  # as subprocess's restore_signals does
            signal.signal(sig, signal.SIG_DFL)
        argv = task["argv"]
        try:
            os.execvpe(argv[0], argv, task["env"])
        except OSError as exc:
            os.write(status_fd, f"cannot run {argv[0]!r}: {exc.strerror or exc}".encode())
            os._exit(127)
    os.close(status_fd)
    if python[0] == "u":  # ["u", kind, target, args...]: python -u
        python = python[1:]
        sys.stdout.reconfigure(write_through=True)
        sys.stderr.reconfigure(write_through=True)
    _run_python(python[0], python[1], list(python[2:]))


if __name__ == "__main__":
    main()

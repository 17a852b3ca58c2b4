"""The fast path's parts on the node: ``task_argv``, ``python_entry``, warm standby workers run as
real processes (in-process Python, ``exec``, failures) and the freezers on real process groups.

Glossary:
    probe   a small Python program a task runs in-process; it writes what it saw (argv, cwd,
            environment, ``sys.path[0]``, stdout buffering) as JSON to the file named by ``$OUT``.
"""

from __future__ import annotations

import json
import os
import re
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hyperion.agent.standby import (
    WORKER,
    CgroupFreezer,
    SignalFreezer,
    StandbyPool,
    Worker,
    freezer,
    python_entry,
    task_argv,
)

WAIT_S = 20.0
PROBE = """\
import json, os, sys
print("hello from the task")
with open(os.environ["OUT"], "w") as f:
    json.dump({"argv": sys.argv, "cwd": os.getcwd(), "x": os.environ.get("X"), "env": sorted(os.environ),
               "name": __name__, "path0": sys.path[0], "path": sys.path,
               "write_through": sys.stdout.write_through}, f)
"""


# ---- task_argv ------------------------------------------------------------------------------
@pytest.mark.parametrize("command, expected", [
    ([], []),
    (["ls", "-l"], ["ls", "-l"]),
    (["echo", "a | b", "$HOME"], ["echo", "a | b", "$HOME"]),  # a list is never re-parsed
    (["ls"], ["ls"]),
    (["echo hi there"], ["echo", "hi", "there"]),
    (["  train.py   --epochs 3\t--lr 0.1 "], ["train.py", "--epochs", "3", "--lr", "0.1"]),
    ([""], ["/bin/sh", "-c", ""]),
    (["   "], ["/bin/sh", "-c", "   "]),
    (["ls | wc -l"], ["/bin/sh", "-c", "ls | wc -l"]),
    (["echo hi > out.txt"], ["/bin/sh", "-c", "echo hi > out.txt"]),
    (["cat < in.txt"], ["/bin/sh", "-c", "cat < in.txt"]),
    (["echo $HOME"], ["/bin/sh", "-c", "echo $HOME"]),
    (["echo ${HOME}"], ["/bin/sh", "-c", "echo ${HOME}"]),
    (["echo `date`"], ["/bin/sh", "-c", "echo `date`"]),
    (["echo 'a b'"], ["/bin/sh", "-c", "echo 'a b'"]),
    (['echo "a b"'], ["/bin/sh", "-c", 'echo "a b"']),
    (["ls *.py"], ["/bin/sh", "-c", "ls *.py"]),
    (["ls data?.csv"], ["/bin/sh", "-c", "ls data?.csv"]),
    (["ls [ab].txt"], ["/bin/sh", "-c", "ls [ab].txt"]),
    (["cd /tmp; ls"], ["/bin/sh", "-c", "cd /tmp; ls"]),
    (["make && make install"], ["/bin/sh", "-c", "make && make install"]),
    (["sleep 1 &"], ["/bin/sh", "-c", "sleep 1 &"]),
    (["echo a\necho b"], ["/bin/sh", "-c", "echo a\necho b"]),
    (["FOO=1 ./run"], ["/bin/sh", "-c", "FOO=1 ./run"]),
    (["ls ~/data"], ["/bin/sh", "-c", "ls ~/data"]),
    (["echo a # comment"], ["/bin/sh", "-c", "echo a # comment"]),
    (["(cd x && make)"], ["/bin/sh", "-c", "(cd x && make)"]),
    (["echo a\\ b"], ["/bin/sh", "-c", "echo a\\ b"]),
])
def test_task_argv(command, expected):
    assert task_argv(command) == expected


def test_task_argv_returns_a_new_list():
    command = ["ls", "-l"]
    got = task_argv(command)
    got.append("x")
    assert command == ["ls", "-l"]


# ---- python_entry ---------------------------------------------------------------------------
PY = sys.executable


@pytest.mark.parametrize("argv, expected", [
    ([PY, "-c", "print(1)", "a"], ["c", "print(1)", "a"]),
    ([PY, "-c", "print(1)"], ["c", "print(1)"]),
    ([PY, "-m", "pkg.mod", "--flag", "x"], ["m", "pkg.mod", "--flag", "x"]),
    ([PY, "script.py", "a", "-b"], ["script", "script.py", "a", "-b"]),
    ([PY, "/abs/dir/train.py"], ["script", "/abs/dir/train.py"]),
    ([PY, "-u", "-c", "pass", "a"], ["u", "c", "pass", "a"]),
    ([PY, "-u", "-m", "mod"], ["u", "m", "mod"]),
    ([PY, "-u", "script.py"], ["u", "script", "script.py"]),
    ([PY, "-X", "dev", "-c", "pass"], None),
    ([PY, "-O", "script.py"], None),
    ([PY, "-B", "-m", "mod"], None),
    ([PY, "-u", "-O", "script.py"], None),
    ([PY, "-c"], None),  # -c without its code
    ([PY, "-m"], None),
    ([PY], None),  # an interactive interpreter
    ([PY, "-u"], None),
    ([PY, "-"], None),  # the program on stdin
    (["/bin/echo", "-c", "pass"], None),
    ([], None),
])
def test_python_entry_for_the_workers_own_interpreter(argv, expected):
    assert python_entry(argv, {}, python=PY) == expected


def test_python_entry_rejects_another_interpreter():
    other = "/usr/bin/python3"
    if not os.path.exists(other) or os.path.realpath(other) == os.path.realpath(PY):
        pytest.skip(f"{other} is missing or is the same interpreter as {PY}")
    assert python_entry([other, "-c", "pass"], {}, python=PY) is None


def test_python_entry_does_not_take_the_base_interpreter_for_a_venv_interpreter():
    if sys.prefix == sys.base_prefix:
        pytest.skip("the tests do not run in a virtual environment")
    base = os.path.realpath(PY)
    assert base != PY
    assert python_entry([base, "-c", "pass"], {}, python=PY) is None


def test_python_entry_finds_a_bare_name_on_the_task_envs_path(tmp_path):
    name = os.path.basename(PY)
    env = {"PATH": f"{tmp_path / 'empty'}{os.pathsep}{os.path.dirname(PY)}"}
    assert python_entry([name, "-c", "pass", "a"], env, python=PY) == ["c", "pass", "a"]


def test_python_entry_takes_a_link_elsewhere_for_another_environment(tmp_path):
    bin_dir = tmp_path / "bin"  # python looks for its environment beside the path it was started by
    bin_dir.mkdir()
    (bin_dir / "python3").symlink_to(PY)
    env = {"PATH": f"{tmp_path / 'empty'}{os.pathsep}{bin_dir}"}
    assert python_entry(["python3", "-c", "pass", "a"], env, python=PY) is None


def test_python_entry_of_a_bare_name_not_on_the_task_envs_path(tmp_path):
    (tmp_path / "python3").write_text("")  # not executable: which() passes it by
    assert python_entry(["python3", "-c", "pass"], {"PATH": str(tmp_path)}, python=PY) is None


def test_python_entry_of_a_bare_name_resolving_to_another_file(tmp_path):
    other = tmp_path / "python3"
    other.write_text("#!/bin/sh\n")
    other.chmod(0o755)
    assert python_entry(["python3", "-c", "pass"], {"PATH": str(tmp_path)}, python=PY) is None


# ---- standby workers ------------------------------------------------------------------------
class Pools:
    """Pools and taken workers of one test, all cleaned up after it."""

    def __init__(self) -> None:
        self.pools: list[StandbyPool] = []
        self.taken: list[Worker] = []

    def pool(self, size: int = 1, preload: tuple[str, ...] = ()) -> StandbyPool:
        pool = StandbyPool(size, preload)
        self.pools.append(pool)
        pool.fill()
        return pool

    def take(self, pool: StandbyPool) -> Worker:
        worker = pool.take()
        assert worker is not None
        self.taken.append(worker)
        return worker

    def cleanup(self) -> None:
        for pool in self.pools:
            for worker in pool._ready:
                self.taken.append(worker)
            pool._ready.clear()
        for worker in self.taken:
            if worker.proc.poll() is None:
                try:
                    os.killpg(worker.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                worker.proc.wait(WAIT_S)
            if worker.proc.stdin is not None and not worker.proc.stdin.closed:
                worker.proc.stdin.close()
            try:
                os.close(worker.status_fd)
            except OSError:
                pass


@pytest.fixture
def pools(monkeypatch):
    # workers inherit the agent's environment at start-up: start them buffered, so that the tests of
    # unbuffered tasks see what the task asked for
    monkeypatch.delenv("PYTHONUNBUFFERED", raising=False)
    kit = Pools()
    try:
        yield kit
    finally:
        kit.cleanup()


def a_task(tmp_path: Path, argv: list[str], env: dict[str, str] | None = None, *, python=...) -> dict:
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    env = {"OUT": str(tmp_path / "out.json"), **(env or {})}
    entry = python_entry(argv, env, PY) if python is ... else python
    return {"argv": argv, "env": env, "cwd": str(work), "log": str(tmp_path / "log"), "python": entry}


def run_to_end(worker: Worker, task: dict) -> tuple[int, str, bytes]:
    """Hand ``task`` over and wait for it: (exit status, log text, what the status pipe carried)."""
    worker.hand(task)
    code = worker.proc.wait(timeout=WAIT_S)
    status = os.read(worker.status_fd, 4096)
    log = Path(task["log"]).read_text() if os.path.exists(task["log"]) else ""
    return code, log, status


def probe_result(tmp_path: Path) -> dict:
    return json.loads((tmp_path / "out.json").read_text())


def test_a_worker_is_ready_and_in_its_own_session(pools):
    pool = pools.pool(size=2)
    first, second = pools.take(pool), pools.take(pool)
    assert pool.take() is None  # size 2: nothing more until the next fill
    for worker in (first, second):
        assert worker.proc.poll() is None
        assert os.getpgid(worker.proc.pid) == worker.proc.pid
        assert os.getsid(worker.proc.pid) == worker.proc.pid
        assert worker.start_ticks > 0
    assert first.proc.pid != second.proc.pid
    pool.fill()
    assert pools.take(pool).proc.pid not in (first.proc.pid, second.proc.pid)


def test_python_dash_c_runs_in_process_with_the_tasks_env_cwd_and_argv(pools, tmp_path):
    worker = pools.take(pools.pool())
    task = a_task(tmp_path, [PY, "-c", PROBE, "a", "b c"], {"X": "42"})
    assert task["python"] == ["c", PROBE, "a", "b c"]
    code, log, status = run_to_end(worker, task)
    assert code == 0, log
    assert status == b""
    assert "hello from the task" in log
    seen = probe_result(tmp_path)
    assert seen["argv"] == ["-c", "a", "b c"]
    assert seen["cwd"] == task["cwd"]
    assert seen["x"] == "42"
    assert seen["env"] == sorted(task["env"])  # the agent's environment does not leak in
    assert seen["name"] == "__main__"
    assert seen["path0"] == ""
    assert os.path.dirname(WORKER) not in seen["path"]  # the agent's own modules stay hidden
    assert seen["write_through"] is False


def test_python_dash_m_runs_in_process_with_pythonpath(pools, tmp_path):
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "probe_mod.py").write_text(PROBE)
    worker = pools.take(pools.pool())
    task = a_task(tmp_path, [PY, "-m", "probe_mod", "--epochs", "3"], {"PYTHONPATH": str(lib), "X": "m"})
    assert task["python"] == ["m", "probe_mod", "--epochs", "3"]
    code, log, status = run_to_end(worker, task)
    assert code == 0, log
    assert status == b""
    assert "hello from the task" in log
    seen = probe_result(tmp_path)
    assert seen["argv"] == [str(lib / "probe_mod.py"), "--epochs", "3"]
    assert seen["cwd"] == task["cwd"]
    assert seen["x"] == "m"
    assert seen["name"] == "__main__"
    assert seen["path0"] == task["cwd"]
    assert str(lib) in seen["path"]


def test_a_script_runs_in_process_with_its_directory_on_sys_path(pools, tmp_path):
    scripts = tmp_path / "scripts"
    scripts.mkdir()
    script = scripts / "train.py"
    script.write_text(PROBE)
    worker = pools.take(pools.pool())
    task = a_task(tmp_path, [PY, str(script), "--lr", "0.1"], {"X": "s"})
    assert task["python"] == ["script", str(script), "--lr", "0.1"]
    code, log, status = run_to_end(worker, task)
    assert code == 0, log
    assert status == b""
    assert "hello from the task" in log
    seen = probe_result(tmp_path)
    assert seen["argv"] == [str(script), "--lr", "0.1"]
    assert seen["cwd"] == task["cwd"]
    assert seen["name"] == "__main__"
    assert seen["path0"] == str(scripts)


@pytest.mark.parametrize("argv, env", [
    ([PY, "-u", "-c", PROBE], {}),
    ([PY, "-c", PROBE], {"PYTHONUNBUFFERED": "1"}),
], ids=["dash-u", "PYTHONUNBUFFERED"])
def test_unbuffered_output_in_process(pools, tmp_path, argv, env):
    worker = pools.take(pools.pool())
    code, log, _ = run_to_end(worker, a_task(tmp_path, argv, env))
    assert code == 0, log
    assert probe_result(tmp_path)["write_through"] is True


def test_an_exception_in_the_task_exits_1_with_its_traceback_in_the_log(pools, tmp_path):
    worker = pools.take(pools.pool())
    code, log, status = run_to_end(worker, a_task(tmp_path, [PY, "-c", "raise RuntimeError('boom in task')"]))
    assert code == 1
    assert status == b""
    assert "Traceback" in log
    assert "RuntimeError: boom in task" in log


def test_sys_exit_in_the_task_sets_the_exit_status(pools, tmp_path):
    worker = pools.take(pools.pool())
    code, log, _ = run_to_end(worker, a_task(tmp_path, [PY, "-c", "import sys; sys.exit(7)"]))
    assert code == 7, log


def test_the_status_pipe_reads_eof_while_an_in_process_task_still_runs(pools, tmp_path):
    go = tmp_path / "go"
    code = ("import os, time\n"
            f"deadline = time.monotonic() + {WAIT_S}\n"
            f"while not os.path.exists({str(go)!r}) and time.monotonic() < deadline:\n"
            "    time.sleep(0.01)\n")
    worker = pools.take(pools.pool())
    worker.hand(a_task(tmp_path, [PY, "-c", code]))
    readable, _, _ = select.select([worker.status_fd], [], [], WAIT_S)
    assert readable
    assert os.read(worker.status_fd, 4096) == b""
    assert worker.proc.poll() is None  # the task has not finished: EOF meant "started"
    go.touch()
    assert worker.proc.wait(timeout=WAIT_S) == 0


def test_a_preloaded_module_is_imported_before_the_task_and_a_bad_one_is_skipped(pools, tmp_path):
    worker = pools.take(pools.pool(preload=("colorsys", "no_such_module_for_hyperion_tests")))
    code = ("import os, sys\n"
            "open(os.environ['OUT'], 'w').write(str('colorsys' in sys.modules))\n")
    status, log, _ = run_to_end(worker, a_task(tmp_path, [PY, "-c", code]))
    assert status == 0, log
    assert (tmp_path / "out.json").read_text() == "True"


def test_another_command_is_execd_with_the_tasks_env_and_cwd(pools, tmp_path):
    worker = pools.take(pools.pool())
    task = a_task(tmp_path, ["/bin/sh", "-c", "echo hi $X; pwd; exit 3"], {"X": "there", "PATH": "/usr/bin:/bin"},
                  python=None)
    code, log, status = run_to_end(worker, task)
    assert code == 3
    assert status == b""
    assert log.splitlines() == ["hi there", task["cwd"]]


def test_exec_looks_the_command_up_on_the_tasks_path(pools, tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    tool = bin_dir / "hyperion-test-tool"
    tool.write_text("#!/bin/sh\necho tool ran with \"$@\"\n")
    tool.chmod(0o755)
    worker = pools.take(pools.pool())
    task = a_task(tmp_path, ["hyperion-test-tool", "x"], {"PATH": f"{bin_dir}:/usr/bin:/bin"}, python=None)
    code, log, status = run_to_end(worker, task)
    assert (code, status) == (0, b"")
    assert "tool ran with x" in log


def test_a_python_command_of_another_form_is_execd(pools, tmp_path):
    worker = pools.take(pools.pool())
    task = a_task(tmp_path, [PY, "-O", "-c", "import sys; print('optimised', sys.flags.optimize)"], {})
    assert task["python"] is None
    code, log, status = run_to_end(worker, task)
    assert (code, status) == (0, b"")
    assert "optimised 1" in log


@pytest.mark.parametrize("argv, env", [
    (["/no/such/binary"], {}),
    (["no-such-command-for-hyperion-tests"], {"PATH": "/usr/bin:/bin"}),
])
def test_an_exec_failure_exits_127_and_says_why_on_the_status_pipe(pools, tmp_path, argv, env):
    worker = pools.take(pools.pool())
    code, _, status = run_to_end(worker, a_task(tmp_path, argv, env, python=None))
    assert code == 127
    why = status.decode()
    assert why.startswith("cannot run"), why
    assert argv[0] in why
    assert "No such file or directory" in why


def test_an_execd_task_does_not_hold_the_status_pipe(pools, tmp_path):
    worker = pools.take(pools.pool())
    fd = worker.proc.args[3]  # the status pipe's write end, by number, in the worker
    code, log, status = run_to_end(worker, a_task(tmp_path, ["/bin/sh", "-c", "ls -l /proc/$$/fd"], {"PATH": "/usr/bin:/bin"},
                                                  python=None))
    assert (code, status) == (0, b""), log
    assert " 1 -> " in log  # the listing is there
    assert not re.search(rf"\s{fd} -> pipe:", log), log


def test_take_skips_a_dead_worker_and_closes_its_status_pipe(pools):
    pool = pools.pool(size=2)
    dead, alive = list(pool._ready)
    os.kill(dead.proc.pid, signal.SIGKILL)
    dead.proc.wait(WAIT_S)
    pools.taken.append(dead)
    assert pools.take(pool) is alive
    with pytest.raises(OSError):
        os.fstat(dead.status_fd)
    assert pool.take() is None


def test_take_returns_none_when_every_worker_died(pools):
    pool = pools.pool(size=1)
    (worker,) = pool._ready
    pools.taken.append(worker)
    os.kill(worker.proc.pid, signal.SIGKILL)
    worker.proc.wait(WAIT_S)
    assert pool.take() is None


def test_close_makes_idle_workers_exit(pools):
    pool = pools.pool(size=2)
    workers = list(pool._ready)
    pools.taken.extend(workers)
    pool.close()
    for worker in workers:
        assert worker.proc.returncode == 0
    assert pool.take() is None


def test_a_pool_that_cannot_start_workers_stays_empty(tmp_path):
    pool = StandbyPool(2, python=str(tmp_path / "no-such-python"))
    pool.fill()
    assert pool.take() is None
    pool.close()


# ---- freezers -------------------------------------------------------------------------------
def process_state(pid: int) -> str:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat[stat.rindex(")") + 2]  # field 3, after the command name in parentheses


def wait_for_state(pid: int, want_stopped: bool) -> str:
    deadline = time.monotonic() + WAIT_S
    state = process_state(pid)
    while (state == "T") != want_stopped and time.monotonic() < deadline:
        time.sleep(0.01)
        state = process_state(pid)
    return state


@pytest.fixture
def spinner():
    proc = subprocess.Popen([sys.executable, "-c", "import time\nwhile True: time.sleep(0.01)"], start_new_session=True)
    try:
        yield proc
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(WAIT_S)


def test_signal_freezer_stops_and_continues_a_process_group(spinner):
    frost = SignalFreezer()
    frost.adopt(spinner.pid)
    assert frost.freeze(spinner.pid) is True
    assert wait_for_state(spinner.pid, want_stopped=True) == "T"
    frost.thaw(spinner.pid)
    assert wait_for_state(spinner.pid, want_stopped=False) != "T"
    assert spinner.poll() is None
    frost.forget(spinner.pid)


def test_signal_freezer_of_a_vanished_group():
    proc = subprocess.Popen([sys.executable, "-c", "pass"], start_new_session=True)
    proc.wait(WAIT_S)
    frost = SignalFreezer()
    assert frost.freeze(proc.pid) is False
    frost.thaw(proc.pid)  # does not raise


def test_freezer_without_a_cgroup_directory_uses_signals(tmp_path):
    got = freezer(tmp_path)
    assert type(got) is SignalFreezer
    assert got.name == "sigstop"
    assert list(tmp_path.iterdir()) == []


def test_cgroup_freezer_falls_back_to_signals_without_the_tasks_cgroup(tmp_path, spinner):
    frost = CgroupFreezer(tmp_path / "no-such-cgroup")
    assert frost.name == "cgroup"
    assert frost.freeze(spinner.pid) is True
    assert wait_for_state(spinner.pid, want_stopped=True) == "T"
    frost.thaw(spinner.pid)
    assert wait_for_state(spinner.pid, want_stopped=False) != "T"
    frost.forget(spinner.pid)  # nothing to remove: no error


def test_cgroup_freezer_writes_the_tasks_cgroup_files(tmp_path):
    frost = CgroupFreezer(tmp_path)
    frost.adopt(4242)
    task_dir = tmp_path / "task-4242"
    assert (task_dir / "cgroup.procs").read_text() == "4242"
    assert frost.freeze(4242) is True
    assert (task_dir / "cgroup.freeze").read_text() == "1"
    frost.thaw(4242)
    assert (task_dir / "cgroup.freeze").read_text() == "0"
    for name in ("cgroup.procs", "cgroup.freeze"):  # a real cgroup's files go with it
        (task_dir / name).unlink()
    frost.forget(4242)
    assert not task_dir.exists()


def test_cgroup_freezer_of_a_vanished_group_without_its_cgroup(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", "pass"], start_new_session=True)
    proc.wait(WAIT_S)
    frost = CgroupFreezer(tmp_path)
    assert frost.freeze(proc.pid) is False
    frost.thaw(proc.pid)  # does not raise

"""The checkpoint SDK (``hyperion.checkpoint``): files, ordering, pruning, agent reports, signals,
and the examples under ``examples/checkpoint`` preempted and resumed for real."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path

import pytest

from hyperion import checkpoint

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples" / "checkpoint"


@pytest.fixture(autouse=True)
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A clean protocol environment (attempt 1, rank 0, a checkpoint dir) and fresh SDK state."""
    for name in list(os.environ):
        if name.startswith("HYPERION_"):
            monkeypatch.delenv(name)
    ckpt = tmp_path / "ckpt"
    monkeypatch.setenv("HYPERION_CHECKPOINT_DIR", str(ckpt))
    monkeypatch.setenv("HYPERION_JOB_ID", "train-abc123")
    monkeypatch.setenv("HYPERION_ATTEMPT", "1")
    monkeypatch.setenv("HYPERION_RANK", "0")
    monkeypatch.setattr(checkpoint, "_state", checkpoint._State())
    return ckpt


@pytest.fixture
def handlers():
    """Restore SIGTERM / SIGUSR1 handlers after a test that installs the SDK's."""
    saved = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGUSR1)}
    yield
    for s, h in saved.items():
        signal.signal(s, h)


def name(attempt: int, step: int) -> str:
    return f"ckpt-a{attempt:06d}-s{step:012d}.ckpt"


def put(ckpt: Path, rank: int, attempt: int, step: int) -> Path:
    path = ckpt / f"rank-{rank}" / name(attempt, step)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(json.dumps({"attempt": attempt, "step": step}).encode())
    return path


def test_save_is_atomic_and_load_returns_what_was_saved(env: Path) -> None:
    path = checkpoint.save_json({"step": 7, "w": [0.1, 1e-300]}, step=7)
    assert path == env / "rank-0" / name(1, 7) and path.is_absolute()
    assert checkpoint.load_json() == {"step": 7, "w": [0.1, 1e-300]}
    assert checkpoint.save_bytes(b"\x00raw", step=8).read_bytes() == b"\x00raw"
    assert checkpoint.load_bytes() == b"\x00raw"
    assert [p.name for p in (env / "rank-0").iterdir() if p.name.startswith(".tmp-")] == []


def test_nothing_to_resume_from(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert checkpoint.latest() is None and checkpoint.load_json() is None
    monkeypatch.delenv("HYPERION_CHECKPOINT_DIR")
    assert checkpoint.checkpoint_dir() is None and checkpoint.load_bytes() is None


def test_saving_without_a_checkpoint_dir_says_what_to_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HYPERION_CHECKPOINT_DIR")
    with pytest.raises(checkpoint.CheckpointError, match="checkpoint_dir.*HYPERION_CHECKPOINT_DIR") as err:
        checkpoint.save_json({})
    assert isinstance(err.value, RuntimeError)


@pytest.mark.parametrize(("files", "current", "expected"), [
    ([(1, 5), (1, 40), (1, 9)], 1, (1, 40)),  # by step within an attempt
    ([(1, 1000), (2, 1)], 2, (2, 1)),  # a newer attempt outranks any step of an older one
    ([(1, 1000), (2, 1)], 3, (2, 1)),
    ([(1, 10), (3, 20)], 2, (1, 10)),  # files of attempts newer than this process are not resumed from
    ([(2, 3), (2, 4)], 2, (2, 4)),  # a restart inside the same attempt
    ([(3, 1)], 1, None),
])
def test_latest_orders_by_attempt_then_step(env: Path, monkeypatch: pytest.MonkeyPatch, files: list[tuple[int, int]],
                                            current: int, expected: tuple[int, int] | None) -> None:
    for a, s in files:
        put(env, 0, a, s)
    put(env, 1, 9, 9)  # another rank's newer file is not ours
    (env / "rank-0" / f".tmp-{name(9, 9)}-1-abcd").write_bytes(b"half")  # a writer that died
    monkeypatch.setenv("HYPERION_ATTEMPT", str(current))
    assert checkpoint.latest() == (None if expected is None else env / "rank-0" / name(*expected))


def test_an_orphan_of_an_older_attempt_never_outranks_the_newer_attempt(env: Path, monkeypatch: pytest.MonkeyPatch,
                                                                        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("HYPERION_ATTEMPT", "2")
    checkpoint.save_json({"by": "attempt 2"}, step=3)
    checkpoint.save_json({"by": "attempt 2"}, step=4)
    monkeypatch.setenv("HYPERION_ATTEMPT", "1")  # the orphan, still running with a higher step
    checkpoint.save_json({"by": "orphan"}, step=500)
    assert "leftover of an earlier attempt" in capsys.readouterr().err
    monkeypatch.setenv("HYPERION_ATTEMPT", "2")
    assert checkpoint.load_json() == {"by": "attempt 2"}
    assert sorted(p.name for p in (env / "rank-0").iterdir()) == [name(2, 3), name(2, 4)]


def test_resume_from_is_used_only_for_this_rank_and_only_when_newest(env: Path, monkeypatch: pytest.MonkeyPatch,
                                                                     tmp_path: Path) -> None:
    other = put(env, 1, 1, 99)
    monkeypatch.setenv("HYPERION_RESUME_FROM", str(other))
    assert checkpoint.latest() is None  # another rank's checkpoint is ignored
    own = put(env, 0, 1, 20)
    assert checkpoint.latest() == own
    elsewhere = put(tmp_path / "copied", 0, 1, 30)  # outside the checkpoint dir, but rank-0's by its directory
    monkeypatch.setenv("HYPERION_RESUME_FROM", str(elsewhere))
    assert checkpoint.latest() == elsewhere
    newer = put(env, 0, 1, 40)  # a stale HYPERION_RESUME_FROM loses to a newer file
    assert checkpoint.latest() == newer
    monkeypatch.setenv("HYPERION_RESUME_FROM", str(env / "rank-0" / name(1, 50)))  # missing
    assert checkpoint.latest() == newer
    monkeypatch.setenv("HYPERION_RESUME_FROM", str(tmp_path / "copied" / "rank-0" / "weights.pt"))
    (tmp_path / "copied" / "rank-0" / "weights.pt").write_bytes(b"?")  # not a checkpoint's name
    assert checkpoint.latest() == newer


def test_pruning_keeps_the_newest_two_and_removes_stale_temp_files(env: Path) -> None:
    directory = env / "rank-0"
    directory.mkdir(parents=True)
    stale, fresh = directory / ".tmp-stale", directory / ".tmp-being-written"
    stale.write_bytes(b"x")
    fresh.write_bytes(b"x")
    old = time.time() - checkpoint.STALE_TEMP_S - 60
    os.utime(stale, (old, old))
    for step in range(1, 6):
        checkpoint.save_json({"step": step}, step=step)
    assert sorted(p.name for p in directory.iterdir()) == [".tmp-being-written", name(1, 4), name(1, 5)]


def test_steps_not_given_count_up_past_this_attempts_files(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    put(env, 0, 1, 41)
    assert checkpoint.save_bytes(b"a").name == name(1, 42)
    assert checkpoint.save_bytes(b"b").name == name(1, 43)
    monkeypatch.setenv("HYPERION_ATTEMPT", "2")
    monkeypatch.setattr(checkpoint, "_state", checkpoint._State())
    assert checkpoint.save_bytes(b"c").name == name(2, 1)


def test_bad_arguments_and_environment_are_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="step"):
        checkpoint.save_bytes(b"", step=-1)
    monkeypatch.setenv("HYPERION_RANK", "zero")
    with pytest.raises(checkpoint.CheckpointError, match="HYPERION_RANK.*'zero'"):
        checkpoint.rank()


def test_a_failed_save_leaves_no_temp_file_and_keeps_the_request(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    checkpoint._state.requested = True

    def broken_fsync(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(checkpoint.CheckpointError, match="No space left"):
        checkpoint.save_json({"step": 1}, step=1)
    assert list((env / "rank-0").iterdir()) == [] and checkpoint.requested()


@pytest.fixture
def agent_socket(monkeypatch: pytest.MonkeyPatch):
    short = tempfile.mkdtemp(prefix="hck-")  # a unix socket path must stay under 108 bytes
    path = os.path.join(short, "agent.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(10)
    monkeypatch.setenv("HYPERION_AGENT_SOCKET", path)
    yield sock
    sock.close()
    shutil.rmtree(short, ignore_errors=True)


def test_each_save_is_reported_to_the_agent(agent_socket: socket.socket, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HYPERION_ATTEMPT", "3")
    monkeypatch.setenv("HYPERION_RANK", "2")
    before = time.time()
    path = checkpoint.save_json({"step": 12}, step=12)
    message = json.loads(agent_socket.recv(65536))
    assert message == {"kind": "checkpoint", "job_id": "train-abc123", "attempt": 3, "rank": 2,
                       "at": message["at"], "path": str(path), "step": 12}
    assert isinstance(message["at"], float) and message["at"] >= before and os.path.isabs(message["path"])
    checkpoint.save_bytes(b"x")
    assert json.loads(agent_socket.recv(65536))["step"] == 13


def test_a_missing_agent_socket_never_fails_a_save(env: Path, monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("HYPERION_AGENT_SOCKET", str(env / "no-such.sock"))
    checkpoint.save_json({"step": 1}, step=1)
    checkpoint.save_json({"step": 2}, step=2)
    assert checkpoint.load_json() == {"step": 2}
    assert capsys.readouterr().err.count("cannot report checkpoints") == 1


def wait_for(condition) -> None:
    deadline = time.monotonic() + 10
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.001)


def test_sigusr1_requests_a_checkpoint_and_a_save_clears_it(handlers: None) -> None:
    seen: list[str] = []
    checkpoint.install(seen.append)
    checkpoint.install(seen.append)  # idempotent
    assert signal.getsignal(signal.SIGUSR1) is checkpoint._on_signal
    os.kill(os.getpid(), signal.SIGUSR1)
    wait_for(checkpoint.requested)
    assert checkpoint.requested() and not checkpoint.stopping() and seen == ["checkpoint"]
    checkpoint.save_json({"step": 1}, step=1)
    assert not checkpoint.requested()


def test_maybe_checkpoint_saves_on_schedule_and_on_request_and_exits_143_after_sigterm(env: Path, handlers: None) -> None:
    state = {"step": 0}
    checkpoint.install()
    assert [checkpoint.maybe_checkpoint(lambda: state, step, every=5) for step in range(1, 8)] == [
        False, False, False, False, True, False, False]
    checkpoint._state.requested = True
    assert checkpoint.maybe_checkpoint(lambda: {"step": 8}, 8, every=5) is True
    os.kill(os.getpid(), signal.SIGTERM)
    wait_for(checkpoint.stopping)
    assert checkpoint.stopping() and checkpoint.requested()
    with pytest.raises(SystemExit) as exit_:
        checkpoint.maybe_checkpoint(lambda: {"step": 9}, 9)
    assert exit_.value.code == checkpoint.PREEMPTED_EXIT_CODE == 143
    assert checkpoint.load_json() == {"step": 9}


def test_torch_helpers_say_when_torch_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(checkpoint.CheckpointError, match="PyTorch"):
        checkpoint.save_torch({"w": 1})
    with pytest.raises(checkpoint.CheckpointError, match="PyTorch"):
        checkpoint.load_torch()


def test_torch_helpers_stream_through_torch_save_and_load(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = types.ModuleType("torch")
    fake.save = lambda obj, f: pickle.dump(obj, f)  # type: ignore[attr-defined]
    fake.load = lambda path, map_location: (map_location, pickle.loads(Path(path).read_bytes()))  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "torch", fake)
    assert checkpoint.save_torch({"w": [1.0]}, step=3).name == name(1, 3)
    assert checkpoint.load_torch("cuda:0") == ("cuda:0", {"w": [1.0]})


def test_torch_round_trip() -> None:
    torch = pytest.importorskip("torch")
    checkpoint.save_torch({"w": torch.arange(3.0)}, step=1)
    assert torch.equal(checkpoint.load_torch()["w"], torch.arange(3.0))


def test_public_api_and_a_light_import() -> None:
    assert all(hasattr(checkpoint, n) for n in checkpoint.__all__)
    code = "import sys; from hyperion import checkpoint; print(sorted(m for m in sys.modules if 'hyperion' in m or m == 'torch'))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert json.loads(out.replace("'", '"')) == ["hyperion", "hyperion.checkpoint"]


# ---- the examples, preempted and resumed --------------------------------------------------
def run_example(script: str, ckpt: Path, out: Path, attempt: int, sleep: float, steps: int = 200,
                resume_from: Path | None = None) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HYPERION_")}
    env.update(HYPERION_CHECKPOINT_DIR=str(ckpt), HYPERION_ATTEMPT=str(attempt), HYPERION_RANK="0",
               HYPERION_WORLD_SIZE="1", HYPERION_JOB_ID="example")
    if resume_from is not None:
        env["HYPERION_RESUME_FROM"] = str(resume_from)
    return subprocess.Popen([sys.executable, str(EXAMPLES / script), "--steps", str(steps), "--sleep", str(sleep),
                             "--out", str(out)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(proc: subprocess.Popen) -> int:
    _, err = proc.communicate(timeout=60)
    assert proc.returncode in (0, 143), err
    return proc.returncode


@pytest.mark.parametrize(("script", "keys"), [("counter.py", ["total"]), ("regression.py", ["loss", "w", "b"])])
def test_an_example_preempted_and_resumed_ends_like_an_uninterrupted_run(tmp_path: Path, script: str, keys: list[str]) -> None:
    assert finish(run_example(script, tmp_path / "fresh", tmp_path / "fresh.json", 1, sleep=0)) == 0
    fresh = json.loads((tmp_path / "fresh.json").read_text())

    ckpt, out = tmp_path / "ckpt", tmp_path / "out.json"
    proc = run_example(script, ckpt, out, 1, sleep=0.02)
    wait_for(lambda: proc.poll() is not None or any((ckpt / "rank-0").glob("ckpt-*.ckpt")))
    assert proc.poll() is None, "the run ended before its first checkpoint"
    proc.send_signal(signal.SIGTERM)
    assert finish(proc) == 143 and not out.exists()
    newest = max((ckpt / "rank-0").glob("ckpt-*.ckpt"))

    assert finish(run_example(script, ckpt, out, 2, sleep=0, resume_from=newest)) == 0
    resumed = json.loads(out.read_text())
    assert resumed["attempt"] == 2 and 10 <= resumed["resumed_from"] < 200 and fresh["resumed_from"] is None
    assert [resumed[k] for k in keys] == [fresh[k] for k in keys]


def test_write_atomically_replaces_a_file_and_leaves_no_temp(tmp_path):
    target = tmp_path / "result.json"
    target.write_text("old")
    assert checkpoint.write_atomically(target, '{"loss": 1}') == target
    checkpoint.write_atomically(str(target), b'{"loss": 0.5}')
    assert target.read_text() == '{"loss": 0.5}' and os.listdir(tmp_path) == ["result.json"]

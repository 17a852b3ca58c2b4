"""hyperiond's command line: good arguments parse, bad ones exit 2 with a message, no traceback."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from hyperion.agent.main import parse_args


@pytest.fixture
def base(tmp_path):
    token = tmp_path / "token"
    token.write_text("t")
    return ["--control-plane", "cp.example:7070", "--token-file", str(token), "--node-id", "n1",
            "--data-dir", str(tmp_path / "data")]


def test_good_arguments_parse_with_defaults(base, tmp_path):
    args = parse_args([*base, "--gpus", "4", "--memory", "16Gi", "--label", "a=1", "b=2",
                       "--label", "c=3"])
    assert (args.gpus, args.memory, args.labels) == (4, 16 * 2**30, {"a": "1", "b": "2", "c": "3"})
    assert (args.heartbeat_interval, args.metrics_interval, args.log_ship_interval) == (1.0, 5.0, 0.2)
    assert args.gpu_type is None and args.cpus is None
    assert args.data_dir == (tmp_path / "data").resolve() and args.data_dir.is_dir()


@pytest.mark.parametrize(("extra", "message"), [
    (["--gpus", "-1"], "--gpus"), (["--gpus", "two"], "--gpus"), (["--cpus", "0"], "--cpus"),
    (["--memory", "lots"], "invalid memory size"), (["--label", "nokey"], "key=value"),
    (["--heartbeat-interval", "0"], "--heartbeat-interval"), (["--node-id", "a/b"], "--node-id"),
    (["--control-plane", "nohost"], "HOST:PORT"), (["--control-plane", "h:99999"], "HOST:PORT"),
    (["--token-file", "/no/such/token"], "no such file"), (["--bogus"], "unrecognized"),
])
def test_bad_arguments_exit_2_with_a_message(base, capsys, extra, message):
    with pytest.raises(SystemExit) as exit_:
        parse_args([*base, *extra])
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err


def test_missing_required_arguments_exit_2_without_a_traceback():
    proc = subprocess.run([sys.executable, "-m", "hyperion.agent", "--node-id", "n1"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "required" in proc.stderr and "Traceback" not in proc.stderr


def test_a_second_agent_on_the_same_data_dir_refuses_to_run(base, tmp_path):
    cmd = [sys.executable, "-m", "hyperion.agent", *base]
    log = tmp_path / "first.log"
    with open(log, "wb") as out:
        first = subprocess.Popen(cmd, stderr=out)
    try:
        deadline = time.monotonic() + 30
        while "node n1:" not in log.read_text():  # logged once the lock is held
            assert first.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        second = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        assert second.returncode == 1
        assert "another hyperiond" in second.stderr
    finally:
        first.terminate()
        first.wait(10)
    assert first.returncode == 0

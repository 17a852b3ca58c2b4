"""The `hyperion` command against a real control plane it starts itself (`up` ... `down`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hyperion.testing.cluster import free_port

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def hyperion(tmp_path):
    env = {**os.environ, "HYPERION_HOME": str(tmp_path / "home")}
    env.pop("HYPERION_SERVER", None)
    env.pop("HYPERION_TOKEN", None)

    def run(*args: str, check: bool = True, stdin: str | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
        p = subprocess.run([sys.executable, "-m", "hyperion.cli.main", *args], capture_output=True, text=True,
                           env=env, cwd=ROOT, input=stdin, timeout=timeout)
        if check and p.returncode != 0:
            raise AssertionError(f"hyperion {' '.join(args)} exited {p.returncode}\n{p.stdout}\n{p.stderr}")
        return p

    yield run
    run("down", check=False)


def test_up_submit_queue_logs_cancel_down(hyperion, tmp_path):
    home = tmp_path / "home"
    up = hyperion("up", "--agents", "2", "--gpus-per-agent", "2", "--port", str(free_port()), "--grpc-port", str(free_port()))
    assert "admin.token" in up.stdout
    token = home / "admin.token"
    assert token.stat().st_mode & 0o777 == 0o600
    assert token.read_text().strip() not in up.stdout + up.stderr

    nodes = json.loads(hyperion("nodes", "-o", "json").stdout)["items"]
    assert len(nodes) == 2 and {n["gpus"] for n in nodes} == {2} and {n["state"] for n in nodes} == {"ready"}
    assert all({"id", "gpus", "state"} <= n.keys() for n in nodes)

    ok = hyperion("submit", "examples/jobs/hello.yaml", "--wait")
    job_id = ok.stdout.split()[0]
    status = json.loads(hyperion("status", job_id, "-o", "json").stdout)
    assert {k: status[k] for k in ("id", "phase", "exit_code")} == {"id": job_id, "phase": "succeeded", "exit_code": 0}
    assert {"name", "team", "node"} <= status.keys()
    assert f"hello from {job_id}" in hyperion("logs", job_id).stdout

    failing = hyperion("submit", "-", "--wait", stdin="kind: Job\nname: boom\ncommand: exit 7\n", check=False)
    assert failing.returncode == 7

    sleeper = hyperion("submit", "-", stdin="kind: Job\nname: sleeper\ncommand: sleep 60\n").stdout.strip()
    queue = json.loads(hyperion("queue", "-o", "json").stdout)["items"]
    assert sleeper in {j["id"] for j in queue}
    explained = hyperion("explain", sleeper).stdout
    assert sleeper in explained and ("running" in explained or "scheduled" in explained or "position" in explained)
    hyperion("cancel", sleeper)
    assert json.loads(hyperion("status", sleeper, "-o", "json").stdout)["phase"] == "cancelled"
    all_jobs = json.loads(hyperion("queue", "--all", "-o", "json").stdout)["items"]
    assert {j["id"] for j in all_jobs} >= {job_id, sleeper}

    teams = hyperion("apply", "-f", "examples/teams.yaml")
    assert "team/vision created" in teams.stdout and "token:" in teams.stdout
    queues = hyperion("apply", "-f", "examples/queues.yaml")
    assert "queue/research created" in queues.stdout and "queue/prod created" in queues.stdout
    listed = json.loads(hyperion("queues", "-o", "json").stdout)["items"]
    assert [q["name"] for q in listed] == ["default", "prod", "research"]
    unknown = hyperion("submit", "-", stdin="kind: Job\nname: lost\nqueue: nope\ncommand: 'true'\n", check=False)
    assert unknown.returncode == 2 and "queue 'nope' does not exist" in unknown.stderr

    down = hyperion("down")
    assert "stop" in (down.stdout + down.stderr).lower()
    assert not (home / "controlplane.json").exists()
    # state persists: bring it back and the finished jobs are still there with their exit codes
    hyperion("up")
    again = json.loads(hyperion("status", job_id, "-o", "json").stdout)
    assert again["phase"] == "succeeded" and again["exit_code"] == 0
    assert "research" in hyperion("queues").stdout  # queues persist too
    assert f"hello from {job_id}" in hyperion("logs", job_id).stdout


@pytest.mark.parametrize("doc, where", [
    ("kind: Job\nname: x\ncommand: echo\nreplicas: 0.5\n", ":4: replicas"),
    ("kind: Job\nname: x\ncommand: echo\nresources:\n  memory: -16Gi\n", ":5: resources.memory"),
    ("kind: Job\nname: x\ncommand: echo\ncolour: red\n", ":4: colour"),
])
def test_bad_spec_exits_2_with_file_line_and_field(hyperion, tmp_path, doc, where):
    f = tmp_path / "bad.yaml"
    f.write_text(doc)
    p = hyperion("submit", str(f), check=False)
    assert p.returncode == 2
    assert f"{f}{where}" in p.stderr
    assert "Traceback" not in p.stderr + p.stdout

"""The ``hyperion`` CLI without a control plane: argument errors, YAML errors, error reporting,
output formats, data-dir/token/server resolution, and the REST client against a fake transport
(``httpx.MockTransport``), so every command's wiring is exercised with no server running."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from hyperion.api.client import ApiError, Client
from hyperion.cli import daemon, output
from hyperion.cli.context import (
    CliError,
    CliState,
    resolve_data_dir,
    resolve_server,
    resolve_token,
)
from hyperion.cli.main import api_error_exit_code, cli, format_api_error, main

TOKEN = "s3cret-admin-token"
HELLO = "kind: Job\nname: hello\ncommand: echo hi\nresources:\n  gpus: 1\n"


def a_job(**fields: Any) -> dict[str, Any]:
    job = {"id": "j-1", "name": "hello", "team": "default", "user": "admin", "phase": "pending",
           "exit_code": None, "node": None, "nodes": [], "attempt": 1, "priority": "batch",
           "replicas": 1, "gpus": 1, "queue": "default", "submitted_at": 1000.0,
           "started_at": None, "finished_at": None, "reason": "", "placements": []}
    return {**job, **fields}


def a_node(**fields: Any) -> dict[str, Any]:
    node = {"id": "local-0", "hostname": "h", "state": "ready", "cordoned": False, "gpus": 4,
            "free_gpus": 3, "gpu_type": "logical", "cpus": 16.0, "memory": 64 * 2**30,
            "registered_at": 1000.0, "last_seen": 1099.0,
            "metrics": {"cpu_utilization_percent": 12.6, "memory_used_mb": 100}}
    return {**node, **fields}


def a_queue(**fields: Any) -> dict[str, Any]:
    queue = {"name": "research", "cohort": "lab", "weight": 2.0,
             "nominal": {"cpus": 64000, "gpus/A100": 8, "memory": 256 * 2**30}, "borrowing_limit": {"gpus/A100": 4},
             "lending_limit": {}, "usage": {"cpus": 4500, "gpus/A100": 2, "memory": 8 * 2**30}, "pending": 3,
             "defined": True}
    return {**queue, **fields}


def run(*args: str, env: dict[str, str] | None = None, stdin: str | None = None):
    base = {"HYPERION_SERVER": None, "HYPERION_TOKEN": None, "HYPERION_DEBUG": None}
    return CliRunner(env={**base, **(env or {})}).invoke(cli, list(args), input=stdin)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class FakeApi:
    """Just enough of the REST API for the CLI: a dict of jobs, scripted errors, a request log."""

    def __init__(self) -> None:
        self.jobs: dict[str, dict[str, Any]] = {}
        self.requests: list[httpx.Request] = []
        self.error: tuple[int, dict[str, Any]] | None = None
        self.phases: list[dict[str, Any]] = []  # successive GET /v1/jobs/{id} answers

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.error is not None:
            return httpx.Response(self.error[0], json=self.error[1])
        path, method = request.url.path, request.method
        if path == "/v1/jobs" and method == "POST":
            body = json.loads(request.content)
            job = a_job(id=f"j-{len(self.jobs) + 1}", name=body.get("name"))
            self.jobs[job["id"]] = job
            return httpx.Response(201, json=job)
        if path == "/v1/jobs":
            return httpx.Response(200, json={"items": list(self.jobs.values()), "total": 7})
        if path == "/v1/nodes":
            return httpx.Response(200, json={"items": [a_node()]})
        if path == "/v1/queues":
            return httpx.Response(200, json={"items": [a_queue(), a_queue(
                name="default", cohort=None, weight=1.0, nominal={}, borrowing_limit={}, usage={}, pending=0,
                defined=False)]})
        if path == "/v1/apply":
            return httpx.Response(200, json={"results": [
                {"kind": "Team", "name": "ml", "action": "created", "token": "team-tok"}]})
        job_id = path.split("/")[3]
        if path.endswith("/logs"):
            return httpx.Response(200, content=b"line 1\nline 2\n")
        if method == "DELETE":
            return httpx.Response(200, json=a_job(id=job_id, phase="cancelled"))
        if self.phases:
            return httpx.Response(200, json={**self.jobs.get(job_id, a_job(id=job_id)),
                                             **self.phases.pop(0)})
        return httpx.Response(404, json={"message": f"no job {job_id}"})


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> FakeApi:
    fake = FakeApi()

    def client(self: CliState) -> Client:
        token = resolve_token(self.token_option, self.env, self.data_dir)
        return Client("http://fake", token, transport=httpx.MockTransport(fake.handle))

    monkeypatch.setattr(CliState, "client", client)
    monkeypatch.setattr("hyperion.cli.jobs.POLL_INTERVAL_S", 0)
    return fake


@pytest.fixture
def needs_spec() -> None:
    pytest.importorskip("hyperion.api.spec", reason="hyperion.api.spec is not written yet")


# -- resolution ------------------------------------------------------------------------------------

@pytest.mark.parametrize(("option", "env", "expected"), [
    ("/opt/h", {"HYPERION_HOME": "/env/h"}, Path("/opt/h")),
    (None, {"HYPERION_HOME": "/env/h"}, Path("/env/h")),
    (None, {}, Path("~/.hyperion").expanduser()),
])
def test_data_dir_resolution_order(option, env, expected):
    assert resolve_data_dir(option, env) == expected


def test_server_resolution_order(tmp_path: Path):
    (tmp_path / "controlplane.json").write_text(json.dumps({"pid": 1, "api": "http://127.0.0.1:9"}))
    assert resolve_server("http://opt:1/", {"HYPERION_SERVER": "http://env:2"}, tmp_path) == "http://opt:1"
    assert resolve_server(None, {"HYPERION_SERVER": "env:2"}, tmp_path) == "http://env:2"
    assert resolve_server(None, {}, tmp_path) == "http://127.0.0.1:9"
    with pytest.raises(CliError, match="hyperion up"):
        resolve_server(None, {}, tmp_path / "missing")


def test_token_resolution_order(tmp_path: Path):
    assert resolve_token(None, {}, tmp_path) is None
    (tmp_path / "admin.token").write_text("file-token\n")
    assert resolve_token(None, {}, tmp_path) == "file-token"
    assert resolve_token(None, {"HYPERION_TOKEN": "env-token"}, tmp_path) == "env-token"
    assert resolve_token("opt-token", {"HYPERION_TOKEN": "env-token"}, tmp_path) == "opt-token"


def test_data_dir_option_and_env_reach_commands(tmp_path: Path, api: FakeApi):
    (tmp_path / "admin.token").write_text(TOKEN)
    result = run("--data-dir", str(tmp_path), "nodes")
    assert result.exit_code == 0, result.output
    assert api.requests[-1].headers["authorization"] == f"Bearer {TOKEN}"
    result = run("nodes", env={"HYPERION_HOME": str(tmp_path), "HYPERION_TOKEN": "env-token"})
    assert api.requests[-1].headers["authorization"] == "Bearer env-token"


# -- argument and input errors ---------------------------------------------------------------------

@pytest.mark.parametrize("args", [
    ["submit"], ["submit", "x.yaml", "--timeout", "5"], ["queue", "-o", "yaml"], ["apply"],
    ["logs", "j-1", "--rank", "-1"], ["up", "--agents", "-1"], ["nope"],
])
def test_argument_errors_exit_2(args):
    result = run(*args)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output


def test_missing_file_exits_2_without_traceback(tmp_path: Path):
    result = run("submit", str(tmp_path / "nope.yaml"))
    assert result.exit_code == 2
    assert "nope.yaml: no such file" in result.stderr and "Traceback" not in result.output


def test_bad_yaml_exits_2_with_file_and_line(tmp_path: Path, needs_spec):
    path = tmp_path / "bad.yaml"
    path.write_text("kind: Job\nname: x\nresources:\n  gpus: -3\n")
    result = run("submit", str(path))
    assert result.exit_code == 2
    assert f"{path}:" in result.stderr and "Traceback" not in result.output
    assert result.stdout == ""
    broken = tmp_path / "broken.yaml"
    broken.write_text("kind: Job\nname: [unclosed\n")
    result = run("apply", "-f", str(broken))
    assert result.exit_code == 2 and f"{broken}:" in result.stderr


def test_submit_refuses_non_job_documents(tmp_path: Path, needs_spec):
    path = tmp_path / "teams.yaml"
    path.write_text("kind: Team\nname: ml\n")
    result = run("submit", str(path))
    assert result.exit_code == 2 and "hyperion apply" in result.stderr


def test_connection_refused_says_run_up(tmp_path: Path):
    server = f"http://127.0.0.1:{free_port()}"
    result = run("--server", server, "--data-dir", str(tmp_path), "queue")
    assert result.exit_code == 1
    assert f"not running at {server}" in result.stderr and "hyperion up" in result.stderr
    assert "Traceback" not in result.output


def test_no_controlplane_file_says_run_up(tmp_path: Path):
    result = run("--data-dir", str(tmp_path), "nodes")
    assert result.exit_code == 1 and "hyperion up" in result.stderr


# -- API errors ------------------------------------------------------------------------------------

def test_format_api_error_lists_detail_lines():
    err = ApiError(422, "invalid job", [{"loc": ["resources", "gpus"], "line": None, "msg": "must be >= 0"},
                                        {"loc": ["name"], "line": 3, "msg": "required"}])
    assert format_api_error(err) == ("error: invalid job\n  resources.gpus: must be >= 0\n"
                                     "  name (line 3): required")


@pytest.mark.parametrize(("status", "code"), [(400, 2), (422, 2), (401, 1), (403, 1), (404, 1), (500, 1)])
def test_api_error_exit_codes(status, code):
    assert api_error_exit_code(ApiError(status, "x")) == code


@pytest.mark.parametrize(("response", "message", "detail"), [
    (httpx.Response(404, json={"message": "no job j-9"}), "no job j-9", []),
    (httpx.Response(401, json={"detail": "Not authenticated"}), "Not authenticated", []),
    (httpx.Response(422, json={"message": "bad", "detail": [{"loc": ["a"], "msg": "m"}]}), "bad",
     [{"loc": ["a"], "msg": "m"}]),
    (httpx.Response(502, text="upstream down"), "upstream down", []),
    (httpx.Response(500), "Internal Server Error", []),
])
def test_api_error_from_response(response, message, detail):
    err = ApiError.from_response(response)
    assert (err.status, err.message, err.detail) == (response.status_code, message, detail)


def test_cli_reports_422_detail_and_exits_2(api: FakeApi):
    api.error = (422, {"message": "invalid job", "detail": [{"loc": ["gpus"], "line": None, "msg": "too many"}]})
    result = run("queue")
    assert result.exit_code == 2
    assert result.stderr == "error: invalid job\n  gpus: too many\n"


def test_401_hints_at_token_without_printing_it(api: FakeApi):
    api.error = (401, {"message": "invalid token"})
    result = run("--token", TOKEN, "nodes")
    assert result.exit_code == 1 and "--token" in result.stderr and TOKEN not in result.output


def test_unexpected_error_is_one_line_unless_debug(monkeypatch: pytest.MonkeyPatch):
    def boom(self):
        raise RuntimeError("kaput")

    monkeypatch.setattr(CliState, "client", boom)
    result = run("nodes")
    assert result.exit_code == 1 and "kaput" in result.stderr and "Traceback" not in result.output
    result = run("nodes", env={"HYPERION_DEBUG": "1"})
    assert result.exit_code == 1 and "Traceback" in result.stderr


# -- output formats --------------------------------------------------------------------------------

@pytest.mark.parametrize(("seconds", "text"), [
    (None, "-"), (-4, "0s"), (5.9, "5s"), (59, "59s"), (60, "1m"), (3599, "59m"), (7200, "2h"),
    (86399, "23h"), (4 * 86400 + 5, "4d"),
])
def test_format_age(seconds, text):
    assert output.format_age(seconds) == text


@pytest.mark.parametrize(("num_bytes", "text"), [
    (None, "-"), (2**30, "1Gi"), (int(7.5 * 2**30), "7.5Gi"), (64 * 2**30, "64Gi"), (2**29, "0.5Gi"),
])
def test_format_memory(num_bytes, text):
    assert output.format_memory(num_bytes) == text


@pytest.mark.parametrize(("job", "code"), [
    ({"phase": "succeeded", "exit_code": 0}, 0), ({"phase": "failed", "exit_code": 3}, 3),
    ({"phase": "failed", "exit_code": None}, 1), ({"phase": "failed", "exit_code": 0}, 1),
    ({"phase": "failed", "exit_code": -9}, 137), ({"phase": "cancelled", "exit_code": None}, 130),
])
def test_wait_exit_code(job, code):
    assert output.wait_exit_code(job) == code


def test_tables_align_and_truncate():
    jobs = [a_job(reason="x" * 200), a_job(id="j-22", replicas=2, gpus=4, nodes=["n1", "n2"], phase="running")]
    lines = output.jobs_table(jobs, now=1065.0).splitlines()
    assert lines[0].split() == list(output.JOB_COLUMNS)
    assert {line.index("TEAM") if i == 0 else line.index("default") for i, line in enumerate(lines)} == {
        lines[0].index("TEAM")}
    assert "2x4" in lines[2] and "n1+1" in lines[2] and "1m" in lines[2]
    assert lines[1].endswith("...") and len(lines[1].split()[-1]) == output.REASON_WIDTH
    node_line = output.nodes_table([a_node(cordoned=True)], now=1000.0 + 3 * 3600).splitlines()[1]
    assert node_line.split() == ["local-0", "ready,cordoned", "4", "3", "logical", "16", "64Gi", "13%", "3h"]


def test_job_detail_shows_every_field_placements_and_reason():
    job = a_job(phase="running", reason="placed on n1", extra_field="x",
                placements=[{"rank": 0, "node": "n1", "gpus": [0, 1]}], spec={"command": "echo"})
    text = output.job_detail(job, now=1010.0)
    for key in job:
        if key not in ("placements", "spec"):
            assert f"{key}:" in text.lower()
    assert "n1" in text and "0,1" in text and "Reason: placed on n1" in text and "command: echo" in text


def test_json_output_is_machine_clean(api: FakeApi):
    api.jobs["j-1"] = a_job()
    for args in (["queue", "-o", "json"], ["nodes", "-o", "json"], ["queues", "-o", "json"],
                 ["status", "j-1", "-o", "json"]):
        api.phases = [{}]
        result = run(*args)
        assert result.exit_code == 0, result.output
        json.loads(result.stdout)


# -- commands against the fake API -----------------------------------------------------------------

def test_queue_table_and_filters(api: FakeApi):
    api.jobs["j-1"] = a_job()
    result = run("queue", "--team", "ml")
    assert result.exit_code == 0 and "j-1" in result.stdout and "showing 1 of 7" in result.stderr
    assert api.requests[-1].url.params["phase"] == "pending,scheduled,running,preempted"
    assert api.requests[-1].url.params["team"] == "ml"
    run("queue", "--all")
    assert "phase" not in api.requests[-1].url.params


def test_queues_table(api: FakeApi):
    result = run("queues")
    assert result.exit_code == 0, result.output
    assert api.requests[-1].url.path == "/v1/queues"
    header, research, default = result.stdout.splitlines()
    assert header.split() == list(output.QUEUE_COLUMNS)
    assert research.split() == ["research", "lab", "2", "cpus=64,gpus/A100=8,memory=256Gi",
                                "cpus=4.5,gpus/A100=2,memory=8Gi", "3"]
    assert default.split() == ["default", "-", "1", "-", "-", "0"]
    assert json.loads(run("queues", "-o", "json").stdout)["items"][0]["name"] == "research"


def test_apply_sends_queue_documents(api: FakeApi, needs_spec):
    result = run("apply", "-f", "-", stdin="kind: Queue\nname: research\nquota:\n  gpus: {A100: 8}\n")
    assert result.exit_code == 0, result.output
    assert json.loads(api.requests[-1].content) == {
        "documents": [{"kind": "Queue", "name": "research", "quota": {"gpus": {"A100": 8}}}]}


def test_logs_cancel_apply(api: FakeApi):
    result = run("logs", "j-1", "-f", "--rank", "1")
    assert result.stdout == "line 1\nline 2\n"
    assert dict(api.requests[-1].url.params) == {"rank": "1", "follow": "true"}
    assert run("cancel", "j-1").stdout == "j-1 cancelled\n"
    assert api.requests[-1].method == "DELETE"


def test_apply_prints_actions_and_new_token_once(api: FakeApi, needs_spec):
    result = run("apply", "-f", "-", stdin="kind: Team\nname: ml\n")
    assert result.exit_code == 0, result.output
    assert result.stdout == "team/ml created\ntoken: team-tok (shown once; store it)\n"
    assert json.loads(api.requests[-1].content) == {"documents": [{"kind": "Team", "name": "ml"}]}


def test_invalid_server_url_is_a_clean_error():
    result = run("--server", "http://bad host:x", "nodes")
    assert result.exit_code == 2 and "not a valid URL" in result.stderr


def test_status_of_unknown_job_exits_1(api: FakeApi):
    result = run("status", "j-404")
    assert result.exit_code == 1 and result.stderr == "error: no job j-404\n"


@pytest.mark.parametrize(("final", "code"), [
    ({"phase": "succeeded", "exit_code": 0}, 0), ({"phase": "failed", "exit_code": 7}, 7),
    ({"phase": "cancelled"}, 130),
])
def test_submit_wait_exits_with_job_code(tmp_path: Path, api: FakeApi, needs_spec, final, code):
    path = tmp_path / "hello.yaml"
    path.write_text(HELLO)
    api.phases = [{"phase": "running", "node": "n1"}, final]
    result = run("submit", str(path), "--wait")
    assert result.exit_code == code, result.output
    assert result.stdout.splitlines()[0] == "j-1" and final["phase"] in result.stdout
    assert json.loads(api.requests[0].content)["name"] == "hello"


def test_submit_wait_timeout(tmp_path: Path, api: FakeApi, needs_spec):
    path = tmp_path / "hello.yaml"
    path.write_text(HELLO)
    api.phases = [{"phase": "running"}] * 1000
    result = run("submit", str(path), "--wait", "--timeout", "0.05", "-o", "json")
    assert result.exit_code == 124 and "timed out" in result.stderr and result.stdout == ""


# -- up / down without a control plane -------------------------------------------------------------

def test_options_merge_saved_and_defaults(tmp_path: Path):
    assert daemon.load_config(tmp_path) == {}
    daemon.save_config(tmp_path, {**daemon.DEFAULT_OPTIONS, "agents": 3})
    merged = daemon.merge_options({"port": 0, "agents": None}, daemon.load_config(tmp_path))
    assert merged == {**daemon.DEFAULT_OPTIONS, "agents": 3, "port": 0}
    command = daemon.daemon_command(tmp_path, {**merged, "gpu_type": "A100"})
    assert command[:3] == [sys.executable, "-m", "hyperion.runtime"]
    assert command[command.index("--agents") + 1] == "3" and command[command.index("--gpu-type") + 1] == "A100"
    assert command[command.index("--federation-profile") + 1] == "default" and "--carbon-dir" not in command
    carbon = daemon.daemon_command(tmp_path, {**merged, "federation_profile": "carbon-temporal", "carbon_dir": "."})
    assert carbon[carbon.index("--federation-profile") + 1] == "carbon-temporal"
    assert carbon[carbon.index("--carbon-dir") + 1] == str(Path(".").resolve())
    assert not any(flag.startswith("--aws") for flag in command)


def test_up_passes_aws_options_to_the_control_plane_and_keeps_them(tmp_path: Path):
    given = {"aws_region": "eu-west-1", "aws_subnets": ("subnet-1", "subnet-2"), "aws_security_groups": (),
             "aws_endpoint_url": "http://127.0.0.1:5000"}
    merged = daemon.merge_options(given, {})
    daemon.save_config(tmp_path, merged)
    command = daemon.daemon_command(tmp_path, merged)
    pairs = list(zip(command, command[1:], strict=False))
    assert ("--aws-region", "eu-west-1") in pairs and ("--aws-endpoint-url", "http://127.0.0.1:5000") in pairs
    assert [v for f, v in pairs if f == "--aws-subnet"] == ["subnet-1", "subnet-2"]
    assert "--aws-security-group" not in command and "--aws-ami" not in command
    # the next `up` without options starts it the same way (saved), and an option not given keeps the saved one
    again = daemon.merge_options({"aws_subnets": (), "aws_region": None}, daemon.load_config(tmp_path))
    assert daemon.daemon_command(tmp_path, again) == command
    assert "--aws-subnet" in run("up", "--help").stdout


def test_down_with_nothing_running_is_idempotent(tmp_path: Path):
    result = run("--data-dir", str(tmp_path / "none"), "down")
    assert result.exit_code == 0 and "no control plane running" in result.stdout


def test_down_never_signals_a_stranger(tmp_path: Path):
    stranger = subprocess.Popen(["sleep", "30"])
    try:
        (tmp_path / "controlplane.json").write_text(json.dumps({"pid": stranger.pid, "api": "http://x"}))
        result = run("--data-dir", str(tmp_path), "down", "--keep-agents")
        assert result.exit_code == 0 and "no control plane running" in result.stdout
        assert stranger.poll() is None
    finally:
        stranger.kill()
        stranger.wait()


def test_up_reports_a_daemon_that_dies(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    crash = [sys.executable, "-c", "import sys; print('port 8470 already in use'); sys.exit(3)"]
    monkeypatch.setattr(daemon, "daemon_command", lambda data_dir, options: crash)
    result = run("--data-dir", str(tmp_path), "up", "--agents", "1")
    assert result.exit_code == 1
    assert "exit code 3" in result.stderr and "port 8470 already in use" in result.stderr
    assert not (tmp_path / "config.json").exists()


def test_main_entry_point_version():
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0


FAKE_DAEMON = '''
import json, os, signal, sys
from http.server import BaseHTTPRequestHandler, HTTPServer
data_dir = sys.argv[1]
class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        body = {"ok": True} if self.path == "/healthz" else {"items": [
            {"id": f"local-{i}", "state": "ready", "gpus": 4} for i in range(2)]}
        raw = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)
    def log_message(self, *args):
        pass
server = HTTPServer(("127.0.0.1", 0), Handler)
signal.signal(signal.SIGTERM, lambda *args: sys.exit(0))
with open(os.path.join(data_dir, "controlplane.json"), "w") as f:
    json.dump({"pid": os.getpid(), "api": f"http://127.0.0.1:{server.server_port}", "grpc": "127.0.0.1:1"}, f)
server.serve_forever()
'''


def test_up_then_down_with_a_stand_in_daemon(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    script = tmp_path / "fake_hyperion_runtime.py"  # "hyperion" in its command line: ours
    script.write_text(FAKE_DAEMON)
    data_dir = tmp_path / "home"
    monkeypatch.setattr(daemon, "daemon_command", lambda d, options: [sys.executable, str(script), str(d)])
    result = run("--data-dir", str(data_dir), "up", "--agents", "2", "--port", "0")
    assert result.exit_code == 0, result.output
    assert "2 ready, 8 GPUs" in result.stdout and f"{data_dir / 'admin.token'}" in result.stdout
    assert json.loads((data_dir / "config.json").read_text())["port"] == 0
    pid = json.loads((data_dir / "controlplane.json").read_text())["pid"]
    try:
        again = run("--data-dir", str(data_dir), "up", "--agents", "5")
        assert again.exit_code == 0 and "already running" in again.stdout and "ignored" in again.stderr
        result = run("--data-dir", str(data_dir), "down", "--keep-agents")
        assert result.exit_code == 0 and f"stopped control plane (pid {pid})" in result.stdout
        assert daemon.process_gone(pid)
    finally:
        if not daemon.process_gone(pid):
            daemon.stop_process(pid, grace=1)


def test_explain_shows_the_schedulers_epoch_instants_as_local_times() -> None:
    from hyperion.cli.output import explanation, format_time

    now = 1_796_600_000.0
    e = {"id": "j-1", "team": "vision", "phase": "pending", "position": 1, "pending": 1, "ahead_total": 0,
         "reasons": [{"plugin": "backfill", "reason": "it starts at t=1796600658 at the latest"}],
         "estimated_start": None, "estimate_basis": "no estimate"}
    text = explanation(e, now)
    assert f"it starts at {format_time(1796600658.0, now)} at the latest" in text and "t=1796600658" not in text

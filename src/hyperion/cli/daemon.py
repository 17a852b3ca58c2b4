"""``hyperion up`` and ``hyperion down``: start and stop a local control plane for a data dir.

``up`` runs ``python -m hyperion.runtime`` detached (its own session, output appended to
``<data dir>/controlplane.log``), waits for ``/healthz`` and then for the local agents to report
ready. The daemon writes ``controlplane.json`` (pid and addresses) and the token files; ``up``
remembers its own options in ``config.json`` so a bare ``hyperion up`` later starts the same
cluster. ``down`` stops the daemon (SIGTERM, SIGKILL after a grace period) and, unless told to keep
them, the local agents through ``LocalProvider``. Both are idempotent.

Glossary: *ours* means a live process whose command line names hyperion, so a stale pid reused by
an unrelated process is never signalled.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx
import psutil

from hyperion.api.client import ApiError, Client
from hyperion.cli.context import (
    ADMIN_TOKEN_FILE,
    AGENT_TOKEN_FILE,
    CONFIG_FILE,
    LOG_FILE,
    CliError,
    read_controlplane,
    resolve_token,
)

DEFAULT_OPTIONS: dict[str, Any] = {
    "agents": 2, "gpus_per_agent": 4, "gpu_type": None,
    "host": "127.0.0.1", "port": 8470, "grpc_port": 8471,
    # the federation (used once kind: Cluster members are applied; docs/federation.md)
    "federation_profile": "default", "carbon_dir": None, "forecast": "same-hour-yesterday",
    # aws node pools (docs/aws.md): the region they launch in, and how their instances reach us
    "aws_region": None, "aws_endpoint_url": None, "aws_sqs_queue_url": None, "aws_ami": None, "aws_subnets": [],
    "aws_security_groups": [], "aws_instance_profile": None, "aws_key_name": None,
    "aws_control_plane_address": None,
}
AWS_FLAGS = {  # option -> the control plane's flag (a list: the flag once per value)
    "aws_region": "--aws-region", "aws_endpoint_url": "--aws-endpoint-url", "aws_sqs_queue_url": "--aws-sqs-queue-url",
    "aws_ami": "--aws-ami", "aws_subnets": "--aws-subnet", "aws_security_groups": "--aws-security-group",
    "aws_instance_profile": "--aws-instance-profile", "aws_key_name": "--aws-key-name",
    "aws_control_plane_address": "--aws-control-plane-address",
}
START_TIMEOUT_S = 30.0
READY_TIMEOUT_S = 30.0
STOP_GRACE_S = 15.0
POLL_S = 0.2
LOG_TAIL_LINES = 25


# -- options --------------------------------------------------------------------------------------

def load_config(data_dir: Path) -> dict[str, Any]:
    """The options saved by the last ``up`` (only known keys); ``{}`` when none."""
    try:
        saved = json.loads((data_dir / CONFIG_FILE).read_text())
    except (OSError, ValueError):
        return {}
    return {k: v for k, v in saved.items() if k in DEFAULT_OPTIONS} if isinstance(saved, dict) else {}


def merge_options(given: Mapping[str, Any], saved: Mapping[str, Any]) -> dict[str, Any]:
    """Options given now win over saved ones, which win over the defaults."""
    merged = dict(DEFAULT_OPTIONS)
    merged.update({k: v for k, v in saved.items() if k in DEFAULT_OPTIONS})
    merged.update({k: list(v) if isinstance(v, tuple) else v for k, v in given.items()
                   if k in DEFAULT_OPTIONS and v is not None and v != ()})  # () : a repeatable option not given
    return merged


def save_config(data_dir: Path, options: Mapping[str, Any]) -> None:
    path = data_dir / CONFIG_FILE
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(dict(options), indent=2) + "\n")
    os.replace(tmp, path)


def daemon_command(data_dir: Path, options: Mapping[str, Any]) -> list[str]:
    command = [
        sys.executable, "-m", "hyperion.runtime", "--data-dir", str(data_dir),
        "--host", str(options["host"]), "--port", str(options["port"]),
        "--grpc-port", str(options["grpc_port"]), "--agents", str(options["agents"]),
        "--gpus-per-agent", str(options["gpus_per_agent"]),
    ]
    if options.get("gpu_type"):
        command += ["--gpu-type", str(options["gpu_type"])]
    command += ["--federation-profile", str(options["federation_profile"]), "--forecast", str(options["forecast"])]
    if options.get("carbon_dir"):
        command += ["--carbon-dir", str(Path(options["carbon_dir"]).resolve())]
    for key, flag in AWS_FLAGS.items():
        value = options.get(key)
        for v in value if isinstance(value, list | tuple) else [value] if value else []:
            command += [flag, str(v)]
    return command


# -- processes ------------------------------------------------------------------------------------

def process_gone(pid: int) -> bool:
    """True when ``pid`` no longer runs (a zombie counts as gone; our own child is reaped)."""
    try:
        reaped, _ = os.waitpid(pid, os.WNOHANG)
        if reaped == pid:
            return True
    except ChildProcessError:
        pass
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True
    except psutil.AccessDenied:
        return False


def is_ours(pid: Any) -> bool:
    """A live process whose command line mentions hyperion (guards against reused pids)."""
    if not isinstance(pid, int) or pid <= 0 or process_gone(pid):
        return False
    try:
        return "hyperion" in " ".join(psutil.Process(pid).cmdline())
    except psutil.AccessDenied:
        return True  # alive, cannot tell; do not start a second one over it
    except psutil.Error:
        return False


def healthy(api: str) -> bool:
    try:
        with Client(api, None, timeout=2) as client:
            client.healthz()
        return True
    except (httpx.HTTPError, httpx.InvalidURL, ApiError, ValueError):
        return False


def running_controlplane(data_dir: Path) -> tuple[dict[str, Any] | None, bool]:
    """``(controlplane.json, healthy)`` when its pid is ours and alive, else ``(None, False)``."""
    info = read_controlplane(data_dir)
    if not info or not is_ours(info.get("pid")):
        return None, False
    api = info.get("api")
    return info, isinstance(api, str) and healthy(api)


def log_tail(path: Path, offset: int = 0, lines: int = LOG_TAIL_LINES) -> str:
    """The last ``lines`` lines of ``path`` written after byte ``offset``."""
    try:
        with open(path, "rb") as handle:
            handle.seek(offset)
            text = handle.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return "\n".join(text.rstrip().splitlines()[-lines:])


def start_daemon(data_dir: Path, options: Mapping[str, Any]) -> tuple[subprocess.Popen, int]:
    """Start the control plane detached; returns the process and the log offset of this run."""
    command = daemon_command(data_dir, options)
    log_path = data_dir / LOG_FILE
    with open(log_path, "ab") as log:
        offset = log.tell()
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        log.write(f"=== hyperion up {stamp}: {' '.join(command)}\n".encode())
        log.flush()
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log,
                                   stderr=subprocess.STDOUT, start_new_session=True, env=env,
                                   close_fds=True)
    return process, offset


def wait_healthy(process: subprocess.Popen, data_dir: Path, log_offset: int,
                 timeout: float = START_TIMEOUT_S) -> dict[str, Any]:
    """Wait for this process's ``controlplane.json`` and ``/healthz``; ``CliError`` if it dies
    or does not answer in time (then it is stopped)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise CliError(_died_message(process.returncode, data_dir, log_offset))
        info = read_controlplane(data_dir)
        ours = bool(info) and info.get("pid") == process.pid and isinstance(info.get("api"), str)
        if ours and healthy(info["api"]):
            return info
        time.sleep(POLL_S)
    stop_process(process.pid, grace=5)
    tail = log_tail(data_dir / LOG_FILE, log_offset)
    raise CliError(f"the control plane did not become healthy within {timeout:g} s and was "
                   f"stopped; last lines of {data_dir / LOG_FILE}:\n{tail}")


def _died_message(returncode: int | None, data_dir: Path, log_offset: int) -> str:
    tail = log_tail(data_dir / LOG_FILE, log_offset)
    return (f"the control plane exited during start-up (exit code {returncode}); "
            f"last lines of {data_dir / LOG_FILE}:\n{tail}")


def wait_nodes_ready(api: str, data_dir: Path, want: int,
                     timeout: float = READY_TIMEOUT_S) -> tuple[list[dict[str, Any]], bool]:
    """Poll ``/v1/nodes`` until ``want`` nodes are ready; ``(ready nodes, reached)``."""
    deadline = time.monotonic() + timeout
    ready: list[dict[str, Any]] = []
    with Client(api, resolve_token(None, {}, data_dir), timeout=5) as client:
        while True:
            try:
                items = client.list_nodes().get("items") or []
                ready = [n for n in items if n.get("state") == "ready"]
            except (httpx.HTTPError, ApiError):
                pass
            if len(ready) >= want:
                return ready, True
            if time.monotonic() >= deadline:
                return ready, False
            time.sleep(POLL_S)


def stop_process(pid: int, grace: float = STOP_GRACE_S) -> bool:
    """SIGTERM ``pid``, SIGKILL it after ``grace`` seconds. True if it had to be killed."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if process_gone(pid):
            return False
        time.sleep(0.1)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return False
    for _ in range(50):
        if process_gone(pid):
            break
        time.sleep(0.1)
    return True


def stop_local_agents(data_dir: Path) -> list[str]:
    """Terminate the local agents of ``data_dir`` (the static ones and those node pools launched);
    returns their node ids."""
    import asyncio

    from hyperion.providers.local import LocalProvider, node_prefixes

    ids = []
    for prefix in node_prefixes(data_dir):
        provider = LocalProvider(data_dir=data_dir, control_plane="", token_file=data_dir / AGENT_TOKEN_FILE,
                                 node_prefix=prefix)
        ids += asyncio.run(provider.terminate_all(request_id=f"down-{int(time.time() * 1000)}"))
    return ids


def admin_token_path(data_dir: Path) -> Path:
    return data_dir / ADMIN_TOKEN_FILE

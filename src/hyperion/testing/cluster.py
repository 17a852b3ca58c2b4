"""A real Hyperion on loopback for tests and benchmarks: the control plane and its local agents
as separate processes, exactly as ``hyperion up`` runs them, with helpers to submit jobs, wait,
and kill -9 either side.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LocalCluster:
    def __init__(self, data_dir: Path, agents: int = 2, gpus_per_agent: int = 4, node_timeout: float = 10.0,
                 extra_args: tuple[str, ...] = (), agent_args: tuple[str, ...] = ()) -> None:
        self.data_dir = Path(data_dir)
        self.agents = agents
        self.gpus_per_agent = gpus_per_agent
        self.node_timeout = node_timeout
        self.extra_args = extra_args + tuple(f"--agent-arg={a}" for a in agent_args)
        self.port = free_port()
        self.grpc_port = free_port()
        self.proc: subprocess.Popen | None = None
        self._client: httpx.Client | None = None

    # ---- lifecycle -----------------------------------------------------------------------
    def start(self, timeout: float = 30.0) -> LocalCluster:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.data_dir / "controlplane.log", "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "hyperion.runtime", "--data-dir", str(self.data_dir), "--port", str(self.port),
             "--grpc-port", str(self.grpc_port), "--agents", str(self.agents), "--gpus-per-agent",
             str(self.gpus_per_agent), "--node-timeout", str(self.node_timeout), *self.extra_args],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"control plane exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                if httpx.get(f"{self.api}/healthz", timeout=1).status_code == 200:
                    self._client = None
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise TimeoutError(f"control plane not healthy after {timeout}s:\n{self.log_tail()}")

    def log_tail(self, n: int = 40) -> str:
        p = self.data_dir / "controlplane.log"
        return "\n".join(p.read_text(errors="replace").splitlines()[-n:]) if p.exists() else ""

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        from hyperion.providers.local import LocalProvider, node_prefixes

        for prefix in node_prefixes(self.data_dir):  # the static agents (local-<n>) and node pools' (pool-<pool>-<n>)
            asyncio.run(LocalProvider(self.data_dir, "", self.data_dir / "agent.token", node_prefix=prefix)
                        .terminate_all(f"test-stop-{time.time()}"))
        if self._client is not None:
            self._client.close()

    def __enter__(self) -> LocalCluster:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # ---- access --------------------------------------------------------------------------
    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def admin_token(self) -> str:
        return (self.data_dir / "admin.token").read_text().strip()

    def client(self, token: str | None = None) -> httpx.Client:
        if token is not None:
            return httpx.Client(base_url=self.api, headers={"Authorization": f"Bearer {token}"}, timeout=30)
        if self._client is None:
            self._client = self.client(self.admin_token)
        return self._client

    def agent_pids(self) -> dict[str, int]:
        out = {}
        for f in sorted((self.data_dir / "agents").glob("*/agent.json")):
            out[f.parent.name] = json.loads(f.read_text())["pid"]
        return out

    # ---- waiting -------------------------------------------------------------------------
    def wait_nodes(self, n: int | None = None, timeout: float = 30.0) -> list[dict]:
        n = self.agents if n is None else n
        return self.wait(lambda: [x for x in self.client().get("/v1/nodes").json()["items"] if x["state"] == "ready"],
                         lambda ready: len(ready) >= n, timeout, f"{n} ready node(s)")

    def wait_jobs(self, ids: list[str], phases=("succeeded", "failed", "cancelled"), timeout: float = 60.0) -> dict[str, dict]:
        want = set(ids)

        def fetch():
            items = self.client().get("/v1/jobs", params={"limit": 10000}).json()["items"]
            return {j["id"]: j for j in items if j["id"] in want}

        return self.wait(fetch, lambda jobs: len(jobs) == len(want) and all(j["phase"] in phases for j in jobs.values()),
                         timeout, f"{len(want)} job(s) in {phases}")

    @staticmethod
    def wait(fetch, done, timeout: float, what: str):
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            try:
                last = fetch()
                if done(last):
                    return last
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise TimeoutError(f"timed out after {timeout}s waiting for {what}; last seen: {str(last)[:2000]}")

    def cli(self, *args: str) -> str:
        """Run the ``hyperion`` CLI against this cluster (its data dir, the admin token); its stdout.
        A non-zero exit fails with the CLI's output."""
        env = {**os.environ, "HYPERION_HOME": str(self.data_dir)}
        env.pop("HYPERION_TOKEN", None)
        env.pop("HYPERION_SERVER", None)
        p = subprocess.run([sys.executable, "-m", "hyperion.cli.main", *args], capture_output=True, text=True, env=env,
                           timeout=60)
        assert p.returncode == 0, p.stdout + p.stderr
        return p.stdout

    def submit(self, doc: dict, token: str | None = None) -> dict:
        client = self.client(token) if token else self.client()
        r = client.post("/v1/jobs", json=doc)
        if r.status_code != 201:
            raise AssertionError(f"submit failed {r.status_code}: {r.text}")
        return r.json()


def kill_pid(pid: int, sig: int = signal.SIGKILL) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass

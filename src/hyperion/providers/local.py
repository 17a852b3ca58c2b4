"""The ``local`` NodeProvider: nodes are ``hyperiond`` agents started as processes on this machine.

Glossary:
    node dir      DATA/agents/<node id>/: the agent's data dir (its tasks, logs and durable task
                  records), its stdout/stderr (agent.log) and the launch record (agent.json)
    launch record agent.json, written atomically: {node_id, pid, request_id, node_type,
                  started_at, args, terminated_at}. It is written before the agent is started
                  (pid null) and again with its pid, so a launch interrupted by a crash is
                  still found, and a request id is never launched twice.
    alive         for an agent this process started: not yet exited (``Popen.poll``). For one
                  found on disk: the recorded pid exists, is not a zombie, and its
                  /proc/PID/cmdline is that agent's (``hyperion.agent`` with this node id), so a
                  reused pid is not taken for our agent. (Right after exec, cmdline can still be
                  empty; only agents started long ago are judged by it.)

Everything is read back from disk, so a control plane that was killed and restarted adopts the
agents still running instead of starting new ones. Node ids are ``local-<n>``, n the next free
integer among the node dirs (``node_prefix`` replaces ``local``: a node pool's agents are
``pool-<pool>-<n>``, so providers of different prefixes share DATA/agents/ and never see each other's
agents). Errors are collected for ``drain_errors``, never raised.

Terminating an agent also kills the task process groups it left (an agent killed with SIGKILL
cannot clean up): they are read from the agent's task journal (DATA/agents/<id>/tasks.jsonl,
format in ``hyperion/agent/records.py``; this module reads it without importing the agent).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from hyperion.ports.provider import Capability, ProviderError, ProviderNode

log = logging.getLogger("hyperion.providers.local")

NODE_TYPE = "local"
TERM_WAIT_S = 5.0
_ID_RE = re.compile(r"^local-(\d+)$")
_START_SLACK_TICKS = 2 * os.sysconf("SC_CLK_TCK")  # as in hyperion/agent/records.py


class LocalProvider:
    name = "local"
    capabilities = Capability.LOCAL

    def __init__(self, data_dir: Path, control_plane: str, token_file: Path,
                 gpus_per_node: int | None = None, gpu_type: str = "logical",
                 python: str = sys.executable, extra_args: Sequence[str] = (), node_prefix: str = "local",
                 price_per_hour: float = 0.0) -> None:
        self.data_dir = Path(data_dir)
        self.control_plane, self.token_file = control_plane, Path(token_file)
        self.gpus_per_node, self.gpu_type = gpus_per_node, gpu_type
        self.python, self.extra_args = python, tuple(extra_args)
        self._agents_dir = self.data_dir / "agents"
        self.node_prefix, self.price_per_hour = node_prefix, price_per_hour
        self._id_re = _ID_RE if node_prefix == "local" else re.compile(rf"^{re.escape(node_prefix)}-(\d+)$")
        self._children: dict[str, subprocess.Popen] = {}  # agents this process started
        self._errors: list[ProviderError] = []
        self._lock = threading.RLock()

    def offers(self) -> list[dict]:
        return [{"node_type": NODE_TYPE, "gpus": self.gpus_per_node, "gpu_type": self.gpu_type,
                 "price_per_hour": self.price_per_hour}]

    async def list_nodes(self) -> list[ProviderNode]:
        return [self._node(record) for record in self._records()]

    async def launch(self, node_type: str, count: int, request_id: str) -> list[ProviderNode]:
        with self._lock:  # no await inside: one launch at a time, whatever the caller
            done = [r for r in self._records() if r.get("request_id") == request_id]
            if done:
                return [self._node(r) for r in done]
            if node_type != NODE_TYPE:
                self._error(request_id, f"unknown node type {node_type!r}; offers {NODE_TYPE!r}")
                return []
            nodes = []
            for _ in range(max(count, 0)):
                record = self._start_agent(request_id, node_type)
                if record is not None:
                    nodes.append(self._node(record))
            return nodes

    async def terminate_all(self, request_id: str) -> list[str]:
        """Terminate every agent of this data dir still running; returns their node ids."""
        ids = [n.id for n in await self.list_nodes() if n.state != "terminated"]
        if ids:
            await self.terminate(ids, request_id)
        return ids

    async def terminate(self, ids: Sequence[str], request_id: str) -> None:
        await asyncio.gather(*(self._terminate_one(node_id, request_id) for node_id in ids))

    def drain_errors(self) -> list[ProviderError]:
        with self._lock:
            errors, self._errors = self._errors, []
        return errors

    # ---- launching --------------------------------------------------------------------------
    def _start_agent(self, request_id: str, node_type: str) -> dict | None:
        try:
            node_id, node_dir = self._reserve_node_dir()
            args = [self.python, "-m", "hyperion.agent", "--control-plane", self.control_plane,
                    "--token-file", str(self.token_file.resolve()), "--node-id", node_id,
                    "--data-dir", str(node_dir)]
            if self.gpus_per_node is not None:
                args += ["--gpus", str(self.gpus_per_node), "--gpu-type", self.gpu_type]
            args += self.extra_args
            record = {"node_id": node_id, "pid": None, "request_id": request_id,
                      "node_type": node_type, "started_at": time.time(), "args": args,
                      "terminated_at": None}
            _write_json(node_dir / "agent.json", record)
            with open(node_dir / "agent.log", "ab") as out:
                proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                                        start_new_session=True, close_fds=True, cwd=node_dir)
            self._children[node_id] = proc
            record["pid"] = proc.pid
            _write_json(node_dir / "agent.json", record)
            log.info("launched agent %s (pid %d) for request %s", node_id, proc.pid, request_id)
            return record
        except OSError as exc:
            self._error(request_id, f"cannot start an agent: {exc}")
            return None

    def _reserve_node_dir(self) -> tuple[str, Path]:
        self._agents_dir.mkdir(parents=True, exist_ok=True)
        taken = [int(m[1]) for p in self._agents_dir.iterdir() if (m := self._id_re.match(p.name))]
        n = max(taken, default=0) + 1
        while True:
            node_dir = self._agents_dir / f"{self.node_prefix}-{n}"
            try:
                node_dir.mkdir()  # atomic: two control planes never get the same id
                return node_dir.name, node_dir
            except FileExistsError:
                n += 1

    # ---- reading state back -----------------------------------------------------------------
    def _records(self) -> list[dict]:
        if not self._agents_dir.is_dir():
            return []
        records = []
        for node_dir in self._agents_dir.iterdir():
            m = self._id_re.match(node_dir.name)
            if m is None:
                continue
            try:
                records.append((int(m[1]), json.loads((node_dir / "agent.json").read_text())))
            except (OSError, ValueError):
                continue  # reserved but not yet recorded, or not ours
        return [r for _, r in sorted(records, key=lambda pair: pair[0])]

    def _node(self, record: dict) -> ProviderNode:
        alive = self._agent_pid(record) is not None
        return ProviderNode(id=record["node_id"], node_type=record.get("node_type", NODE_TYPE),
                            state="running" if alive else "terminated",
                            request_id=record.get("request_id", ""))

    def _agent_pid(self, record: dict) -> int | None:
        """The agent's pid if it is alive; scans /proc when the launch was interrupted."""
        node_id = record["node_id"]
        child = self._children.get(node_id)
        if child is not None:  # our own child: its pid cannot be reused before we reap it
            return child.pid if child.poll() is None else None
        pid = record.get("pid")
        if pid:
            return pid if _is_agent(pid, node_id) else None
        if record.get("terminated_at") is not None:
            return None
        for entry in os.scandir("/proc"):
            if entry.name.isdigit() and _is_agent(int(entry.name), node_id):
                return int(entry.name)
        return None

    # ---- terminating ------------------------------------------------------------------------
    async def _terminate_one(self, node_id: str, request_id: str) -> None:
        node_dir = self._agents_dir / node_id
        try:
            record = json.loads((node_dir / "agent.json").read_text())
        except (OSError, ValueError) as exc:
            self._error(request_id, f"cannot terminate {node_id}: no launch record ({exc})")
            return
        pid = self._agent_pid(record)
        if pid is not None:
            _signal(pid, signal.SIGTERM)
            deadline = time.monotonic() + TERM_WAIT_S
            while self._agent_pid(record) is not None and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            if self._agent_pid(record) is not None:
                self._error(request_id, f"{node_id} ignored SIGTERM for {TERM_WAIT_S:.0f}s: SIGKILL")
                _signal(pid, signal.SIGKILL)
                await asyncio.sleep(0.05)
        for pgid, start_ticks in leftover_task_groups(node_dir / "tasks.jsonl"):
            if _is_recorded(pgid, start_ticks) is not False:
                _signal_group(pgid, signal.SIGKILL)
        if record.get("terminated_at") is None:
            record["terminated_at"] = time.time()
            try:
                _write_json(node_dir / "agent.json", record)
            except OSError as exc:
                self._error(request_id, f"cannot update {node_id}'s launch record: {exc}")
        log.info("terminated agent %s (request %s)", node_id, request_id)

    def _error(self, request_id: str, message: str) -> None:
        log.warning("%s (request %s)", message, request_id)
        with self._lock:
            self._errors.append(ProviderError(request_id=request_id, message=message))


def node_prefixes(data_dir: Path) -> list[str]:
    """The node id prefixes of the agents under DATA/agents/: ``local`` (always) and one per node
    pool that launched agents there (``pool-<pool>``); a provider per prefix sees them all."""
    agents = Path(data_dir) / "agents"
    found = {p.name.rsplit("-", 1)[0] for p in agents.iterdir() if p.name.rsplit("-", 1)[-1].isdigit()} if agents.is_dir() else set()
    return sorted(found | {"local"})


def leftover_task_groups(journal: Path) -> list[tuple[int, int]]:
    """(pgid, start_ticks) of the tasks an agent's journal says are still starting or running."""
    last: dict[tuple, dict] = {}
    try:
        lines = journal.read_text().splitlines()
    except OSError:
        return []
    for line in lines:
        try:
            entry = json.loads(line)
            last[(entry["job_id"], entry["attempt"], entry["rank"])] = entry
        except (ValueError, KeyError, TypeError):
            continue  # a torn last line
    return [(e["pgid"], e.get("start_ticks", 0)) for e in last.values()
            if e.get("state") in ("starting", "running") and e.get("pgid", 0) > 1]


def _is_agent(pid: int, node_id: str) -> bool:
    for _ in range(50):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmdline = f.read()
            with open(f"/proc/{pid}/stat", "rb") as f:
                zombie = f.read().rsplit(b")", 1)[1].split()[0] == b"Z"
        except (OSError, IndexError):
            return False  # gone
        if cmdline or zombie:
            argv = cmdline.split(b"\0")
            return not zombie and b"hyperion.agent" in argv and node_id.encode() in argv
        time.sleep(0.001)  # exec has just switched memory and not yet set the arguments
    return False


def _is_recorded(pid: int, start_ticks: int) -> bool | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
        actual = int(stat[stat.rfind(b")") + 2:].split()[19])
    except (OSError, IndexError, ValueError):
        return None
    if not start_ticks:
        return None
    return -1 <= actual - start_ticks <= _START_SLACK_TICKS


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1))
    os.replace(tmp, path)

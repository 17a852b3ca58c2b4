"""hyperiond against a fake control plane: real agent process, real gRPC on loopback, real tasks.

The fake control plane (``FakeControlPlane``) is a grpc.aio server implementing
``AgentControl.Connect``: it checks the Bearer token, records every AgentMessage, answers Hello
with a Welcome (by default: keep every task the Hello reports running) and sends the commands a
test queues. Each test runs its scenario with ``asyncio.run`` under a timeout.
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

import grpc
import pytest

from hyperion.api._generated.hyperion.v1 import agent_pb2, agent_pb2_grpc

pytestmark = pytest.mark.integration

TOKEN = "s3cret-token-value"
RUNNING, EXITED, FAILED = (agent_pb2.TaskReport.RUNNING, agent_pb2.TaskReport.EXITED,
                           agent_pb2.TaskReport.FAILED_TO_START)


class FakeControlPlane(agent_pb2_grpc.AgentControlServicer):
    def __init__(self, token: str = TOKEN, heartbeat_interval_s: float = 0.2) -> None:
        self.token, self.heartbeat_interval_s = token, heartbeat_interval_s
        self.messages: list[agent_pb2.AgentMessage] = []
        self.hellos: list[agent_pb2.Hello] = []
        self.rejected = 0
        self.desired: list[agent_pb2.TaskRef] | None = None  # None: whatever Hello says runs
        self.log_offsets: dict[tuple, int] = {}
        self.port = 0
        self._changed = asyncio.Event()
        self._commands: asyncio.Queue | None = None  # the latest stream's
        self._streams: dict[str, asyncio.Queue] = {}  # by node id
        self._server: grpc.aio.Server | None = None

    async def start(self, port: int = 0) -> FakeControlPlane:
        self._server = grpc.aio.server()
        agent_pb2_grpc.add_AgentControlServicer_to_server(self, self._server)
        self.port = self._server.add_insecure_port(f"127.0.0.1:{port}")
        await self._server.start()
        return self

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.stop(0)
            self._server, self._commands = None, None
            self._streams.clear()

    async def Connect(self, request_iterator, context):  # noqa: N802 - the gRPC method name
        if dict(context.invocation_metadata()).get("authorization") != f"Bearer {self.token}":
            self.rejected += 1
            self._changed.set()
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, "bad token")
        first = await context.read()
        if first is grpc.aio.EOF:
            return
        hello = first.hello
        self.hellos.append(hello)
        desired = self.desired if self.desired is not None else [
            t.task for t in hello.tasks if t.state == RUNNING]
        offsets = [agent_pb2.LogOffset(task=agent_pb2.TaskRef(job_id=k[0], attempt=k[1], rank=k[2]),
                                       offset=v) for k, v in self.log_offsets.items()]
        commands = self._commands = self._streams[hello.node_id] = asyncio.Queue()
        self._changed.set()
        await context.write(agent_pb2.ControlMessage(welcome=agent_pb2.Welcome(
            desired=desired, log_offsets=offsets, heartbeat_interval_s=self.heartbeat_interval_s)))

        async def pump() -> None:
            while True:
                await context.write(await commands.get())

        pumper = asyncio.create_task(pump())
        try:
            while (msg := await context.read()) is not grpc.aio.EOF:
                self.messages.append(msg)
                self._changed.set()
        finally:
            pumper.cancel()

    # ---- test helpers -----------------------------------------------------------------------
    def send(self, node: str | None = None, **kind) -> None:
        commands = self._streams.get(node) if node else self._commands
        assert commands is not None, f"agent {node or ''} not connected"
        commands.put_nowait(agent_pb2.ControlMessage(**kind))

    def start_task(self, job: str, command: list[str], rank: int = 0, node: str | None = None,
                   **fields) -> None:
        self.send(node, start=agent_pb2.StartTask(task=ref(job, rank=rank), command=command,
                                                  **fields))

    async def wait_for(self, predicate, timeout: float = 10.0, what: str = "message"):
        deadline = time.monotonic() + timeout
        while True:
            for msg in self.messages:
                if predicate(msg):
                    return msg
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"timed out waiting for {what}; got {len(self.messages)} messages")
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), left)
            except TimeoutError:
                pass

    async def wait_hellos(self, count: int, timeout: float = 10.0) -> agent_pb2.Hello:
        await self.wait_until(lambda: len(self.hellos) >= count and self._commands is not None,
                              timeout, f"{count} Hellos")
        return self.hellos[count - 1]

    async def wait_until(self, condition, timeout: float = 10.0, what: str = "condition") -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}")
            await asyncio.sleep(0.02)

    async def report(self, job: str, state, rank: int = 0, timeout: float = 10.0):
        msg = await self.wait_for(
            lambda m: m.HasField("task") and m.task.task.job_id == job and m.task.task.rank == rank
            and m.task.state == state, timeout, f"{job} state {state}")
        return msg.task

    def log_of(self, job: str, rank: int = 0) -> bytes:
        data = bytearray()
        for m in self.messages:
            if m.HasField("log") and m.log.task.job_id == job and m.log.task.rank == rank:
                assert m.log.offset <= len(data), "log chunk leaves a gap"
                data[m.log.offset:m.log.offset + len(m.log.data)] = m.log.data
        return bytes(data)


def ref(job: str, attempt: int = 0, rank: int = 0) -> agent_pb2.TaskRef:
    return agent_pb2.TaskRef(job_id=job, attempt=attempt, rank=rank)


def run(coro, timeout: float = 40.0):
    return asyncio.run(asyncio.wait_for(coro, timeout))


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


async def wait_dead(pid: int, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while alive(pid) and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    return not alive(pid)


async def wait_file(path: Path, timeout: float = 5.0) -> str:
    deadline = time.monotonic() + timeout
    while not (path.exists() and path.read_text().strip()):
        if time.monotonic() > deadline:
            raise AssertionError(f"{path} never appeared")
        await asyncio.sleep(0.02)
    return path.read_text().strip()


class Agents:
    """Starts ``python -m hyperion.agent`` processes and makes sure none outlives the test."""

    def __init__(self, tmp: Path) -> None:
        self.tmp, self.procs = tmp, []
        self.token_file = tmp / "token"
        self.token_file.write_text(TOKEN + "\n")

    def start(self, port: int, *extra: str, data_dir: Path | None = None,
              node_id: str = "n1") -> subprocess.Popen:
        data_dir = data_dir or self.tmp / node_id
        stderr = open(self.tmp / f"{node_id}-{len(self.procs)}.stderr", "wb")  # noqa: SIM115
        proc = subprocess.Popen(
            [sys.executable, "-m", "hyperion.agent", "--control-plane", f"127.0.0.1:{port}",
             "--token-file", str(self.token_file), "--node-id", node_id,
             "--data-dir", str(data_dir), "--log-ship-interval", "0.05", "--log-level", "debug",
             *extra],
            stdin=subprocess.DEVNULL, stdout=stderr, stderr=stderr)
        proc.stderr_path = stderr.name
        stderr.close()
        self.procs.append(proc)
        return proc

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(8)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture
def agents(tmp_path):
    a = Agents(tmp_path)
    yield a
    a.stop_all()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---- tests ------------------------------------------------------------------------------------
def test_hello_declares_inventory_then_heartbeats_and_metrics(agents):
    async def scenario():
        cp = await FakeControlPlane().start()
        agents.start(cp.port, "--gpus", "4", "--gpu-type", "A100", "--cpus", "3",
                     "--memory", "8Gi", "--label", "zone=a", "rack=7", "--metrics-interval", "0.2")
        hello = await cp.wait_hellos(1)
        assert [g.index for g in hello.gpus] == [0, 1, 2, 3]
        assert hello.gpus_logical and hello.gpu_type == "A100"
        assert (hello.node_id, hello.cpus_milli, hello.memory_mb) == ("n1", 3000, 8192)
        assert dict(hello.labels) == {"zone": "a", "rack": "7"}
        assert hello.version and hello.hostname == socket.gethostname() and not hello.tasks
        await cp.wait_for(lambda m: m.HasField("heartbeat"), what="a heartbeat")
        metrics = (await cp.wait_for(lambda m: m.HasField("metrics"), what="metrics")).metrics
        assert metrics.node_id == "n1" and metrics.memory_total_mb > 0
        assert abs(metrics.timestamp - time.time()) < 30
        await cp.stop()
    run(scenario())


def test_task_gets_its_env_and_its_log_arrives_before_exit(agents):
    async def scenario():
        cp = await FakeControlPlane().start()
        agents.start(cp.port, "--gpus", "4")
        await cp.wait_hellos(1)
        cp.start_task("job-env", ["env | sort"], rank=1, gpu_indices=[1, 2], world_size=4,
                      env={"FOO": "bar"}, name="train", checkpoint_dir="/ckpt")
        cp.start_task("job-cpu", ["sh", "-c", 'echo "cuda=[$CUDA_VISIBLE_DEVICES]"; pwd'])
        running = await cp.report("job-env", RUNNING, rank=1)
        exited = await cp.report("job-env", EXITED, rank=1)
        assert exited.exit_code == 0 and exited.at >= running.at > 0
        log = cp.log_of("job-env", rank=1).decode()
        for line in ("HYPERION_RANK=1", "CUDA_VISIBLE_DEVICES=1,2", "HYPERION_WORLD_SIZE=4",
                     "RANK=1", "WORLD_SIZE=4", "FOO=bar", "HYPERION_JOB_ID=job-env",
                     "HYPERION_JOB_NAME=train", "HYPERION_NODE_ID=n1", "HYPERION_ATTEMPT=0",
                     "HYPERION_CHECKPOINT_DIR=/ckpt"):
            assert line in log.splitlines(), line
        assert exited.log_size == len(log.encode())
        exit_at = next(i for i, m in enumerate(cp.messages) if m.HasField("task")
                       and m.task.task.job_id == "job-env" and m.task.state == EXITED)
        assert all(i < exit_at for i, m in enumerate(cp.messages) if m.HasField("log")
                   and m.log.task.job_id == "job-env"), "log chunks must precede the EXITED report"
        await cp.report("job-cpu", EXITED)
        cpu_log = cp.log_of("job-cpu").decode().splitlines()
        assert cpu_log[0] == "cuda=[]"
        assert cpu_log[1].endswith("/n1/tasks/job-cpu/0-0")
        await cp.stop()
    run(scenario())


def test_exit_codes_and_start_failures_are_reported(agents, tmp_path):
    async def scenario():
        cp = await FakeControlPlane().start()
        agents.start(cp.port)
        await cp.wait_hellos(1)
        cp.start_task("exit3", ["exit 3"])
        cp.start_task("sigkill", ["kill -9 $$"])
        cp.start_task("missing", ["/no/such/binary", "--flag"])
        cp.start_task("badcwd", ["true"], working_dir=str(tmp_path / "absent"))
        cp.start_task("cwd", ["pwd"], working_dir=str(tmp_path))
        assert (await cp.report("exit3", EXITED)).exit_code == 3
        assert (await cp.report("sigkill", EXITED)).exit_code == 137
        missing = await cp.report("missing", FAILED)
        assert missing.exit_code == 127 and "/no/such/binary" in missing.message
        badcwd = await cp.report("badcwd", FAILED)
        assert badcwd.exit_code == 127 and "does not exist" in badcwd.message
        await cp.report("cwd", EXITED)
        assert cp.log_of("cwd").decode().strip() == str(tmp_path)
        await cp.wait_until(lambda: b"No such file" in cp.log_of("missing"), what="failure log")
        await cp.stop()
    run(scenario())


def test_start_task_twice_runs_it_once(agents, tmp_path):
    marker = tmp_path / "ran"

    async def scenario():
        cp = await FakeControlPlane().start()
        agents.start(cp.port)
        await cp.wait_hellos(1)
        for _ in range(3):
            cp.start_task("once", [f"echo ran >> {marker}; sleep 0.3"])
        await cp.report("once", EXITED)
        cp.start_task("once", [f"echo ran >> {marker}"])  # after the exit, before an ack
        await cp.wait_until(lambda: sum(m.HasField("task") and m.task.state == EXITED
                                        for m in cp.messages) >= 2, what="re-sent report")
        assert marker.read_text().splitlines() == ["ran"]
        await cp.stop()
    run(scenario())


def test_stop_task_kills_the_whole_process_group(agents, tmp_path):
    async def scenario():
        cp = await FakeControlPlane().start()
        agents.start(cp.port)
        await cp.wait_hellos(1)
        cp.start_task("polite", [f"sleep 60 & echo $! > {tmp_path}/child; wait"])
        cp.start_task("stubborn", [f"trap '' TERM; echo $$ > {tmp_path}/stubborn; sleep 60"])
        child = int(await wait_file(tmp_path / "child"))
        stubborn = int(await wait_file(tmp_path / "stubborn"))
        cp.send(stop=agent_pb2.StopTask(task=ref("polite"), grace_s=5, reason="preempted"))
        cp.send(stop=agent_pb2.StopTask(task=ref("stubborn"), grace_s=0.3))
        polite = await cp.report("polite", EXITED)
        assert polite.exit_code == 143 and "preempted" in polite.message
        assert await wait_dead(child), "the task's child outlived StopTask"
        assert (await cp.report("stubborn", EXITED)).exit_code == 137
        assert await wait_dead(stubborn)
        await cp.stop()
    run(scenario())


def test_bad_token_is_rejected_retried_and_never_logged(agents, tmp_path):
    async def scenario():
        cp = await FakeControlPlane(token="the-right-one").start()
        proc = agents.start(cp.port)
        await cp.wait_until(lambda: cp.rejected >= 3, what="3 rejected attempts")
        assert not cp.hellos and proc.poll() is None
        agents.token_file.write_text("the-right-one")  # rotated: read again on the next attempt
        await cp.wait_hellos(1)
        await cp.stop()
        return proc
    proc = run(scenario())
    text = Path(proc.stderr_path).read_text()
    assert "UNAUTHENTICATED" in text
    assert TOKEN not in text and "the-right-one" not in text


def test_reconnect_reports_unacked_exit_and_keeps_running_tasks(agents, tmp_path):
    async def scenario():
        cp = await FakeControlPlane().start()
        port = cp.port
        agents.start(cp.port)
        await cp.wait_hellos(1)
        cp.start_task("done", ["printf 'hello world'; exit 4"])
        cp.start_task("long", [f"echo $$ > {tmp_path}/long; exec sleep 60"])
        await cp.report("done", EXITED)
        long_pid = int(await wait_file(tmp_path / "long"))
        await cp.stop()
        await asyncio.sleep(0.5)  # control plane down; the task keeps running
        assert alive(long_pid)

        cp2 = FakeControlPlane()
        cp2.log_offsets = {("done", 0, 0): 6}  # it already holds "hello "
        await cp2.start(port)
        hello = await cp2.wait_hellos(1)
        tasks = {t.task.job_id: t for t in hello.tasks}
        assert tasks["done"].state == EXITED and tasks["done"].exit_code == 4
        assert tasks["done"].log_size == 11 and tasks["long"].state == RUNNING
        chunk = await cp2.wait_for(lambda m: m.HasField("log") and m.log.task.job_id == "done")
        assert (chunk.log.offset, chunk.log.data) == (6, b"world")
        cp2.send(ack=agent_pb2.AckTask(task=ref("done")))
        await asyncio.sleep(0.2)
        await cp2.stop()

        cp3 = FakeControlPlane()
        cp3.desired = []  # this control plane wants nothing running here
        await cp3.start(port)
        hello = await cp3.wait_hellos(1)
        assert [t.task.job_id for t in hello.tasks] == ["long"]
        stopped = await cp3.report("long", EXITED)
        assert stopped.exit_code == 143 and await wait_dead(long_pid)
        await cp3.stop()
    run(scenario())


def test_restarted_agent_kills_what_its_predecessor_left(agents, tmp_path):
    async def scenario():
        cp = await FakeControlPlane().start()
        first = agents.start(cp.port)
        await cp.wait_hellos(1)
        cp.start_task("orphan", [f"sleep 60 & echo $! > {tmp_path}/child; wait"])
        await cp.report("orphan", RUNNING)
        child = int(await wait_file(tmp_path / "child"))
        first.kill()
        first.wait()
        await asyncio.sleep(0.2)
        assert alive(child), "tasks must survive the agent's death"
        agents.start(cp.port)
        hello = await cp.wait_hellos(2)
        (orphan,) = hello.tasks
        assert (orphan.task.job_id, orphan.state, orphan.exit_code) == ("orphan", EXITED, 137)
        assert orphan.message == "agent restarted; task was killed"
        assert await wait_dead(child)
        cp.start_task("orphan", ["echo started-again"])  # must not run a second time
        await asyncio.sleep(0.5)
        assert b"started-again" not in cp.log_of("orphan")
        await cp.stop()
    run(scenario())


def test_sigterm_stops_tasks_reports_and_exits_zero(agents, tmp_path):
    async def scenario():
        cp = await FakeControlPlane().start()
        proc = agents.start(cp.port, "--shutdown-grace", "1")
        await cp.wait_hellos(1)
        cp.start_task("victim", [f"echo $$ > {tmp_path}/victim; exec sleep 60"])
        pid = int(await wait_file(tmp_path / "victim"))
        proc.send_signal(signal.SIGTERM)
        assert (await cp.report("victim", EXITED)).exit_code == 143
        await cp.wait_until(lambda: proc.poll() is not None, 10, "the agent to exit")
        assert proc.returncode == 0 and not alive(pid)
        await cp.stop()
    run(scenario())


@pytest.mark.slow
def test_sustains_300_trivial_tasks_per_second(agents):
    async def scenario():
        cp = await FakeControlPlane().start()
        agents.start(cp.port, "--log-level", "info")
        await cp.wait_hellos(1)
        n = 1500
        started = time.monotonic()
        for i in range(n):
            cp.start_task(f"t{i}", ["true"])
        await cp.wait_until(lambda: sum(m.HasField("task") and m.task.state == EXITED
                                        for m in cp.messages) >= n, 30, f"{n} exits")
        rate = n / (time.monotonic() - started)
        print(f"\n{n} start+exit cycles at {rate:.0f}/s on {os.cpu_count()} CPUs")
        await cp.stop()
        return rate
    assert run(scenario(), timeout=60) >= 300



def test_local_provider_agents_connect_and_terminate_leaves_nothing(tmp_path):
    from hyperion.providers.local import LocalProvider

    token = tmp_path / "token"
    token.write_text(TOKEN)

    async def scenario():
        cp = await FakeControlPlane().start()
        provider = LocalProvider(tmp_path / "cp", f"127.0.0.1:{cp.port}", token, gpus_per_node=2)
        try:
            await provider.launch("local", 2, "req-1")
            await cp.wait_until(lambda: len(cp._streams) == 2, 15, "both agents to connect")
            assert {h.node_id for h in cp.hellos} == {"local-1", "local-2"}
            assert all(len(h.gpus) == 2 and h.gpus_logical for h in cp.hellos)
            cp.start_task("local-1", [f"echo $$ > {tmp_path}/local-1; exec sleep 60"], node="local-1")
            # the task's leader dies with its agent (PR_SET_PDEATHSIG); a process it forked does not
            cp.start_task("local-2", [f"sleep 60 & echo $! > {tmp_path}/local-2; wait"], node="local-2")
            pids = {n: int(await wait_file(tmp_path / n)) for n in ("local-1", "local-2")}
            # local-2's agent dies without cleaning up: terminate must kill what it left.
            record = json.loads((tmp_path / "cp/agents/local-2/agent.json").read_text())
            os.kill(record["pid"], signal.SIGKILL)
            await asyncio.sleep(0.2)
            assert alive(pids["local-2"])
            await provider.terminate(["local-1", "local-2"], "req-2")
            assert (await cp.report("local-1", EXITED)).exit_code == 143  # a graceful stop
            assert not alive(pids["local-1"]) and await wait_dead(pids["local-2"])
            states = {n.id: n.state for n in await provider.list_nodes()}
            assert states == {"local-1": "terminated", "local-2": "terminated"}
            assert provider.drain_errors() == []
        finally:
            await provider.terminate([n.id for n in await provider.list_nodes()], "cleanup")
            await cp.stop()
    run(scenario())

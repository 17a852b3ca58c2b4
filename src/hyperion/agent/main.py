"""``hyperiond``: the node agent's command line and the wiring of its parts.

    hyperiond --control-plane HOST:PORT --token-file PATH --node-id ID --data-dir DIR
              [--gpus N] [--gpu-type T] [--cpus N] [--memory 64Gi] [--label k=v ...]
              [--heartbeat-interval 1.0] [--metrics-interval 5.0] [--log-ship-interval 0.2]
              [--shutdown-grace 2.0] [--log-level info]
              [--standby-workers 2] [--standby-preload MOD ...] [--cgroup-root DIR]
              [--telemetry-file PATH] [--max-gpu-temperature 90] [--resume-gpu-temperature 80]
              [--cool-readings 3] [--drain-on-temperature] [--no-drain-on-errors]
              [--spot-notice-url URL] [--spot-notice-interval 2.0]

``Agent`` owns the parts: ``TaskSupervisor`` (tasks.py) runs tasks, ``LogShipper``
(logship.py) sends their logs, ``Session`` (session.py) keeps the stream to the control plane,
``HostTelemetry`` (telemetry.py) reads the machine (or ``FileTelemetry`` over it, for injected
readings), ``StandbyPool`` and the freezer (standby.py) make the fast path for urgent tasks. It
answers the control plane's commands and sends heartbeats and metrics on timers; each reading is
judged by ``core.health.assess`` and a change of verdict is reported as a ``NodeCondition``
(an unhealthy node is cordoned). Jobs report their checkpoints (``hyperion.checkpoint``) as
datagrams on the agent's unix socket (``HYPERION_AGENT_SOCKET``); the agent checks that they
come for a task it runs and relays them. SIGTERM or SIGINT stops every task (SIGTERM, then
SIGKILL after ``--shutdown-grace``), reports the exits if connected, and exits 0.

With ``--spot-notice-url`` (off by default; on EC2 the metadata service's
``spot/instance-action``, which the aws provider's user data passes for spot instances) the agent
polls for the spot interruption notice (``spot_notice.SpotNoticePoller``); once one appears its
``NodeCondition`` says so (unhealthy: no new work, and ``spot_notice_at``: when EC2 acts), and the
control plane drains the node's instance and launches a replacement.

Exit status: 0 after a signal, 2 for bad arguments, 1 if the agent cannot run at all (its data
dir is locked by another agent, or unusable).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import fcntl
import json
import logging
import os
import re
import resource
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from hyperion.agent.inventory import Inventory, discover, parse_labels, parse_memory
from hyperion.agent.logship import LogShipper
from hyperion.agent.records import TaskJournal, TaskKey, TaskRecord
from hyperion.agent.session import Outbox, Session
from hyperion.agent.spot_notice import SpotNotice, SpotNoticePoller
from hyperion.agent.standby import StandbyPool, freezer
from hyperion.agent.tasks import TaskSupervisor, report_message
from hyperion.agent.telemetry import FileTelemetry, HostTelemetry, TelemetrySource, metrics_message
from hyperion.api._generated.hyperion.v1 import agent_pb2
from hyperion.core.health import HealthPolicy, NodeHealth, assess, changed

log = logging.getLogger("hyperiond")

DESIRED_STOP_GRACE_S = 5.0
NODE_CREDENTIAL_FILE = "node.credential"  # in the data dir: what a bootstrap join was exchanged for


def _key(ref: agent_pb2.TaskRef) -> TaskKey:
    return (ref.job_id, ref.attempt, ref.rank)


class Agent:
    def __init__(self, args: argparse.Namespace, inventory: Inventory,
                 telemetry: TelemetrySource | None = None,
                 task_env: dict[str, str] | None = None) -> None:
        self.args, self.inventory, self.task_env = args, inventory, task_env
        self.data_dir: Path = args.data_dir
        self.telemetry = telemetry or HostTelemetry(str(self.data_dir),
                                                    with_gpus=not inventory.gpus_logical)
        if getattr(args, "telemetry_file", None):
            self.telemetry = FileTelemetry(self.data_dir / args.telemetry_file, self.telemetry)
        self.policy: HealthPolicy = args.health_policy
        self.health = NodeHealth()
        self.standby = StandbyPool(args.standby_workers, tuple(args.standby_preload)) if args.standby_workers else None
        self.outbox = Outbox()
        self.logs = LogShipper(self.outbox)
        self.session = Session(args.control_plane, args.token_file, self.outbox, self,
                               heartbeat_interval_s=args.heartbeat_interval,
                               credential_file=self.data_dir / NODE_CREDENTIAL_FILE)
        self.spot_notice: SpotNotice | None = None

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        journal = TaskJournal(self.data_dir / "tasks.jsonl")
        sock_path = await self._listen_for_checkpoints(loop)
        self.tasks = TaskSupervisor(self.data_dir, self.inventory.node_id, journal, self._report,
                                    base_env=self.task_env, standby=self.standby,
                                    freezer=freezer(self.args.cgroup_root), agent_socket=sock_path)
        self.tasks.recover()
        if self.standby is not None:
            self.standby.fill()
        for record in journal.records.values():
            self.logs.track(record.key, self.tasks.log_path(record.key), final=True)
        inv = self.inventory
        log.info("node %s: %d %sGPUs%s, %.1f CPUs, %d MiB; control plane %s", inv.node_id,
                 len(inv.gpus), "logical " if inv.gpus_logical else "",
                 f" ({inv.gpu_type})" if inv.gpus and inv.gpu_type else "", inv.cpus_milli / 1000,
                 inv.memory_mb, self.args.control_plane)
        loops = [loop.create_task(coro) for coro in (
            self.session.run(), self._heartbeats(), self._metrics(), self._ship_logs())]
        if getattr(self.args, "spot_notice_url", None):
            loops.append(loop.create_task(self._watch_spot_notice(SpotNoticePoller(self.args.spot_notice_url))))
        await stop.wait()
        log.info("signal received: stopping %d tasks", len(self.tasks.running()))
        await self.tasks.stop_all(self.args.shutdown_grace, "agent shutting down")
        if self.standby is not None:
            self.standby.close()
        self.logs.tick()
        await self.session.drain(timeout_s=2.0)
        for task in loops:
            task.cancel()
        await asyncio.gather(*loops, return_exceptions=True)
        self.tasks.close()
        return 0

    # ---- SessionHandler ---------------------------------------------------------------------
    def hello(self) -> agent_pb2.Hello:
        reports = [report_message(r, self.logs.size(r.key))
                   for r in self.tasks.journal.records.values()]
        hello = self.inventory.hello(reports)
        hello.condition.CopyFrom(self._condition())
        return hello

    def on_message(self, msg: agent_pb2.ControlMessage) -> None:
        kind = msg.WhichOneof("kind")
        if kind == "start":
            first = msg.start.preempt_first
            frozen = [_key(stop.task) for stop in first if self.tasks.freeze(_key(stop.task))]
            self.tasks.start(msg.start)  # the fast path: victims frozen, start at once, then stop them
            if first:
                log.info("fast path: froze %s, started %s; asking them to checkpoint", frozen or "none",
                         _key(msg.start.task))
                asyncio.get_running_loop().call_soon(self._stop_all, list(first))
        elif kind == "stop":
            self.tasks.stop(_key(msg.stop.task), msg.stop.grace_s, msg.stop.reason)
        elif kind == "ack":
            key = _key(msg.ack.task)
            if self.tasks.ack(key):
                self.logs.forget(key)
        elif kind == "welcome":
            desired = {_key(ref) for ref in msg.welcome.desired}
            for key in self.tasks.running():
                if key not in desired:
                    self.tasks.stop(key, DESIRED_STOP_GRACE_S, "not desired by the control plane")
            self.logs.reset({_key(o.task): o.offset for o in msg.welcome.log_offsets})
            self.logs.tick()

    def _stop_all(self, stops: list[agent_pb2.StopTask]) -> None:
        for stop in stops:
            self.tasks.stop(_key(stop.task), stop.grace_s, stop.reason)

    # ---- checkpoints reported by jobs -------------------------------------------------------
    async def _listen_for_checkpoints(self, loop: asyncio.AbstractEventLoop) -> str:
        path = self.data_dir / "agent.sock"
        if len(str(path)) > 100:  # sun_path holds 108 bytes
            path = Path(tempfile.mkdtemp(prefix="hyperiond-")) / "agent.sock"
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(str(path))
        os.chmod(path, 0o600)
        sock.setblocking(False)
        loop.add_reader(sock.fileno(), self._on_datagrams, sock)
        return str(path)

    def _on_datagrams(self, sock: socket.socket) -> None:
        while True:
            try:
                data = sock.recv(65536)
            except BlockingIOError:
                return
            msg = checkpoint_report(data, self.tasks.checkpoint_dir)
            if msg is None:
                log.warning("ignored a checkpoint report: %.200r", data)
            elif self.outbox.ready:
                self.outbox.put(agent_pb2.AgentMessage(checkpoint=msg))

    # ---- health -----------------------------------------------------------------------------
    def _condition(self) -> agent_pb2.NodeCondition:
        h = self.health
        notice = self.spot_notice
        if notice is not None:  # the machine is going away: no new work, whatever its health
            reason = f"spot interruption notice: EC2 will {notice.action} this instance at " \
                     f"{time.strftime('%H:%M:%S', time.gmtime(notice.time))} UTC"
            return agent_pb2.NodeCondition(healthy=False, reason=f"{h.reason}; {reason}" if h.reason else reason,
                                           drain=h.drain, at=time.time(), spot_notice_at=notice.time)
        return agent_pb2.NodeCondition(healthy=h.healthy, reason=h.reason, drain=h.drain, at=time.time())

    async def _watch_spot_notice(self, poller: SpotNoticePoller) -> None:
        """Poll the metadata service for the spot notice; report it (once) as the node's condition.
        Until the condition reaches the control plane it is in every Hello (reconnects)."""
        while self.spot_notice is None:
            notice = await poller.poll()
            if notice is not None:
                self.spot_notice = notice
                log.warning("spot interruption notice: EC2 will %s this instance at %s; telling the control plane",
                            notice.action, time.strftime("%H:%M:%S", time.gmtime(notice.time)))
                if self.outbox.ready:
                    self.outbox.put(agent_pb2.AgentMessage(condition=self._condition()))
                return
            await asyncio.sleep(self.args.spot_notice_interval)

    def _judge(self, reading) -> None:
        new = assess(self.health, reading.gpus, self.policy)
        if new is self.health:
            return
        was, self.health = self.health, new
        if changed(was, new):
            if new.healthy:
                log.warning("node healthy again: uncordoning")
            else:
                log.warning("node unhealthy (%s): cordoning%s", new.reason, " and draining" if new.drain else "")
            if self.outbox.ready:
                self.outbox.put(agent_pb2.AgentMessage(condition=self._condition()))

    # ---- task events ------------------------------------------------------------------------
    def _report(self, record: TaskRecord) -> None:
        key = record.key
        if not self.logs.tracks(key):
            self.logs.track(key, self.tasks.log_path(key))
        if record.state in ("running", "starting"):
            self._send_report(record, self.logs.size(key))
            return
        snapshot = dataclasses.replace(record)
        self.logs.finish(key, lambda size: self._send_report(snapshot, size))

    def _send_report(self, record: TaskRecord, log_size: int) -> None:
        self.outbox.put(agent_pb2.AgentMessage(task=report_message(record, log_size)))

    # ---- timers -----------------------------------------------------------------------------
    async def _heartbeats(self) -> None:
        while True:
            await asyncio.sleep(self.session.heartbeat_interval_s)
            if self.outbox.ready:
                self.outbox.put(agent_pb2.AgentMessage(
                    heartbeat=agent_pb2.Heartbeat(at=time.time())))

    async def _metrics(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.args.metrics_interval)
            try:
                reading = await loop.run_in_executor(None, self.telemetry.read)
            except Exception as exc:  # noqa: BLE001 - telemetry must never stop the agent
                log.warning("telemetry failed: %s", exc)
                continue
            self._judge(reading)
            if self.outbox.ready:
                self.outbox.put(agent_pb2.AgentMessage(
                    metrics=metrics_message(self.inventory.node_id, reading, time.time())))

    async def _ship_logs(self) -> None:
        while True:
            await asyncio.sleep(self.args.log_ship_interval)
            self.logs.tick()


# ---- command line ---------------------------------------------------------------------------
def _positive(kind: type):
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"{text!r} must be more than zero")
        return value
    return parse


def _count(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number >= 0")
    return int(text)


def _memory(text: str) -> int:
    try:
        return parse_memory(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _address(text: str) -> str:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"{text!r} is not HOST:PORT (e.g. 10.0.0.5:7070)")
    return text


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="hyperiond", description="Hyperion node agent.")
    p.add_argument("--control-plane", required=True, type=_address, metavar="HOST:PORT")
    p.add_argument("--token-file", required=True, type=Path, metavar="PATH",
                   help="file holding the agent token (sent as a Bearer token; never logged)")
    p.add_argument("--node-id", required=True, metavar="ID")
    p.add_argument("--data-dir", required=True, type=Path, metavar="DIR",
                   help="task logs, working dirs and the durable task records")
    p.add_argument("--gpus", type=_count, metavar="N",
                   help="declare N logical GPUs instead of discovering them through NVML")
    p.add_argument("--gpu-type", metavar="T", help="GPU type to advertise")
    p.add_argument("--cpus", type=_positive(float), metavar="N")
    p.add_argument("--memory", type=_memory, metavar="SIZE", help="bytes, or 64Gi, 512M, ...")
    p.add_argument("--label", action="extend", nargs="+", default=[], metavar="K=V")
    p.add_argument("--heartbeat-interval", type=_positive(float), default=1.0, metavar="S")
    p.add_argument("--metrics-interval", type=_positive(float), default=5.0, metavar="S")
    p.add_argument("--log-ship-interval", type=_positive(float), default=0.2, metavar="S")
    p.add_argument("--shutdown-grace", type=_positive(float), default=2.0, metavar="S",
                   help="on SIGTERM, how long tasks get between SIGTERM and SIGKILL")
    p.add_argument("--log-level", default="info",
                   choices=["debug", "info", "warning", "error"])
    fast = p.add_argument_group("fast path for urgent tasks")
    fast.add_argument("--standby-workers", type=_count, default=2, metavar="N",
                      help="warm Python workers kept ready to start urgent tasks (0: none)")
    fast.add_argument("--standby-preload", action="extend", nargs="+", default=[], metavar="MODULE",
                      help="modules the standby workers import ahead of time (e.g. torch)")
    fast.add_argument("--cgroup-root", type=Path, metavar="DIR",
                      help="a cgroup v2 directory the agent may write, for the cgroup freezer "
                           "(default: its own cgroup if writable; else tasks are frozen with SIGSTOP)")
    health = p.add_argument_group("health")
    health.add_argument("--telemetry-file", type=Path, metavar="PATH",
                        help="JSON readings that override the host's (fault drills, tests); "
                             "relative to --data-dir")
    health.add_argument("--max-gpu-temperature", type=_positive(float), default=90.0, metavar="C",
                        help="a GPU this hot cordons the node")
    health.add_argument("--resume-gpu-temperature", type=_positive(float), default=80.0, metavar="C",
                        help="every GPU at or below this for --cool-readings readings uncordons it")
    health.add_argument("--cool-readings", type=_positive(int), default=3, metavar="N")
    health.add_argument("--drain-on-temperature", action="store_true",
                        help="also stop (with checkpoint) and requeue the jobs of a node too hot")
    health.add_argument("--no-drain-on-errors", dest="drain_on_errors", action="store_false",
                        help="on GPU ECC/XID errors, cordon only (default: also drain)")
    spot = p.add_argument_group("spot instances")
    spot.add_argument("--spot-notice-url", default="", metavar="URL",
                      help="poll this spot/instance-action URL for an interruption notice (on EC2: "
                           "http://169.254.169.254/latest/meta-data/spot/instance-action); default: off")
    spot.add_argument("--spot-notice-interval", type=_positive(float), default=2.0, metavar="S")
    return p


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", args.node_id):
        parser.error(f"--node-id {args.node_id!r}: use letters, digits, '.', '_' and '-'")
    if not args.token_file.is_file():
        parser.error(f"--token-file {args.token_file}: no such file")
    try:
        args.labels = parse_labels(args.label)
    except ValueError as exc:
        parser.error(f"--label: {exc}")
    try:
        args.data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        parser.error(f"--data-dir {args.data_dir}: {exc.strerror or exc}")
    args.data_dir = args.data_dir.resolve()
    try:
        args.health_policy = HealthPolicy(args.max_gpu_temperature, args.resume_gpu_temperature,
                                          args.cool_readings, args.drain_on_temperature, args.drain_on_errors)
    except ValueError as exc:
        parser.error(str(exc))
    return args


def checkpoint_report(data: bytes, checkpoint_dir) -> agent_pb2.Checkpoint | None:
    """A job's checkpoint datagram as a wire message; None unless it names a task this agent runs
    and a file inside that task's checkpoint directory."""
    try:
        d = json.loads(data)
        key = (str(d["job_id"]), int(d["attempt"]), int(d["rank"]))
        at, path, step = float(d["at"]), str(d["path"]), int(d.get("step") or 0)
        root = checkpoint_dir(key)
        if not root or not os.path.realpath(path).startswith(os.path.realpath(root) + os.sep):
            return None
        return agent_pb2.Checkpoint(task=agent_pb2.TaskRef(job_id=key[0], attempt=key[1], rank=key[2]),
                                    at=at, path=path, step=step)
    except (ValueError, TypeError, KeyError, OverflowError):  # anything a local process may send
        return None


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                        format="%(asctime)s hyperiond[%(process)d] %(levelname)s %(message)s")
    log.setLevel(args.log_level.upper())
    task_env = dict(os.environ)
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")  # gRPC core's own chatter, not the tasks'
    try:
        lock = open(args.data_dir / "agent.lock", "a")  # noqa: SIM115 - held for the process's life
    except OSError as exc:
        log.error("cannot use --data-dir %s: %s", args.data_dir, exc.strerror or exc)
        return 1
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        log.error("another hyperiond is using --data-dir %s", args.data_dir)
        return 1
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 65536 if hard == resource.RLIM_INFINITY else min(hard, 65536)
    if soft != resource.RLIM_INFINITY and soft < wanted:  # one pidfd per running task
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    inventory = discover(args.node_id, gpus=args.gpus, gpu_type=args.gpu_type, cpus=args.cpus,
                         memory_bytes=args.memory, labels=args.labels)
    try:
        return asyncio.run(Agent(args, inventory, task_env=task_env).run())
    except OSError as exc:
        log.error("cannot run: %s", exc)
        return 1

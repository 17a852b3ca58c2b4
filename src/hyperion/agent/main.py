"""``hyperiond``: the node agent's command line and the wiring of its parts.

    hyperiond --control-plane HOST:PORT --token-file PATH --node-id ID --data-dir DIR
              [--gpus N] [--gpu-type T] [--cpus N] [--memory 64Gi] [--label k=v ...]
              [--heartbeat-interval 1.0] [--metrics-interval 5.0] [--log-ship-interval 0.2]
              [--shutdown-grace 2.0] [--log-level info]

``Agent`` owns the parts: ``TaskSupervisor`` (tasks.py) runs tasks, ``LogShipper``
(logship.py) sends their logs, ``Session`` (session.py) keeps the stream to the control plane,
``HostTelemetry`` (telemetry.py) reads the machine. It answers the control plane's commands
and sends heartbeats and metrics on timers. SIGTERM or SIGINT stops every task (SIGTERM, then
SIGKILL after ``--shutdown-grace``), reports the exits if connected, and exits 0.

Exit status: 0 after a signal, 2 for bad arguments, 1 if the agent cannot run at all (its data
dir is locked by another agent, or unusable).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import fcntl
import logging
import os
import re
import resource
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from hyperion.agent.inventory import Inventory, discover, parse_labels, parse_memory
from hyperion.agent.logship import LogShipper
from hyperion.agent.records import TaskJournal, TaskKey, TaskRecord
from hyperion.agent.session import Outbox, Session
from hyperion.agent.tasks import TaskSupervisor, report_message
from hyperion.agent.telemetry import HostTelemetry, TelemetrySource, metrics_message
from hyperion.api._generated.hyperion.v1 import agent_pb2

log = logging.getLogger("hyperiond")

DESIRED_STOP_GRACE_S = 5.0


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
        self.outbox = Outbox()
        self.logs = LogShipper(self.outbox)
        self.session = Session(args.control_plane, args.token_file, self.outbox, self,
                               heartbeat_interval_s=args.heartbeat_interval)

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        journal = TaskJournal(self.data_dir / "tasks.jsonl")
        self.tasks = TaskSupervisor(self.data_dir, self.inventory.node_id, journal, self._report,
                                    base_env=self.task_env)
        self.tasks.recover()
        for record in journal.records.values():
            self.logs.track(record.key, self.tasks.log_path(record.key), final=True)
        inv = self.inventory
        log.info("node %s: %d %sGPUs%s, %.1f CPUs, %d MiB; control plane %s", inv.node_id,
                 len(inv.gpus), "logical " if inv.gpus_logical else "",
                 f" ({inv.gpu_type})" if inv.gpus and inv.gpu_type else "", inv.cpus_milli / 1000,
                 inv.memory_mb, self.args.control_plane)
        loops = [loop.create_task(coro) for coro in (
            self.session.run(), self._heartbeats(), self._metrics(), self._ship_logs())]
        await stop.wait()
        log.info("signal received: stopping %d tasks", len(self.tasks.running()))
        await self.tasks.stop_all(self.args.shutdown_grace, "agent shutting down")
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
        return self.inventory.hello(reports)

    def on_message(self, msg: agent_pb2.ControlMessage) -> None:
        kind = msg.WhichOneof("kind")
        if kind == "start":
            self.tasks.start(msg.start)
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
    return args


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

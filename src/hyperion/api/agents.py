"""The control plane's side of the agent channel (``AgentControl.Connect``).

One session per connected agent. Upward messages are applied in arrival order: log bytes are
written before the exit report that follows them, and an exit is acknowledged to the agent
(``AckTask``) only after it is committed, so a crash of either side loses no exit code.

An agent authenticates with the agent token, or with a short-lived bootstrap token minted for the
launch of its machine (``api.bootstrap``): checked before Hello, redeemed for the node id in the
Hello (consumed on first use; a used or expired one is refused with the reason) and exchanged for
a node credential the ``Welcome`` carries, which the agent presents from then on (after its first
use the bootstrap token admits nobody).

On every (re)connect the agent lists the tasks it knows; the control plane answers with the tasks
it wants on that node (anything else is stopped) and re-sends ``StartTask`` for wanted tasks the
agent does not know (the command may have been lost in a crash). Agents key tasks by
(job, attempt, rank), so a repeated start never runs a process twice.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import replace

import grpc

from hyperion.api import auth
from hyperion.api._generated.hyperion.v1 import agent_pb2 as apb
from hyperion.api._generated.hyperion.v1 import agent_pb2_grpc
from hyperion.api.bootstrap import BootstrapRefused, BootstrapTokens
from hyperion.api.service import ControlService
from hyperion.api.wire import metrics_from_pb
from hyperion.core import lifecycle
from hyperion.model import Gpu, Job, Node, NodeState, Phase, Placement, Priority, Resources

log = logging.getLogger("hyperion.agents")
R = apb.TaskReport


class Session:
    def __init__(self, node_id: str) -> None:
        self.node_id = node_id
        self.outbox: asyncio.Queue[apb.ControlMessage | None] = asyncio.Queue()

    def send(self, msg: apb.ControlMessage) -> None:
        self.outbox.put_nowait(msg)

    def close(self) -> None:
        self.outbox.put_nowait(None)


class AgentHub(agent_pb2_grpc.AgentControlServicer):
    """``checkpoint_root``: where jobs that name no ``checkpoint_dir`` checkpoint (one directory
    per job under it); it must be shared by the nodes for a job to resume on another node."""

    def __init__(self, service: ControlService, agent_token: str, heartbeat_interval: float = 1.0,
                 checkpoint_root: str | None = None, bootstrap: BootstrapTokens | None = None) -> None:
        self.service = service
        self.bootstrap = bootstrap if bootstrap is not None else BootstrapTokens(service.state)
        # a node's agent reported a spot interruption notice: (node id, when EC2 acts) -> handled?
        self.on_spot_notice: Callable[[str, float], bool] | None = None
        self.checkpoint_root = checkpoint_root
        self.state = service.state
        self._token_digest = auth.digest(agent_token)
        self.heartbeat_interval = heartbeat_interval
        self.sessions: dict[str, Session] = {}
        self.last_seen: dict[str, float] = {}  # node id -> monotonic time of its last message
        service.dispatcher = self

    # ---- commands (Dispatcher) -----------------------------------------------------------
    def start(self, job: Job, handed: Iterable[tuple[Job, list[Placement]]] = ()) -> None:
        """Start the job's ranks. ``handed``: the jobs (and their ranks) whose resources the job
        takes on the fast path. Each node's first rank carries that node's victims, so its agent
        freezes them, starts the rank, then stops them; ranks of victims on other nodes are
        stopped the ordinary way."""
        first: dict[str, list[apb.StopTask]] = {}
        for victim, placements in handed:
            for p in placements:
                first.setdefault(p.node_id, []).append(self._stop_msg(victim, p, victim.reason))
        for p in job.placements:
            session = self.sessions.get(p.node_id)
            msg = self._start_msg(job, p)
            msg.preempt_first.extend(first.pop(p.node_id, ()))
            if session is not None:
                session.send(apb.ControlMessage(start=msg))
        for node_id, stops in first.items():
            session = self.sessions.get(node_id)
            for stop in stops if session is not None else ():
                session.send(apb.ControlMessage(stop=stop))

    def checkpoint_dir(self, job: Job) -> str:
        if job.spec.checkpoint_dir:
            return job.spec.checkpoint_dir
        return f"{self.checkpoint_root}/{job.id}" if self.checkpoint_root else ""

    def _start_msg(self, job: Job, p: Placement) -> apb.StartTask:
        spec = job.spec
        return apb.StartTask(
            task=apb.TaskRef(job_id=job.id, attempt=job.attempt, rank=p.rank),
            command=list(spec.command), env=dict(spec.env), working_dir=spec.working_dir or "",
            gpu_indices=list(p.gpu_indices), world_size=len(job.placements),  # min_available <= placed <= replicas
            checkpoint_dir=self.checkpoint_dir(job), name=spec.name, resume_from=job.checkpoint_path or "",
            urgent=spec.priority >= Priority.LATENCY_CRITICAL)

    def _stop_msg(self, job: Job, p: Placement, reason: str) -> apb.StopTask:
        return apb.StopTask(task=apb.TaskRef(job_id=job.id, attempt=job.attempt, rank=p.rank),
                            grace_s=job.spec.grace_period_s, reason=reason)

    def stop(self, job: Job, placements: Iterable[Placement], reason: str) -> None:
        for p in placements:
            session = self.sessions.get(p.node_id)
            if session is not None:
                session.send(apb.ControlMessage(stop=self._stop_msg(job, p, reason)))

    # ---- the stream ----------------------------------------------------------------------
    async def Connect(self, requests: AsyncIterator[apb.AgentMessage], context: grpc.aio.ServicerContext):
        token = auth.bearer(dict(context.invocation_metadata()).get("authorization"))
        kind = "agent"
        if token is None or not auth.same(auth.digest(token), self._token_digest):
            if token is not None and self.bootstrap.is_credential(token):
                kind = "credential"
            elif token is not None and self.bootstrap.known(token):
                kind = "bootstrap"
            else:
                await context.abort(grpc.StatusCode.UNAUTHENTICATED, "invalid agent token")
        first = await anext(aiter(requests), None)
        if first is None or first.WhichOneof("kind") != "hello":
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, "the first message must be Hello")
        credential = ""
        try:
            if kind == "credential":
                self.bootstrap.check_credential(token, first.hello.node_id)
            elif kind == "bootstrap":
                now = self.service.clock.now()
                record = self.bootstrap.redeem(token, first.hello.node_id, now)
                credential = self.bootstrap.issue(first.hello.node_id, now)  # the Welcome carries it
                log.info("agent %s joined with a bootstrap token%s; issued its node credential", first.hello.node_id,
                         f" ({record.purpose})" if record.purpose else "")
        except BootstrapRefused as refused:
            log.warning("agent %s refused: %s", first.hello.node_id, refused)
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, str(refused))
        session = self._hello(first.hello, credential)
        reader = asyncio.create_task(self._read(requests, session))
        try:
            while True:
                msg = await session.outbox.get()
                if msg is None:
                    break
                yield msg
        finally:
            reader.cancel()
            if self.sessions.get(session.node_id) is session:
                del self.sessions[session.node_id]
                log.info("agent %s disconnected", session.node_id)

    async def _read(self, requests: AsyncIterator[apb.AgentMessage], session: Session) -> None:
        try:
            async for msg in requests:
                self.last_seen[session.node_id] = asyncio.get_running_loop().time()
                kind = msg.WhichOneof("kind")
                if kind == "task":
                    self._task_reports(session, [msg.task])
                elif kind == "log":
                    c = msg.log
                    self.service.logs.write(c.task.job_id, c.task.attempt, c.task.rank, c.offset, c.data)
                elif kind == "metrics":
                    self.service.record_metrics(metrics_from_pb(msg.metrics, session.node_id))
                elif kind == "checkpoint":
                    self._checkpointed(msg.checkpoint)
                elif kind == "condition":
                    self._condition(session.node_id, msg.condition)
                elif kind == "heartbeat":
                    session.send(apb.ControlMessage(heartbeat=apb.Heartbeat(at=self.service.clock.now())))
        except (asyncio.CancelledError, grpc.aio.AioRpcError):
            pass
        except Exception:  # a bug must not kill the stream silently
            log.exception("agent %s: error handling its messages", session.node_id)
        finally:
            session.close()

    # ---- hello ---------------------------------------------------------------------------
    def _hello(self, hello: apb.Hello, credential: str = "") -> Session:
        now = self.service.clock.now()
        old_session = self.sessions.get(hello.node_id)
        if old_session is not None:
            old_session.close()
        session = Session(hello.node_id)
        self.sessions[hello.node_id] = session
        self.last_seen[hello.node_id] = asyncio.get_running_loop().time()
        old = self.state.nodes.get(hello.node_id)
        node = Node(
            id=hello.node_id, hostname=hello.hostname,
            gpus=tuple(Gpu(g.index, g.uuid, g.name, g.memory_mb) for g in hello.gpus),
            gpu_type=hello.gpu_type, capacity=Resources(len(hello.gpus), hello.cpus_milli, hello.memory_mb * 2**20),
            labels=tuple(sorted(hello.labels.items())), state=NodeState.READY,
            cordoned=old.cordoned if old else False, gpus_logical=hello.gpus_logical,
            registered_at=old.registered_at if old else now, last_seen=now, version=hello.version,
            condition=_unhealthy(hello.condition) if hello.HasField("condition") else "")
        self.state.put_node(node)
        log.info("agent %s connected: %d GPU(s) %s", node.id, len(node.gpus), node.gpu_type)
        if hello.HasField("condition") and hello.condition.spot_notice_at > 0:
            self._spot_notice(node.id, hello.condition.spot_notice_at)

        acks = self._apply_reports(hello.node_id, list(hello.tasks))
        known = {(t.task.job_id, t.task.attempt, t.task.rank) for t in hello.tasks}
        desired, missing = [], []
        for (job_id, rank), p in self.state.node_tasks.get(node.id, {}).items():
            job = self.state.jobs[job_id]
            if job.phase.terminal:
                continue  # cancelled or failed: the agent stops what it still runs
            desired.append(apb.TaskRef(job_id=job_id, attempt=job.attempt, rank=rank))
            if (job_id, job.attempt, rank) not in known:
                missing.append((job, p))
        # how much of each task's log we hold, so the agent resends only the rest
        offsets = [apb.LogOffset(task=apb.TaskRef(job_id=j, attempt=a, rank=r), offset=self.service.logs.size(j, a, r))
                   for j, a, r in known | {(d.job_id, d.attempt, d.rank) for d in desired}]
        session.send(apb.ControlMessage(welcome=apb.Welcome(
            desired=desired, log_offsets=offsets, heartbeat_interval_s=self.heartbeat_interval,
            node_credential=credential)))
        for ref in acks:
            session.send(apb.ControlMessage(ack=apb.AckTask(task=ref)))
        for job, p in missing:
            session.send(apb.ControlMessage(start=self._start_msg(job, p)))
        self.service.wake()
        return session

    # ---- task reports --------------------------------------------------------------------
    def _task_reports(self, session: Session, reports: list[apb.TaskReport]) -> None:
        for ref in self._apply_reports(session.node_id, reports):
            session.send(apb.ControlMessage(ack=apb.AckTask(task=ref)))

    def _apply_reports(self, node_id: str, reports: list[apb.TaskReport]) -> list[apb.TaskRef]:
        """Commit what the reports say; returns the final reports to acknowledge."""
        changed: dict[str, Job] = {}
        stops: list[tuple[Job, list[Placement], str]] = []
        acks = []
        freed = False
        waiting: list[tuple[Job, bool]] = []  # jobs pending again (their attempt is over), and whether preempted
        for r in reports:
            t = r.task
            job = changed.get(t.job_id) or self.state.jobs.get(t.job_id)
            if r.state == R.RUNNING:
                if job is not None:
                    new = lifecycle.task_running(job, t.attempt, t.rank, r.at)
                    if new is not job:
                        changed[t.job_id] = new
                continue
            acks.append(t)
            if job is None:
                continue
            code = r.exit_code if r.state == R.EXITED else lifecycle.SPAWN_FAILED_EXIT_CODE
            new, to_stop = lifecycle.task_exited(job, t.attempt, t.rank, code, r.at, r.message)
            if new is not job:
                changed[t.job_id] = new
                freed = True
            if to_stop:
                stops.append((new, to_stop, "another rank of the job failed"))
            if new.phase is Phase.PENDING and job.phase is not Phase.PENDING:
                waiting.append((new, job.phase is Phase.PREEMPTED))
        self.state.update_jobs(changed.values())
        now = self.service.clock.now()
        for job, preempted in waiting:  # for /metrics: how long preemptions take, when jobs started waiting
            if preempted:
                self.service.instruments.victim_stopped(job, now)
            else:
                self.service.instruments.requeued(job, now)
        for job, placements, why in stops:
            self.stop(job, placements, why)
        if freed:
            self.service.wake()
        return acks

    # ---- checkpoints and health ----------------------------------------------------------
    def _checkpointed(self, c: apb.Checkpoint) -> None:
        job = self.state.jobs.get(c.task.job_id)
        if job is None:
            return
        new = lifecycle.checkpointed(job, c.task.attempt, c.at, c.path)
        if new is not job:
            self.state.update_jobs([new])

    def _condition(self, node_id: str, c: apb.NodeCondition) -> None:
        """The agent's health verdict: an unhealthy node is cordoned (and drained if it says so)."""
        node = self.state.nodes.get(node_id)
        if node is None:
            return
        reason = _unhealthy(c)
        if reason != node.condition:
            if reason:
                log.warning("node %s unhealthy: %s; it takes no new work", node_id, reason)
            else:
                log.info("node %s healthy again; it takes new work", node_id)
            self.state.put_node(replace(node, condition=reason))
            self.service.events.emit("node-condition", f"node {node_id} unhealthy: {reason}" if reason
                                     else f"node {node_id} healthy again", node=node_id)
            self.service.wake()
        if reason and c.drain:
            self.drain(node_id, f"node {node_id} drained: {reason}")
        if c.spot_notice_at > 0:
            self._spot_notice(node_id, c.spot_notice_at)

    def _spot_notice(self, node_id: str, at: float) -> None:
        """The node's agent read a spot interruption notice: the autoscaler drains its instance and
        launches a replacement (``on_spot_notice``); a node no pool owns is drained here."""
        handled = False
        if self.on_spot_notice is not None:
            try:
                handled = self.on_spot_notice(node_id, at)
            except Exception:  # noqa: BLE001 - the stream goes on
                log.exception("node %s: handling its spot notice failed", node_id)
        if not handled and self.state.node_tasks.get(node_id):
            self.drain(node_id, f"node {node_id} drained: spot interruption notice")

    def drain(self, node_id: str, reason: str) -> None:
        """Stop the jobs running on a node (each with its grace period to checkpoint); they go
        back to their queues."""
        self._end_jobs_on(node_id, lambda job: lifecycle.preempt(job, reason), reason)

    def _end_jobs_on(self, node_id: str, change, why: str) -> None:
        """Apply ``change`` (a lifecycle function: job -> (new job, ranks to stop)) to every job
        with a live task on the node, commit them together, then stop the ranks it names."""
        changed, stops = [], []
        for job_id in sorted({j for j, _ in self.state.node_tasks.get(node_id, {})}):
            old = self.state.jobs[job_id]
            job, to_stop = change(old)
            if job is not old:
                changed.append(job)
            if to_stop:
                stops.append((job, to_stop))
        self.state.update_jobs(changed)
        for job, placements in stops:
            self.stop(job, placements, why)

    # ---- node loss -----------------------------------------------------------------------
    def node_lost(self, node_id: str) -> None:
        """The node missed its heartbeats: mark it not ready and end its tasks."""
        node = self.state.nodes.get(node_id)
        if node is None or (node.state is not NodeState.READY and not self.state.node_tasks.get(node_id)):
            return
        now = self.service.clock.now()
        log.warning("node %s missed its heartbeats: marking it not ready and ending its tasks", node_id)
        if node.state is not NodeState.NOT_READY:
            self.state.put_node(replace(node, state=NodeState.NOT_READY))
        self.service.events.emit("node-lost", f"node {node_id} missed its heartbeats; its jobs resume elsewhere",
                                 node=node_id)
        self._end_jobs_on(node_id, lambda job: lifecycle.node_lost(job, node_id, now), f"node {node_id} lost")
        session = self.sessions.pop(node_id, None)
        if session is not None:
            session.close()
        self.service.wake()


def _unhealthy(c: apb.NodeCondition) -> str:
    """``Node.condition`` from an agent's verdict: why the node is unhealthy, "" if it is not."""
    return "" if c.healthy else (c.reason or "unhealthy")

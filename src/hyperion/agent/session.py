"""The agent's end of ``AgentControl.Connect``: dial, say Hello, dispatch commands, reconnect.

Glossary:
    session   one Connect stream. It starts with Hello (inventory + every unacked task) and
              the control plane's Welcome; it ends when either side closes or the network
              fails. Tasks keep running between sessions.
    outbox    the messages waiting to be written on the current stream. It is emptied when a
              stream ends: reports are superseded by the next Hello, log bytes are resent
              from the offsets in the next Welcome, heartbeats and metrics are not worth
              keeping. Messages put while no stream is open are dropped for the same reason.
    ready     the Welcome arrived on the current stream (log offsets are known)

Reconnects back off exponentially from 0.1 s to 2 s, forever. The token is re-read from its
file on every attempt (so it can be rotated) and is never logged. An agent that joined with a
bootstrap token gets a node credential in the Welcome (``api.bootstrap``); it keeps it in
``<data dir>/node.credential`` (0600) and presents it instead from then on; a refused credential
is removed, and the next attempt presents the token file again.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import os
from pathlib import Path
from typing import Protocol

import grpc

from hyperion.api._generated.hyperion.v1 import agent_pb2, agent_pb2_grpc

# gRPC keepalive pings on the channel (the control plane permits them); they guard the TCP
# connection. A frozen control plane is noticed by the heartbeat answers instead (SILENCE_*).
KEEPALIVE = [("grpc.keepalive_time_ms", 10_000), ("grpc.keepalive_timeout_ms", 5_000),
             ("grpc.keepalive_permit_without_calls", 1), ("grpc.http2.max_pings_without_data", 0)]
SILENCE_HEARTBEATS = 5  # heartbeat intervals without any message from the control plane ...
SILENCE_MIN_S = 5.0     # ... and at least this long, before the stream is dropped and redialled

log = logging.getLogger("hyperiond.session")

BACKOFF_MIN_S = 0.1
BACKOFF_MAX_S = 2.0
WELCOME_TIMEOUT_S = 30.0


class Outbox:
    """A queue of AgentMessages for the current stream, with a soft limit for log bytes."""

    def __init__(self, high_water: int = 64) -> None:
        self.high_water = high_water
        self.accepting = False  # a stream is open and Hello was sent
        self.ready = False      # and its Welcome arrived
        self._queue: collections.deque[agent_pb2.AgentMessage] = collections.deque()
        self._wakeup = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()

    def open(self) -> None:
        self._queue.clear()
        self.accepting, self.ready = True, False
        self._room.set()

    def close(self) -> None:
        self._queue.clear()
        self.accepting = self.ready = False
        self._room.set()

    def put(self, msg: agent_pb2.AgentMessage) -> None:
        if not self.accepting:
            return
        self._queue.append(msg)
        self._wakeup.set()
        if len(self._queue) >= self.high_water:
            self._room.clear()

    def has_room(self) -> bool:
        return len(self._queue) < self.high_water

    async def wait_room(self) -> None:
        await self._room.wait()

    def pending(self) -> int:
        return len(self._queue)

    async def take(self) -> list[agent_pb2.AgentMessage]:
        """Everything queued, waiting for at least one message."""
        while not self._queue:
            self._wakeup.clear()
            await self._wakeup.wait()
        batch = list(self._queue)
        self._queue.clear()
        self._room.set()
        return batch


class SessionHandler(Protocol):
    def hello(self) -> agent_pb2.Hello: ...

    def on_message(self, msg: agent_pb2.ControlMessage) -> None: ...


class Session:
    """Keeps one Connect stream to the control plane open, reconnecting forever."""

    def __init__(self, target: str, token_file: Path, outbox: Outbox, handler: SessionHandler,
                 heartbeat_interval_s: float = 1.0, credential_file: Path | None = None) -> None:
        self.target, self.token_file, self.outbox, self.handler = target, token_file, outbox, handler
        self.credential_file = credential_file  # the node credential a bootstrap join was exchanged for
        self.heartbeat_interval_s = heartbeat_interval_s
        self._call: grpc.aio.StreamStreamCall | None = None
        self._writing = False
        self._last_problem = ""
        self._closing = False

    async def run(self) -> None:
        delay = BACKOFF_MIN_S
        while True:
            if await self._session():
                delay = BACKOFF_MIN_S
            if self._closing:  # shutting down (``drain``): the stream ended as asked; no new one
                return
            await asyncio.sleep(delay)
            delay = min(delay * 2, BACKOFF_MAX_S)

    async def drain(self, timeout_s: float) -> None:
        """Waits (up to ``timeout_s``) for the outbox to be written, then half-closes."""
        self._closing = True
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while self.outbox.accepting and (self.outbox.pending() or self._writing):
            if loop.time() > deadline:
                log.warning("%d messages not sent before shutdown", self.outbox.pending())
                return
            await asyncio.sleep(0.01)
        call = self._call
        if call is not None and not call.done():
            try:
                await asyncio.wait_for(call.done_writing(), max(deadline - loop.time(), 0.1))
            except (TimeoutError, grpc.aio.AioRpcError, asyncio.InvalidStateError):
                pass

    async def _session(self) -> bool:
        """One stream, start to end; True if the control plane welcomed us."""
        source = self.token_file
        if self.credential_file is not None and self.credential_file.is_file():
            source = self.credential_file  # exchanged: the bootstrap token is spent once this is used
        try:
            token = source.read_text().strip()
        except OSError as exc:
            self._problem(f"cannot read token file {source}: {exc.strerror or exc}")
            return False
        welcomed = False
        async with grpc.aio.insecure_channel(self.target, options=KEEPALIVE) as channel:
            call = agent_pb2_grpc.AgentControlStub(channel).Connect(
                metadata=(("authorization", f"Bearer {token}"),))
            self._call = call
            writer: asyncio.Task | None = None
            try:
                self.outbox.open()
                await call.write(agent_pb2.AgentMessage(hello=self.handler.hello()))
                writer = asyncio.create_task(self._write(call))
                while True:
                    # the control plane answers every heartbeat: silence means it is gone or frozen
                    limit = max(SILENCE_MIN_S, SILENCE_HEARTBEATS * self.heartbeat_interval_s) if welcomed else WELCOME_TIMEOUT_S
                    msg = await asyncio.wait_for(call.read(), limit)
                    if msg is grpc.aio.EOF:
                        self._problem("control plane closed the stream")
                        break
                    if msg.WhichOneof("kind") == "welcome":
                        welcomed = True
                        self.outbox.ready = True
                        if msg.welcome.heartbeat_interval_s > 0:
                            self.heartbeat_interval_s = msg.welcome.heartbeat_interval_s
                        if msg.welcome.node_credential:
                            self._keep_credential(msg.welcome.node_credential)
                        self._connected()
                    try:
                        self.handler.on_message(msg)
                    except Exception:  # noqa: BLE001 - one bad command must not end the session
                        log.exception("error handling %s", msg.WhichOneof("kind"))
            except grpc.aio.AioRpcError as exc:
                self._problem(_describe(exc))
                if (source is self.credential_file and exc.code() == grpc.StatusCode.UNAUTHENTICATED
                        and self.credential_file is not None):
                    self.credential_file.unlink(missing_ok=True)  # revoked: the next try uses --token-file
                    log.warning("node credential refused; removed %s, retrying with the token file", self.credential_file)
            except asyncio.InvalidStateError:
                self._problem("stream ended while writing")
            except TimeoutError:
                self._problem(f"no word from the control plane for {limit:.0f}s" if welcomed
                              else f"no Welcome within {WELCOME_TIMEOUT_S:.0f}s of Hello")
            finally:
                self.outbox.close()
                self._call = None
                if writer is not None:
                    writer.cancel()
                call.cancel()
        return welcomed

    def _keep_credential(self, credential: str) -> None:
        """Save the node credential (0600, written whole) so every later connect presents it."""
        if self.credential_file is None:
            log.warning("the control plane issued a node credential but this agent has nowhere to keep it")
            return
        tmp = self.credential_file.with_name(self.credential_file.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(credential + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.credential_file)
        log.info("joined with a bootstrap token; keeping the node credential it was exchanged for in %s",
                 self.credential_file)

    async def _write(self, call: grpc.aio.StreamStreamCall) -> None:
        try:
            while True:
                batch = await self.outbox.take()
                self._writing = True
                for msg in batch:
                    await call.write(msg)
                self._writing = False
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - a broken stream; the reader reconnects
            log.debug("write failed: %s", exc)
            call.cancel()
        finally:
            self._writing = False

    def _connected(self) -> None:
        log.info("connected to control plane %s", self.target)
        self._last_problem = ""

    def _problem(self, text: str) -> None:
        if text != self._last_problem and not self._closing:
            log.warning("control plane %s: %s; retrying", self.target, text)
        else:
            log.debug("control plane %s: %s; retrying", self.target, text)
        self._last_problem = text


def _describe(exc: grpc.aio.AioRpcError) -> str:
    code = exc.code()
    if code == grpc.StatusCode.UNAUTHENTICATED:
        return f"token rejected (UNAUTHENTICATED: {(exc.details() or '')[:200]}); check --token-file"
    if code == grpc.StatusCode.PERMISSION_DENIED:
        return f"permission denied: {exc.details()}"
    if code == grpc.StatusCode.UNAVAILABLE:
        return f"unavailable ({(exc.details() or '')[:200]})"
    return f"{code.name}: {exc.details()}"

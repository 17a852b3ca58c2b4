"""Log shipping: the bytes tasks write to their log files, sent upstream as LogChunks.

Glossary:
    offset    how many bytes of a task's log the control plane holds (as far as the agent
              knows). Every Welcome resets it to the control plane's own figure (0 for a task
              it does not list), so a reconnect resends exactly what is missing. Chunks carry
              their offset, which makes resending harmless.
    final     a finished task's log size: it no longer grows. A task's last chunks are put
              before its EXITED report (``finish``), so a control plane that sees EXITED on a
              live stream has the whole log. A report sent in Hello is not preceded by its
              log: those bytes follow the Welcome, and an AckTask does not cut them short
              (the log is dropped only once shipped).

Shipping respects the outbox's soft limit, so a chatty task cannot queue unbounded memory:
what does not fit is shipped on a later tick.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass

from hyperion.agent.records import TaskKey
from hyperion.agent.session import Outbox
from hyperion.api._generated.hyperion.v1 import agent_pb2

log = logging.getLogger("hyperiond.logship")

CHUNK_BYTES = 256 * 1024
TICK_BYTES_PER_TASK = 4 * CHUNK_BYTES


@dataclass(slots=True)
class _Log:
    path: str
    ref: agent_pb2.TaskRef
    offset: int = 0
    final: int | None = None
    flushing: bool = False
    forgotten: bool = False  # acked: dropped once its bytes are shipped


class LogShipper:
    def __init__(self, outbox: Outbox) -> None:
        self.outbox = outbox
        self._logs: dict[TaskKey, _Log] = {}
        self._flushes: set[asyncio.Task] = set()

    def track(self, key: TaskKey, path: str, final: bool = False) -> None:
        if key not in self._logs:
            ref = agent_pb2.TaskRef(job_id=key[0], attempt=key[1], rank=key[2])
            self._logs[key] = _Log(path, ref, final=_size(path) if final else None)

    def tracks(self, key: TaskKey) -> bool:
        return key in self._logs

    def forget(self, key: TaskKey) -> None:
        """The task was acked: stop tracking its log once the rest of it is shipped."""
        entry = self._logs.get(key)
        if entry is None:
            return
        if entry.final is not None and entry.offset < entry.final:
            entry.forgotten = True
        else:
            del self._logs[key]

    def size(self, key: TaskKey) -> int:
        entry = self._logs.get(key)
        if entry is None:
            return 0
        return entry.final if entry.final is not None else _size(entry.path)

    def reset(self, offsets: dict[TaskKey, int]) -> None:
        """Adopts the control plane's offsets (from Welcome); unlisted tasks restart at 0."""
        for key, entry in self._logs.items():
            entry.offset = max(offsets.get(key, 0), 0)

    def tick(self) -> None:
        """Ships what every log gained since the last tick, as far as the outbox has room."""
        if not self.outbox.ready:
            return
        done = []
        for key, entry in self._logs.items():
            if not self.outbox.has_room():
                break
            if entry.flushing or (entry.final is not None and entry.offset >= entry.final):
                continue
            self._ship(entry, TICK_BYTES_PER_TASK)
            if entry.forgotten and entry.final is not None and entry.offset >= entry.final:
                done.append(key)
        for key in done:
            del self._logs[key]

    def finish(self, key: TaskKey, then: Callable[[int], None]) -> None:
        """The task is done: fix its log size, ship the rest, then call ``then(log_size)``."""
        entry = self._logs.get(key)
        if entry is None:
            return then(0)
        entry.final = _size(entry.path)
        if not self.outbox.ready:  # the next Welcome's offsets decide what to resend
            return then(entry.final)
        if entry.final - entry.offset <= TICK_BYTES_PER_TASK and self.outbox.has_room():
            self._ship(entry, TICK_BYTES_PER_TASK)
            return then(entry.final)
        entry.flushing = True
        task = asyncio.get_running_loop().create_task(self._flush(entry, then))
        self._flushes.add(task)
        task.add_done_callback(self._flushes.discard)

    async def _flush(self, entry: _Log, then: Callable[[int], None]) -> None:
        try:
            while entry.final is not None and entry.offset < entry.final and self.outbox.ready:
                if not self.outbox.has_room():
                    await self.outbox.wait_room()
                    continue
                self._ship(entry, CHUNK_BYTES)
                await asyncio.sleep(0)
        finally:
            entry.flushing = False
        then(entry.final or 0)

    def _ship(self, entry: _Log, limit: int) -> None:
        end = entry.final if entry.final is not None else _size(entry.path)
        if end <= entry.offset:
            return
        try:
            with open(entry.path, "rb") as f:
                f.seek(entry.offset)
                data = f.read(min(end - entry.offset, limit))
        except OSError as exc:
            log.warning("cannot read log %s: %s", entry.path, exc)
            return
        for start in range(0, len(data), CHUNK_BYTES):
            piece = data[start:start + CHUNK_BYTES]
            self.outbox.put(agent_pb2.AgentMessage(
                log=agent_pb2.LogChunk(task=entry.ref, offset=entry.offset, data=piece)))
            entry.offset += len(piece)


def _size(path: str) -> int:
    try:
        return os.stat(path).st_size
    except OSError:
        return 0

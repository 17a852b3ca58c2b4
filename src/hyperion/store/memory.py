"""The in-memory StateStore, for unit tests and the simulator, and the pieces both adapters share.

``MemoryStore`` keeps keys in a dict plus a sorted key list and records every write in a changelog
that ``watch`` replays and then follows. Nothing survives ``close()`` or the process.

Shared with ``sqlite.py`` (so both adapters behave the same where the contract is silent): the
error types, argument checks, ``prefix_successor`` and the watch machinery.

Glossary:
- *changelog*: one entry per applied Put, and per Delete of a key that existed, tagged with the
  revision of its transaction and its index within that transaction.
- *cursor*: ``(revision, index)`` of the next changelog entry a watcher has not seen yet.
- *compacted revision*: changelog entries at or below it were dropped by ``compact``; a watch that
  needs one of them raises ``CompactedError``.
"""

from __future__ import annotations

import asyncio
import bisect
import threading
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Self

from hyperion.ports.store import KV, Compare, Delete, Put, TxnResult, WatchEvent

WATCH_BATCH = 512  # changelog entries a watcher reads per look, so a slow consumer holds no lock

Cursor = tuple[int, int]
# read(prefix, cursor) -> (events, next cursor, more entries waiting, store closed)
ChangeReader = Callable[[str, Cursor], tuple[list[WatchEvent], Cursor, bool, bool]]


class StoreError(Exception):
    """A state store operation failed; the message says what to do about it."""


class StoreLockedError(StoreError):
    """Another store instance (most likely another control plane) owns this store."""


class CompactedError(StoreError):
    """A watch asked for changes that ``compact`` has already dropped."""

    def __init__(self, prefix: str, start_revision: int, compacted_revision: int) -> None:
        super().__init__(
            f"watch of prefix {prefix!r} from revision {start_revision} cannot be served: changes"
            f" up to revision {compacted_revision} were compacted. Re-read the current state with"
            " range() and watch from revision() + 1."
        )
        self.start_revision = start_revision
        self.compacted_revision = compacted_revision


def closed_error(what: str) -> StoreError:
    return StoreError(f"{what} is closed; open a new store instead of reusing a closed one")


def prefix_successor(prefix: str) -> str | None:
    """The smallest string above every string that starts with ``prefix``; None if there is none.

    Keys compare by code point (Python) and by UTF-8 bytes (SQLite), which agree, so
    ``prefix <= key < prefix_successor(prefix)`` selects exactly the keys under ``prefix`` without
    LIKE and its ``_``/``%`` wildcards. Surrogates are skipped: they cannot be stored as UTF-8.
    """
    chars = list(prefix)
    while chars:
        code = ord(chars.pop())
        if code < 0x10FFFF:
            code += 1
            if 0xD800 <= code <= 0xDFFF:
                code = 0xE000
            return "".join(chars) + chr(code)
    return None


def check_key(key: object, where: str) -> str:
    if type(key) is not str:
        raise TypeError(f"{where}: keys are str, got {type(key).__name__} {key!r}")
    if not key:
        raise ValueError(f"{where}: the empty string is not a valid key")
    if not key.isascii():
        try:
            key.encode()
        except UnicodeEncodeError:
            raise ValueError(f"{where}: key {key!r} is not valid Unicode (lone surrogate)") from None
    return key


def check_prefix(prefix: object, where: str) -> str:
    if type(prefix) is not str:
        raise TypeError(f"{where}: prefix is a str, got {type(prefix).__name__} {prefix!r}")
    return check_key(prefix, where) if prefix else prefix


def check_txn(compares: Sequence[Compare], ops: Sequence[Put | Delete]) -> tuple[Put | Delete, ...]:
    """Validate a transaction before anything is applied; returns ops with values as ``bytes``."""
    for c in compares:
        if type(c) is not Compare:
            raise TypeError(f"txn compares must be Compare(key, mod_revision), got {c!r}")
        check_key(c.key, "Compare")
        if type(c.mod_revision) is not int or c.mod_revision < 0:
            raise ValueError(f"Compare({c.key!r}): mod_revision must be an int >= 0, got {c.mod_revision!r}")
    checked: list[Put | Delete] = []
    for op in ops:
        if type(op) is Put:
            check_key(op.key, "Put")
            if type(op.value) is not bytes:
                if not isinstance(op.value, (bytearray, memoryview)):
                    raise TypeError(
                        f"Put({op.key!r}): values are bytes, got {type(op.value).__name__};"
                        " encode it first, e.g. json.dumps(obj).encode()"
                    )
                op = Put(op.key, bytes(op.value))
        elif type(op) is Delete:
            check_key(op.key, "Delete")
        else:
            raise TypeError(f"txn ops must be Put or Delete, got {op!r}")
        checked.append(op)
    return tuple(checked)


class WatchHub:
    """Wakes watchers parked on an event loop when a transaction commits, from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiting: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()

    def park(self, waiter: tuple[asyncio.AbstractEventLoop, asyncio.Event]) -> None:
        with self._lock:
            self._waiting.add(waiter)

    def unpark(self, waiter: tuple[asyncio.AbstractEventLoop, asyncio.Event]) -> None:
        with self._lock:
            self._waiting.discard(waiter)

    def notify(self) -> None:
        if not self._waiting:  # the common case: nobody is waiting, so no lock and no syscall
            return
        with self._lock:
            waiting, self._waiting = self._waiting, set()
        for loop, event in waiting:
            try:
                loop.call_soon_threadsafe(event.set)
            except RuntimeError:  # that loop is closed, and its watcher with it
                pass


async def follow_changes(
    read: ChangeReader, hub: WatchHub, prefix: str, start_revision: int, poll_interval: float | None
) -> AsyncIterator[WatchEvent]:
    """Replay the changelog from ``start_revision``, then follow it until the store closes.

    The watcher parks on ``hub`` *before* reading, so a commit between the read and the wait still
    wakes it. ``poll_interval`` bounds the wait as a safety net (None: wait for a wake-up only).
    """
    waiter = (asyncio.get_running_loop(), asyncio.Event())
    cursor: Cursor = (max(start_revision, 1), 0)
    try:
        while True:
            waiter[1].clear()
            hub.park(waiter)
            events, cursor, more, closed = read(prefix, cursor)
            if events or more:
                hub.unpark(waiter)
                for event in events:
                    yield event
                continue
            if closed:
                return
            if poll_interval is None:
                await waiter[1].wait()
            else:
                try:
                    await asyncio.wait_for(waiter[1].wait(), poll_interval)
                except TimeoutError:
                    pass
    finally:
        hub.unpark(waiter)


class MemoryStore:
    """A StateStore held in process memory. Thread-safe; watchers may live on any event loop."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._hub = WatchHub()
        self._kv: dict[str, KV] = {}
        self._keys: list[str] = []  # sorted
        self._log: list[tuple[int, int, WatchEvent]] = []  # (revision, index, event), ascending
        self._revision = 0
        self._compacted = 0
        self._closed = False

    def _check_open(self) -> None:
        if self._closed:
            raise closed_error("this MemoryStore")

    def get(self, key: str) -> KV | None:
        check_key(key, "get")
        with self._lock:
            self._check_open()
            return self._kv.get(key)

    def range(self, prefix: str) -> list[KV]:
        check_prefix(prefix, "range")
        with self._lock:
            self._check_open()
            start = bisect.bisect_left(self._keys, prefix)
            end = len(self._keys)
            upper = prefix_successor(prefix)
            if upper is not None:
                end = bisect.bisect_left(self._keys, upper, start)
            return [self._kv[k] for k in self._keys[start:end]]

    def revision(self) -> int:
        with self._lock:
            self._check_open()
            return self._revision

    def txn(self, compares: Sequence[Compare], ops: Sequence[Put | Delete]) -> TxnResult:
        ops = check_txn(compares, ops)
        with self._lock:
            self._check_open()
            failed = tuple(c.key for c in compares if _mod_revision(self._kv, c.key) != c.mod_revision)
            if failed:
                return TxnResult(False, self._revision, failed)
            if not ops:
                return TxnResult(True, self._revision)
            rev = self._revision + 1
            for index, op in enumerate(ops):
                if type(op) is Put:
                    old = self._kv.get(op.key)
                    if old is None:
                        bisect.insort(self._keys, op.key)
                    created = rev if old is None else old.create_revision
                    self._kv[op.key] = KV(op.key, op.value, rev, created)
                    self._log.append((rev, index, WatchEvent("put", op.key, op.value, rev)))
                elif self._kv.pop(op.key, None) is not None:
                    del self._keys[bisect.bisect_left(self._keys, op.key)]
                    self._log.append((rev, index, WatchEvent("delete", op.key, None, rev)))
            self._revision = rev
        self._hub.notify()
        return TxnResult(True, rev)

    def watch(self, prefix: str, start_revision: int) -> AsyncIterator[WatchEvent]:
        """Changes under ``prefix`` from ``start_revision`` on, then live ones until ``close()``."""
        check_prefix(prefix, "watch")
        if type(start_revision) is not int:
            raise TypeError(f"watch: start_revision is an int, got {start_revision!r}")
        with self._lock:
            self._check_open()
            if max(start_revision, 1) <= self._compacted:
                raise CompactedError(prefix, start_revision, self._compacted)
        return follow_changes(self._read_changes, self._hub, prefix, start_revision, None)

    def _read_changes(self, prefix: str, cursor: Cursor) -> tuple[list[WatchEvent], Cursor, bool, bool]:
        with self._lock:
            if self._closed:
                return [], cursor, False, True
            if cursor[0] <= self._compacted:
                raise CompactedError(prefix, cursor[0], self._compacted)
            events: list[WatchEvent] = []
            for i in range(bisect.bisect_left(self._log, cursor), len(self._log)):
                rev, index, event = self._log[i]
                if event.key.startswith(prefix):
                    events.append(event)
                    if len(events) == WATCH_BATCH:
                        return events, (rev, index + 1), True, False
            return events, max(cursor, (self._revision + 1, 0)), False, False

    def compact(self, keep_last: int) -> int:
        """Drop changelog entries older than the last ``keep_last`` revisions; returns the
        compacted revision (watches must start above it)."""
        if type(keep_last) is not int or keep_last < 0:
            raise ValueError(f"compact: keep_last must be an int >= 0, got {keep_last!r}")
        with self._lock:
            self._check_open()
            self._compacted = max(self._compacted, self._revision - keep_last)
            del self._log[: bisect.bisect_left(self._log, (self._compacted + 1, 0))]
            return self._compacted

    def close(self) -> None:
        with self._lock:
            self._closed = True
        self._hub.notify()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _mod_revision(kv: dict[str, KV], key: str) -> int:
    found = kv.get(key)
    return 0 if found is None else found.mod_revision

"""The embedded default StateStore: one SQLite file, owned by one control plane at a time.

Tables: ``kv`` (key, value, mod_revision, create_revision), ``changes`` (the changelog that ``watch``
replays: revision, idx, key, type "put"/"delete", value) and ``meta`` (the compacted revision, and
a revision floor). ``PRAGMA user_version`` is the schema version.

The store revision is ``max(changes.revision, meta.revision, meta.compacted)``: a transaction that
logs a change writes no meta row (a third of the pages a small commit would otherwise write); only
one whose ops were all no-op deletes records its revision in ``meta``.

Durability. The database runs in WAL mode. With ``synchronous="NORMAL"`` (the default) a commit is
a ``write()`` of the transaction's frames to ``<path>-wal`` without an fsync: once ``txn`` returns,
the data is in the operating system's page cache, which outlives the process. So a crash, an
exception or ``kill -9`` of the control plane loses no committed transaction (the next open
recovers it from the WAL). A power loss or kernel crash can lose the last transactions before the
next checkpoint (the database stays consistent, it just goes back in time). Pass
``synchronous="FULL"`` to fsync the WAL on every commit and survive those too, at a cost of one
fsync per transaction.

Ownership. Opening takes an exclusive ``flock`` on ``<path>.lock`` (holding the owner's pid), so a
second store on the same path, in this process or another, fails with ``StoreLockedError`` instead
of two control planes interleaving writes. The kernel drops the lock when the owner dies, however it
dies. Because the owner is the only writer, the store revision is cached in memory.

Concurrency. One connection, ``check_same_thread=False``, and a ``threading.Lock`` around every
operation: callers are an asyncio loop thread and worker threads. Watchers are woken by the
committing thread through ``loop.call_soon_threadsafe`` and also look again every
``watch_poll_interval`` seconds as a safety net.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import threading
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Self

from hyperion.ports.store import KV, Compare, Delete, Put, TxnResult, WatchEvent
from hyperion.store.memory import (
    WATCH_BATCH,
    CompactedError,
    Cursor,
    StoreError,
    StoreLockedError,
    WatchHub,
    check_key,
    check_prefix,
    check_txn,
    closed_error,
    follow_changes,
    prefix_successor,
)

SCHEMA_VERSION = 1
_SCHEMA = """
BEGIN IMMEDIATE;
CREATE TABLE kv (key TEXT PRIMARY KEY, value BLOB NOT NULL, mod_revision INTEGER NOT NULL,
                 create_revision INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE changes (revision INTEGER NOT NULL, idx INTEGER NOT NULL, key TEXT NOT NULL,
                      type TEXT NOT NULL, value BLOB, PRIMARY KEY (revision, idx)) WITHOUT ROWID;
CREATE TABLE meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
INSERT INTO meta VALUES ('revision', 0), ('compacted', 0);
PRAGMA user_version = 1;
COMMIT;
"""
_GET = "SELECT value, mod_revision, create_revision FROM kv WHERE key = ?"
_MOD_REVISION = "SELECT mod_revision FROM kv WHERE key = ?"
_PUT = (
    "INSERT INTO kv (key, value, mod_revision, create_revision) VALUES (?1, ?2, ?3, ?3)"
    " ON CONFLICT (key) DO UPDATE SET value = excluded.value, mod_revision = excluded.mod_revision"
)
_DELETE = "DELETE FROM kv WHERE key = ?"
_LOG = "INSERT INTO changes (revision, idx, key, type, value) VALUES (?, ?, ?, ?, ?)"
_SET_META = "UPDATE meta SET value = ? WHERE name = ?"
_RANGE = "SELECT key, value, mod_revision, create_revision FROM kv WHERE key >= ?"
_CHANGES = "SELECT revision, idx, key, type, value FROM changes WHERE (revision, idx) >= (?, ?) AND key >= ?"
_SYNCHRONOUS = ("NORMAL", "FULL", "EXTRA")


class SqliteStore:
    """A StateStore in the SQLite file at ``path`` (parent directories are created)."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        synchronous: str = "NORMAL",
        busy_timeout_ms: int = 5000,
        watch_poll_interval: float = 0.05,
    ) -> None:
        if synchronous.upper() not in _SYNCHRONOUS:
            raise ValueError(f"synchronous must be one of {', '.join(_SYNCHRONOUS)}, got {synchronous!r}")
        self.path = Path(path).expanduser().absolute()
        self.watch_poll_interval = watch_poll_interval
        self._lock = threading.Lock()
        self._hub = WatchHub()
        self._closed = True
        self._lock_fd = _take_lock(self.path)
        try:
            self._conn = _connect(self.path, synchronous.upper(), busy_timeout_ms)
            self._cur = self._conn.cursor()
            self._compacted, self._revision = _load_revisions(self._cur, self.path)
        except BaseException:
            conn = getattr(self, "_conn", None)
            if conn is not None:
                conn.close()
            _release_lock(self._lock_fd)
            raise
        self._closed = False

    def __repr__(self) -> str:
        return f"SqliteStore({str(self.path)!r})"

    def _check_open(self) -> None:
        if self._closed:
            raise closed_error(f"the state store {self.path}")

    def get(self, key: str) -> KV | None:
        check_key(key, "get")
        with self._lock:
            self._check_open()
            try:
                row = self._cur.execute(_GET, (key,)).fetchone()
            except sqlite3.Error as err:
                raise _failed(self.path, f"read key {key!r}", err) from err
        return None if row is None else KV(key, row[0], row[1], row[2])

    def range(self, prefix: str) -> list[KV]:
        check_prefix(prefix, "range")
        sql, params = _prefix_query(_RANGE, prefix, (prefix,))
        with self._lock:
            self._check_open()
            try:
                rows = self._cur.execute(sql + " ORDER BY key", params).fetchall()
            except sqlite3.Error as err:
                raise _failed(self.path, f"read keys under {prefix!r}", err) from err
        return [KV(*row) for row in rows]

    def revision(self) -> int:
        with self._lock:
            self._check_open()
            return self._revision

    def txn(self, compares: Sequence[Compare], ops: Sequence[Put | Delete]) -> TxnResult:
        ops = check_txn(compares, ops)
        with self._lock:
            self._check_open()
            cur = self._cur
            try:
                if compares:
                    failed = tuple(c.key for c in compares if self._mod_revision(c.key) != c.mod_revision)
                    if failed:
                        return TxnResult(False, self._revision, failed)
                if not ops:
                    return TxnResult(True, self._revision)
                rev = self._revision + 1
                logged = False
                cur.execute("BEGIN IMMEDIATE")
                try:
                    for index, op in enumerate(ops):
                        if type(op) is Put:
                            cur.execute(_PUT, (op.key, op.value, rev))
                            cur.execute(_LOG, (rev, index, op.key, "put", op.value))
                            logged = True
                        else:
                            cur.execute(_DELETE, (op.key,))
                            if cur.rowcount:
                                cur.execute(_LOG, (rev, index, op.key, "delete", None))
                                logged = True
                    if not logged:  # see the module docstring: the revision must survive a reopen
                        cur.execute(_SET_META, (rev, "revision"))
                    cur.execute("COMMIT")
                except BaseException:
                    if self._conn.in_transaction:
                        self._conn.rollback()
                    raise
            except sqlite3.Error as err:
                raise _failed(self.path, "commit a transaction", err) from err
            self._revision = rev
        self._hub.notify()
        return TxnResult(True, rev)

    def _mod_revision(self, key: str) -> int:
        row = self._cur.execute(_MOD_REVISION, (key,)).fetchone()
        return 0 if row is None else row[0]

    def watch(self, prefix: str, start_revision: int) -> AsyncIterator[WatchEvent]:
        """Changes under ``prefix`` from ``start_revision`` on, then live ones until ``close()``."""
        check_prefix(prefix, "watch")
        if type(start_revision) is not int:
            raise TypeError(f"watch: start_revision is an int, got {start_revision!r}")
        with self._lock:
            self._check_open()
            if max(start_revision, 1) <= self._compacted:
                raise CompactedError(prefix, start_revision, self._compacted)
        return follow_changes(self._read_changes, self._hub, prefix, start_revision, self.watch_poll_interval)

    def _read_changes(self, prefix: str, cursor: Cursor) -> tuple[list[WatchEvent], Cursor, bool, bool]:
        sql, params = _prefix_query(_CHANGES, prefix, (*cursor, prefix))
        with self._lock:
            if self._closed:
                return [], cursor, False, True
            if cursor[0] <= self._compacted:
                raise CompactedError(prefix, cursor[0], self._compacted)
            try:
                rows = self._cur.execute(sql + " ORDER BY revision, idx LIMIT ?", (*params, WATCH_BATCH)).fetchall()
            except sqlite3.Error as err:
                raise _failed(self.path, f"read changes under {prefix!r}", err) from err
            head = self._revision
        events = [WatchEvent(kind, key, value, rev) for rev, _, key, kind, value in rows]
        if len(rows) == WATCH_BATCH:
            return events, (rows[-1][0], rows[-1][1] + 1), True, False
        return events, max(cursor, (head + 1, 0)), False, False

    def compact(self, keep_last: int) -> int:
        """Drop changelog entries older than the last ``keep_last`` revisions; returns the
        compacted revision (watches must start above it). Call it periodically: the changelog
        otherwise grows with every write."""
        if type(keep_last) is not int or keep_last < 0:
            raise ValueError(f"compact: keep_last must be an int >= 0, got {keep_last!r}")
        with self._lock:
            self._check_open()
            compacted = max(self._compacted, self._revision - keep_last)
            if compacted == self._compacted:
                return compacted
            try:
                with self._conn:  # BEGIN ... COMMIT, ROLLBACK on error
                    self._cur.execute("BEGIN IMMEDIATE")
                    self._cur.execute("DELETE FROM changes WHERE revision <= ?", (compacted,))
                    self._cur.execute(_SET_META, (compacted, "compacted"))
            except sqlite3.Error as err:
                raise _failed(self.path, "compact the changelog", err) from err
            self._compacted = compacted
            return compacted

    def close(self) -> None:
        """Close the database and release the lock; idempotent. Open watches end."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            try:
                self._conn.close()
            except sqlite3.Error:
                pass
            _release_lock(self._lock_fd)
        self._hub.notify()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _prefix_query(sql: str, prefix: str, params: tuple) -> tuple[str, tuple]:
    upper = prefix_successor(prefix)
    if upper is None:
        return sql, params
    return sql + " AND key < ?", (*params, upper)


def _take_lock(path: Path) -> int:
    lock_path = path.with_name(path.name + ".lock")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as err:
        raise StoreError(
            f"cannot create the state store {path}: {err.strerror} ({err.filename});"
            " check that the directory is writable or choose another store path"
        ) from err
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip()
        os.close(fd)
        raise StoreLockedError(
            f"the state store {path} is locked{f' by pid {holder}' if holder else ''} ({lock_path}):"
            " another Hyperion control plane seems to be running on it. Stop that one first, or"
            " give this one a different store path."
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def _release_lock(fd: int) -> None:
    try:
        fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _connect(path: Path, synchronous: str, busy_timeout_ms: int) -> sqlite3.Connection:
    try:
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=busy_timeout_ms / 1000)
    except sqlite3.Error as err:
        raise _failed(path, "open the database", err) from err
    try:
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if mode != "wal":
            raise StoreError(
                f"the state store {path} cannot use write-ahead logging (journal mode stays {mode!r});"
                " put it on a local filesystem, not a network share"
            )
        conn.execute(f"PRAGMA synchronous = {synchronous}")
        conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version == 0:
            if conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]:
                raise StoreError(
                    f"{path} is an SQLite database but not a Hyperion state store;"
                    " choose another store path rather than reusing this file"
                )
            conn.executescript(_SCHEMA)
        elif version != SCHEMA_VERSION:
            raise StoreError(
                f"the state store {path} has schema version {version}, this Hyperion reads version"
                f" {SCHEMA_VERSION}; run the Hyperion release that wrote it, or migrate the store"
            )
    except sqlite3.Error as err:
        conn.close()
        raise _failed(path, "open the database", err) from err
    except BaseException:
        conn.close()
        raise
    return conn


def _load_revisions(cur: sqlite3.Cursor, path: Path) -> tuple[int, int]:
    """(compacted revision, store revision); see the module docstring for the revision rule."""
    try:
        meta = dict(cur.execute("SELECT name, value FROM meta").fetchall())
        logged = cur.execute("SELECT max(revision) FROM changes").fetchone()[0] or 0
        compacted = meta["compacted"]
        return compacted, max(meta["revision"], compacted, logged)
    except sqlite3.Error as err:
        raise _failed(path, "read the store revision", err) from err
    except KeyError as err:
        raise StoreError(
            f"the state store {path} is damaged: its meta table lacks {err}; restore it from a backup"
        ) from None


def _failed(path: Path, action: str, err: sqlite3.Error) -> StoreError:
    message = str(err)
    if isinstance(err, sqlite3.OperationalError) and ("locked" in message or "busy" in message):
        return StoreLockedError(
            f"the state store {path}: could not {action}: {message}; another program is using"
            " the database file (a backup, an sqlite3 shell?): close it and retry"
        )
    if "not a database" in message or "malformed" in message:
        hint = "the file is not a Hyperion state store or is damaged; restore it from a backup or choose another path"
    else:
        hint = f"check free disk space and permissions in {path.parent}"
    return StoreError(f"the state store {path}: could not {action}: {message}; {hint}")

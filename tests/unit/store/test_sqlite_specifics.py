"""SqliteStore behaviour beyond the contract: durability, exclusive ownership, compaction on disk,
errors for files that are not stores, and ``open_store`` URLs.

The kill -9 test runs a real child process that commits and reports each commit on stdout, kills it
mid-stream, and checks that every reported commit is in the reopened store.
"""

import asyncio
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

import hyperion.store
from hyperion.ports.store import Compare, Delete, Put
from hyperion.store import (
    CompactedError,
    MemoryStore,
    SqliteStore,
    StoreError,
    StoreLockedError,
    open_store,
)

CHILD_WRITER = """
import sys
from hyperion.ports.store import Put
from hyperion.store import SqliteStore
store = SqliteStore(sys.argv[1])
i = 0
while True:
    result = store.txn([], [Put(f"k/{i:08d}", str(i).encode())])
    print(i, result.revision, flush=True)
    i += 1
"""

CHILD_OPENER = """
import sys
from hyperion.store import SqliteStore, StoreLockedError
try:
    SqliteStore(sys.argv[1]).close()
except StoreLockedError as err:
    print("locked:", err)
else:
    print("opened")
"""


def run_child(script: str, *args: object) -> str:
    done = subprocess.run([sys.executable, "-c", script, *map(str, args)], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


def changelog_rows(path) -> int:
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
        return conn.execute("SELECT count(*) FROM changes").fetchone()[0]


async def collect(store, prefix, start, n):
    events = store.watch(prefix, start)
    out = [await anext(events) for _ in range(n)]
    await events.aclose()
    return out


@pytest.mark.parametrize("synchronous", ["NORMAL", "FULL"])
def test_state_changelog_and_revision_survive_reopen(tmp_path, synchronous):
    path = tmp_path / "hyperion.db"
    with SqliteStore(path, synchronous=synchronous) as store:
        store.txn([], [Put("jobs/a", b"\x00\xff"), Put("jobs/b", b"")])
        store.txn([Compare("jobs/a", 1)], [Put("jobs/a", b"2"), Delete("jobs/b")])
        store.txn([], [Delete("never-there")])  # a write with no change: the revision must persist
        state, history = store.range(""), asyncio.run(collect(store, "", 1, 4))
    with SqliteStore(path) as store:
        assert store.revision() == 3
        assert store.range("") == state
        assert asyncio.run(collect(store, "", 1, 4)) == history
        assert store.txn([], [Put("jobs/c", b"c")]).revision == 4


def test_revision_survives_reopen_after_compacting_everything(tmp_path):
    path = tmp_path / "hyperion.db"
    with SqliteStore(path) as store:
        for i in range(5):
            store.txn([], [Put(f"k{i}", b"v")])
        assert store.compact(keep_last=0) == 5
    assert changelog_rows(path) == 0
    with SqliteStore(path) as store:
        assert store.revision() == 5
        with pytest.raises(CompactedError):
            store.watch("", 5)
        assert store.get("k4").mod_revision == 5


def test_compaction_deletes_rows_on_disk_and_persists(tmp_path):
    path = tmp_path / "hyperion.db"
    with SqliteStore(path) as store:
        for i in range(100):
            store.txn([], [Put(f"k{i % 7}", b"v"), Put("other", b"w")])
        assert changelog_rows(path) == 200
        assert store.compact(keep_last=10) == 90
        assert changelog_rows(path) == 20
    with SqliteStore(path) as store:
        with pytest.raises(CompactedError, match="up to revision 90"):
            store.watch("k", 90)
        assert [e.mod_revision for e in asyncio.run(collect(store, "other", 91, 10))] == list(range(91, 101))


def test_a_watcher_behind_compaction_raises_after_what_it_had_fetched(tmp_path):
    with SqliteStore(tmp_path / "hyperion.db") as store:
        for i in range(1200):
            store.txn([], [Put(f"k{i}", b"v")])

        async def scenario():
            events = store.watch("", 1)
            delivered = [await anext(events)]
            store.compact(keep_last=10)
            with pytest.raises(CompactedError):
                while True:
                    delivered.append(await anext(events))
            return delivered

        delivered = asyncio.run(scenario())
        assert 0 < len(delivered) < 1190


def test_live_events_come_from_the_wake_up_not_the_poll(tmp_path):
    with SqliteStore(tmp_path / "hyperion.db", watch_poll_interval=60) as store:

        async def latency():
            events = store.watch("", 1)
            pending = asyncio.ensure_future(anext(events))
            await asyncio.sleep(0.05)
            started = time.perf_counter()
            await asyncio.to_thread(store.txn, [], [Put("k", b"v")])
            await asyncio.wait_for(pending, 5)
            return time.perf_counter() - started

        assert asyncio.run(latency()) < 1.0


def test_parent_directories_are_created(tmp_path):
    path = tmp_path / "a" / "b" / "c" / "hyperion.db"
    with SqliteStore(path) as store:
        store.txn([], [Put("k", b"v")])
    assert path.exists() and (tmp_path / "a" / "b" / "c" / "hyperion.db.lock").exists()


def test_second_open_in_the_same_process_is_refused_until_close(tmp_path):
    path = tmp_path / "hyperion.db"
    first = SqliteStore(path)
    with pytest.raises(StoreLockedError, match="another Hyperion control plane") as caught:
        SqliteStore(path)
    assert str(path) in str(caught.value)
    first.close()
    SqliteStore(path).close()


def test_second_open_from_another_process_is_refused(tmp_path):
    path = tmp_path / "hyperion.db"
    with SqliteStore(path):
        out = run_child(CHILD_OPENER, path)
        assert out.startswith("locked:") and str(path) in out and "control plane" in out
    assert run_child(CHILD_OPENER, path).strip() == "opened"


def test_kill_9_loses_no_reported_commit_and_frees_the_lock(tmp_path):
    path = tmp_path / "hyperion.db"
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD_WRITER, str(path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    reported: list[tuple[int, int]] = []
    deadline = time.monotonic() + 60
    try:
        for line in child.stdout:
            reported.append(tuple(map(int, line.split())))
            if len(reported) >= 2000 or time.monotonic() > deadline:
                break
        child.send_signal(signal.SIGKILL)
        rest, errors = child.communicate(timeout=30)
    finally:
        child.kill()
    assert child.returncode == -signal.SIGKILL, errors
    reported += [tuple(map(int, line.split())) for line in rest.splitlines() if len(line.split()) == 2]
    assert len(reported) >= 2000, errors
    assert (tmp_path / "hyperion.db-wal").exists()  # it died without a clean close
    with SqliteStore(path) as store:  # the kernel released the dead owner's lock
        assert store.revision() >= reported[-1][1]
        for i, revision in reported:
            kv = store.get(f"k/{i:08d}")
            assert kv is not None, f"commit {i} (revision {revision}) was reported but is lost"
            assert (kv.value, kv.mod_revision) == (str(i).encode(), revision)


def test_a_file_that_is_not_a_store_gives_a_clear_error_and_keeps_no_lock(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_bytes(b"these are not the pages you are looking for" * 100)
    for _ in range(2):  # the second try must not find a lock left behind by the first
        with pytest.raises(StoreError, match="not a Hyperion state store") as caught:
            SqliteStore(path)
        assert str(path) in str(caught.value) and not isinstance(caught.value, StoreLockedError)


def test_another_programs_database_is_not_taken_over(tmp_path):
    path = tmp_path / "app.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE users (name TEXT)")
    conn.close()
    with pytest.raises(StoreError, match="not a Hyperion state store"):
        SqliteStore(path)


def test_a_store_from_a_newer_schema_is_refused(tmp_path):
    path = tmp_path / "hyperion.db"
    SqliteStore(path).close()
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version = 99")
    conn.close()
    with pytest.raises(StoreError, match="schema version 99"):
        SqliteStore(path)


def test_bad_synchronous_setting_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="synchronous"):
        SqliteStore(tmp_path / "x.db", synchronous="SOMETIMES")


def test_open_store_picks_the_adapter_from_the_url(tmp_path):
    memory = open_store("memory://")
    assert isinstance(memory, MemoryStore)
    memory.close()
    for url, path in [(f"sqlite://{tmp_path}/u.db", tmp_path / "u.db"), (str(tmp_path / "p.db"), tmp_path / "p.db")]:
        store = open_store(url)
        assert isinstance(store, SqliteStore) and store.path == path
        store.close()


@pytest.mark.parametrize("url", ["", "etcd://host:2379", "sqlite://relative.db", "memory://x"])
def test_open_store_rejects_urls_it_does_not_understand(url):
    with pytest.raises(StoreError, match="memory://"):
        open_store(url)


def test_public_api_is_curated():
    assert sorted(hyperion.store.__all__) == [
        "CompactedError", "MemoryStore", "SqliteStore", "StoreError", "StoreLockedError", "open_store",
    ]
    assert all(issubclass(e, StoreError) for e in (StoreLockedError, CompactedError))

"""The StateStore contract suite: what every store adapter must do, as pytest tests.

To test an adapter, subclass ``StoreContract`` in a test module and provide a ``store`` fixture that
yields a fresh, empty, open store (and closes it afterwards; ``close`` must be idempotent)::

    pytest.register_assert_rewrite("hyperion.testing.store_contract")  # readable failures
    from hyperion.testing.store_contract import StoreContract

    class TestEtcdStore(StoreContract):
        @pytest.fixture
        def store(self, etcd_url):
            store = EtcdStore(etcd_url, namespace=uuid4().hex)
            yield store
            store.close()

Besides the ``StateStore`` Protocol the suite expects ``compact(keep_last) -> int`` and
``CompactedError``/``StoreError`` from ``hyperion.store`` (etcd has both). Async tests drive their own
event loop with ``asyncio.run``, so no pytest plugin is needed.

Glossary: *replay* is the part of a watch that reports changes already committed when it started;
*live* events are the ones committed afterwards.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Awaitable, Sequence

import pytest

from hyperion.ports.store import Compare, Delete, Put, StateStore, TxnResult, WatchEvent
from hyperion.store import CompactedError, StoreError

WAIT = 10.0  # seconds any single await may take before the test fails instead of hanging


def put(store: StateStore, key: str, value: bytes = b"v", *compares: Compare) -> TxnResult:
    return store.txn(compares, [Put(key, value)])


def run(coro: Awaitable) -> object:
    async def bounded() -> object:
        return await asyncio.wait_for(coro, WAIT)

    return asyncio.run(bounded())


async def take(events: AsyncIterator[WatchEvent], n: int) -> list[WatchEvent]:
    return [await anext(events) for _ in range(n)]


async def parked(events: AsyncIterator[WatchEvent]) -> asyncio.Future:
    """Ask for the next event and let the watcher reach its wait; the future must still be open."""
    pending = asyncio.ensure_future(anext(events))
    await asyncio.sleep(0.05)
    assert not pending.done(), f"watch produced {pending.result()!r} with nothing written"
    return pending


def shape(events: Sequence[WatchEvent]) -> list[tuple[str, str, bytes | None, int]]:
    return [(e.type, e.key, e.value, e.mod_revision) for e in events]


class StoreContract:
    """Subclass and override the ``store`` fixture; every ``test_*`` below then runs against it."""

    @pytest.fixture
    def store(self) -> StateStore:
        raise NotImplementedError("subclass StoreContract and override the `store` fixture")

    # -- revisions ---------------------------------------------------------------------------

    def test_is_a_state_store_starting_empty_at_revision_zero(self, store):
        assert isinstance(store, StateStore)
        assert store.revision() == 0
        assert store.range("") == []
        assert store.get("missing") is None

    def test_every_writing_txn_bumps_the_revision_by_exactly_one(self, store):
        seen = []
        for ops in ([Put("a", b"1")], [Put("b", b"2"), Put("c", b"3"), Delete("a")], [Delete("b")]):
            result = store.txn([], ops)
            assert result.succeeded
            seen.append(result.revision)
            assert store.revision() == result.revision
        assert seen == [1, 2, 3]

    def test_delete_of_a_missing_key_is_a_no_op_that_still_counts_as_a_write(self, store):
        assert store.txn([], [Delete("never-there")]) == TxnResult(True, 1)
        assert store.get("never-there") is None
        assert store.revision() == 1

    @pytest.mark.parametrize("compares", [(), (Compare("k", 0),)])
    def test_txn_without_ops_does_not_bump_the_revision(self, store, compares):
        put(store, "x")
        assert store.txn(compares, []) == TxnResult(True, 1)
        assert store.revision() == 1

    def test_create_and_mod_revisions(self, store):
        put(store, "k", b"1")
        put(store, "other")
        put(store, "k", b"2")
        kv = store.get("k")
        assert (kv.key, kv.value, kv.create_revision, kv.mod_revision) == ("k", b"2", 1, 3)
        store.txn([], [Delete("k")])
        put(store, "k", b"3")
        kv = store.get("k")
        assert (kv.value, kv.create_revision, kv.mod_revision) == (b"3", 5, 5)

    def test_ops_in_one_txn_apply_in_order_at_one_revision(self, store):
        put(store, "gone")
        result = store.txn([], [Put("k", b"first"), Put("k", b"second"), Delete("gone"), Put("n", b"")])
        assert result == TxnResult(True, 2)
        assert store.get("k").value == b"second"
        assert store.get("gone") is None
        assert {kv.key: kv.mod_revision for kv in store.range("")} == {"k": 2, "n": 2}

    # -- guarded commits ----------------------------------------------------------------------

    def test_guarded_commit_applies_when_every_compare_holds(self, store):
        put(store, "a")
        put(store, "b")
        result = store.txn([Compare("a", 1), Compare("b", 2), Compare("new", 0)], [Put("a", b"A"), Put("new", b"N")])
        assert result == TxnResult(True, 3)
        assert (store.get("a").value, store.get("new").value) == (b"A", b"N")

    def test_failed_guarded_commit_applies_nothing_and_names_the_failed_keys(self, store):
        put(store, "a", b"a1")
        put(store, "b", b"b1")
        put(store, "a", b"a2")  # a is now at revision 3: a compare against 1 is stale
        before = store.range("")
        result = store.txn(
            [Compare("a", 1), Compare("b", 2), Compare("c", 7), Compare("b", 0)],
            [Put("b", b"changed"), Put("c", b"new"), Delete("a")],
        )
        assert result == TxnResult(False, 3, ("a", "c", "b"))
        assert store.revision() == 3
        assert store.range("") == before

    def test_put_if_absent_with_compare_zero(self, store):
        assert put(store, "lease", b"me", Compare("lease", 0)).succeeded
        lost = put(store, "lease", b"you", Compare("lease", 0))
        assert lost == TxnResult(False, 1, ("lease",))
        assert store.get("lease").value == b"me"
        store.txn([], [Delete("lease")])
        assert put(store, "lease", b"you", Compare("lease", 0)).succeeded

    def test_invalid_op_is_rejected_before_anything_is_applied(self, store):
        with pytest.raises(TypeError, match="bytes"):
            store.txn([], [Put("ok", b"1"), Put("bad", "not bytes")])
        with pytest.raises(TypeError):
            store.txn([], [Put("ok", b"1"), ("put", "k", b"v")])
        assert store.revision() == 0
        assert store.get("ok") is None

    # -- reads --------------------------------------------------------------------------------

    def test_delete_removes_the_key_from_get_and_range(self, store):
        put(store, "jobs/a")
        put(store, "jobs/b")
        assert store.txn([Compare("jobs/a", 1)], [Delete("jobs/a")]).succeeded
        assert store.get("jobs/a") is None
        assert [kv.key for kv in store.range("jobs/")] == ["jobs/b"]

    def test_range_returns_keys_in_order_and_only_under_the_prefix(self, store):
        keys = ["jobs2/x", "jobs/b", "job", "jobs/a/1", "jobs", "jobs/a", "jobt", "nodes/n1", "jobs/"]
        for key in keys:
            put(store, key, key.encode())
        assert [kv.key for kv in store.range("jobs/")] == ["jobs/", "jobs/a", "jobs/a/1", "jobs/b"]
        assert [kv.key for kv in store.range("jobs/a")] == ["jobs/a", "jobs/a/1"]
        assert [kv.key for kv in store.range("")] == sorted(keys)
        assert store.range("zzz") == []
        kv = store.range("jobs/b")[0]
        assert (kv.value, kv.mod_revision, kv.create_revision) == (b"jobs/b", 2, 2)

    @pytest.mark.parametrize(
        "prefix, inside, outside",
        [
            ("a_", ["a_", "a_b"], ["ab", "axb", "a"]),  # SQL LIKE: _ is any one character
            ("a%", ["a%", "a%%b"], ["ab", "a"]),  # SQL LIKE: % is any run of characters
            ("a\\", ["a\\", "a\\_"], ["a", "a]"]),  # an escape character in LIKE ... ESCAPE
            ("é/", ["é/", "é/ü"], ["é0", "e/", "é"]),
            ("x\U0010ffff", ["x\U0010ffff", "x\U0010ffffz"], ["y", "x"]),  # no successor character
            ("a\ud7ff", ["a\ud7ff", "a\ud7ffb"], ["a\ue000"]),  # successor skips the surrogates
        ],
    )
    def test_range_prefix_has_no_wildcards_and_handles_any_character(self, store, prefix, inside, outside):
        for key in outside + inside:
            put(store, key)
        assert [kv.key for kv in store.range(prefix)] == sorted(inside)

    @pytest.mark.parametrize(
        "value", [b"", b"\x00", b"\xff\xfe\x80 not utf-8", bytes(range(256)), b"\x00" * 100_000]
    )
    def test_values_are_arbitrary_bytes(self, store, value):
        put(store, "k", value)
        assert store.get("k").value == value
        assert store.range("k")[0].value == value

    def test_bytes_like_values_are_stored_as_bytes(self, store):
        put(store, "k", bytearray(b"abc"))
        assert type(store.get("k").value) is bytes and store.get("k").value == b"abc"

    # -- watch --------------------------------------------------------------------------------

    def test_watch_replays_from_a_past_revision_then_follows_live_changes(self, store):
        put(store, "jobs/a", b"1")
        put(store, "jobs/b", b"2")
        store.txn([], [Delete("jobs/a"), Put("jobs/b", b"3")])

        async def scenario():
            events = store.watch("jobs/", 2)
            replay = await take(events, 3)
            pending = await parked(events)
            store.txn([], [Put("jobs/c", b"4")])
            live = [await pending]
            store.txn([], [Delete("jobs/c"), Put("jobs/a", b"5")])
            live += await take(events, 2)
            await events.aclose()
            return replay, live

        replay, live = run(scenario())
        assert shape(replay) == [("put", "jobs/b", b"2", 2), ("delete", "jobs/a", None, 3), ("put", "jobs/b", b"3", 3)]
        assert shape(live) == [("put", "jobs/c", b"4", 4), ("delete", "jobs/c", None, 5), ("put", "jobs/a", b"5", 5)]

    @pytest.mark.parametrize("start", [0, 1])
    def test_watch_from_the_beginning_replays_everything(self, store, start):
        put(store, "a", b"1")
        store.txn([], [Delete("a"), Delete("missing")])
        events = run(take(store.watch("", start), 2))
        assert shape(events) == [("put", "a", b"1", 1), ("delete", "a", None, 2)]

    def test_watch_of_a_prefix_ignores_other_keys(self, store):
        async def scenario():
            events = store.watch("jobs/", 1)
            for key in ["jobs2/x", "job", "nodes/a", "jobs", "jobs/1", "jobs2/y", "jobs/2"]:
                put(store, key, key.encode())
            return await take(events, 2)

        assert [e.key for e in run(scenario())] == ["jobs/1", "jobs/2"]

    def test_watch_from_a_future_revision_starts_there(self, store):
        async def scenario():
            events = store.watch("", 3)
            for key in "abcd":
                put(store, key)
            return await take(events, 2)

        assert [(e.key, e.mod_revision) for e in run(scenario())] == [("c", 3), ("d", 4)]

    def test_watch_wakes_on_a_write_from_another_thread(self, store):
        async def scenario():
            events = store.watch("k", 1)
            pending = await parked(events)
            await asyncio.to_thread(put, store, "k", b"threaded")
            return await pending

        assert shape([run(scenario())]) == [("put", "k", b"threaded", 1)]

    def test_watch_from_another_event_loop_thread(self, store):
        got: list[WatchEvent] = []
        ready = threading.Event()

        async def watcher():
            events = store.watch("", 1)
            pending = await parked(events)
            ready.set()
            got.append(await pending)
            got.extend(await take(events, 1))

        thread = threading.Thread(target=run, args=(watcher(),))
        thread.start()
        assert ready.wait(WAIT)
        put(store, "a")
        put(store, "b")
        thread.join(WAIT)
        assert [e.key for e in got] == ["a", "b"]

    def test_two_watchers_each_see_every_change(self, store):
        async def scenario():
            first, second = store.watch("", 1), store.watch("", 1)
            pending = [await parked(first), await parked(second)]
            put(store, "a")
            put(store, "b")
            return [[await pending[0], await anext(first)], [await pending[1], await anext(second)]]

        first, second = run(scenario())
        assert shape(first) == shape(second) == [("put", "a", b"v", 1), ("put", "b", b"v", 2)]

    def test_watch_delivers_long_histories_and_huge_txns_in_order(self, store):
        for i in range(700):
            put(store, f"k/{i:04d}", str(i).encode())
        store.txn([], [Put(f"big/{i:04d}", b"") for i in range(1300)])
        events = run(take(store.watch("", 1), 2000))
        assert [e.mod_revision for e in events] == list(range(1, 701)) + [701] * 1300
        assert [e.key for e in events[700:]] == [f"big/{i:04d}" for i in range(1300)]

    def test_close_ends_open_watches_and_later_calls_fail(self, store):
        async def scenario():
            events = store.watch("", 1)
            pending = await parked(events)
            store.close()
            with pytest.raises(StopAsyncIteration):
                await pending

        run(scenario())
        store.close()  # idempotent
        for call in (lambda: store.get("k"), lambda: store.range(""), store.revision, lambda: put(store, "k"),
                     lambda: store.watch("", 1), lambda: store.compact(0)):
            with pytest.raises(StoreError, match="closed"):
                call()

    # -- compaction ---------------------------------------------------------------------------

    def test_compaction_drops_old_changes_but_not_state(self, store):
        for i in range(10):
            put(store, f"k{i % 3}", str(i).encode())
        state = store.range("")
        assert store.compact(keep_last=4) == 6
        assert store.compact(keep_last=8) == 6  # never goes back
        assert store.range("") == state and store.revision() == 10
        with pytest.raises(CompactedError, match="compacted") as caught:
            store.watch("", 6)
        assert caught.value.compacted_revision == 6
        assert [e.mod_revision for e in run(take(store.watch("", 7), 4))] == [7, 8, 9, 10]

    def test_compact_everything_then_watch_from_the_next_revision(self, store):
        put(store, "a")
        put(store, "b")
        assert store.compact(keep_last=0) == 2
        with pytest.raises(CompactedError):
            store.watch("", 0)

        async def scenario():
            events = store.watch("", store.revision() + 1)
            pending = await parked(events)
            put(store, "c")
            return await pending

        assert shape([run(scenario())]) == [("put", "c", b"v", 3)]

    def test_a_watcher_left_behind_by_compaction_never_skips_silently(self, store):
        """It may finish what it had already fetched, then must raise CompactedError: no gaps."""
        for i in range(600):
            put(store, f"k{i}")

        async def scenario():
            events = store.watch("", 1)
            delivered = [await anext(events)]
            store.compact(keep_last=10)
            try:
                while len(delivered) < 600:
                    delivered.append(await anext(events))
            except CompactedError:
                pass
            return delivered

        delivered = run(scenario())
        assert [e.mod_revision for e in delivered] == list(range(1, len(delivered) + 1))

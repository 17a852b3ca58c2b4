"""LogShipper with real files and a real Outbox: chunking, offsets, resets, the final flush."""

from __future__ import annotations

import asyncio

from hyperion.agent.logship import CHUNK_BYTES, TICK_BYTES_PER_TASK, LogShipper
from hyperion.agent.session import Outbox
from hyperion.api._generated.hyperion.v1 import agent_pb2

KEY = ("job", 0, 1)


def ready_outbox(high_water: int = 64) -> Outbox:
    outbox = Outbox(high_water)
    outbox.open()
    outbox.ready = True
    return outbox


def chunks(outbox: Outbox) -> list[tuple[int, bytes]]:
    msgs = outbox._queue
    out = [(m.log.offset, m.log.data) for m in msgs if m.HasField("log")]
    msgs.clear()
    return out


def test_growth_is_shipped_in_bounded_contiguous_chunks(tmp_path):
    async def main():
        log = tmp_path / "t.log"
        data = bytes(range(256)) * 2600  # 650 KiB
        log.write_bytes(data)
        outbox = ready_outbox()
        ship = LogShipper(outbox)
        ship.track(KEY, str(log))
        ship.tick()
        got = chunks(outbox)
        assert [off for off, _ in got] == [0, CHUNK_BYTES, 2 * CHUNK_BYTES]
        assert all(len(d) <= CHUNK_BYTES for _, d in got) and b"".join(d for _, d in got) == data
        ship.tick()
        assert chunks(outbox) == []
        with open(log, "ab") as f:
            f.write(b"more")
        ship.tick()
        assert outbox._queue[0].log.task == agent_pb2.TaskRef(job_id="job", attempt=0, rank=1)
        assert chunks(outbox) == [(len(data), b"more")]
    asyncio.run(main())


def test_nothing_ships_before_welcome_and_reset_resends_from_the_offsets(tmp_path):
    async def main():
        log = tmp_path / "t.log"
        log.write_bytes(b"hello world")
        outbox = Outbox()
        outbox.open()
        ship = LogShipper(outbox)
        ship.track(KEY, str(log))
        ship.track(("other", 0, 0), str(tmp_path / "other.log"))
        ship.tick()
        assert chunks(outbox) == []  # not welcomed yet
        outbox.ready = True
        ship.reset({KEY: 6})
        ship.tick()
        assert chunks(outbox) == [(6, b"world")]
        ship.reset({})  # the control plane lost everything
        ship.tick()
        assert chunks(outbox) == [(0, b"hello world")]
    asyncio.run(main())


def test_finish_ships_the_rest_before_calling_back(tmp_path):
    async def main():
        log = tmp_path / "t.log"
        log.write_bytes(b"x" * 10)
        outbox = ready_outbox()
        ship = LogShipper(outbox)
        ship.track(KEY, str(log))
        sizes = []
        ship.finish(KEY, sizes.append)
        assert sizes == [10] and chunks(outbox) == [(0, b"x" * 10)]
        assert ship.size(KEY) == 10
    asyncio.run(main())


def test_a_big_final_flush_waits_for_room_and_keeps_order(tmp_path):
    async def main():
        log = tmp_path / "t.log"
        data = b"y" * (TICK_BYTES_PER_TASK * 3 + 5)
        log.write_bytes(data)
        outbox = ready_outbox(high_water=2)
        ship = LogShipper(outbox)
        ship.track(KEY, str(log))
        done = asyncio.Event()
        ship.finish(KEY, lambda size: (outbox.put(f"report {size}"), done.set()))
        received = []
        while not done.is_set() or outbox.pending():
            received.extend(await asyncio.wait_for(outbox.take(), 5))
        assert received[-1] == f"report {len(data)}"
        assert b"".join(m.log.data for m in received[:-1]) == data
    asyncio.run(main())


def test_an_acked_task_keeps_shipping_until_its_log_is_complete(tmp_path):
    async def main():
        log = tmp_path / "t.log"
        data = b"z" * (TICK_BYTES_PER_TASK + 10)
        log.write_bytes(data)
        outbox = Outbox()
        outbox.open()  # connected, not yet welcomed: the exit goes out in Hello, the log later
        ship = LogShipper(outbox)
        ship.track(KEY, str(log))
        ship.finish(KEY, lambda size: None)
        outbox.ready = True
        ship.reset({})
        ship.forget(KEY)  # the ack came before the whole log was shipped
        received = []
        for _ in range(3):
            ship.tick()
            received += chunks(outbox)
        assert b"".join(d for _, d in received) == data
        assert not ship.tracks(KEY)
    asyncio.run(main())

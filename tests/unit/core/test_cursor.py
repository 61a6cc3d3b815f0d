"""Stream cursors: where a stream consumer starts, reading without settling,
waking on new data and on the queue's deletion, and push delivery from one."""

from __future__ import annotations

import asyncio

import pytest

from dovecote.core.broker import BrokerCore
from dovecote.core.clock import FakeClock
from dovecote.core.config import BrokerConfig
from dovecote.core.cursor import FIRST, LAST, NEXT, AtTime, StreamCursor
from dovecote.core.delivery import ConsumerSet, PushConsumer
from dovecote.core.queue_settings import QueueSettings
from dovecote.storage.batch import Record

BASE_MS = 1_700_000_000_000


def new_core(path) -> BrokerCore:
    return BrokerCore(BrokerConfig.load(env={}, overrides={"data_dir": path}), clock=FakeClock())


async def stream_queue(core: BrokerCore, name: str, count: int):
    queue = await core.queues.declare_queue(name, settings=QueueSettings(stream=True))
    for i in range(count):  # one append each, a second apart
        record = Record(b"m%d" % i, timestamp=BASE_MS + i * 1000)
        await core.queues.enqueue([name], [record])
    return queue


def values(deliveries) -> list[bytes]:
    return [d.record.value for d in deliveries]


def test_start_positions_and_reading_twice(tmp_path):
    async def main():
        core = new_core(tmp_path)
        await core.start()
        try:
            queue = await stream_queue(core, "s", 10)
            sub = queue.subscription
            assert values(StreamCursor(sub, FIRST).pull(100)) == [b"m%d" % i for i in range(10)]
            assert values(StreamCursor(sub, FIRST).pull(3)) == [b"m0", b"m1", b"m2"]
            assert values(StreamCursor(sub, 7).pull(100)) == [b"m7", b"m8", b"m9"]
            assert values(StreamCursor(sub, LAST).pull(100)) == [b"m9"]
            assert StreamCursor(sub, NEXT).pull(100) == []
            assert values(StreamCursor(sub, AtTime(BASE_MS + 4500)).pull(100)) == [
                b"m%d" % i for i in range(5, 10)
            ]
            assert StreamCursor(sub, AtTime(BASE_MS + 60_000)).pull(100) == []
            assert values(StreamCursor(sub, 10_000).pull(1)) == []  # past the end: next
            assert values(StreamCursor(sub, -5).pull(1)) == [b"m0"]  # before the start: first
            with pytest.raises(ValueError):
                StreamCursor(sub, "middle")
            # Reading settles nothing: the queue still holds all ten, in the log.
            cursor = StreamCursor(sub, FIRST)
            delivered = cursor.pull(10)
            assert cursor.ack([(d.partition, d.offset) for d in delivered]) == 0
            assert queue.message_count() == 10
            assert all(d.count == 1 for d in delivered)
        finally:
            await core.stop()

    asyncio.run(main())


def test_a_cursor_wakes_on_appends_and_on_deletion(tmp_path):
    async def main():
        core = new_core(tmp_path)
        await core.start()
        try:
            queue = await stream_queue(core, "s", 2)
            cursor = StreamCursor(queue.subscription, NEXT)
            waiting = asyncio.ensure_future(cursor.wait(30))
            await asyncio.sleep(0)
            await core.queues.enqueue(["s"], [Record(b"new", timestamp=BASE_MS)])
            assert await asyncio.wait_for(waiting, 5) is True
            assert values(cursor.pull(10)) == [b"new"]
            waiting = asyncio.ensure_future(cursor.wait(30))
            await asyncio.sleep(0)
            await core.queues.delete_queue("s")
            assert await asyncio.wait_for(waiting, 5) is True
            assert cursor.closed and cursor.pull(10) == []
        finally:
            await core.stop()

    asyncio.run(main())


class Sink:
    def __init__(self) -> None:
        self.got: list[bytes] = []
        self.cancels: list[BaseException | None] = []

    def deliver(self, deliveries) -> None:
        self.got += values(deliveries)

    def writable(self) -> bool:
        return True

    def wait_writable(self):
        raise AssertionError("always writable")

    def cancelled(self, error: BaseException | None) -> None:
        self.cancels.append(error)


def test_stream_consumers_each_read_everything_with_credit(tmp_path):
    async def main():
        core = new_core(tmp_path)
        await core.start()
        try:
            queue = await stream_queue(core, "s", 6)
            sub = queue.subscription
            group = ConsumerSet(sub, core.clock, name="s")
            a, b = Sink(), Sink()
            ca = PushConsumer(a, a, prefetch=4, source=StreamCursor(sub, FIRST))
            cb = PushConsumer(b, b, prefetch=10, source=StreamCursor(sub, 3))
            group.attach(ca)
            group.attach(cb)
            for _ in range(20):
                await asyncio.sleep(0)
            assert a.got == [b"m0", b"m1", b"m2", b"m3"]  # its credit
            assert b.got == [b"m3", b"m4", b"m5"]
            ca.returned(4)
            ca.refill()
            for _ in range(20):
                await asyncio.sleep(0)
            assert a.got == [b"m%d" % i for i in range(6)]
            await core.queues.delete_queue("s")
            for _ in range(20):
                await asyncio.sleep(0)
            assert a.cancels == [None] and b.cancels == [None]
        finally:
            await core.stop()

    asyncio.run(main())


def test_a_stream_queue_and_its_records_survive_a_restart(tmp_path):
    async def main():
        core = new_core(tmp_path)
        await core.start()
        queue = await stream_queue(core, "s", 3)
        StreamCursor(queue.subscription, FIRST).pull(10)  # reading leaves no trace
        await core.stop()
        core = new_core(tmp_path)
        await core.start()
        try:
            queue = core.queues.get_queue("s")
            assert queue.settings.stream
            assert core.topic("s").config("retention.acked") != "true"
            cursor = StreamCursor(queue.subscription, FIRST)
            assert values(cursor.pull(10)) == [b"m0", b"m1", b"m2"]
        finally:
            await core.stop()

    asyncio.run(main())

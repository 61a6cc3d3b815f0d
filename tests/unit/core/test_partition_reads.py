"""The partition's read API: what adapters use instead of its log.

The offset lookups (by time and the special timestamps) are one method on
the partition and never answer past the high watermark: an append written
but not yet durable (flush.policy=ack, group commit not yet run) is not
handed out by any of them.
"""

from __future__ import annotations

import asyncio

import pytest
from aiohttp.test_utils import TestClient, TestServer

from dovecote.admin.api import build_app
from dovecote.core.broker import BrokerCore
from dovecote.core.config import BrokerConfig
from dovecote.core.errors import OffsetOutOfRange
from dovecote.core.topic import (
    EARLIEST,
    LATEST,
    MAX_TIMESTAMP,
    READ_COMMITTED,
    READ_UNCOMMITTED,
    OffsetAtTime,
)
from dovecote.storage.batch import Record, build_batch


def core_for(tmp_path, **kw) -> BrokerCore:
    return BrokerCore(BrokerConfig.load(env={}, overrides={"data_dir": tmp_path, **kw}))


def at(ts: int, value: bytes = b"v") -> bytes:
    return build_batch([Record(value)], timestamp=ts)


def test_lookups_by_time_and_special_timestamps(tmp_path):
    async def main():
        core = core_for(tmp_path)
        await core.start()
        partition = (await core.create_topic("t", 1)).partitions[0]
        assert partition.offset_for_timestamp(MAX_TIMESTAMP) is None
        assert partition.offset_for_timestamp(1000) is None
        for ts in (1000, 3000, 2000):
            await partition.append(at(ts))
        assert partition.offset_for_timestamp(LATEST) == OffsetAtTime(3, -1)
        assert partition.offset_for_timestamp(EARLIEST) == OffsetAtTime(0, -1)
        assert partition.offset_for_timestamp(MAX_TIMESTAMP) == OffsetAtTime(1, 3000)
        assert partition.offset_for_timestamp(0) == OffsetAtTime(0, 1000)
        assert partition.offset_for_timestamp(1500) == OffsetAtTime(1, 3000)
        assert partition.offset_for_timestamp(3000) == OffsetAtTime(1, 3000)
        assert partition.offset_for_timestamp(3001) is None
        assert partition.delete_records_before(1) == 1
        assert partition.offset_for_timestamp(EARLIEST) == OffsetAtTime(1, -1)
        assert partition.offset_for_timestamp(0) == OffsetAtTime(1, 3000)
        await core.stop()

    asyncio.run(main())


def test_no_lookup_hands_out_an_offset_that_is_not_durable(tmp_path):
    """flush.policy=ack: two appends written, their fsync not yet run."""

    async def main():
        core = core_for(tmp_path)
        await core.start()
        topic = await core.create_topic("t", 1, {"flush.policy": "ack"})
        partition = topic.partitions[0]
        await partition.append(at(1000))
        await partition.append(at(2000))
        # Not durable yet: the group commit runs once this task yields.
        await partition.append(at(3000), durable=False)
        await partition.append(at(4000), durable=False)
        assert (partition.high_watermark, partition.log_end_offset) == (2, 4)
        hw = partition.high_watermark
        for isolation in (READ_UNCOMMITTED, READ_COMMITTED):
            for ts in (LATEST, EARLIEST, MAX_TIMESTAMP, 0, 1500, 2500, 3500, 4000):
                found = partition.offset_for_timestamp(ts, isolation)
                assert found is None or found.offset <= hw, (ts, found)
        assert partition.offset_for_timestamp(MAX_TIMESTAMP) == OffsetAtTime(1, 2000)
        assert partition.offset_for_timestamp(3500) is None
        assert partition.read(hw, 1 << 20) is None
        # The admin API (/offsets?timestamp= and reset-offsets) asks the same partition.
        assert partition.log_end_offset > partition.high_watermark
        await core.flusher.drain()
        assert partition.high_watermark == 4
        assert partition.offset_for_timestamp(3500) == OffsetAtTime(3, 4000)
        assert partition.offset_for_timestamp(MAX_TIMESTAMP) == OffsetAtTime(3, 4000)
        await core.stop()

    asyncio.run(main())


def test_admin_offsets_stay_below_the_high_watermark(tmp_path):
    async def main():
        core = core_for(tmp_path)
        await core.start()
        partition = (await core.create_topic("t", 1, {"flush.policy": "ack"})).partitions[0]
        await partition.append(at(1000))
        async with TestClient(TestServer(build_app(core))) as client:
            # Hold the group commit back so the appends below stay not durable
            # while the HTTP requests are served.
            flush_round = core.flusher._run
            release = asyncio.Event()

            async def held() -> None:
                await release.wait()
                await flush_round()

            core.flusher._run = held  # type: ignore[method-assign]
            await partition.append(at(3000), durable=False)
            await partition.append(at(4000), durable=False)
            assert (partition.high_watermark, partition.log_end_offset) == (1, 3)
            response = await client.get("/v1/topics/t/offsets", params={"timestamp": "3500"})
            rows = await response.json()
            assert rows == [{"partition": 0, "earliest": 0, "latest": 1, "offset_for_timestamp": 1}]
            response = await client.post(
                "/v1/groups/g/reset-offsets",
                json={"topic": "t", "to": "timestamp", "value": 3500, "dry_run": True},
            )
            plan = (await response.json())["offsets"]
            assert [row["new"] for row in plan] == [1]
            release.set()
            core.flusher._run = flush_round  # type: ignore[method-assign]
            await core.flusher.drain()
            response = await client.get("/v1/topics/t/offsets", params={"timestamp": "3500"})
            assert (await response.json())[0]["offset_for_timestamp"] == 2
        await core.stop()

    asyncio.run(main())


def test_reads_take_an_isolation_level(tmp_path):
    async def main():
        core = core_for(tmp_path)
        await core.start()
        partition = (await core.create_topic("t", 1, {"flush.policy": "ack"})).partitions[0]
        await partition.append(build_batch([Record(b"a"), Record(b"b")]))
        await partition.append(at(5, b"c"), durable=False)
        # No transactions yet: the last stable offset is the high watermark.
        assert partition.last_stable_offset == partition.high_watermark == 2
        for isolation in (READ_UNCOMMITTED, READ_COMMITTED):
            assert [r.value for r in partition.read_records(0, isolation=isolation)] == [
                b"a",
                b"b",
            ]
            chunk = partition.read(0, 1 << 20, isolation)
            assert chunk is not None and chunk.size > 0
            assert partition.read(2, 1 << 20, isolation) is None
            assert partition.visible_end(isolation) == 2
        await core.flusher.drain()
        assert partition.last_stable_offset == 3
        assert [r.value for r in partition.read_records(2, isolation=READ_COMMITTED)] == [b"c"]
        await core.stop()

    asyncio.run(main())


def test_sizes_segments_and_deleting_records(tmp_path):
    async def main():
        core = core_for(tmp_path)
        await core.start()
        topic = await core.create_topic("t", 2, {"segment.bytes": "1024"})
        partition = topic.partitions[0]
        assert partition.size_bytes == 0 and partition.segment_count == 1
        for i in range(8):
            await partition.append(build_batch([Record(b"x" * 400, key=str(i).encode())]))
        assert partition.segment_count > 2
        assert partition.size_bytes > 8 * 400
        assert topic.size_bytes == partition.size_bytes + topic.partitions[1].size_bytes
        segments = partition.segment_count
        assert partition.delete_records_before(6) == 6
        assert partition.log_start_offset == 6
        assert partition.segment_count < segments
        with pytest.raises(OffsetOutOfRange):
            partition.delete_records_before(partition.high_watermark + 1)
        assert core.flush_rounds > 0
        await core.stop()

    asyncio.run(main())

"""ListOffsets through the Kafka handler: the partition's one lookup, capped
at what the reader may see, so an append not yet durable (flush.policy=ack,
group commit not yet run) is never handed out."""

from __future__ import annotations

import asyncio

from kio.schema.list_offsets.v7.request import (
    ListOffsetsPartition,
    ListOffsetsRequest,
    ListOffsetsTopic,
)
from kio.static.primitive import i8, i32, i64

from dovecote.core.broker import BrokerCore
from dovecote.core.config import BrokerConfig
from dovecote.kafka.codec import Request
from dovecote.kafka.handlers.context import KafkaContext, Session
from dovecote.kafka.handlers.data import list_offsets
from dovecote.storage.batch import Record, build_batch

TIMESTAMPS = (-1, -2, -3, 0, 1500, 2500, 3500)


def request(isolation: int) -> Request:
    partitions = tuple(
        ListOffsetsPartition(
            partition_index=i32(0), current_leader_epoch=i32(-1), timestamp=i64(ts)
        )
        for ts in TIMESTAMPS
    )
    body = ListOffsetsRequest(
        replica_id=i32(-1),  # type: ignore[arg-type]
        isolation_level=i8(isolation),
        topics=(ListOffsetsTopic(name="t", partitions=partitions),),  # type: ignore[arg-type]
    )
    return Request(2, 7, 1, "test", body)


def test_list_offsets_never_answers_past_the_high_watermark(tmp_path):
    async def main():
        core = BrokerCore(BrokerConfig.load(env={}, overrides={"data_dir": tmp_path}))
        await core.start()
        ctx = KafkaContext(core, 0, "127.0.0.1", 9092, "cluster")
        partition = (await core.create_topic("t", 1, {"flush.policy": "ack"})).partitions[0]
        await partition.append(build_batch([Record(b"a")], timestamp=1000))
        await partition.append(build_batch([Record(b"b")], timestamp=2000))
        await partition.append(build_batch([Record(b"c")], timestamp=3000), durable=False)
        await partition.append(build_batch([Record(b"d")], timestamp=4000), durable=False)
        assert (partition.high_watermark, partition.log_end_offset) == (2, 4)
        for isolation in (0, 1):
            response = await list_offsets(ctx, Session("127.0.0.1"), request(isolation))
            rows = response["topics"][0]["partitions"]
            answers = {
                ts: (row["offset"], row["timestamp"])
                for ts, row in zip(TIMESTAMPS, rows, strict=True)
            }
            assert answers == {
                -1: (2, -1),  # latest: the high watermark, not the log end
                -2: (0, -1),
                -3: (1, 2000),  # the largest timestamp among visible records
                0: (0, 1000),
                1500: (1, 2000),
                2500: (-1, -1),  # only not-yet-durable records match
                3500: (-1, -1),
            }
        await core.flusher.drain()
        response = await list_offsets(ctx, Session("127.0.0.1"), request(1))
        rows = response["topics"][0]["partitions"]
        assert [(r["offset"], r["timestamp"]) for r in rows][-1] == (3, 4000)
        await core.stop()

    asyncio.run(main())

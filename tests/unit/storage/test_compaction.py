"""cleanup.policy=compact keeps the latest record per key with offsets intact."""

from __future__ import annotations

import asyncio

from dovecote.core.broker import BrokerCore
from dovecote.core.config import BrokerConfig
from dovecote.storage.batch import Record, scan_batches


def read_all(partition) -> list[Record]:
    out, offset = [], partition.log_start_offset
    while offset < partition.high_watermark:
        records = partition.read_records(offset, 1 << 20)
        if not records:
            break
        out += records
        offset = records[-1].offset + 1
    return out


def test_compaction_keeps_latest_per_key_and_drops_old_tombstones(tmp_path):
    async def main():
        core = BrokerCore(BrokerConfig.load(env={}, overrides={"data_dir": tmp_path}))
        await core.start()
        topic = await core.create_topic(
            "c",
            1,
            {"cleanup.policy": "compact", "segment.bytes": "2048", "delete.retention.ms": "0"},
        )
        partition = topic.partitions[0]
        for round_ in range(20):
            batch = [Record(b"v%d-%d" % (round_, k), key=b"k%d" % k) for k in range(5)]
            await partition.append_records(batch)
        await partition.append_records([Record(None, key=b"k0")])  # delete k0
        await partition.append_records([Record(b"last", key=b"k1")])
        await partition.append_records([Record(b"filler", key=b"f%d" % i) for i in range(40)])
        partition.log.roll()  # the active segment is never compacted; close it
        before = read_all(partition)
        size_before = partition.log.size_bytes
        removed = await core.compact()
        after = read_all(partition)
        assert removed > 50
        assert partition.log.size_bytes < size_before
        latest = {r.key: r for r in before}
        # Every surviving record is the latest of its key, at its original offset.
        for record in after:
            assert latest[record.key].offset == record.offset
        survivors = {r.key: r.value for r in after}
        assert survivors[b"k1"] == b"last"
        assert survivors[b"k2"] == b"v19-2"
        assert b"k0" not in survivors  # the tombstone itself is gone (delete.retention.ms=0)
        # Offsets keep counting from where they were.
        assert (await partition.append_records([Record(b"x", key=b"z")])).base_offset == before[
            -1
        ].offset + 1
        # Rewritten segments hold valid batches.
        for segment in partition.log.segments:
            scan_batches(segment.read_at(0, segment.size), check_crc=True)
        assert await core.compact() == 0  # nothing new to do
        await core.stop()
        core = BrokerCore(BrokerConfig.load(env={}, overrides={"data_dir": tmp_path}))
        await core.start()
        assert {r.key: r.value for r in read_all(core.get_topic("c").partitions[0])}[
            b"k1"
        ] == b"last"
        await core.stop()

    asyncio.run(main())

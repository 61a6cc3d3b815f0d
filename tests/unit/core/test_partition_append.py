"""The one append path: ``Partition.append_records_now`` (queues) shares the
storage-error handling of every other append, and the partition, not the
storage layer, decides when appended records become visible."""

from __future__ import annotations

import asyncio
import errno

import pytest

from dovecote.core.broker import BrokerCore
from dovecote.core.config import BrokerConfig
from dovecote.storage.batch import Record
from dovecote.storage.errors import StorageError


def new_core(path) -> BrokerCore:
    return BrokerCore(BrokerConfig.load(env={}, overrides={"data_dir": path}))


def test_append_now_writes_at_once_and_becomes_visible_after_the_commit(tmp_path):
    async def main():
        core = new_core(tmp_path)
        await core.start()
        await core.create_topic("t", 1, {"flush.policy": "ack"})
        partition = core.partition("t", 0)
        wait = partition.append_records_now([Record(b"a"), Record(b"b")], durable=True)
        assert wait is not None
        assert partition.log_end_offset == 2 and partition.high_watermark == 0
        assert partition.pending_appends()
        await wait
        assert partition.high_watermark == 2 and not partition.pending_appends()
        assert partition.settle() is None  # nothing left to wait for
        # Not durable: the flush is only scheduled; settle() waits for it.
        assert partition.append_records_now([Record(b"c")], durable=False) is None
        settled = partition.settle()
        assert settled is not None
        await settled
        assert partition.high_watermark == 3
        # append_records (async) is the same path and answers with the offsets.
        result = await partition.append_records([Record(b"d")])
        assert result.base_offset == 3 and partition.high_watermark == 4
        await core.stop()

    asyncio.run(main())


def test_other_flush_policies_make_appends_visible_at_once(tmp_path):
    async def main():
        core = new_core(tmp_path)
        await core.start()
        await core.create_topic("n", 1, {"flush.policy": "never"})
        partition = core.partition("n", 0)
        assert partition.append_records_now([Record(b"x")]) is None
        assert partition.high_watermark == 1
        await core.stop()

    asyncio.run(main())


def test_the_partition_decides_what_durable_data_becomes_visible(tmp_path):
    async def main():
        core = new_core(tmp_path)
        await core.start()
        await core.create_topic("t", 1, {"flush.policy": "ack"})
        partition = core.partition("t", 0)
        reported = []
        decide = partition._durable
        partition.log.on_durable = lambda *point: reported.append(point)
        await partition.append_records_now([Record(b"a")], durable=True)
        assert [point[2] for point in reported] == [1]
        assert partition.high_watermark == 0  # storage reported; nobody decided
        decide(*reported[0])
        assert partition.high_watermark == 1
        partition.log.on_durable = decide
        await core.stop()

    asyncio.run(main())


def test_append_now_turns_os_errors_into_storage_errors(tmp_path, monkeypatch):
    async def main():
        core = new_core(tmp_path)
        await core.start()
        await core.create_topic("t", 1, {"flush.policy": "ack"})
        partition = core.partition("t", 0)

        def full(*args, **kwargs):
            raise OSError(errno.ENOSPC, "No space left on device")

        monkeypatch.setattr(partition.log, "append", full)
        with pytest.raises(StorageError) as raised:
            partition.append_records_now([Record(b"a")])
        assert raised.value.errno == errno.ENOSPC
        monkeypatch.undo()
        assert partition.log_end_offset == 0
        await core.stop()

    asyncio.run(main())

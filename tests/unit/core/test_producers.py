"""Idempotent producer sequence rules, alone and through a partition across a restart."""

from __future__ import annotations

import asyncio

import pytest

from dovecote.core.broker import BrokerCore
from dovecote.core.config import BrokerConfig
from dovecote.core.errors import InvalidProducerEpoch, OutOfOrderSequence
from dovecote.storage.batch import Record, build_batch


def batch(pid: int, epoch: int, seq: int, n: int = 1) -> bytes:
    return build_batch(
        [Record(b"%d" % (seq + i)) for i in range(n)],
        producer_id=pid,
        producer_epoch=epoch,
        base_sequence=seq,
    )


def test_sequences_duplicates_gaps_and_epochs_survive_restart(tmp_path):
    def core() -> BrokerCore:
        return BrokerCore(BrokerConfig.load(env={}, overrides={"data_dir": tmp_path}))

    async def first():
        c = core()
        await c.start()
        pid = await c.allocate_producer_id()
        p = (await c.create_topic("t", 1)).partitions[0]
        assert (await p.append(batch(pid, 0, 0, 3))).base_offset == 0
        assert (await p.append(batch(pid, 0, 3, 2))).base_offset == 3
        # A retry of the first batch is acknowledged with its original offsets.
        retried = await p.append(batch(pid, 0, 0, 3))
        assert (retried.base_offset, retried.last_offset) == (0, 2)
        assert p.log_end_offset == 5
        with pytest.raises(OutOfOrderSequence):
            await p.append(batch(pid, 0, 7))
        with pytest.raises(OutOfOrderSequence):
            await p.append(batch(pid + 1, 0, 5))  # unknown producer must start at 0
        await c.stop()
        return pid

    async def second(pid):
        c = core()
        await c.start()
        assert await c.allocate_producer_id() > pid  # never reused across restarts
        p = c.get_topic("t").partitions[0]
        assert (await p.append(batch(pid, 0, 3, 2))).base_offset == 3  # still a duplicate
        assert (await p.append(batch(pid, 0, 5))).base_offset == 5
        assert (await p.append(batch(pid, 1, 0))).base_offset == 6  # a new epoch restarts at 0
        with pytest.raises(InvalidProducerEpoch):
            await p.append(batch(pid, 0, 6))
        await c.stop()

    pid = asyncio.run(first())
    asyncio.run(second(pid))

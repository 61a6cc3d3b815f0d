"""Seek to a time that keeps what is settled (a Pub/Sub subscription that
does not retain acked messages): records before the time are settled,
records after it that were settled stay settled, the rest are delivered."""

from __future__ import annotations

import asyncio

from dovecote.core.broker import BrokerCore
from dovecote.core.config import BrokerConfig
from dovecote.storage.batch import Record


def test_seek_to_time_keeping_settled(tmp_path):
    async def main():
        core = BrokerCore(BrokerConfig.load(env={}, overrides={"data_dir": tmp_path}))
        await core.start()
        await core.create_topic("q", 1)
        part = core.get_topic("q").partitions[0]
        for i, ts in enumerate([1000, 2000, 3000, 4000, 5000]):
            await part.append_records([Record(b"%d" % i, timestamp=ts)])
        sub = core.open_subscription("s", "q")
        got = sub.pull(3, None)
        sub.ack([got[1].token, got[2].token])  # 1 and 2 acked, 0 leased
        sub.seek_to_time(2000, keep_settled=True)
        # 0 is before the time (settled now), 1 and 2 stay acked.
        assert [d.offset for d in sub.pull(10, None)] == [3, 4]
        sub.seek_to_time(2000)  # plain: everything from the time on again
        assert [d.offset for d in sub.pull(10, None)] == [1, 2, 3, 4]
        await core.stop()

    asyncio.run(main())

"""Subscription config switches for redelivery: ``redelivery_delay`` (a retry
backoff by delivery count, used by nacks without a delay of their own and by
lease expiry) and ``order_unkeyed`` (whether records without a key are one
ordered group). All on a fake clock."""

from __future__ import annotations

import asyncio

from dovecote.core.clock import FakeClock
from dovecote.core.subscription_state import SubscriptionConfig
from tests.unit.core.test_subscription import new_core, offsets, publish


def backoff(count: int) -> int:
    return 100 * 2 ** (count - 1)  # 100 ms, 200 ms, 400 ms ...


def test_nack_waits_for_the_backoff_of_its_delivery_count(tmp_path):
    async def main():
        clock = FakeClock()
        core = new_core(tmp_path, clock)
        await core.start()
        await core.create_topic("q", 1)
        await publish(core, "q", [b"x"])
        sub = core.open_subscription("s", "q", SubscriptionConfig(redelivery_delay=backoff))
        first = sub.pull(1, "c")
        assert sub.nack([first[0].token]) == 1
        assert sub.pull(1, "c") == []  # 100 ms after the first delivery's nack
        await clock.advance(0.099)
        assert sub.pull(1, "c") == []
        await clock.advance(0.001)
        second = sub.pull(1, "c")
        assert offsets(second) == [0] and second[0].count == 2
        sub.nack([second[0].token])
        await clock.advance(0.15)
        assert sub.pull(1, "c") == []  # the second failure waits 200 ms
        await clock.advance(0.05)
        assert [d.count for d in sub.pull(1, "c")] == [3]
        await core.stop()

    asyncio.run(main())


def test_an_explicit_delay_or_a_release_ignores_the_backoff(tmp_path):
    async def main():
        clock = FakeClock()
        core = new_core(tmp_path, clock)
        await core.start()
        await core.create_topic("q", 1)
        await publish(core, "q", [b"x", b"y"])
        sub = core.open_subscription("s", "q", SubscriptionConfig(redelivery_delay=backoff))
        got = sub.pull(2, "c")
        sub.nack([got[0].token], delay_ms=0)
        assert offsets(sub.pull(1, "d")) == [0]  # delay_ms=0 is at once
        assert sub.release("c") == 1  # the consumer left: no failure, no wait
        assert offsets(sub.pull(1, "d")) == [1]
        await core.stop()

    asyncio.run(main())


def test_lease_expiry_waits_for_the_backoff(tmp_path):
    async def main():
        clock = FakeClock()
        core = new_core(tmp_path, clock)
        await core.start()
        await core.create_topic("q", 1)
        await publish(core, "q", [b"x"])
        config = SubscriptionConfig(lease_ms=50, redelivery_delay=backoff)
        sub = core.open_subscription("s", "q", config)
        first = sub.pull(1, "c")
        await clock.advance(0.05)  # the lease expires by itself
        assert sub.pull(1, "c") == []
        assert sub.ack([first[0].token]).stale  # its token is stale already
        await clock.advance(0.1)
        again = sub.pull(1, "c")
        assert offsets(again) == [0] and again[0].count == 2
        await core.stop()

    asyncio.run(main())


def test_a_failing_backoff_redelivers_at_once(tmp_path):
    async def main():
        clock = FakeClock()
        core = new_core(tmp_path, clock)
        await core.start()
        await core.create_topic("q", 1)
        await publish(core, "q", [b"x"])

        def broken(count: int) -> int:
            raise ValueError("bad policy")

        sub = core.open_subscription("s", "q", SubscriptionConfig(redelivery_delay=broken))
        sub.nack([sub.pull(1, "c")[0].token])
        assert offsets(sub.pull(1, "c")) == [0]
        await core.stop()

    asyncio.run(main())


def test_ordered_key_blocks_until_its_backed_off_record_is_redelivered(tmp_path):
    async def main():
        clock = FakeClock()
        core = new_core(tmp_path, clock)
        await core.start()
        await core.create_topic("q", 1)
        await publish(core, "q", [b"a1", b"a2"], key=b"a")
        await publish(core, "q", [b"b1"], key=b"b")
        config = SubscriptionConfig(ordered=True, order_unkeyed=False, redelivery_delay=backoff)
        sub = core.open_subscription("s", "q", config)
        got = sub.pull(10, "c")
        assert [d.record.value for d in got] == [b"a1", b"b1"]
        sub.nack([got[0].token])
        assert sub.pull(10, "c") == []  # a2 waits for a1's redelivery
        await clock.advance(0.1)
        again = sub.pull(10, "c")
        assert [d.record.value for d in again] == [b"a1"]
        sub.ack([again[0].token])
        assert [d.record.value for d in sub.pull(10, "c")] == [b"a2"]
        await core.stop()

    asyncio.run(main())


def test_unkeyed_records_are_unordered_unless_order_unkeyed(tmp_path):
    async def main():
        clock = FakeClock()
        core = new_core(tmp_path, clock)
        await core.start()
        await core.create_topic("q", 1)
        await publish(core, "q", [b"u1", b"u2", b"u3"])
        await publish(core, "q", [b"k1", b"k2"], key=b"k")
        loose = core.open_subscription("loose", "q", SubscriptionConfig(ordered=True))
        loose.config.order_unkeyed = False
        values = [d.record.value for d in loose.pull(10, "c")]
        assert values == [b"u1", b"u2", b"u3", b"k1"]  # keyed: still one in flight
        fifo = core.open_subscription("fifo", "q", SubscriptionConfig(ordered=True))
        values = [d.record.value for d in fifo.pull(10, "c")]
        assert values == [b"u1", b"k1"]  # today's behaviour: no key is one group
        await core.stop()

    asyncio.run(main())


def test_a_deferred_dead_letter_stays_and_is_tried_again(tmp_path):
    async def main():
        from dovecote.core.subscription_state import DeadLetterDeferred

        clock = FakeClock()
        core = new_core(tmp_path, clock)
        await core.start()
        await core.create_topic("q", 1)
        await publish(core, "q", [b"x"])
        tries: list[str] = []

        async def target_gone(record, reason) -> None:
            tries.append(reason)
            if len(tries) < 2:
                raise DeadLetterDeferred(1000, "target gone")

        config = SubscriptionConfig(max_deliveries=1)
        sub = core.open_subscription("s", "q", config, on_dead_letter=target_gone)
        sub.nack([sub.pull(1, "c")[0].token], delay_ms=0)
        assert sub.pull(1, "c") == []  # over the limit: to the handler, which defers
        await clock.advance(0)
        assert tries == ["delivery_limit"] and sub.ready_count() == 1
        await clock.advance(0.5)
        assert sub.pull(1, "c") == [] and tries == ["delivery_limit"]
        await clock.advance(0.5)
        assert sub.pull(1, "c") == []  # tried again; stored this time
        await clock.advance(0)
        assert tries == ["delivery_limit"] * 2 and sub.ready_count() == 0
        await core.stop()

    asyncio.run(main())


def test_durable_waits_for_an_fsync_of_the_acks(tmp_path):
    async def main():
        core = new_core(tmp_path)
        await core.start()
        await core.create_topic("q", 1)
        await publish(core, "q", [b"x"])
        sub = core.open_subscription("s", "q")
        sub.ack([sub.pull(1, "c")[0].token])
        state = core.substate.partition
        rounds = state.topic.flusher.rounds
        await sub.durable()
        assert state.topic.flusher.rounds > rounds
        assert state.high_watermark == state.log_end_offset
        await core.stop()
        again = new_core(tmp_path)
        await again.start()
        assert again.open_subscription("s", "q").pull(1, "c") == []
        await again.stop()

    asyncio.run(main())

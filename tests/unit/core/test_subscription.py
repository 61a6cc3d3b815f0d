"""Queue semantics of a subscription: leases, acks, requeues, redelivery,
dead letters, TTL, delays, ordering keys, priorities and durable progress."""

from __future__ import annotations

import asyncio

from dovecote.core.broker import BrokerCore
from dovecote.core.clock import FakeClock
from dovecote.core.config import BrokerConfig
from dovecote.core.headers import DELIVER_AT, EXPIRES_AT
from dovecote.core.subscription_state import SubscriptionConfig
from dovecote.storage.batch import Record


def new_core(path, clock: FakeClock | None = None) -> BrokerCore:
    return BrokerCore(BrokerConfig.load(env={}, overrides={"data_dir": path}), clock=clock)


async def publish(core: BrokerCore, topic: str, values, partition: int = 0, **kw) -> None:
    part = core.get_topic(topic).partitions[partition]
    for value in values:
        await part.append_records([Record(value, **kw)])


def offsets(deliveries):
    return [d.offset for d in deliveries]


def test_competing_consumers_ack_and_release(tmp_path):
    async def main():
        core = new_core(tmp_path)
        await core.start()
        await core.create_topic("q", 1)
        await publish(core, "q", [b"%d" % i for i in range(10)])
        sub = core.open_subscription("s1", "q")
        a, b = object(), object()
        got_a = sub.pull(3, a)
        got_b = sub.pull(3, b)
        assert offsets(got_a) == [0, 1, 2] and offsets(got_b) == [3, 4, 5]
        assert not any(d.redelivered for d in got_a + got_b)
        assert sub.ack([(0, 0), (0, 1), (0, 2)]) == 3
        assert sub.ready_count() == 4 and sub.unacked_count() == 3
        assert sub.release(b) == 3
        again = sub.pull(10, a)
        # Requeued records keep their place in the queue and say they were redelivered.
        assert offsets(again) == [3, 4, 5, 6, 7, 8, 9]
        assert [d.redelivered for d in again] == [True] * 3 + [False] * 4
        assert [d.record.value for d in again[:2]] == [b"3", b"4"]
        await core.stop()

    asyncio.run(main())


def test_lease_expiry_redelivers(tmp_path):
    async def main():
        clock = FakeClock()
        core = new_core(tmp_path, clock)
        await core.start()
        await core.create_topic("q", 1)
        await publish(core, "q", [b"x"])
        sub = core.open_subscription("s", "q", SubscriptionConfig(lease_ms=50))
        first = sub.pull(1, "c")
        assert sub.pull(1, "c") == []
        await clock.advance(0.05)
        second = sub.pull(1, "c")
        assert offsets(second) == offsets(first) == [0]
        assert second[0].count == 2
        sub.extend([(0, 0)], 10_000)
        await clock.advance(0.06)
        assert sub.pull(1, "c") == []
        await core.stop()

    asyncio.run(main())


def test_dead_letters_with_reasons(tmp_path):
    async def main():
        clock = FakeClock()
        core = new_core(tmp_path, clock)
        await core.start()
        await core.create_topic("q", 1)
        dead: list[tuple[bytes, str]] = []

        async def to_dlq(record, reason):
            dead.append((record.value, reason))

        sub = core.open_subscription(
            "s",
            "q",
            SubscriptionConfig(max_deliveries=2, message_ttl_ms=60_000),
            on_dead_letter=to_dlq,
        )
        now = clock.wall_ms()
        await publish(core, "q", [b"limit", b"reject"], timestamp=now)
        old = Record(b"old", timestamp=now - 120_000)
        await core.get_topic("q").partitions[0].append_records([old])
        expiring = now - 1
        await publish(core, "q", [b"ttl"], headers=[(EXPIRES_AT, b"%d" % expiring)], timestamp=now)
        [d0, d1] = sub.pull(2, "c")
        sub.nack([(0, d0.offset)])
        sub.nack([(0, d1.offset)], requeue=False)
        [again] = sub.pull(10, "c")  # "old" and "ttl" expire on the way
        assert again.record.value == b"limit" and again.count == 2
        sub.nack([(0, again.offset)])
        assert sub.pull(10, "c") == []  # a third delivery of "limit" would be over the limit
        await clock.advance(0)  # let the dead-letter moves run
        assert sorted(dead) == sorted(
            [
                (b"reject", "rejected"),
                (b"old", "expired"),
                (b"ttl", "expired"),
                (b"limit", "delivery_limit"),
            ]
        )
        assert sub.ready_count() == 0 and sub.unacked_count() == 0
        await core.stop()

    asyncio.run(main())


def test_delayed_records_wait_their_turn(tmp_path):
    async def main():
        clock = FakeClock()
        core = new_core(tmp_path, clock)
        await core.start()
        await core.create_topic("q", 1)
        due = clock.wall_ms() + 150
        await publish(core, "q", [b"later"], headers=[(DELIVER_AT, b"%d" % due)])
        await publish(core, "q", [b"now"])
        sub = core.open_subscription("s", "q")
        assert [d.record.value for d in sub.pull(5, "c")] == [b"now"]
        started = clock.monotonic()
        waiter = asyncio.create_task(sub.wait(1))
        await clock.advance(0.149)
        assert not waiter.done() and sub.pull(5, "c") == []
        await clock.advance(0.001)
        assert await waiter
        got = sub.pull(5, "c")
        assert [d.record.value for d in got] == [b"later"]
        assert abs(clock.monotonic() - started - 0.15) < 1e-9
        # nack with a delay: back after the delay, not before
        sub.nack([(0, got[0].offset)], delay_ms=100)
        assert sub.pull(5, "c") == []
        await clock.advance(0.1)
        assert [d.record.value for d in sub.pull(5, "c")] == [b"later"]
        await core.stop()

    asyncio.run(main())


def test_ordered_keys_have_one_in_flight(tmp_path):
    async def main():
        core = new_core(tmp_path)
        await core.start()
        await core.create_topic("q", 1)
        for i, key in enumerate([b"a", b"a", b"b", b"a", b"b", b"c"]):
            await publish(core, "q", [b"%d" % i], key=key)
        sub = core.open_subscription("s", "q", SubscriptionConfig(ordered=True))
        first = sub.pull(10, "c")
        assert [(d.record.key, d.offset) for d in first] == [(b"a", 0), (b"b", 2), (b"c", 5)]
        sub.ack([(0, 0)])
        assert [d.offset for d in sub.pull(10, "c")] == [1]
        sub.ack([(0, 2), (0, 1)])
        assert [d.offset for d in sub.pull(10, "c")] == [3, 4]
        await core.stop()

    asyncio.run(main())


def test_group_batches_take_a_free_key_in_order_past_expired_and_parked_records(tmp_path):
    """A found case: a key's records parked while it was in flight, one of
    them expired; a batch pull must give the rest in order, not skip to a
    later unread record of the key (nor stop short)."""

    async def main():
        clock = FakeClock()
        core = new_core(tmp_path, clock)
        await core.start()
        await core.create_topic("q", 1)
        now = clock.wall_ms()
        expiring = [(EXPIRES_AT, b"%d" % (now + 100))]
        for key, headers in [(b"a", []), (b"a", []), (b"a", expiring), (b"a", []), (b"b", [])]:
            await publish(core, "q", [key], key=key, headers=list(headers), timestamp=now)
        sub = core.open_subscription("s", "q", SubscriptionConfig(ordered=True))
        await clock.advance(1)  # record 2 expires
        assert [d.offset for d in sub.pull(2, "x")] == [0, 4]  # 1, 2, 3 wait behind 0
        sub.ack([(0, 0)])
        await publish(core, "q", [b"a"], key=b"a", timestamp=clock.wall_ms())  # offset 5
        assert [d.offset for d in sub.pull(2, "x", group_batches=True)] == [1, 3]
        assert sub.pull(10, "y", group_batches=True) == []  # a is in flight: 5 waits
        await core.stop()

    asyncio.run(main())


def test_priorities_deliver_highest_first(tmp_path):
    async def main():
        core = new_core(tmp_path)
        await core.start()
        await core.create_topic("q", 3)
        await publish(core, "q", [b"low1", b"low2"], partition=0)
        await publish(core, "q", [b"high"], partition=2)
        await publish(core, "q", [b"mid"], partition=1)
        sub = core.open_subscription("s", "q", SubscriptionConfig(priority=True))
        assert [d.record.value for d in sub.pull(10, "c")] == [b"high", b"mid", b"low1", b"low2"]
        await core.stop()

    asyncio.run(main())


def test_purge_and_drop_head(tmp_path):
    async def main():
        core = new_core(tmp_path)
        await core.start()
        await core.create_topic("q", 1)
        await publish(core, "q", [b"%d" % i for i in range(6)])
        sub = core.open_subscription("s", "q")
        held = sub.pull(1, "c")
        assert sub.drop_head(2) == 2
        assert sub.ready_count() == 3
        assert sub.purge() == 3
        assert sub.ready_count() == 0 and sub.unacked_count() == 1
        sub.nack([(0, held[0].offset)])
        assert offsets(sub.pull(5, "c")) == [0]
        await core.stop()

    asyncio.run(main())


def test_progress_survives_restart(tmp_path):
    async def first():
        core = new_core(tmp_path)
        await core.start()
        await core.create_topic("q", 2)
        await publish(core, "q", [b"a%d" % i for i in range(5)], partition=0)
        await publish(core, "q", [b"b%d" % i for i in range(5)], partition=1)
        sub = core.open_subscription("s", "q")
        got = sub.pull(10, "c")
        assert len(got) == 10
        # ack all but a1 and b3: those two are in flight when the broker stops
        sub.ack([(d.partition, d.offset) for d in got if d.record.value not in (b"a1", b"b3")])
        await core.stop()

    async def second():
        core = new_core(tmp_path)
        await core.start()
        sub = core.open_subscription("s", "q")
        got = sub.pull(10, "c")
        assert sorted(d.record.value for d in got) == [b"a1", b"b3"]
        assert all(d.redelivered and d.count == 2 for d in got)
        assert sub.ready_count() == 0
        core.drop_subscription("s")
        await core.stop()

    async def third():
        core = new_core(tmp_path)
        await core.start()
        sub = core.open_subscription("s", "q")  # recreated: starts from the log start
        assert len(sub.pull(20, "c")) == 10
        await core.stop()

    asyncio.run(first())
    asyncio.run(second())
    asyncio.run(third())


def test_wait_wakes_on_publish(tmp_path):
    async def main():
        clock = FakeClock()
        core = new_core(tmp_path, clock)
        await core.start()
        await core.create_topic("q", 1)
        sub = core.open_subscription("s", "q")
        waiter = asyncio.create_task(sub.wait(5))
        await clock.advance(1)
        assert not waiter.done()
        await publish(core, "q", [b"x"])
        assert await waiter  # woken by the data, not the timeout
        assert offsets(sub.pull(1, "c")) == [0]
        await core.stop()

    asyncio.run(main())


def test_close_callbacks_and_no_progress_saved_after_close(tmp_path):
    async def main():
        core = new_core(tmp_path)
        await core.start()
        await core.create_topic("q", 1)
        await publish(core, "q", [b"a", b"b", b"c"])
        sub = core.open_subscription("gone", "q")
        held = sub.pull(3, "c")
        closed = []
        unregister = sub.on_close(lambda: closed.append("first"))
        sub.on_close(lambda: closed.append("second"))
        unregister()
        core.drop_subscription("gone")
        assert closed == ["second"] and sub.pull(1, "c") == []
        # A consumer acking after the queue went away must not leave state
        # behind for a new subscription of the same id.
        sub.ack([(d.partition, d.offset) for d in held])
        await core.substate.drain()
        again = core.open_subscription("gone", "q")
        assert offsets(again.pull(5, "c")) == [0, 1, 2]
        await core.stop()

    asyncio.run(main())


def test_sync_makes_acks_durable_before_it_returns(tmp_path):
    """What ``substate.sync()`` has written is in the files when it returns: a
    copy of the data directory taken then (as a kill would leave it) has the
    ack, where one taken right after the ack alone does not."""
    import shutil

    async def run() -> None:
        core = new_core(tmp_path / "live")
        await core.start()
        await core.create_topic("q", 1)
        await publish(core, "q", [b"a", b"b"])
        sub = core.open_subscription("s", "q")
        first, second = sub.pull(2, "c")
        sub.ack([first.token])
        shutil.copytree(tmp_path / "live", tmp_path / "unsynced")
        sub.ack([second.token])
        await core.substate.sync()
        shutil.copytree(tmp_path / "live", tmp_path / "synced")
        await core.stop()

    async def redelivered(copy: str) -> list[bytes]:
        core = new_core(tmp_path / copy)
        await core.start()
        got = [d.record.value for d in core.open_subscription("s", "q").pull(10, "c")]
        await core.stop()
        return got

    asyncio.run(run())
    assert asyncio.run(redelivered("unsynced")) == [b"a", b"b"]
    assert asyncio.run(redelivered("synced")) == []


def test_requeue_following_gives_back_a_keys_later_leases_with_a_nack(tmp_path):
    """Pub/Sub ordering: a key's run is leased together; a nack of one gives
    back the later ones still leased (their tokens go stale), so the key is
    delivered again from the nacked one, in order. Without the switch (SQS
    FIFO) the later ones stay leased."""

    async def run(follow: bool) -> tuple[list[bytes], int]:
        core = new_core(tmp_path / str(follow))
        await core.start()
        await core.create_topic("q", 1)
        await publish(core, "q", [b"a1", b"a2", b"a3"], key=b"a")
        config = SubscriptionConfig(ordered=True, lease_ms=60_000, requeue_following=follow)
        sub = core.open_subscription("s", "q", config)
        a1, a2, a3 = sub.pull(10, "c", group_batches=True)
        sub.ack([a1.token])
        sub.nack([a2.token])
        stale = sub.ack([a3.token]).stale
        again = [d.record.value for d in sub.pull(10, "c", group_batches=True)]
        await core.stop()
        return again, len(stale)

    assert asyncio.run(run(True)) == ([b"a2", b"a3"], 1)
    assert asyncio.run(run(False)) == ([b"a2"], 0)

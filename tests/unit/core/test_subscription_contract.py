"""The contract of the core queue API, on a fake clock with no sleeps.

Every adapter (AMQP, SQS, Pub/Sub) stands on these semantics: leases named by
delivery tokens, stale tokens that change nothing, delivery counts,
dead-lettering by delivery limit and TTL, delays, priorities, ordering keys,
deduplication, seeks and filters, and timers that fire on time by themselves.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from dovecote.core.broker import BrokerCore
from dovecote.core.clock import FakeClock
from dovecote.core.config import BrokerConfig
from dovecote.core.errors import BrokerError, UnknownPartition
from dovecote.core.headers import DELIVER_AT, EXPIRES_AT
from dovecote.core.subscription import Subscription, UnknownSnapshot
from dovecote.core.subscription_state import SubscriptionConfig
from dovecote.core.tokens import DeliveryToken, InvalidToken
from dovecote.storage.batch import Record

START_MS = 1_800_000_000_000


class World:
    """A broker core on a fake clock, a topic ``q`` and helpers."""

    def __init__(self, core: BrokerCore, clock: FakeClock) -> None:
        self.core = core
        self.clock = clock
        self.dead: list[tuple[bytes | None, str, int]] = []  # value, reason, wall ms

    async def publish(
        self, *values: bytes, partition: int = 0, topic: str = "q", **kw
    ) -> list[int]:
        part = self.core.get_topic(topic).partitions[partition]
        kw.setdefault("timestamp", self.clock.wall_ms())
        result = await part.append_records([Record(v, **kw) for v in values])
        await self.settle()
        return list(range(result.base_offset, result.base_offset + len(values)))

    async def to_dlq(self, record: Record, reason: str) -> None:
        self.dead.append((record.value, reason, self.clock.wall_ms()))

    def open(self, config: SubscriptionConfig | None = None, sub_id: str = "s") -> Subscription:
        return self.core.open_subscription(sub_id, "q", config, on_dead_letter=self.to_dlq)

    async def settle(self) -> None:
        await self.clock.advance(0)


def run(test: Callable[[World], Awaitable[None]], tmp_path, partitions: int = 1) -> None:
    async def main() -> None:
        clock = FakeClock(wall_ms=START_MS)
        core = BrokerCore(BrokerConfig.load(env={}, overrides={"data_dir": tmp_path}), clock=clock)
        await core.start()
        await core.create_topic("q", partitions)
        try:
            await test(World(core, clock))
        finally:
            await core.stop()

    asyncio.run(main())


def values(deliveries) -> list[bytes | None]:
    return [d.record.value for d in deliveries]


# --- tokens -----------------------------------------------------------------------


def test_token_text_round_trips_and_garbage_is_rejected():
    token = DeliveryToken(3, 123456789, 2**47 + 5)
    assert DeliveryToken.parse(str(token)) == token
    assert DeliveryToken.parse(str(token).encode()) == token
    for bad in ["", "1.2", "1.2.3.4", "x.y.z", "-1.2.3", "1..3", "1.2.3 ", "a" * 100, b"\xff"]:
        with pytest.raises(InvalidToken) as caught:
            DeliveryToken.parse(bad)
        assert isinstance(caught.value, BrokerError)


def test_every_delivery_attempt_has_its_own_token(tmp_path):
    async def body(w: World) -> None:
        await w.publish(b"a")
        sub = w.open(SubscriptionConfig(lease_ms=1000))
        [first] = sub.pull(1, "c")
        sub.nack([first.token])
        [second] = sub.pull(1, "c")
        assert (second.partition, second.offset) == (first.partition, first.offset)
        assert second.token != first.token and second.count == 2

    run(body, tmp_path)


def test_late_ack_of_an_expired_lease_does_not_settle_the_next_one(tmp_path):
    """Regression: A's lease expires, B gets the record, A's late ack is stale."""

    async def body(w: World) -> None:
        await w.publish(b"m")
        sub = w.open(SubscriptionConfig(lease_ms=1000))
        [a] = sub.pull(1, "A")
        await w.clock.advance(1.0)  # the lease timer requeues it by itself
        assert sub.unacked_count() == 0 and sub.ready_count() == 1
        [b] = sub.pull(1, "B")
        assert b.count == 2
        late = sub.ack([a.token])
        assert late == 0 and late.done == 0 and late.stale == [a.token]
        assert sub.nack([a.token]).stale == [a.token]
        assert sub.extend([a.token], 60_000).stale == [a.token]
        assert sub.unacked_count() == 1  # B still holds it
        assert sub.ack([b.token]).done == 1
        assert sub.ack([b.token]).stale == [b.token]  # already settled
        assert sub.ready_count() == 0 and sub.unacked_count() == 0

    run(body, tmp_path)


def test_stale_items_are_reported_beside_the_good_ones(tmp_path):
    async def body(w: World) -> None:
        await w.publish(b"a", b"b")
        sub = w.open()
        got = sub.pull(2, "c")
        bogus = DeliveryToken(0, 99, 1)
        foreign = DeliveryToken(7, 0, got[0].attempt)
        result = sub.ack([got[0].token, bogus, foreign, got[1].token])
        assert result.done == 2 and result.stale == [bogus, foreign]

    run(body, tmp_path)


def test_acked_leases_do_not_pile_up_in_the_deadline_heap(tmp_path):
    async def body(w: World) -> None:
        await w.publish(*[b"m"] * 10_000)
        sub = w.open(SubscriptionConfig(lease_ms=30_000))
        held = sub.pull(10_000, "c")
        sub.ack([d.token for d in held[:-10]])
        assert len(sub._lease_heap) <= 4096
        await w.clock.advance(30)
        assert values(sub.pull(100, "c")) == [b"m"] * 10  # the rest still expire on time

    run(body, tmp_path)


def test_extend_moves_the_deadline_and_zero_gives_back_now(tmp_path):
    async def body(w: World) -> None:
        await w.publish(b"a", b"b")
        sub = w.open(SubscriptionConfig(lease_ms=1000))
        a, _b = sub.pull(2, "c")
        await w.clock.advance(0.9)
        assert sub.extend([a.token], 5000).done == 1
        await w.clock.advance(0.2)  # b's lease ran out, a's was extended
        assert sub.unacked_count() == 1
        assert values(sub.pull(5, "d")) == [b"b"]
        assert sub.extend([a.token], 0).done == 1
        [again] = sub.pull(5, "d")
        assert again.record.value == b"a" and again.count == 2

    run(body, tmp_path)


# --- counts, dead letters, TTL ----------------------------------------------------


def test_delivery_counts_and_the_delivery_limit(tmp_path):
    async def body(w: World) -> None:
        await w.publish(b"x")
        sub = w.open(SubscriptionConfig(max_deliveries=3))
        counts = []
        for _ in range(3):
            [d] = sub.pull(1, "c")
            counts.append(d.count)
            sub.nack([d.token])
        assert counts == [1, 2, 3]
        assert sub.pull(1, "c") == []  # a fourth delivery would pass the limit
        await w.settle()
        assert [(v, r) for v, r, _ in w.dead] == [(b"x", "delivery_limit")]
        assert sub.ready_count() == 0 and sub.unacked_count() == 0

    run(body, tmp_path)


def test_rejected_records_are_dead_lettered(tmp_path):
    async def body(w: World) -> None:
        await w.publish(b"bad")
        sub = w.open()
        [d] = sub.pull(1, "c")
        assert sub.nack([d.token], requeue=False).done == 1
        await w.settle()
        assert [(v, r) for v, r, _ in w.dead] == [(b"bad", "rejected")]

    run(body, tmp_path)


def test_queue_ttl_dead_letters_the_head_on_time_without_a_consumer(tmp_path):
    async def body(w: World) -> None:
        idle_timers = w.clock.pending()  # the broker's own loops
        sub = w.open(SubscriptionConfig(message_ttl_ms=300))
        await w.publish(b"first")
        await w.clock.advance(0.1)
        await w.publish(b"second")
        await w.clock.advance(0.199)
        assert w.dead == []
        await w.clock.advance(0.001)
        assert [(v, t - START_MS) for v, _, t in w.dead] == [(b"first", 300)]
        await w.clock.advance(0.1)
        assert [(v, r, t - START_MS) for v, r, t in w.dead] == [
            (b"first", "expired", 300),
            (b"second", "expired", 400),
        ]
        assert sub.ready_count() == 0
        assert w.clock.pending() == idle_timers  # nothing left to wait for: no timer

    run(body, tmp_path)


def test_message_ttl_header_and_requeued_expired_records(tmp_path):
    async def body(w: World) -> None:
        sub = w.open()
        expires = w.clock.wall_ms() + 500
        await w.publish(b"short", headers=[(EXPIRES_AT, b"%d" % expires)])
        [d] = sub.pull(1, "c")  # leased records do not expire...
        await w.clock.advance(1.0)
        assert w.dead == []
        sub.nack([d.token])  # ...but once back at the head they do
        await w.settle()
        assert [(v, r) for v, r, _ in w.dead] == [(b"short", "expired")]

    run(body, tmp_path)


def test_a_head_without_ttl_shields_later_ones_as_rabbitmq_does(tmp_path):
    async def body(w: World) -> None:
        sub = w.open()
        await w.publish(b"keep")
        await w.publish(b"short", headers=[(EXPIRES_AT, b"%d" % (w.clock.wall_ms() + 100))])
        await w.clock.advance(1)
        assert w.dead == []
        [d] = sub.pull(1, "c")
        sub.ack([d.token])
        await w.settle()
        assert [v for v, _, _ in w.dead] == [b"short"]

    run(body, tmp_path)


# --- leases and waiting -------------------------------------------------------------


def test_lease_expiry_fires_on_time_and_wakes_a_waiter(tmp_path):
    async def body(w: World) -> None:
        await w.publish(b"a")
        sub = w.open(SubscriptionConfig(lease_ms=250))
        assert len(sub.pull(1, "c")) == 1
        waiter = asyncio.create_task(sub.wait(60))
        await w.clock.advance(0.249)
        assert not waiter.done() and sub.unacked_count() == 1
        await w.clock.advance(0.001)
        assert waiter.done() and waiter.result() is True
        assert sub.unacked_count() == 0

    run(body, tmp_path)


def test_wait_times_out_on_the_clock(tmp_path):
    async def body(w: World) -> None:
        sub = w.open()
        waiter = asyncio.create_task(sub.wait(5))
        await w.clock.advance(4.9)
        assert not waiter.done()
        await w.clock.advance(0.1)
        assert waiter.done() and waiter.result() is False

    run(body, tmp_path)


def test_idle_subscriptions_have_no_timer(tmp_path):
    async def body(w: World) -> None:
        idle_timers = w.clock.pending()  # the broker's own loops
        for i in range(50):
            await w.core.create_topic(f"idle{i}", 1)
            w.core.open_subscription(f"idle{i}", f"idle{i}", SubscriptionConfig(lease_ms=10))
        await w.publish(b"a")
        sub = w.open(SubscriptionConfig(lease_ms=1000, message_ttl_ms=60_000))
        await w.settle()
        assert w.clock.pending() == idle_timers + 1  # the head's TTL
        sub.pull(1, "c")
        await w.settle()
        assert w.clock.pending() == idle_timers + 1  # one alarm, now for the lease

    run(body, tmp_path)


def test_release_requeues_what_an_owner_held(tmp_path):
    async def body(w: World) -> None:
        await w.publish(b"a", b"b", b"c")
        sub = w.open()
        sub.pull(2, "gone")
        assert sub.release("gone") == 2
        assert [(d.record.value, d.count) for d in sub.pull(5, "c")] == [
            (b"a", 2),
            (b"b", 2),
            (b"c", 1),
        ]

    run(body, tmp_path)


# --- delays -------------------------------------------------------------------------


def test_delay_per_record_wakes_the_waiter_when_due(tmp_path):
    async def body(w: World) -> None:
        sub = w.open()
        due = w.clock.wall_ms() + 500
        await w.publish(b"later", headers=[(DELIVER_AT, b"%d" % due)])
        await w.publish(b"now")
        assert values(sub.pull(5, "c")) == [b"now"]
        waiter = asyncio.create_task(sub.wait(60))
        await w.clock.advance(0.499)
        assert not waiter.done() and sub.pull(5, "c") == []
        await w.clock.advance(0.001)
        assert waiter.done() and waiter.result() is True
        assert values(sub.pull(5, "c")) == [b"later"]

    run(body, tmp_path)


def test_default_delay_per_subscription(tmp_path):
    async def body(w: World) -> None:
        sub = w.open(SubscriptionConfig(delivery_delay_ms=200))
        await w.publish(b"a")
        assert sub.pull(5, "c") == []
        assert sub.ready_count() == 1 and sub.delayed_count() == 1
        await w.clock.advance(0.2)
        assert values(sub.pull(5, "c")) == [b"a"]

    run(body, tmp_path)


def test_nack_with_a_delay(tmp_path):
    async def body(w: World) -> None:
        await w.publish(b"a")
        sub = w.open()
        [d] = sub.pull(1, "c")
        sub.nack([d.token], delay_ms=1000)
        await w.clock.advance(0.999)
        assert sub.pull(1, "c") == []
        await w.clock.advance(0.001)
        [again] = sub.pull(1, "c")
        assert again.count == 2

    run(body, tmp_path)


# --- priorities and ordering keys ---------------------------------------------------------


def test_priorities_deliver_the_highest_level_first(tmp_path):
    async def body(w: World) -> None:
        await w.publish(b"low", partition=0)
        await w.publish(b"high", partition=2)
        await w.publish(b"mid", partition=1)
        sub = w.open(SubscriptionConfig(priority=True))
        assert values(sub.pull(10, "c")) == [b"high", b"mid", b"low"]

    run(body, tmp_path, partitions=3)


def test_ordering_keys_one_in_flight_and_redelivery_in_order(tmp_path):
    async def body(w: World) -> None:
        for value, key in [(b"a1", b"a"), (b"b1", b"b"), (b"a2", b"a"), (b"a3", b"a")]:
            await w.publish(value, key=key)
        sub = w.open(SubscriptionConfig(ordered=True, lease_ms=1000))
        a1, b1 = sub.pull(10, "c")
        assert values([a1, b1]) == [b"a1", b"b1"]
        assert sub.pull(10, "c") == []  # a2 waits for a1
        sub.nack([a1.token])
        [again] = sub.pull(10, "c")  # a1 again, before a2
        assert again.record.value == b"a1" and again.count == 2
        await w.clock.advance(1.0)  # both leases expire
        assert values(sub.pull(10, "c")) == [b"a1", b"b1"]  # in order again

    run(body, tmp_path)


def test_ordering_holds_across_a_delayed_nack(tmp_path):
    async def body(w: World) -> None:
        await w.publish(b"a1", b"a2", key=b"a")
        sub = w.open(SubscriptionConfig(ordered=True))
        [a1] = sub.pull(10, "c")
        sub.nack([a1.token], delay_ms=500)
        assert sub.pull(10, "c") == []  # a2 must not overtake a1
        await w.clock.advance(0.5)
        assert values(sub.pull(10, "c")) == [b"a1"]

    run(body, tmp_path)


# --- filters ------------------------------------------------------------------------


def test_filter_settles_rejected_records_without_delivery(tmp_path):
    async def body(w: World) -> None:
        await w.publish(b"keep-1", b"drop-1", b"keep-2", b"drop-2")
        sub = w.open(SubscriptionConfig(filter=lambda r: (r.value or b"").startswith(b"keep")))
        assert values(sub.pull(10, "c")) == [b"keep-1", b"keep-2"]
        assert sub.ready_count() == 0 and sub.unacked_count() == 2
        assert w.dead == []
        sub.filter = None
        await w.publish(b"drop-3")
        assert values(sub.pull(10, "c")) == [b"drop-3"]

    run(body, tmp_path)


def test_a_failing_filter_lets_records_through(tmp_path):
    async def body(w: World) -> None:
        await w.publish(b"a")

        def broken(record: Record) -> bool:
            raise RuntimeError("bad filter")

        sub = w.open(SubscriptionConfig(filter=broken))
        assert values(sub.pull(10, "c")) == [b"a"]

    run(body, tmp_path)


# --- seek -------------------------------------------------------------------------------


def test_seek_back_and_forward(tmp_path):
    async def body(w: World) -> None:
        await w.publish(*[b"%d" % i for i in range(6)])
        sub = w.open()
        held = sub.pull(6, "c")
        sub.ack([d.token for d in held[:4]])
        sub.seek(1)  # back: 1.. deliverable again, the leases are gone
        assert sub.ack([held[4].token]).stale == [held[4].token]
        assert values(sub.pull(10, "c")) == [b"1", b"2", b"3", b"4", b"5"]
        sub.seek(5)  # forward: what lies before is settled
        assert sub.ready_count() == 1
        assert values(sub.pull(10, "c")) == [b"5"]
        with pytest.raises(UnknownPartition):
            sub.seek({3: 0})

    run(body, tmp_path)


def test_seek_to_time(tmp_path):
    async def body(w: World) -> None:
        await w.publish(b"old")
        await w.clock.advance(10)
        cut = w.clock.wall_ms()
        await w.publish(b"new1", b"new2")
        sub = w.open()
        sub.ack([d.token for d in sub.pull(10, "c")])
        sub.seek_to_time(cut)
        assert values(sub.pull(10, "c")) == [b"new1", b"new2"]
        sub.seek_to_time(cut + 60_000)  # after everything: nothing deliverable
        assert sub.pull(10, "c") == [] and sub.ready_count() == 0

    run(body, tmp_path)


def test_snapshot_and_seek_back_to_it(tmp_path):
    async def body(w: World) -> None:
        await w.publish(b"a", b"b", b"c")
        sub = w.open()
        [a] = sub.pull(1, "c")
        sub.ack([a.token])
        sub.snapshot("before")
        sub.ack([d.token for d in sub.pull(10, "c")])
        assert sub.ready_count() == 0
        sub.seek_to_snapshot("before")
        assert values(sub.pull(10, "c")) == [b"b", b"c"]
        with pytest.raises(UnknownSnapshot):
            sub.seek_to_snapshot("nope")

    run(body, tmp_path)


def _restart_core(tmp_path, clock: FakeClock) -> BrokerCore:
    return BrokerCore(BrokerConfig.load(env={}, overrides={"data_dir": tmp_path}), clock=clock)


def test_seek_and_snapshots_survive_a_restart(tmp_path):
    async def main() -> None:
        clock = FakeClock(wall_ms=START_MS)
        core = _restart_core(tmp_path, clock)
        await core.start()
        await core.create_topic("q", 1)
        part = core.get_topic("q").partitions[0]
        await part.append_records([Record(b"%d" % i, timestamp=START_MS) for i in range(4)])
        sub = core.open_subscription("s", "q")
        sub.ack([d.token for d in sub.pull(10, "c")])
        sub.snapshot("all-done")
        sub.seek(2)
        await core.stop()

        core = _restart_core(tmp_path, clock)
        await core.start()
        sub = core.open_subscription("s", "q")
        got = sub.pull(10, "c")
        assert values(got) == [b"2", b"3"]
        sub.seek_to_snapshot("all-done")
        assert sub.pull(10, "c") == []
        await core.stop()

    asyncio.run(main())


# --- dedup ------------------------------------------------------------------------------


def test_dedup_window_answers_duplicates_and_forgets(tmp_path):
    async def body(w: World) -> None:
        window = w.core.substate.dedup_window("queue:q", 300_000)
        now = w.clock.wall_ms()
        assert window.accept_ids(["m1", "m2", "m1"], now) == [
            None,
            None,
            window.lookup("m1", now),
        ]
        pending = window.lookup("m1", now)
        assert pending is not None and pending.offset is None  # still being appended
        window.record(["m1", "m2"], [(0, 10), (0, 11)])
        dup = window.accept_ids(["m2"], now + 1000)[0]
        assert dup is not None and (dup.partition, dup.offset) == (0, 11)
        window.accept_ids(["failed"], now)
        window.abandon(["failed"])
        assert window.accept_ids(["failed"], now) == [None]
        # after the window the id is new again
        assert window.accept_ids(["m1"], now + 300_000) == [None]

    run(body, tmp_path)


def test_dedup_window_survives_a_restart(tmp_path):
    async def main() -> None:
        clock = FakeClock(wall_ms=START_MS)
        core = _restart_core(tmp_path, clock)
        await core.start()
        window = core.substate.dedup_window("queue:q", 300_000)
        assert window.accept_ids(["a", "b"], START_MS) == [None, None]
        window.record(["a", "b"], [(0, 0), (0, 1)])
        window.accept_ids(["never-stored"], START_MS)  # reserved, append not finished
        await core.stop()

        core = _restart_core(tmp_path, clock)
        await core.start()
        window = core.substate.dedup_window("queue:q", 300_000)
        dup_a, dup_b, fresh = window.accept_ids(["a", "b", "never-stored"], START_MS + 60_000)
        assert dup_a is not None and (dup_a.partition, dup_a.offset) == (0, 0)
        assert dup_b is not None and dup_b.offset == 1
        assert fresh is None
        assert window.accept_ids(["a"], START_MS + 300_000) == [None]
        await core.stop()

    asyncio.run(main())


def test_dedup_windows_and_snapshots_survive_compaction_of_the_state_topic(tmp_path, monkeypatch):
    from dovecote.core import substate

    monkeypatch.setattr(substate, "SNAPSHOT_BYTES", 1)  # compact on every flush

    async def main() -> None:
        clock = FakeClock(wall_ms=START_MS)
        core = _restart_core(tmp_path, clock)
        await core.start()
        await core.create_topic("q", 1)
        part = core.get_topic("q").partitions[0]
        await part.append_records([Record(b"%d" % i, timestamp=START_MS) for i in range(3)])
        sub = core.open_subscription("s", "q")
        [first] = sub.pull(1, "c")
        sub.ack([first.token])
        sub.snapshot("one-acked")
        window = core.substate.dedup_window("queue:q", 60_000)
        window.accept_ids(["id-1"], START_MS)
        window.record(["id-1"], [(0, 0)])
        await core.substate.drain()
        sub.ack([d.token for d in sub.pull(10, "c")])
        await core.substate.drain()  # compacted again: the state is all in snapshots
        state = core.get_topic(substate.STATE_TOPIC).partitions[0]
        assert state.log_start_offset > 0
        await core.stop()

        core = _restart_core(tmp_path, clock)
        await core.start()
        sub = core.open_subscription("s", "q")
        assert sub.pull(10, "c") == []
        sub.seek_to_snapshot("one-acked")
        assert values(sub.pull(10, "c")) == [b"1", b"2"]
        dup = core.substate.dedup_window("queue:q", 60_000).accept_ids(["id-1"], START_MS + 1)
        assert dup[0] is not None and dup[0].offset == 0
        await core.stop()

    asyncio.run(main())


def test_ordering_key_moves_on_when_its_next_record_expires(tmp_path):
    async def body(w: World) -> None:
        sub = w.open(SubscriptionConfig(ordered=True))
        await w.publish(b"a1", key=b"a")
        expires = b"%d" % (w.clock.wall_ms() + 100)
        await w.publish(b"a2", key=b"a", headers=[(EXPIRES_AT, expires)])
        await w.publish(b"a3", key=b"a")
        [a1] = sub.pull(10, "c")  # a2 and a3 wait for a1
        await w.clock.advance(0.1)  # a2 expires while it waits
        sub.ack([a1.token])
        await w.settle()
        assert values(sub.pull(10, "c")) == [b"a3"]
        await w.settle()
        assert [v for v, _, _ in w.dead] == [b"a2"]

    run(body, tmp_path)

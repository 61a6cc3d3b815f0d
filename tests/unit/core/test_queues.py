"""Queues and exchanges in the core: declarations, routing, overflow, dead
letters, exclusivity, restarts and reclaiming settled data."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from dovecote.core.broker import BrokerCore
from dovecote.core.clock import FakeClock
from dovecote.core.config import BrokerConfig
from dovecote.core.headers import DEATHS, EXCHANGE_HEADER
from dovecote.core.queue_settings import REJECT_NEW, QueueSettings
from dovecote.core.queues import (
    AccessRefused,
    NotFound,
    PreconditionFailed,
    ResourceLocked,
)
from dovecote.core.routing import EXCHANGE
from dovecote.storage.batch import Record


def new_core(path, clock=None, **kw) -> BrokerCore:
    return BrokerCore(BrokerConfig.load(env={}, overrides={"data_dir": path, **kw}), clock=clock)


def run(coro):
    return asyncio.run(coro)


async def eventually(condition, timeout: float = 5.0) -> None:
    """Wait for background dead-letter moves (they await an fsync in a
    thread) without guessing how long they take."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        assert loop.time() < deadline, "condition not reached"
        await asyncio.sleep(0.001)


def deaths(record: Record) -> list[dict]:
    return json.loads(dict(record.headers)[DEATHS])


def test_declare_bind_route_and_equivalence(tmp_path):
    async def main():
        core = new_core(tmp_path)
        await core.start()
        qm = core.queues
        await qm.declare_exchange("logs", "topic")
        q = await qm.declare_queue("errors")
        await qm.bind("logs", "errors", "*.error")
        result = await qm.publish("logs", "app.error", [Record(b"boom", key=b"app.error")])
        assert result.queues == ["errors"] and q.message_count() == 1
        assert not (await qm.publish("logs", "app.info", [Record(b"meh")])).routed
        # The default exchange reaches a queue by name.
        assert (await qm.publish("", "errors", [Record(b"direct")])).queues == ["errors"]
        with pytest.raises(PreconditionFailed):
            await qm.declare_queue("errors", durable=False)
        with pytest.raises(PreconditionFailed):
            await qm.declare_queue("errors", settings=QueueSettings(max_length=5))
        with pytest.raises(PreconditionFailed):
            await qm.declare_exchange("logs", "direct")
        with pytest.raises(NotFound):
            await qm.declare_queue("nope", passive=True)
        with pytest.raises(NotFound):
            await qm.publish("nope", "k", [Record(b"x")])
        with pytest.raises(PreconditionFailed):
            await qm.declare_exchange("odd", "no-such-type")
        # Reserved exchanges (an adapter's standard ones) cannot be deleted.
        qm.declare_reserved_exchange("std.direct", "direct")
        with pytest.raises(AccessRefused):
            await qm.delete_exchange("std.direct")
        with pytest.raises(AccessRefused):
            await qm.delete_exchange("")
        with pytest.raises(AccessRefused):
            await qm.bind("", "errors", "k")
        # Exchange-to-exchange.
        await qm.declare_exchange("edge", "fanout")
        await qm.bind("edge", "logs", "", kind=EXCHANGE)
        assert (await qm.publish("edge", "db.error", [Record(b"via e2e")])).queues == ["errors"]
        assert q.message_count() == 3
        await core.stop()

    run(main())


def test_durable_declarations_survive_restart_and_transient_ones_do_not(tmp_path):
    async def first():
        core = new_core(tmp_path)
        await core.start()
        qm = core.queues
        await qm.declare_exchange("ex", "direct")
        await qm.declare_queue("keep")
        await qm.declare_queue("temp", durable=False)
        await qm.bind("ex", "keep", "k")
        await qm.publish("ex", "k", [Record(b"persisted")])
        await core.stop()

    async def second():
        core = new_core(tmp_path)
        await core.start()
        qm = core.queues
        assert "temp" not in qm.queues and core.topic("temp") is None
        assert (await qm.publish("ex", "k", [Record(b"again")])).queues == ["keep"]
        got = qm.queues["keep"].subscription.pull(10, "c")
        assert [d.record.value for d in got] == [b"persisted", b"again"]
        await core.stop()

    run(first())
    run(second())


def test_exclusive_and_auto_delete(tmp_path):
    async def main():
        core = new_core(tmp_path)
        await core.start()
        qm = core.queues
        conn_a, conn_b = object(), object()
        await qm.declare_queue("mine", exclusive_owner=conn_a, owner=conn_a, durable=False)
        with pytest.raises(ResourceLocked):
            await qm.declare_queue("mine", passive=True, owner=conn_b)
        await qm.owner_gone(conn_a)
        assert "mine" not in qm.queues
        q = await qm.declare_queue("auto", auto_delete=True)
        qm.consumer_added(q)
        await qm.consumer_removed(q)
        assert "auto" not in qm.queues
        await core.stop()

    run(main())


def test_overflow_modes(tmp_path):
    async def main():
        core = new_core(tmp_path)
        await core.start()
        qm = core.queues
        await qm.declare_exchange("dlx", "fanout")
        dead = await qm.declare_queue("dead")
        await qm.bind("dlx", "dead", "")
        head = await qm.declare_queue(
            "head", settings=QueueSettings(max_length=2, dead_letter_exchange="dlx")
        )
        for i in range(4):
            await qm.publish("", "head", [Record(b"%d" % i, key=b"head")])
        await eventually(lambda: dead.message_count() == 2)
        assert [d.record.value for d in head.subscription.pull(10, "c")] == [b"2", b"3"]
        dropped = dead.subscription.pull(10, "c")
        assert [d.record.value for d in dropped] == [b"0", b"1"]
        assert deaths(dropped[0].record)[0]["reason"] == "maxlen"
        reject = await qm.declare_queue(
            "reject", settings=QueueSettings(max_length=1, overflow=REJECT_NEW)
        )
        assert (await qm.publish("", "reject", [Record(b"a")])).queues == ["reject"]
        second = await qm.publish("", "reject", [Record(b"b")])
        assert second.queues == [] and second.rejected == ["reject"]
        assert reject.message_count() == 1
        await core.stop()

    run(main())


def test_dead_letter_reasons_and_x_death_counts(tmp_path):
    async def main():
        core = new_core(tmp_path)
        await core.start()
        qm = core.queues
        await qm.declare_exchange("dlx", "direct")
        dlq = await qm.declare_queue("dlq")
        await qm.bind("dlx", "dlq", "work")
        work = await qm.declare_queue(
            "work",
            settings=QueueSettings(
                dead_letter_exchange="dlx", message_ttl_ms=100_000, max_deliveries=1
            ),
        )
        await qm.publish("", "work", [Record(b"rejected", key=b"work")])
        [d] = work.subscription.pull(1, "c")
        work.subscription.nack([(d.partition, d.offset)], requeue=False)
        old = Record(b"expired", key=b"work", timestamp=int(time.time() * 1000) - 200_000)
        await qm.enqueue(["work"], [old])
        work.subscription.expire_head()
        await qm.publish("", "work", [Record(b"limited", key=b"work")])
        [d] = work.subscription.pull(1, "c")
        work.subscription.nack([(d.partition, d.offset)])
        assert work.subscription.pull(1, "c") == []
        await eventually(lambda: dlq.message_count() == 3)
        got = {d.record.value: deaths(d.record)[0] for d in dlq.subscription.pull(10, "c")}
        assert {k: v["reason"] for k, v in got.items()} == {
            b"rejected": "rejected",
            b"expired": "expired",
            b"limited": "delivery_limit",
        }
        assert got[b"rejected"]["queue"] == "work" and got[b"rejected"]["count"] == 1
        assert got[b"rejected"]["routing-keys"] == ["work"]
        await core.stop()

    run(main())


def test_priority_queue(tmp_path):
    async def main():
        core = new_core(tmp_path)
        await core.start()
        qm = core.queues
        q = await qm.declare_queue("p", settings=QueueSettings(max_priority=5))
        for value, priority in [(b"low", 0), (b"high", 9), (b"mid", 3)]:
            await qm.publish("", "p", [Record(value)], priority=priority)
        assert [d.record.value for d in q.subscription.pull(10, "c")] == [b"high", b"mid", b"low"]
        await core.stop()

    run(main())


def test_settled_data_is_reclaimed(tmp_path):
    async def main():
        core = new_core(tmp_path, topic_defaults={"segment.bytes": "4096"})
        await core.start()
        qm = core.queues
        q = await qm.declare_queue("big")
        for _ in range(200):
            await qm.publish("", "big", [Record(b"x" * 200)])
        log = q.topic.partitions[0].log
        assert log.size_bytes > 40_000
        got = q.subscription.pull(200, "c")
        q.subscription.ack([(d.partition, d.offset) for d in got[:190]])
        core.apply_retention()
        assert log.size_bytes < 8192
        assert log.log_start_offset <= 190
        assert [d.offset for d in q.subscription.pull(10, "c")] == []
        q.subscription.release("c")
        assert [d.offset for d in q.subscription.pull(20, "c")] == list(range(190, 200))
        await core.stop()

    run(main())


def test_unused_queue_expires_on_its_timer(tmp_path):
    """Queue expiry is one alarm per queue on the injected clock, re-armed by
    use; a queue with consumers does not expire, and counts again from when
    the last one left. Queues without an expiry have no timer."""

    async def main():
        clock = FakeClock()
        core = new_core(tmp_path, clock=clock)
        await core.start()
        qm = core.queues
        await qm.declare_queue("forever")
        idle_timers = clock.pending()
        short = await qm.declare_queue("short", settings=QueueSettings(expires_ms=500))
        assert clock.pending() == idle_timers + 1
        await clock.advance(0.4)
        short.touch()  # used: counts from now
        await clock.advance(0.4)
        await qm.wait_idle()
        assert "short" in qm.queues
        qm.consumer_added(short)
        await clock.advance(2.0)
        await qm.wait_idle()
        assert "short" in qm.queues  # in use
        await qm.consumer_removed(short)
        await clock.advance(0.499)
        await qm.wait_idle()
        assert "short" in qm.queues
        await clock.advance(0.002)
        await qm.wait_idle()
        assert "short" not in qm.queues and "forever" in qm.queues
        assert core.topic("short") is None
        await core.stop()

    run(main())


def test_expiry_counts_from_a_restart(tmp_path):
    async def first():
        core = new_core(tmp_path)
        await core.start()
        await core.queues.declare_queue("short", settings=QueueSettings(expires_ms=1000))
        await core.stop()

    async def second():
        clock = FakeClock()
        core = new_core(tmp_path, clock=clock)
        await core.start()
        assert "short" in core.queues.queues
        await clock.advance(0.9)
        assert "short" in core.queues.queues
        await clock.advance(0.2)
        await core.queues.wait_idle()
        assert "short" not in core.queues.queues
        await core.stop()

    run(first())
    run(second())


def test_enqueue_now_appends_at_once_and_waits_only_when_durable(tmp_path):
    async def main():
        core = new_core(tmp_path)
        await core.start()
        qm = core.queues
        q = await qm.declare_queue("now")
        partition = q.topic.partitions[0]
        result, waits = qm.enqueue_now(["now"], [Record(b"a"), Record(b"b")], durable=True)
        assert result.queues == ["now"] and len(waits) == 1
        assert partition.log_end_offset == 2  # written before anything was awaited
        assert q.depth() == 2 and q.message_count() <= 2
        await asyncio.gather(*waits)
        assert q.message_count() == 2
        _result, waits = qm.enqueue_now(["now"], [Record(b"c")], durable=False)
        assert waits == []
        transient = await qm.declare_queue("tmp", durable=False)
        _result, waits = qm.enqueue_now(["tmp"], [Record(b"x")], durable=True)
        assert waits == [] and transient.message_count() == 1  # flush.policy=never
        await core.stop()

    run(main())


def test_length_limits_count_appends_still_waiting_for_fsync(tmp_path):
    async def main():
        core = new_core(tmp_path)
        await core.start()
        qm = core.queues
        await qm.declare_queue("lim", settings=QueueSettings(max_length=2, overflow=REJECT_NEW))
        outcomes = [qm.enqueue_now(["lim"], [Record(b"%d" % i)])[0] for i in range(4)]
        assert [bool(r.queues) for r in outcomes] == [True, True, False, False]
        head = await qm.declare_queue("head", settings=QueueSettings(max_length=2))
        waits = []
        for i in range(5):
            waits += qm.enqueue_now(["head"], [Record(b"%d" % i)])[1]
        await asyncio.gather(*waits)
        assert [d.record.value for d in head.subscription.pull(10, "c")] == [b"3", b"4"]
        await core.stop()

    run(main())


def test_dead_letters_are_republished_with_the_dlx_and_its_key(tmp_path):
    async def main():
        core = new_core(tmp_path)
        await core.start()
        qm = core.queues
        await qm.declare_exchange("dlx", "direct")
        dead = await qm.declare_queue("dead")
        await qm.bind("dlx", "dead", "moved")
        work = await qm.declare_queue(
            "work",
            settings=QueueSettings(dead_letter_exchange="dlx", dead_letter_routing_key="moved"),
        )
        record = Record(b"x", key=b"orig", headers=[(EXCHANGE_HEADER, b"src")])
        await qm.enqueue(["work"], [record])
        [d] = work.subscription.pull(1, "c")
        work.subscription.nack([(d.partition, d.offset)], requeue=False)
        await eventually(lambda: dead.message_count() == 1)
        [moved] = dead.subscription.pull(1, "c")
        headers = dict(moved.record.headers)
        assert moved.record.key == b"moved" and headers[EXCHANGE_HEADER] == b"dlx"
        [death] = deaths(moved.record)
        assert death["exchange"] == "src" and death["routing-keys"] == ["orig"]
        assert death["first"] is True
        await core.stop()

    run(main())


def test_settings_decide_equivalence_and_arguments_are_kept_opaque(tmp_path):
    async def main():
        core = new_core(tmp_path)
        await core.start()
        qm = core.queues
        declared = {"proto-arg": b"v", "n": 1}
        q = await qm.declare_queue("s", settings=QueueSettings(max_length=3), arguments=declared)
        assert q.arguments == {"proto-arg": "v", "n": 1}  # plain values, not interpreted
        assert await qm.declare_queue("s", settings=QueueSettings(max_length=3)) is q
        assert await qm.declare_queue("s") is q  # no settings: flags only
        with pytest.raises(PreconditionFailed, match="inequivalent settings"):
            await qm.declare_queue("s", settings=QueueSettings(max_length=4))
        with pytest.raises(PreconditionFailed, match="invalid overflow"):
            await qm.declare_queue("bad", settings=QueueSettings(overflow="sideways"))
        await core.stop()

    run(main())


def test_settings_round_trip_and_old_catalog_entries_still_load(tmp_path):
    settings = QueueSettings(
        max_length=5,
        overflow=REJECT_NEW,
        message_ttl_ms=100,
        expires_ms=1000,
        dead_letter_queue="dlq",
        max_deliveries=3,
        max_priority=4,
        delivery_delay_ms=10,
        retention_ms=60_000,
        lease_ms=30_000,
        ordered=True,
        dedup_window_ms=300_000,
    )
    assert QueueSettings.from_stored({"settings": json.loads(json.dumps(settings.to_json()))}) == (
        settings
    )
    # Unknown fields (from a newer version) are ignored.
    assert QueueSettings.from_json({"max_length": 1, "future": True}) == QueueSettings(max_length=1)

    # A data directory written before the settings had neutral names: the
    # queue entry has "args" with delivery_limit and the reject-publish names.
    async def write_old():
        core = new_core(tmp_path)
        await core.start()
        await core.queues.declare_exchange("dlx", "fanout")
        await core.queues.declare_queue("dead")
        await core.queues.bind("dlx", "dead", "")
        await core.queues.declare_queue("old")
        await core.queues.publish("", "old", [Record(b"kept", key=b"old")])
        await core.catalog.put(
            "queue",
            "old",
            {
                "durable": True,
                "auto_delete": False,
                "arguments": {"x-max-length": 1},
                "args": {
                    "message_ttl_ms": None,
                    "expires_ms": None,
                    "max_length": 1,
                    "max_length_bytes": None,
                    "overflow": "reject-publish-dlx",
                    "dead_letter_exchange": "dlx",
                    "dead_letter_routing_key": None,
                    "dead_letter_queue": None,
                    "max_priority": None,
                    "delivery_limit": 2,
                    "lease_ms": None,
                    "ordered": False,
                },
            },
        )
        await core.stop()

    async def reopen():
        core = new_core(tmp_path)
        await core.start()
        qm = core.queues
        old = qm.queues["old"]
        assert old.settings == QueueSettings(
            max_length=1,
            overflow="reject-new-dead-letter",
            dead_letter_exchange="dlx",
            max_deliveries=2,
        )
        assert old.arguments == {"x-max-length": 1}
        result = await qm.publish("", "old", [Record(b"refused", key=b"old")])
        assert result.rejected == ["old"]
        await qm.wait_idle()
        [dead] = qm.queues["dead"].subscription.pull(10, "c")
        assert dead.record.value == b"refused"
        assert [d.record.value for d in old.subscription.pull(10, "c")] == [b"kept"]
        await core.stop()

    run(write_old())
    run(reopen())


def test_bindings_to_an_exchange_declared_later_are_kept(tmp_path):
    """Bindings to an adapter's reserved exchanges are stored; after a restart
    they wait until the adapter declares the exchange again."""

    async def first():
        core = new_core(tmp_path)
        await core.start()
        core.queues.declare_reserved_exchange("std.direct", "direct")
        await core.queues.declare_queue("q")
        await core.queues.bind("std.direct", "q", "k")
        await core.stop()

    async def second():
        core = new_core(tmp_path)
        await core.start()
        qm = core.queues
        assert "std.direct" not in qm.router.exchanges
        qm.declare_reserved_exchange("std.direct", "direct")
        assert (await qm.publish("std.direct", "k", [Record(b"x")])).queues == ["q"]
        await core.stop()

    run(first())
    run(second())


def test_unbinding_what_is_gone_is_not_an_error(tmp_path):
    async def main():
        core = new_core(tmp_path)
        await core.start()
        qm = core.queues
        await qm.declare_exchange("x", "direct")
        await qm.declare_queue("q")
        await qm.bind("x", "q", "k")
        await qm.unbind("x", "q", "k")
        await qm.unbind("x", "q", "k")  # binding gone
        await qm.unbind("no-such-exchange", "q", "k")
        await qm.unbind("x", "no-such-queue", "k")
        await qm.unbind("x", "no-such-exchange", "k", kind=EXCHANGE)
        with pytest.raises(AccessRefused):
            await qm.unbind("", "q", "q")
        await core.stop()

    run(main())


def test_binding_filter_hook(tmp_path):
    async def main():
        core = new_core(tmp_path)
        await core.start()
        qm = core.queues
        await qm.declare_exchange("events", "fanout")
        big = await qm.declare_queue("big")
        every = await qm.declare_queue("every")

        def large(routing_key, headers):
            return int((headers or {}).get("size", 0)) > 10

        await qm.bind("events", "big", "", filter=large)
        await qm.bind("events", "every", "")
        small = await qm.publish("events", "k", [Record(b"s")], headers={"size": 1})
        assert small.queues == ["every"]
        await qm.publish("events", "k", [Record(b"l")], headers={"size": 99})
        assert [d.record.value for d in big.subscription.pull(10, "c")] == [b"l"]
        assert [d.record.value for d in every.subscription.pull(10, "c")] == [b"s", b"l"]
        await core.stop()

    run(main())


def test_overflow_is_decided_record_by_record(tmp_path):
    async def main():
        core = new_core(tmp_path)
        await core.start()
        qm = core.queues
        await qm.declare_exchange("fan", "fanout")
        await qm.declare_queue("lim", settings=QueueSettings(max_length=2, overflow=REJECT_NEW))
        await qm.declare_queue("open")
        await qm.bind("fan", "lim", "")
        await qm.bind("fan", "open", "")
        names = qm.route("fan", "", None)
        records = [Record(b"%d" % i) for i in range(5)]
        result, waits = qm.enqueue_now(names, records)
        await asyncio.gather(*waits)
        assert result.runs(5) == [(2, False), (3, True)]
        assert sorted(result.queues) == ["lim", "open"] and result.rejected == ["lim"]
        assert qm.queues["lim"].message_count() == 2
        assert qm.queues["open"].message_count() == 5
        # No limited target: one batch, one outcome.
        single, _ = qm.enqueue_now(["open"], records)
        assert single.outcomes is None and single.runs(5) == [(5, False)]
        await core.stop()

    run(main())


def test_visible_waits_for_earlier_appends(tmp_path):
    async def main():
        core = new_core(tmp_path)
        await core.start()
        qm = core.queues
        q = await qm.declare_queue("v")
        qm.enqueue_now(["v"], [Record(b"a")], durable=False)
        assert q.pending_appends() and q.message_count() == 0
        await qm.visible(q)
        assert not q.pending_appends() and q.message_count() == 1
        await qm.visible(q)  # nothing pending: returns at once
        await core.stop()

    run(main())


def test_redeclare_while_the_queue_is_being_deleted_gets_a_working_queue(tmp_path):
    """A declare racing a delete of the same name used to find the old topic
    still there and take it over, and the delete then closed its log under
    the new queue (found by the AMQP fuzzer: basic.get read a closed file
    descriptor)."""

    async def main():
        core = new_core(tmp_path)
        await core.start()
        qm = core.queues
        await qm.declare_queue("q")
        await qm.publish("", "q", [Record(b"old")])
        deleting = asyncio.ensure_future(qm.delete_queue("q"))
        await asyncio.sleep(0)  # the delete is under way, its topic not yet gone
        queue = await qm.declare_queue("q")
        await deleting
        assert qm.queues["q"] is queue
        assert not any(p.log.closed for p in queue.topic.partitions)
        await qm.publish("", "q", [Record(b"new")])
        deliveries = queue.subscription.pull(10, "reader")
        assert [d.record.value for d in deliveries] == [b"new"]
        await core.stop()

    run(main())


def test_concurrent_deletes_of_one_exchange_or_queue(tmp_path):
    """Two connections deleting the same exchange at once: the second used to
    fail with KeyError (541 to its client; found by the AMQP fuzzer). Two
    deleting the same queue must not take a queue declared in between."""

    async def main():
        core = new_core(tmp_path)
        await core.start()
        qm = core.queues
        await qm.declare_exchange("x", "topic")
        await qm.declare_queue("q")
        await qm.bind("x", "q", "#")
        await asyncio.gather(qm.delete_exchange("x"), qm.delete_exchange("x"))
        assert "x" not in qm.router.exchanges
        first = asyncio.ensure_future(qm.delete_queue("q"))
        second = asyncio.ensure_future(qm.delete_queue("q"))
        await asyncio.sleep(0)
        await first
        fresh = await qm.declare_queue("q")
        await second
        assert qm.queues.get("q") is fresh
        await core.stop()

    run(main())


def test_dedup_window_per_queue_survives_a_restart_and_ends_on_time(tmp_path):
    """A repeated id inside the queue's window is stored once (the publisher
    still succeeds and learns which record it repeats); the window outlives a
    restart and lets the id through once it has passed."""
    clock = FakeClock()
    window = QueueSettings(dedup_window_ms=300_000)

    async def first():
        core = new_core(tmp_path, clock=clock)
        await core.start()
        qm = core.queues
        fifo = await qm.declare_queue("fifo", settings=window)
        plain = await qm.declare_queue("plain")
        records = [Record(b"a1"), Record(b"b"), Record(b"a2"), Record(b"none")]
        result = await qm.enqueue(["fifo", "plain"], records, dedup_ids=["a", "b", "a", None])
        verdicts = result.duplicates["fifo"]
        assert verdicts[:2] == [None, None] and verdicts[3] is None
        # A repeat inside one batch: its original is being appended with it.
        assert verdicts[2] is not None and verdicts[2].offset is None
        assert "plain" not in result.duplicates  # no window: dedup ids are ignored
        assert fifo.message_count() == 3 and plain.message_count() == 4
        again = await qm.enqueue(["fifo"], [Record(b"b again")], dedup_ids=["b"])
        assert sorted(again.queues) == ["fifo"]  # accepted, not refused
        assert (again.duplicates["fifo"][0].partition, again.duplicates["fifo"][0].offset) == (0, 1)
        assert fifo.message_count() == 3
        await core.stop()

    async def after_restart():
        core = new_core(tmp_path, clock=clock)
        await core.start()
        qm = core.queues
        fifo = qm.get_queue("fifo")
        repeat = await qm.enqueue(["fifo"], [Record(b"a3")], dedup_ids=["a"])
        assert repeat.duplicates["fifo"][0] is not None and fifo.message_count() == 3
        await clock.advance(301)
        later = await qm.enqueue(["fifo"], [Record(b"a4")], dedup_ids=["a"])
        assert later.duplicates["fifo"] == [None] and fifo.message_count() == 4
        await core.stop()

    run(first())
    run(after_restart())


def test_dedup_ids_reach_the_state_log_in_the_call_that_stores_their_records(tmp_path):
    """The window's entries are written with the append they guard, not a
    loop turn later: a SIGKILL in between kept the records and forgot the
    ids, and the retry of the unanswered send was stored twice (found by
    tests/faults/test_sqs_crash_loop.py)."""

    async def main():
        core = new_core(tmp_path)
        await core.start()
        qm = core.queues
        await qm.declare_queue("fifo", settings=QueueSettings(dedup_window_ms=300_000))
        state = core.substate.partition
        before = state.log_end_offset
        sending = asyncio.ensure_future(qm.enqueue(["fifo"], [Record(b"x")], dedup_ids=["x"]))
        await asyncio.sleep(0)  # the append ran; its group commit has not
        assert qm.get_queue("fifo").topic.partitions[0].log_end_offset == 1
        assert state.log_end_offset == before + 1  # the id is in the state log already
        await sending
        await core.stop()

    run(main())


def test_dedup_ids_written_before_a_crash_kept_their_records_are_let_go(tmp_path):
    """Ids are logged before their records; a crash between the two leaves
    ids pointing past the log end. Opening the queue again releases them,
    durably (a later restart does not bring them back), so the client's
    resend is stored, once."""
    window = QueueSettings(dedup_window_ms=300_000)

    async def crash_before_the_append():
        core = new_core(tmp_path)
        await core.start()
        await core.queues.declare_queue("fifo", settings=window)
        await core.queues.enqueue(["fifo"], [Record(b"kept")], dedup_ids=["kept"])
        ghost = core.substate.dedup_window("queue:fifo", 300_000)
        ghost.accept_ids(["lost"], core.clock.wall_ms())
        ghost.record(["lost"], [(0, 1)])  # logged; the record never was
        await core.stop()

    async def resend(expect_stored: bool):
        core = new_core(tmp_path)
        await core.start()
        qm = core.queues
        again = await qm.enqueue(["fifo"], [Record(b"lost")], dedup_ids=["lost"])
        kept = await qm.enqueue(["fifo"], [Record(b"kept")], dedup_ids=["kept"])
        assert kept.duplicates["fifo"][0] is not None  # a real entry stays
        assert (again.duplicates["fifo"][0] is None) == expect_stored
        assert qm.get_queue("fifo").message_count() == 2
        await core.stop()

    run(crash_before_the_append())
    run(resend(expect_stored=True))
    run(resend(expect_stored=False))  # now stored at offset 1: a repeat


def test_a_failed_append_releases_its_dedup_ids_durably(tmp_path):
    async def main():
        core = new_core(tmp_path)
        await core.start()
        qm = core.queues
        await qm.declare_queue("fifo", settings=QueueSettings(dedup_window_ms=300_000))
        limit = qm.get_queue("fifo").topic.max_message_bytes
        big = Record(b"x" * (limit + 1))
        with pytest.raises(Exception, match=r"max\.message\.bytes"):
            await qm.enqueue(["fifo"], [big], dedup_ids=["a"])
        await core.stop()
        core = new_core(tmp_path)
        await core.start()
        stored = await core.queues.enqueue(["fifo"], [Record(b"small")], dedup_ids=["a"])
        assert stored.duplicates["fifo"] == [None]
        await core.stop()

    run(main())


def test_dedup_ids_through_a_queue_that_refuses_when_full(tmp_path):
    """Record-by-record enqueueing (reject-new queues) dedups per record too."""

    async def main():
        core = new_core(tmp_path)
        await core.start()
        qm = core.queues
        limited = QueueSettings(dedup_window_ms=60_000, max_length=2, overflow=REJECT_NEW)
        await qm.declare_queue("lim", settings=limited)
        result = await qm.enqueue(
            ["lim"], [Record(b"x"), Record(b"x again"), Record(b"y")], dedup_ids=["x", "x", "y"]
        )
        assert [v is None for v in result.duplicates["lim"]] == [True, False, True]
        assert qm.get_queue("lim").message_count() == 2
        await core.stop()

    run(main())


def test_a_queue_delivery_delay_holds_records_back(tmp_path):
    clock = FakeClock()

    async def main():
        core = new_core(tmp_path, clock=clock)
        await core.start()
        qm = core.queues
        queue = await qm.declare_queue("later", settings=QueueSettings(delivery_delay_ms=2_000))
        await qm.enqueue(["later"], [Record(b"soon", timestamp=clock.wall_ms())])
        assert queue.subscription.pull(1, "c") == []
        await clock.advance(2.0)
        [delivery] = queue.subscription.pull(1, "c")
        assert delivery.record.value == b"soon"
        await core.stop()

    run(main())


def test_update_settings_applies_now_and_survives_a_restart(tmp_path):
    async def main():
        clock = FakeClock()
        core = new_core(tmp_path, clock)
        await core.start()
        qm = core.queues
        await qm.declare_queue("q", settings=QueueSettings(lease_ms=1000), arguments={"a": 1})
        await qm.enqueue(["q"], [Record(b"1")])
        owner = object()
        assert len(qm.get_queue("q").subscription.pull(1, owner)) == 1
        await qm.update_settings("q", QueueSettings(lease_ms=5000), {"a": 2})
        await clock.advance(1.5)  # the lease given before keeps its deadline
        (again,) = qm.get_queue("q").subscription.pull(1, owner)
        await clock.advance(2)  # the new lease follows the new setting
        assert qm.get_queue("q").subscription.pull(1, owner) == []
        assert again.count == 2
        with pytest.raises(PreconditionFailed):
            await qm.update_settings("q", QueueSettings(ordered=True))
        await core.stop()
        core = new_core(tmp_path, clock)
        await core.start()
        queue = core.queues.get_queue("q")
        assert queue.settings.lease_ms == 5000 and queue.arguments == {"a": 2}
        await core.stop()

    run(main())


def test_expired_records_can_be_dropped_instead_of_dead_lettered(tmp_path):
    async def main():
        clock = FakeClock()
        core = new_core(tmp_path, clock)
        await core.start()
        qm = core.queues
        await qm.declare_queue("dlq")
        for name, dead_letter_expired in (("keeps", True), ("drops", False)):
            settings = QueueSettings(
                message_ttl_ms=100,
                dead_letter_queue="dlq",
                max_deliveries=5,
                dead_letter_expired=dead_letter_expired,
            )
            await qm.declare_queue(name, settings=settings)
            await qm.enqueue([name], [Record(name.encode(), timestamp=clock.wall_ms())])
        await clock.advance(0.2)
        for name in ("keeps", "drops"):
            assert qm.get_queue(name).subscription.pull(1, object()) == []
        await qm.wait_idle()
        dlq = qm.get_queue("dlq")
        await dlq.settle_visible()
        assert [d.record.value for d in dlq.subscription.pull(10, object())] == [b"keeps"]
        await core.stop()

    run(main())

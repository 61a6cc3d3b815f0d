"""Queues and exchanges in the core: declarations, routing, overflow, dead
letters, exclusivity, restarts and reclaiming settled data."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from dovecote.core.broker import BrokerCore
from dovecote.core.config import BrokerConfig
from dovecote.core.queues import DEATHS, AccessRefused, NotFound, PreconditionFailed, ResourceLocked
from dovecote.core.routing import EXCHANGE
from dovecote.storage.batch import Record


def new_core(path, **kw) -> BrokerCore:
    return BrokerCore(BrokerConfig.load(env={}, overrides={"data_dir": path, **kw}))


def run(coro):
    return asyncio.run(coro)


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
            await qm.declare_queue("errors", arguments={"x-max-length": 5})
        with pytest.raises(PreconditionFailed):
            await qm.declare_exchange("logs", "direct")
        with pytest.raises(NotFound):
            await qm.declare_queue("nope", passive=True)
        with pytest.raises(NotFound):
            await qm.publish("nope", "k", [Record(b"x")])
        with pytest.raises(AccessRefused):
            await qm.declare_exchange("amq.custom", "direct")
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
            "head", arguments={"x-max-length": 2, "x-dead-letter-exchange": "dlx"}
        )
        for i in range(4):
            await qm.publish("", "head", [Record(b"%d" % i, key=b"head")])
        await asyncio.sleep(0.01)
        assert [d.record.value for d in head.subscription.pull(10, "c")] == [b"2", b"3"]
        dropped = dead.subscription.pull(10, "c")
        assert [d.record.value for d in dropped] == [b"0", b"1"]
        assert deaths(dropped[0].record)[0]["reason"] == "maxlen"
        reject = await qm.declare_queue(
            "reject", arguments={"x-max-length": 1, "x-overflow": "reject-publish"}
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
            arguments={
                "x-dead-letter-exchange": "dlx",
                "x-message-ttl": 100_000,
                "x-delivery-limit": 1,
            },
        )
        await qm.publish("", "work", [Record(b"rejected", key=b"work")])
        [d] = work.subscription.pull(1, "c")
        work.subscription.nack([(d.partition, d.offset)], requeue=False)
        old = Record(b"expired", key=b"work", timestamp=int(time.time() * 1000) - 200_000)
        await qm.enqueue(["work"], [old])
        await qm.sweep()
        await qm.publish("", "work", [Record(b"limited", key=b"work")])
        [d] = work.subscription.pull(1, "c")
        work.subscription.nack([(d.partition, d.offset)])
        assert work.subscription.pull(1, "c") == []
        await asyncio.sleep(0.01)
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
        q = await qm.declare_queue("p", arguments={"x-max-priority": 5})
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


def test_unused_queue_expires(tmp_path):
    async def main():
        core = new_core(tmp_path)
        await core.start()
        qm = core.queues
        await qm.declare_queue("short", arguments={"x-expires": 50})
        await asyncio.sleep(0.1)
        await qm.sweep()
        assert "short" not in qm.queues
        await core.stop()

    run(main())


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
        await qm.declare_queue("lim", arguments={"x-max-length": 2, "x-overflow": "reject-publish"})
        outcomes = [qm.enqueue_now(["lim"], [Record(b"%d" % i)])[0] for i in range(4)]
        assert [bool(r.queues) for r in outcomes] == [True, True, False, False]
        head = await qm.declare_queue("head", arguments={"x-max-length": 2})
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
            arguments={"x-dead-letter-exchange": "dlx", "x-dead-letter-routing-key": "moved"},
        )
        record = Record(b"x", key=b"orig", headers=[("amqp.exchange", b"src")])
        await qm.enqueue(["work"], [record])
        [d] = work.subscription.pull(1, "c")
        work.subscription.nack([(d.partition, d.offset)], requeue=False)
        await asyncio.sleep(0.05)
        [moved] = dead.subscription.pull(1, "c")
        headers = dict(moved.record.headers)
        assert moved.record.key == b"moved" and headers["amqp.exchange"] == b"dlx"
        [death] = deaths(moved.record)
        assert death["exchange"] == "src" and death["routing-keys"] == ["orig"]
        assert death["first"] is True
        await core.stop()

    run(main())


def test_server_named_queues_may_use_the_reserved_prefix(tmp_path):
    async def main():
        core = new_core(tmp_path)
        await core.start()
        with pytest.raises(AccessRefused):
            await core.queues.declare_queue("amq.mine")
        q = await core.queues.declare_queue("amq.gen-abc", server_named=True, durable=False)
        assert q.name == "amq.gen-abc"
        with pytest.raises(PreconditionFailed, match="for queue 'x': \"expected integer"):
            await core.queues.declare_queue("x", arguments={"x-max-length": "ten"})
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

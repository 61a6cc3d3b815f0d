"""pika and aio-pika against the core's push delivery: exclusive consumers,
consumer priorities (``x-priority``), single active consumer
(``x-single-active-consumer``) and stream queues (``x-queue-type: stream``,
``x-stream-offset``), as RabbitMQ behaves."""

from __future__ import annotations

import asyncio
import datetime
import time

import aio_pika
import pika
import pytest
from pika.exceptions import ChannelClosedByBroker, ConnectionClosedByBroker


def pump(connection, got: list, until: int, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while len(got) < until and time.monotonic() < deadline:
        connection.process_data_events(time_limit=0.05)


def quiet(connection, seconds: float = 0.3) -> None:
    connection.process_data_events(time_limit=seconds)


def consume(channel, queue: str, got: list, **kwargs) -> str:
    def on_message(ch, method, props, body) -> None:
        got.append((method, props, body))

    return channel.basic_consume(queue, on_message, **kwargs)


def bodies(got: list) -> list[bytes]:
    return [body for _method, _props, body in got]


# --- exclusive consumers ------------------------------------------------------------------


def test_exclusive_consume_is_refused_next_to_others_and_frees_the_queue_when_cancelled(
    connection, name
):
    channel = connection.channel()
    channel.queue_declare(name, auto_delete=False)
    plain = consume(channel, name, [])
    other = connection.channel()
    with pytest.raises(ChannelClosedByBroker) as info:
        other.basic_consume(name, lambda *a: None, exclusive=True)
    assert (info.value.reply_code, info.value.reply_text) == (
        403,
        f"ACCESS_REFUSED - queue '{name}' in vhost '/' in exclusive use",
    )
    channel.basic_cancel(plain)
    exclusive = connection.channel()
    tag = exclusive.basic_consume(name, lambda *a: None, exclusive=True)
    refused = connection.channel()
    with pytest.raises(ChannelClosedByBroker) as info:
        refused.basic_consume(name, lambda *a: None)
    assert info.value.reply_code == 403
    exclusive.basic_cancel(tag)
    got: list = []
    consume(connection.channel(), name, got)  # the queue is free again
    channel.basic_publish("", name, b"after")
    pump(connection, got, 1)
    assert bodies(got) == [b"after"]
    channel.queue_delete(name)


# --- backpressure -------------------------------------------------------------------------


def test_consumers_sharing_a_full_socket_resume_when_the_client_reads_again(url, name):
    setup_conn = pika.BlockingConnection(pika.URLParameters(url))
    reader = pika.BlockingConnection(pika.URLParameters(url))
    try:
        setup = setup_conn.channel()
        setup.queue_declare(name, auto_delete=False)
        body = b"x" * (1 << 20)
        for _ in range(48):  # far more than the socket buffers and the write high-water mark
            setup.basic_publish("", name, body)
        got: list = []
        for _ in range(2):
            channel = reader.channel()
            channel.basic_qos(prefetch_count=30)
            consume(channel, name, got, auto_ack=True)
        time.sleep(1.0)  # the client does not read: the broker's transport fills up and pauses
        pump(reader, got, 48, timeout=20)
        assert len(got) == 48 and all(len(b) == len(body) for b in bodies(got))
        setup.queue_delete(name)
    finally:
        reader.close()
        setup_conn.close()


# --- consumer priorities ------------------------------------------------------------------


def test_higher_priority_consumers_get_messages_until_they_have_no_credit(connection, name):
    setup = connection.channel()
    setup.queue_declare(name, auto_delete=True)
    low_ch, high_ch = connection.channel(), connection.channel()
    low_ch.basic_qos(prefetch_count=10)
    high_ch.basic_qos(prefetch_count=3)
    low: list = []
    high: list = []
    consume(low_ch, name, low, arguments={"x-priority": 1})
    consume(high_ch, name, high, arguments={"x-priority": 10})
    for i in range(2):
        setup.basic_publish("", name, b"a%d" % i)
    pump(connection, high, 2)
    quiet(connection)
    assert bodies(high) == [b"a0", b"a1"] and low == []
    # high has one credit left: it takes one more, then the lower one gets the rest
    for i in range(4):
        setup.basic_publish("", name, b"b%d" % i)
    pump(connection, low, 3)
    quiet(connection)
    assert bodies(high) == [b"a0", b"a1", b"b0"]
    assert bodies(low) == [b"b1", b"b2", b"b3"]
    # credit back to the high one: it is first again
    high_ch.basic_ack(high[-1][0].delivery_tag, multiple=True)
    setup.basic_publish("", name, b"c0")
    pump(connection, high, 4)
    quiet(connection)
    assert bodies(high)[-1] == b"c0" and len(low) == 3


def test_x_priority_must_be_an_integer(connection, name):
    channel = connection.channel()
    channel.queue_declare(name, auto_delete=True)
    with pytest.raises(ChannelClosedByBroker) as info:
        channel.basic_consume(name, lambda *a: None, arguments={"x-priority": "high"})
    assert info.value.reply_code == 406


# --- single active consumer ---------------------------------------------------------------


def test_single_active_consumer_fails_over_in_registration_order(url, connection, name):
    setup = connection.channel()
    setup.queue_declare(name, arguments={"x-single-active-consumer": True})
    first_conn = pika.BlockingConnection(pika.URLParameters(url))
    try:
        first_ch = first_conn.channel()
        first_ch.basic_qos(prefetch_count=10)
        first: list = []
        consume(first_ch, name, first)
        second_ch, third_ch = connection.channel(), connection.channel()
        second: list = []
        third: list = []
        consume(second_ch, name, second, arguments={"x-priority": 5})
        consume(third_ch, name, third)
        assert setup.queue_declare(name, passive=True).method.consumer_count == 3
        for i in range(4):
            setup.basic_publish("", name, b"m%d" % i)
        pump(first_conn, first, 4)
        quiet(connection)
        assert bodies(first) == [b"m0", b"m1", b"m2", b"m3"]
        assert second == [] and third == []
        first_ch.basic_ack(first[1][0].delivery_tag, multiple=True)  # m0, m1 done
    finally:
        first_conn.close()  # m2, m3 unacked: back to the queue, for the next active one
    pump(connection, second, 2)
    setup.basic_publish("", name, b"m4")
    pump(connection, second, 3)
    quiet(connection)
    assert bodies(second) == [b"m2", b"m3", b"m4"]
    assert [method.redelivered for method, _p, _b in second] == [True, True, False]
    assert third == []
    second_ch.close()  # it never acked: all three go to the next one
    setup.basic_publish("", name, b"m5")
    pump(connection, third, 4)
    assert bodies(third) == [b"m2", b"m3", b"m4", b"m5"]
    setup.queue_delete(name)


def test_single_active_consumer_must_be_a_boolean(connection, name):
    channel = connection.channel()
    with pytest.raises(ChannelClosedByBroker) as info:
        channel.queue_declare(name, arguments={"x-single-active-consumer": "yes"})
    assert info.value.reply_code == 406


# --- stream queues ----------------------------------------------------------------------


def declare_stream(channel, name: str) -> None:
    channel.queue_declare(name, durable=True, arguments={"x-queue-type": "stream"})


def read_stream(connection, name: str, offset, count: int, *, prefetch: int = 100) -> list:
    channel = connection.channel()
    channel.basic_qos(prefetch_count=prefetch)
    got: list = []
    consume(channel, name, got, arguments={"x-stream-offset": offset})
    pump(connection, got, count)
    quiet(connection, 0.2)
    channel.close()
    return got


def test_stream_queue_reads_from_first_next_offset_last_and_timestamp(connection, name):
    channel = connection.channel()
    declare_stream(channel, name)
    channel.confirm_delivery()  # one publish, one append: each message its own chunk
    for i in range(5):
        channel.basic_publish("", name, b"m%d" % i)
    # a whole second between the halves: AMQP timestamps are in seconds
    time.sleep(1.05 - time.time() % 1)
    second_half = int(time.time())
    for i in range(5, 10):
        channel.basic_publish("", name, b"m%d" % i)

    everything = [b"m%d" % i for i in range(10)]
    got = read_stream(connection, name, "first", 10)
    assert bodies(got) == everything
    assert [props.headers["x-stream-offset"] for _m, props, _b in got] == list(range(10))
    assert not any(method.redelivered for method, _p, _b in got)
    # consuming removed nothing: again from the start, and by offset
    assert bodies(read_stream(connection, name, "first", 10)) == everything
    assert bodies(read_stream(connection, name, 5, 5)) == everything[5:]
    assert bodies(read_stream(connection, name, "last", 1)) == [b"m9"]
    stamp = datetime.datetime.fromtimestamp(second_half, tz=datetime.UTC)
    assert bodies(read_stream(connection, name, stamp, 5)) == everything[5:]

    # next: only what is published after the consumer starts
    reader = connection.channel()
    reader.basic_qos(prefetch_count=10)
    fresh: list = []
    consume(reader, name, fresh, arguments={"x-stream-offset": "next"})
    quiet(connection)
    assert fresh == []
    channel.basic_publish("", name, b"m10")
    pump(connection, fresh, 1)
    assert bodies(fresh) == [b"m10"]
    reader.close()
    assert channel.queue_declare(name, passive=True).method.message_count == 11
    channel.queue_delete(name)


def test_stream_consumers_need_prefetch_and_get_credit_back_by_acking(connection, name):
    channel = connection.channel()
    declare_stream(channel, name)
    for i in range(6):
        channel.basic_publish("", name, b"m%d" % i)
    with pytest.raises(ChannelClosedByBroker) as info:
        connection.channel().basic_consume(
            name, lambda *a: None, arguments={"x-stream-offset": "first"}
        )
    assert (info.value.reply_code, info.value.reply_text) == (
        406,
        f"PRECONDITION_FAILED - consumer prefetch count is not set for "
        f"'queue '{name}' in vhost '/''",
    )

    reader = connection.channel()
    reader.basic_qos(prefetch_count=2)
    got: list = []
    consume(reader, name, got, arguments={"x-stream-offset": "first"})
    pump(connection, got, 2)
    quiet(connection)
    assert bodies(got) == [b"m0", b"m1"]  # no more without acks
    reader.basic_ack(got[-1][0].delivery_tag, multiple=True)
    pump(connection, got, 4)
    quiet(connection)
    assert bodies(got) == [b"m0", b"m1", b"m2", b"m3"]
    reader.basic_nack(got[-1][0].delivery_tag, multiple=True, requeue=True)
    pump(connection, got, 6)
    assert bodies(got) == [b"m%d" % i for i in range(6)]  # a nack gives credit, no rewind
    reader.close()
    channel.queue_delete(name)


@pytest.mark.parametrize("auto_ack", [True, False])
def test_stream_queues_refuse_auto_ack_and_basic_get_closing_the_connection(
    url, connection, name, auto_ack
):
    declare_stream(connection.channel(), name)
    other = pika.BlockingConnection(pika.URLParameters(url))
    channel = other.channel()
    channel.basic_qos(prefetch_count=5)
    with pytest.raises(ConnectionClosedByBroker) as info:
        if auto_ack:
            channel.basic_consume(name, lambda *a: None, auto_ack=True)
        else:
            channel.basic_get(name)
    assert info.value.reply_code == 540
    assert "not supported by stream queues" in info.value.reply_text
    connection.channel().queue_delete(name)


@pytest.mark.parametrize(
    ("kwargs", "arguments"),
    [
        ({"durable": False}, {}),
        ({"durable": True, "exclusive": True}, {}),
        ({"durable": True, "auto_delete": True}, {}),
        ({"durable": True}, {"x-message-ttl": 1000}),
        ({"durable": True}, {"x-max-age": "soon"}),
    ],
)
def test_stream_queue_must_be_durable_shared_and_without_queue_limits(
    connection, name, kwargs, arguments
):
    channel = connection.channel()
    with pytest.raises(ChannelClosedByBroker) as info:
        channel.queue_declare(name, arguments={"x-queue-type": "stream", **arguments}, **kwargs)
    assert info.value.reply_code == 406


def test_stream_retention_arguments_become_the_logs_retention(broker, connection, name):
    channel = connection.channel()
    channel.queue_declare(
        name,
        durable=True,
        arguments={"x-queue-type": "stream", "x-max-age": "7D", "x-max-length-bytes": 1 << 30},
    )
    topic = broker.broker.core.topic(name)
    assert topic.config("retention.ms") == 7 * 86400 * 1000
    assert topic.config("retention.bytes") == 1 << 30
    assert topic.config("retention.acked") != "true"
    channel.queue_delete(name)


def test_stream_queue_with_aio_pika(url, name):
    async def main() -> None:
        connection = await aio_pika.connect_robust(url)
        async with connection:
            channel = await connection.channel()
            queue = await channel.declare_queue(
                name, durable=True, arguments={"x-queue-type": "stream"}
            )
            for i in range(10):
                await channel.default_exchange.publish(
                    aio_pika.Message(b"m%d" % i), routing_key=name
                )
            for _round in range(2):  # reading twice sees the same records
                reader = await connection.channel()
                await reader.set_qos(prefetch_count=4)
                stream = await reader.get_queue(name)
                seen = []
                async with stream.iterator(arguments={"x-stream-offset": "first"}) as it:
                    async for message in it:
                        seen.append((message.body, message.headers["x-stream-offset"]))
                        await message.ack()
                        if len(seen) == 10:
                            break
                assert seen == [(b"m%d" % i, i) for i in range(10)]
                await reader.close()
            await queue.delete(if_unused=False, if_empty=False)

    asyncio.run(asyncio.wait_for(main(), 30))

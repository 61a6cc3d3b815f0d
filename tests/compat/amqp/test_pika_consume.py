"""pika consumers: prefetch, acks, requeue and redelivery, cancel, tx, exclusivity."""

from __future__ import annotations

import socket
import time

import pika
import pytest
from pika.exceptions import ChannelClosedByBroker

from tests.compat.amqp.test_pika_routing import drain


def fill(channel, queue: str, count: int, prefix: bytes = b"m") -> None:
    for i in range(count):
        channel.basic_publish("", queue, prefix + b"%d" % i)


def collect(connection, channel, queue: str, *, until: int, timeout: float = 5.0, **kwargs):
    """Consume without acking until ``until`` deliveries (or ``timeout``)."""
    got = []
    tag = channel.basic_consume(
        queue, lambda ch, method, props, body: got.append((method, body)), **kwargs
    )
    deadline = time.monotonic() + timeout
    while len(got) < until and time.monotonic() < deadline:
        connection.process_data_events(time_limit=0.05)
    return tag, got


def settle_quietly(connection, seconds: float = 0.3) -> None:
    connection.process_data_events(time_limit=seconds)


def test_per_consumer_prefetch_limits_unacked(connection, channel, name):
    channel.queue_declare(name, exclusive=True)
    fill(channel, name, 10)
    channel.basic_qos(prefetch_count=3)
    _tag, got = collect(connection, channel, name, until=10, timeout=0.5)
    assert [body for _m, body in got] == [b"m0", b"m1", b"m2"]
    channel.basic_ack(got[1][0].delivery_tag)
    settle_quietly(connection)
    assert len(got) == 4
    channel.basic_ack(got[-1][0].delivery_tag, multiple=True)  # acks 0, 2, 3
    settle_quietly(connection)
    assert [body for _m, body in got] == [b"m%d" % i for i in range(7)]


def test_global_prefetch_is_shared_by_the_channels_consumers(connection, channel, name):
    for q in ("a", "b"):
        channel.queue_declare(f"{name}.{q}", exclusive=True)
        fill(channel, f"{name}.{q}", 5)
    channel.basic_qos(prefetch_count=4, global_qos=True)
    got = []
    for q in ("a", "b"):
        channel.basic_consume(f"{name}.{q}", lambda ch, m, p, b: got.append(b))
    settle_quietly(connection, 0.5)
    assert len(got) == 4
    channel.basic_qos(prefetch_count=6, global_qos=True)
    settle_quietly(connection, 0.5)
    assert len(got) == 6


def test_nack_requeue_sets_redelivered_and_keeps_order(connection, channel, name):
    channel.queue_declare(name, exclusive=True)
    fill(channel, name, 3)
    first = [channel.basic_get(name) for _ in range(3)]
    assert [m.redelivered for m, _p, _b in first] == [False] * 3
    channel.basic_nack(first[1][0].delivery_tag, requeue=True)
    channel.basic_reject(first[0][0].delivery_tag, requeue=True)
    channel.basic_ack(first[2][0].delivery_tag)
    again = [channel.basic_get(name) for _ in range(2)]
    assert [(m.redelivered, b) for m, _p, b in again] == [(True, b"m0"), (True, b"m1")]
    channel.basic_nack(0, multiple=True, requeue=False)  # no DLX: dropped
    assert channel.basic_get(name) == (None, None, None)


def test_closing_a_channel_requeues_its_unacked_messages(connection, name):
    setup = connection.channel()
    setup.queue_declare(name, exclusive=True)
    fill(setup, name, 4)
    worker = connection.channel()
    worker.basic_qos(prefetch_count=10)
    _tag, got = collect(connection, worker, name, until=4)
    assert len(got) == 4
    worker.basic_ack(got[0][0].delivery_tag)
    worker.close()
    redelivered = [setup.basic_get(name, auto_ack=True) for _ in range(3)]
    assert [(m.redelivered, b) for m, _p, b in redelivered] == [
        (True, b"m1"),
        (True, b"m2"),
        (True, b"m3"),
    ]


def test_basic_recover_redelivers_unacked(connection, channel, name):
    channel.queue_declare(name, exclusive=True)
    fill(channel, name, 2)
    _tag, got = collect(connection, channel, name, until=2)
    channel.basic_recover(requeue=True)
    settle_quietly(connection)
    assert [(m.redelivered, b) for m, b in got] == [
        (False, b"m0"),
        (False, b"m1"),
        (True, b"m0"),
        (True, b"m1"),
    ]


def test_unknown_delivery_tag_is_a_channel_error(connection, channel, name):
    channel.queue_declare(name, exclusive=True)
    channel.basic_ack(99)
    with pytest.raises(ChannelClosedByBroker) as info:
        channel.queue_declare(name, passive=True)
    assert (info.value.reply_code, info.value.reply_text) == (
        406,
        "PRECONDITION_FAILED - unknown delivery tag 99",
    )
    assert connection.is_open


def test_no_ack_consumer_and_cancel(connection, channel, name):
    channel.queue_declare(name, exclusive=True)
    fill(channel, name, 50)
    tag, got = collect(connection, channel, name, until=50, auto_ack=True)
    assert len(got) == 50 and all(not m.redelivered for m, _b in got)
    channel.basic_cancel(tag)
    fill(channel, name, 1, b"later")
    settle_quietly(connection, 0.2)
    assert len(got) == 50
    assert drain(channel, name) == [b"later0"]


def test_consumer_cancel_notification_when_queue_is_deleted(connection, name):
    consumer_channel = connection.channel()
    consumer_channel.queue_declare(name)
    cancelled = []
    consumer_channel.add_on_cancel_callback(lambda frame: cancelled.append(frame.method))
    tag = consumer_channel.basic_consume(name, lambda *a: None)
    other = connection.channel()
    other.queue_delete(name)
    deadline = time.monotonic() + 5
    while not cancelled and time.monotonic() < deadline:
        connection.process_data_events(time_limit=0.05)
    [method] = cancelled
    assert method.consumer_tag == tag


def test_auto_delete_queue_goes_with_its_last_consumer(connection, channel, name):
    channel.queue_declare(name, auto_delete=True)
    first = channel.basic_consume(name, lambda *a: None)
    second = channel.basic_consume(name, lambda *a: None)
    assert channel.queue_declare(name, passive=True).method.consumer_count == 2
    channel.basic_cancel(first)
    assert channel.queue_declare(name, passive=True).method.consumer_count == 1
    channel.basic_cancel(second)
    with pytest.raises(ChannelClosedByBroker) as info:
        channel.queue_declare(name, passive=True)
    assert info.value.reply_code == 404


def test_exclusive_consumer(connection, name):
    channel = connection.channel()
    channel.queue_declare(name, auto_delete=True)
    channel.basic_consume(name, lambda *a: None, exclusive=True)
    other = connection.channel()
    with pytest.raises(ChannelClosedByBroker) as info:
        other.basic_consume(name, lambda *a: None)
    assert (info.value.reply_code, info.value.reply_text) == (
        403,
        f"ACCESS_REFUSED - queue '{name}' in vhost '/' in exclusive use",
    )


def test_exclusive_queue_is_locked_and_goes_with_its_connection(url, name):
    owner = pika.BlockingConnection(pika.URLParameters(url))
    owner.channel().queue_declare(name, exclusive=True)
    other = pika.BlockingConnection(pika.URLParameters(url))
    try:
        with pytest.raises(ChannelClosedByBroker) as info:
            other.channel().queue_declare(name, passive=True)
        assert info.value.reply_code == 405
        # Kill the owner's socket without an AMQP close: the queue must still go.
        sock = owner._impl._transport._sock
        sock.shutdown(socket.SHUT_RDWR)
        sock.close()
        deadline = time.monotonic() + 5
        while True:
            try:
                other.channel().queue_declare(name, passive=True)
            except ChannelClosedByBroker as err:
                assert err.reply_code == 404
                break
            assert time.monotonic() < deadline, "exclusive queue outlived its connection"
            time.sleep(0.05)
    finally:
        other.close()


def test_tx_commit_and_rollback(connection, channel, name):
    channel.queue_declare(name, exclusive=True)
    channel.tx_select()
    channel.basic_publish("", name, b"rolled-back")
    channel.tx_rollback()
    channel.basic_publish("", name, b"a")
    channel.basic_publish("", name, b"b", pika.BasicProperties(delivery_mode=2))
    observer = connection.channel()
    assert observer.queue_declare(name, passive=True).method.message_count == 0
    channel.tx_commit()
    assert observer.queue_declare(name, passive=True).method.message_count == 2
    # Acks in a transaction take effect at commit; rollback keeps them unacked.
    method, _p, body = channel.basic_get(name)
    assert body == b"a"
    channel.basic_ack(method.delivery_tag)
    channel.tx_rollback()
    channel.basic_ack(method.delivery_tag)
    channel.tx_commit()
    method, _p, body = channel.basic_get(name)
    channel.basic_ack(method.delivery_tag)
    channel.tx_commit()
    assert body == b"b"
    assert observer.queue_declare(name, passive=True).method.message_count == 0


def test_many_consumers_share_a_queue(url, name):
    connections = [pika.BlockingConnection(pika.URLParameters(url)) for _ in range(3)]
    try:
        channels = [c.channel() for c in connections]
        channels[0].queue_declare(name, auto_delete=True)
        counts = [0, 0, 0]
        for i, ch in enumerate(channels):
            ch.basic_qos(prefetch_count=5)

            def on_message(c, m, p, b, i=i):
                counts[i] += 1
                c.basic_ack(m.delivery_tag)

            ch.basic_consume(name, on_message)
        fill(channels[0], name, 300)
        deadline = time.monotonic() + 10
        while sum(counts) < 300 and time.monotonic() < deadline:
            for c in connections:
                c.process_data_events(time_limit=0.01)
        assert sum(counts) == 300
        assert all(counts), counts
    finally:
        for c in connections:
            c.close()


def test_a_client_that_stops_reading_is_not_flooded(broker, url, name):
    """TCP backpressure: deliveries stop while the socket is full, none are lost."""
    channel_conn = pika.BlockingConnection(pika.URLParameters(url))
    setup = channel_conn.channel()
    setup.queue_declare(name)
    body = b"x" * (512 * 1024)
    for _ in range(60):  # 30 MiB
        setup.basic_publish("", name, body)
    listener = broker.broker.listeners["amqp"]
    before = set(listener.connections)
    slow = pika.BlockingConnection(pika.URLParameters(url))
    (server_side,) = set(listener.connections) - before
    slow_channel = slow.channel()
    got = []
    slow_channel.basic_consume(name, lambda ch, m, p, b: got.append(len(b)), auto_ack=True)
    time.sleep(1.0)  # the client does not read meanwhile
    buffered = server_side.transport.get_write_buffer_size()
    assert buffered < 8 << 20, buffered
    remaining = setup.queue_declare(name, passive=True).method.message_count
    assert remaining > 0  # not everything was pulled into memory
    deadline = time.monotonic() + 20
    while len(got) < 60 and time.monotonic() < deadline:
        slow.process_data_events(time_limit=0.1)
    assert got == [len(body)] * 60
    slow.close()
    setup.queue_delete(name)
    channel_conn.close()

"""pika (BlockingConnection) against Dovecote: exchanges, bindings, get, returns, confirms."""

from __future__ import annotations

import pika
import pytest
from pika.exceptions import ChannelClosedByBroker, NackError, UnroutableError

PERSISTENT = pika.BasicProperties(delivery_mode=2)


def drain(channel, queue: str) -> list[bytes]:
    """Every message now in ``queue``, by basic.get with ack."""
    out = []
    while True:
        method, _props, body = channel.basic_get(queue, auto_ack=True)
        if method is None:
            return out
        out.append(body)


def test_publish_get_and_message_counts(channel, name):
    ok = channel.queue_declare(name, durable=True).method
    assert (ok.queue, ok.message_count, ok.consumer_count) == (name, 0, 0)
    for i in range(5):
        channel.basic_publish("", name, b"m%d" % i, PERSISTENT)
    assert channel.queue_declare(name, passive=True).method.message_count == 5
    method, props, body = channel.basic_get(name)
    assert body == b"m0" and props.delivery_mode == 2
    assert (method.delivery_tag, method.redelivered, method.exchange, method.routing_key) == (
        1,
        False,
        "",
        name,
    )
    assert method.message_count == 4
    channel.basic_ack(method.delivery_tag)
    assert drain(channel, name) == [b"m1", b"m2", b"m3", b"m4"]
    assert channel.basic_get(name) == (None, None, None)  # get-empty


def test_properties_reach_the_consumer_untouched(channel, name):
    channel.queue_declare(name)
    props = pika.BasicProperties(
        content_type="application/json",
        content_encoding="utf-8",
        headers={"a": 1, "b": "two", "nested": {"x": [1, 2]}, "flag": True},
        delivery_mode=2,
        priority=3,
        correlation_id="corr",
        reply_to="somewhere",
        message_id="id-1",
        timestamp=1_700_000_000,
        type="kind",
        app_id="tests",
    )
    channel.basic_publish("", name, b"{}", props)
    _method, got, body = channel.basic_get(name, auto_ack=True)
    assert body == b"{}"
    for field in (
        "content_type",
        "content_encoding",
        "headers",
        "delivery_mode",
        "priority",
        "correlation_id",
        "reply_to",
        "message_id",
        "timestamp",
        "type",
        "app_id",
    ):
        assert getattr(got, field) == getattr(props, field), field


def test_direct_fanout_topic_routing(channel, name):
    for kind in ("direct", "fanout", "topic"):
        channel.exchange_declare(f"{name}.{kind}", kind, auto_delete=True)
    queues = {q: f"{name}.{q}" for q in ("a", "b", "c")}
    for q in queues.values():
        channel.queue_declare(q, exclusive=True)
    channel.queue_bind(queues["a"], f"{name}.direct", "red")
    channel.queue_bind(queues["b"], f"{name}.direct", "green")
    channel.queue_bind(queues["a"], f"{name}.fanout")
    channel.queue_bind(queues["b"], f"{name}.fanout")
    channel.queue_bind(queues["a"], f"{name}.topic", "*.error")
    channel.queue_bind(queues["b"], f"{name}.topic", "app.#")
    channel.queue_bind(queues["c"], f"{name}.topic", "#")
    channel.basic_publish(f"{name}.direct", "red", b"d-red")
    channel.basic_publish(f"{name}.direct", "blue", b"d-blue")
    channel.basic_publish(f"{name}.fanout", "ignored", b"f")
    channel.basic_publish(f"{name}.topic", "app.error", b"t1")
    channel.basic_publish(f"{name}.topic", "db.error", b"t2")
    channel.basic_publish(f"{name}.topic", "app.info.x", b"t3")
    channel.basic_publish(f"{name}.topic", "", b"t4")
    assert drain(channel, queues["a"]) == [b"d-red", b"f", b"t1", b"t2"]
    assert drain(channel, queues["b"]) == [b"f", b"t1", b"t3"]
    assert drain(channel, queues["c"]) == [b"t1", b"t2", b"t3", b"t4"]


def test_headers_exchange_any_and_all(channel, name):
    ex = f"{name}.headers"
    channel.exchange_declare(ex, "headers", auto_delete=True)
    channel.queue_declare(f"{name}.all", exclusive=True)
    channel.queue_declare(f"{name}.any", exclusive=True)
    channel.queue_bind(
        f"{name}.all", ex, arguments={"x-match": "all", "format": "pdf", "type": "report"}
    )
    channel.queue_bind(
        f"{name}.any", ex, arguments={"x-match": "any", "format": "pdf", "type": "log"}
    )

    def publish(body: bytes, headers: dict | None) -> None:
        channel.basic_publish(ex, "", body, pika.BasicProperties(headers=headers))

    publish(b"both", {"format": "pdf", "type": "report"})
    publish(b"pdf-log", {"format": "pdf", "type": "log"})
    publish(b"log", {"type": "log"})
    publish(b"none", {"format": "zip"})
    publish(b"no-headers", None)
    assert drain(channel, f"{name}.all") == [b"both"]
    assert drain(channel, f"{name}.any") == [b"both", b"pdf-log", b"log"]


def test_exchange_to_exchange_and_unbind(channel, name):
    channel.exchange_declare(f"{name}.edge", "fanout")
    channel.exchange_declare(f"{name}.inner", "direct")
    channel.exchange_bind(f"{name}.inner", f"{name}.edge")
    channel.queue_declare(name, exclusive=True)
    channel.queue_bind(name, f"{name}.inner", "k")
    channel.basic_publish(f"{name}.edge", "k", b"via-e2e")
    channel.basic_publish(f"{name}.edge", "other", b"dropped")
    assert drain(channel, name) == [b"via-e2e"]
    channel.exchange_unbind(f"{name}.inner", f"{name}.edge")
    channel.basic_publish(f"{name}.edge", "k", b"after-unbind")
    channel.queue_unbind(name, f"{name}.inner", "k")
    channel.basic_publish(f"{name}.inner", "k", b"after-queue-unbind")
    assert drain(channel, name) == []
    channel.exchange_delete(f"{name}.edge")
    channel.exchange_delete(f"{name}.inner")
    with pytest.raises(ChannelClosedByBroker) as info:
        channel.exchange_declare(f"{name}.inner", passive=True)
    assert info.value.reply_code == 404


def test_alternate_exchange(channel, name):
    channel.exchange_declare(f"{name}.ae", "fanout", auto_delete=True)
    channel.exchange_declare(
        f"{name}.main", "direct", auto_delete=True, arguments={"alternate-exchange": f"{name}.ae"}
    )
    channel.queue_declare(f"{name}.unrouted", exclusive=True)
    channel.queue_bind(f"{name}.unrouted", f"{name}.ae")
    channel.basic_publish(f"{name}.main", "nobody", b"stray")
    assert drain(channel, f"{name}.unrouted") == [b"stray"]


def test_mandatory_unroutable_is_returned(connection, name):
    returned = []
    channel = connection.channel()
    channel.add_on_return_callback(lambda ch, method, props, body: returned.append((method, body)))
    channel.basic_publish("amq.direct", name, b"lost", mandatory=True)
    channel.basic_publish("amq.direct", name, b"silently-dropped")
    connection.process_data_events(time_limit=0.3)
    [(method, body)] = returned
    assert (method.reply_code, method.reply_text, method.exchange, method.routing_key) == (
        312,
        "NO_ROUTE",
        "amq.direct",
        name,
    )
    assert body == b"lost"


def test_confirms_ack_and_return_with_confirms(connection, name):
    channel = connection.channel()
    channel.confirm_delivery()
    channel.queue_declare(name, exclusive=True)
    for i in range(20):
        channel.basic_publish("", name, b"c%d" % i, PERSISTENT)  # raises unless acked
    with pytest.raises(UnroutableError):
        channel.basic_publish("amq.direct", name, b"nowhere", mandatory=True)
    assert channel.queue_declare(name, passive=True).method.message_count == 20


def test_confirm_nack_when_reject_publish_overflow(connection, name):
    channel = connection.channel()
    channel.confirm_delivery()
    channel.queue_declare(
        name, exclusive=True, arguments={"x-max-length": 2, "x-overflow": "reject-publish"}
    )
    channel.basic_publish("", name, b"1")
    channel.basic_publish("", name, b"2")
    with pytest.raises(NackError):
        channel.basic_publish("", name, b"3")
    assert drain(channel, name) == [b"1", b"2"]


def test_drop_head_overflow_keeps_the_newest(channel, name):
    channel.queue_declare(name, exclusive=True, arguments={"x-max-length": 3})
    for i in range(10):
        channel.basic_publish("", name, b"%d" % i)
    assert drain(channel, name) == [b"7", b"8", b"9"]


def test_priorities(channel, name):
    channel.queue_declare(name, exclusive=True, arguments={"x-max-priority": 10})
    for body, priority in [(b"low", 1), (b"none", None), (b"high", 9), (b"mid", 5), (b"over", 200)]:
        channel.basic_publish("", name, body, pika.BasicProperties(priority=priority))
    assert drain(channel, name) == [b"over", b"high", b"mid", b"low", b"none"]


def test_large_message_spans_frames(channel, name):
    channel.queue_declare(name, exclusive=True)
    body = bytes(range(256)) * 4096 * 3  # 3 MiB, many frames both ways
    channel.basic_publish("", name, body)
    _method, _props, got = channel.basic_get(name, auto_ack=True)
    assert got == body


def test_server_named_queue(channel):
    first = channel.queue_declare("", exclusive=True).method.queue
    second = channel.queue_declare("", exclusive=True).method.queue
    assert first.startswith("amq.gen-") and len(first) == len("amq.gen-") + 22
    assert first != second
    channel.basic_publish("", first, b"to-self")
    assert drain(channel, first) == [b"to-self"]


def test_publish_to_missing_exchange_closes_the_channel_only(connection, name):
    channel = connection.channel()
    channel.basic_publish("no-such-exchange", "k", b"x")
    with pytest.raises(ChannelClosedByBroker) as info:
        channel.queue_declare(name, exclusive=True)
    assert info.value.reply_code == 404
    assert info.value.reply_text == "NOT_FOUND - no exchange 'no-such-exchange' in vhost '/'"
    again = connection.channel()
    assert again.queue_declare(name, exclusive=True).method.queue == name

"""Dead-lettering as RabbitMQ does it: reasons, x-death and x-first-death-* headers."""

from __future__ import annotations

import time

import pika


def wait_get(channel, queue: str, timeout: float = 5.0):
    """basic.get until a message arrives (TTL expiry runs in the background)."""
    deadline = time.monotonic() + timeout
    while True:
        method, props, body = channel.basic_get(queue, auto_ack=True)
        if method is not None:
            return method, props, body
        assert time.monotonic() < deadline, f"nothing arrived in {queue}"
        time.sleep(0.05)


def declare_dlx(channel, name: str, **source_args) -> str:
    """A direct DLX ``name.dlx`` routing key ``name`` into ``name.dead``; the
    source queue ``name`` dead-letters there. Returns the source queue."""
    channel.exchange_declare(f"{name}.dlx", "direct", auto_delete=True)
    channel.queue_declare(f"{name}.dead", exclusive=True)
    channel.queue_bind(f"{name}.dead", f"{name}.dlx", name)
    arguments = {"x-dead-letter-exchange": f"{name}.dlx", **source_args}
    channel.queue_declare(name, exclusive=True, arguments=arguments)
    return name


def check_death(props, *, queue: str, reason: str, exchange: str, routing_key: str, count=1):
    deaths = props.headers["x-death"]
    death = deaths[0]
    assert death["queue"] == queue
    assert death["reason"] == reason
    assert death["count"] == count
    assert death["exchange"] == exchange
    assert death["routing-keys"] == [routing_key]
    assert abs(death["time"].timestamp() - time.time()) < 60
    assert props.headers["x-first-death-queue"] == queue
    assert props.headers["x-first-death-reason"] == reason
    assert props.headers["x-first-death-exchange"] == exchange


def test_dead_letter_on_reject(channel, name):
    queue = declare_dlx(channel, name)
    channel.basic_publish("", queue, b"bad", pika.BasicProperties(headers={"keep": "me"}))
    method, _p, _b = channel.basic_get(queue)
    channel.basic_reject(method.delivery_tag, requeue=False)
    method, props, body = wait_get(channel, f"{name}.dead")
    assert body == b"bad" and props.headers["keep"] == "me"
    assert (method.exchange, method.routing_key) == (f"{name}.dlx", name)
    check_death(props, queue=queue, reason="rejected", exchange="", routing_key=queue)


def test_dead_letter_on_nack_with_routing_key_override(channel, name):
    channel.exchange_declare(f"{name}.dlx", "direct", auto_delete=True)
    channel.queue_declare(f"{name}.dead", exclusive=True)
    channel.queue_bind(f"{name}.dead", f"{name}.dlx", "moved")
    channel.queue_declare(
        name,
        exclusive=True,
        arguments={"x-dead-letter-exchange": f"{name}.dlx", "x-dead-letter-routing-key": "moved"},
    )
    channel.basic_publish("", name, b"x")
    method, _p, _b = channel.basic_get(name)
    channel.basic_nack(method.delivery_tag, requeue=False)
    method, props, _body = wait_get(channel, f"{name}.dead")
    assert method.routing_key == "moved"
    check_death(props, queue=name, reason="rejected", exchange="", routing_key=name)


def test_dead_letter_on_queue_ttl(channel, name):
    queue = declare_dlx(channel, name, **{"x-message-ttl": 100})
    channel.basic_publish("", queue, b"stale")
    _m, props, body = wait_get(channel, f"{name}.dead")
    assert body == b"stale"
    check_death(props, queue=queue, reason="expired", exchange="", routing_key=queue)


def test_dead_letter_on_per_message_ttl(channel, name):
    queue = declare_dlx(channel, name)
    channel.basic_publish("", queue, b"short", pika.BasicProperties(expiration="100"))
    channel.basic_publish("", queue, b"long", pika.BasicProperties(expiration="600000"))
    _m, props, body = wait_get(channel, f"{name}.dead")
    assert body == b"short"
    check_death(props, queue=queue, reason="expired", exchange="", routing_key=queue)
    # RabbitMQ moves the expiration into x-death so the dead letter does not expire again.
    assert props.expiration is None
    assert props.headers["x-death"][0]["original-expiration"] == "100"
    _method, _p, body = channel.basic_get(queue, auto_ack=True)
    assert body == b"long"


def test_expired_message_without_dlx_is_dropped(channel, name):
    channel.queue_declare(name, exclusive=True)
    channel.basic_publish("", name, b"gone", pika.BasicProperties(expiration="50"))
    channel.basic_publish("", name, b"kept")
    time.sleep(0.2)
    _m, _p, body = channel.basic_get(name, auto_ack=True)
    assert body == b"kept"


def test_dead_letter_on_max_length(channel, name):
    queue = declare_dlx(channel, name, **{"x-max-length": 1})
    channel.basic_publish("amq.direct", queue, b"first")  # not routed: no binding
    channel.queue_bind(queue, "amq.direct", queue)
    channel.basic_publish("amq.direct", queue, b"one")
    channel.basic_publish("amq.direct", queue, b"two")
    _m, props, body = wait_get(channel, f"{name}.dead")
    assert body == b"one"
    check_death(props, queue=queue, reason="maxlen", exchange="amq.direct", routing_key=queue)
    _m, _p, body = channel.basic_get(queue, auto_ack=True)
    assert body == b"two"


def test_dead_letter_on_delivery_limit(channel, name):
    queue = declare_dlx(channel, name, **{"x-delivery-limit": 1})
    channel.basic_publish("", queue, b"poison")
    for _ in range(2):
        method, _p, _b = channel.basic_get(queue)
        if method is not None:
            channel.basic_nack(method.delivery_tag, requeue=True)
    assert channel.basic_get(queue) == (None, None, None)
    _m, props, body = wait_get(channel, f"{name}.dead")
    assert body == b"poison"
    check_death(props, queue=queue, reason="delivery_limit", exchange="", routing_key=queue)


def test_x_death_counts_repeated_deaths(channel, name):
    """A message rejected twice from the same queue has one x-death entry, count 2."""
    channel.exchange_declare(f"{name}.dlx", "fanout", auto_delete=True)
    channel.queue_declare(name, exclusive=True, arguments={"x-dead-letter-exchange": f"{name}.dlx"})
    channel.queue_declare(
        f"{name}.retry",
        exclusive=True,
        arguments={"x-dead-letter-exchange": "", "x-dead-letter-routing-key": name},
    )
    channel.queue_bind(f"{name}.retry", f"{name}.dlx")
    channel.basic_publish("", name, b"retry-me")
    for _ in range(2):
        method, _p, _b = wait_get_unacked(channel, name)
        channel.basic_reject(method.delivery_tag, requeue=False)
        method, _p, _b = wait_get_unacked(channel, f"{name}.retry")
        channel.basic_reject(method.delivery_tag, requeue=False)
    _m, props, _body = wait_get(channel, name)
    deaths = {(d["queue"], d["reason"]): d["count"] for d in props.headers["x-death"]}
    assert deaths == {(name, "rejected"): 2, (f"{name}.retry", "rejected"): 2}
    assert props.headers["x-first-death-queue"] == name


def wait_get_unacked(channel, queue: str, timeout: float = 5.0):
    deadline = time.monotonic() + timeout
    while True:
        method, props, body = channel.basic_get(queue)
        if method is not None:
            return method, props, body
        assert time.monotonic() < deadline, f"nothing arrived in {queue}"
        time.sleep(0.02)

"""One message, published with each client library and consumed with each one.

The record mapping (docs/architecture.md, "Record mapping") says how a message
looks in every protocol. Here one neutral message (body, key, application
headers of several types, the shared properties) is published through each
client in :data:`CLIENTS` into a queue that is also a Kafka topic, and read
back through each client: body, key / routing key, headers and properties
must arrive intact, AMQP properties as the well-known headers on the Kafka
side and back. SQS and Pub/Sub join by adding their clients to the table.
"""

from __future__ import annotations

import asyncio
import datetime
import decimal
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import aio_pika
import confluent_kafka
import kafka
import pika
import pytest

from dovecote.core import headers as H
from dovecote.testing import BrokerThread

OFF = {"http": "off", "aws": "off", "pubsub": "off", "registry": "off"}
TIMEOUT = 20.0
WHEN = datetime.datetime(2023, 11, 14, 22, 13, 20, tzinfo=datetime.UTC)


@dataclass
class Message:
    """A message in neutral terms: what every client must see."""

    body: bytes
    key: str
    headers: dict[str, Any]  # application headers, plain Python values
    props: dict[str, str | int]  # well-known header name -> value


SENT = Message(
    body=b'{"order": 1}',
    key="orders.eu",
    headers={
        "h": "v",
        "tenant": "Zürich",
        "n": 42,
        "flag": True,
        "amount": decimal.Decimal("12.5"),
        "blob": b"\x00\xff",
        "when": WHEN,
        "nested": {"a": 1, "b": ["x", 2]},
        "nothing": None,
    },
    props={
        H.CONTENT_TYPE: "application/json",
        H.CONTENT_ENCODING: "utf-8",
        H.MESSAGE_ID: "m-1",
        H.CORRELATION_ID: "c-1",
        H.REPLY_TO: "replies",
        H.TIMESTAMP: 1_700_000_000,  # seconds here; ms in the record header
        H.TYPE: "order.created",
        H.APP_ID: "matrix",
        H.USER_ID: "guest",
        H.PRIORITY: 3,
        H.DELIVERY_MODE: 2,
        H.EXPIRATION: "600000",
    },
)

# The same message as Kafka headers, per the documented encoding: text as
# UTF-8, other types as text with their tag in dovecote.types, the
# properties under their well-known names (timestamp in ms).
KAFKA_HEADERS: list[tuple[str, bytes | None]] = [
    ("content-type", b"application/json"),
    ("content-encoding", b"utf-8"),
    ("message-id", b"m-1"),
    ("correlation-id", b"c-1"),
    ("reply-to", b"replies"),
    ("timestamp", b"1700000000000"),
    ("type", b"order.created"),
    ("app-id", b"matrix"),
    ("user-id", b"guest"),
    ("priority", b"3"),
    ("delivery-mode", b"2"),
    ("expiration", b"600000"),
    ("h", b"v"),
    ("tenant", "Zürich".encode()),
    ("n", b"42"),
    ("flag", b"true"),
    ("amount", b"12.5"),
    ("blob", b"\x00\xff"),
    ("when", b"1700000000"),
    ("nested", b'{"a":{"int64":"1"},"b":{"array":["x",{"int64":"2"}]}}'),
    ("nothing", None),
    (
        "dovecote.types",
        b'{"n":"int64","flag":"bool","amount":"decimal","blob":"bytes",'
        b'"when":"timestamp","nested":"table"}',
    ),
]


def plain(value: Any) -> Any:
    """Compare values across clients: datetimes as epoch seconds, byte strings as bytes."""
    if isinstance(value, datetime.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=datetime.UTC)
        return int(value.timestamp())
    if isinstance(value, bytes | bytearray):
        return bytes(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return int(value)  # pika gives its own int subclass for 64-bit integers
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


@dataclass
class Env:
    broker: BrokerThread
    queue: str  # an AMQP queue, and the Kafka topic of the same name
    exchange: str  # a direct exchange bound to the queue with SENT.key


# --- AMQP clients -------------------------------------------------------------------


def _pika_props(m: Message) -> pika.BasicProperties:
    p = m.props
    return pika.BasicProperties(
        content_type=p[H.CONTENT_TYPE],
        content_encoding=p[H.CONTENT_ENCODING],
        message_id=p[H.MESSAGE_ID],
        correlation_id=p[H.CORRELATION_ID],
        reply_to=p[H.REPLY_TO],
        timestamp=p[H.TIMESTAMP],
        type=p[H.TYPE],
        app_id=p[H.APP_ID],
        user_id=p[H.USER_ID],
        priority=p[H.PRIORITY],
        delivery_mode=p[H.DELIVERY_MODE],
        expiration=p[H.EXPIRATION],
        headers=m.headers,
    )


def pika_publish(env: Env, m: Message) -> None:
    with pika.BlockingConnection(pika.URLParameters(env.broker.amqp_url)) as conn:
        channel = conn.channel()
        channel.confirm_delivery()
        channel.basic_publish(env.exchange, m.key, m.body, _pika_props(m), mandatory=True)


def pika_receive(env: Env) -> Message:
    with pika.BlockingConnection(pika.URLParameters(env.broker.amqp_url)) as conn:
        channel = conn.channel()
        deadline = time.monotonic() + TIMEOUT
        while True:
            method, props, body = channel.basic_get(env.queue, auto_ack=True)
            if method is not None:
                break
            assert time.monotonic() < deadline, "nothing arrived"
            time.sleep(0.05)
        return Message(
            body,
            method.routing_key,
            plain(props.headers or {}),
            _amqp_props(
                content_type=props.content_type,
                content_encoding=props.content_encoding,
                message_id=props.message_id,
                correlation_id=props.correlation_id,
                reply_to=props.reply_to,
                timestamp=props.timestamp,
                type=props.type,
                app_id=props.app_id,
                user_id=props.user_id,
                priority=props.priority,
                delivery_mode=props.delivery_mode,
                expiration=props.expiration,
            ),
        )


def _amqp_props(**values: Any) -> dict[str, Any]:
    names = {
        "content_type": H.CONTENT_TYPE,
        "content_encoding": H.CONTENT_ENCODING,
        "message_id": H.MESSAGE_ID,
        "correlation_id": H.CORRELATION_ID,
        "reply_to": H.REPLY_TO,
        "timestamp": H.TIMESTAMP,
        "type": H.TYPE,
        "app_id": H.APP_ID,
        "user_id": H.USER_ID,
        "priority": H.PRIORITY,
        "delivery_mode": H.DELIVERY_MODE,
        "expiration": H.EXPIRATION,
    }
    return {names[k]: plain(v) for k, v in values.items() if v is not None}


def aio_pika_publish(env: Env, m: Message) -> None:
    async def run() -> None:
        connection = await aio_pika.connect(env.broker.amqp_url)
        async with connection:
            channel = await connection.channel(publisher_confirms=True)
            exchange = await channel.get_exchange(env.exchange)
            p = m.props
            await exchange.publish(
                aio_pika.Message(
                    m.body,
                    headers={  # pamqp wants a bytearray for a byte array
                        k: bytearray(v) if isinstance(v, bytes) else v for k, v in m.headers.items()
                    },
                    content_type=p[H.CONTENT_TYPE],
                    content_encoding=p[H.CONTENT_ENCODING],
                    message_id=p[H.MESSAGE_ID],
                    correlation_id=p[H.CORRELATION_ID],
                    reply_to=p[H.REPLY_TO],
                    timestamp=datetime.datetime.fromtimestamp(p[H.TIMESTAMP], datetime.UTC),
                    type=p[H.TYPE],
                    app_id=p[H.APP_ID],
                    user_id=p[H.USER_ID],
                    priority=p[H.PRIORITY],
                    delivery_mode=aio_pika.DeliveryMode(p[H.DELIVERY_MODE]),
                    expiration=int(p[H.EXPIRATION]) / 1000,
                ),
                m.key,
                mandatory=True,
            )

    asyncio.run(run())


def aio_pika_receive(env: Env) -> Message:
    async def run() -> Message:
        connection = await aio_pika.connect(env.broker.amqp_url)
        async with connection:
            channel = await connection.channel()
            queue = await channel.get_queue(env.queue, ensure=False)
            deadline = time.monotonic() + TIMEOUT
            while True:
                message = await queue.get(no_ack=True, fail=False)
                if message is not None:
                    break
                assert time.monotonic() < deadline, "nothing arrived"
                await asyncio.sleep(0.05)
            return Message(
                message.body,
                message.routing_key or "",
                plain(message.headers),
                _amqp_props(
                    content_type=message.content_type,
                    content_encoding=message.content_encoding,
                    message_id=message.message_id,
                    correlation_id=message.correlation_id,
                    reply_to=message.reply_to,
                    timestamp=message.timestamp,
                    type=message.type,
                    app_id=message.app_id,
                    user_id=message.user_id,
                    priority=message.priority,
                    delivery_mode=int(message.delivery_mode) if message.delivery_mode else None,
                    expiration=str(round(message.expiration * 1000))
                    if message.expiration
                    else None,
                ),
            )

    return asyncio.run(run())


# --- Kafka clients ------------------------------------------------------------------


def _from_kafka(key: bytes | None, value: bytes | None, headers: list) -> Message:
    """A consumed Kafka record in neutral terms: well-known headers are the
    properties (numbers as decimal text, the timestamp in ms), the rest are
    application headers decoded per dovecote.types."""
    headers = [(k, bytes(v) if v is not None else None) for k, v in headers or []]
    view = H.application_headers(headers)
    props: dict[str, Any] = {}
    for name in list(view):
        if name in H.WELL_KNOWN:
            props[name] = view.pop(name)
    for name in (H.PRIORITY, H.DELIVERY_MODE):
        if name in props:
            props[name] = int(props[name])
    if H.TIMESTAMP in props:
        ms = int(props[H.TIMESTAMP])
        assert ms % 1000 == 0
        props[H.TIMESTAMP] = ms // 1000
    return Message(value or b"", (key or b"").decode(), plain(view), props)


def confluent_publish(env: Env, m: Message) -> None:
    assert m is SENT
    producer = confluent_kafka.Producer({"bootstrap.servers": env.broker.kafka_bootstrap})
    producer.produce(env.queue, m.body, m.key.encode(), headers=KAFKA_HEADERS)
    assert producer.flush(TIMEOUT) == 0


def confluent_receive(env: Env) -> Message:
    consumer = confluent_kafka.Consumer(
        {"bootstrap.servers": env.broker.kafka_bootstrap, "group.id": "unused"}
    )
    try:
        consumer.assign(
            [confluent_kafka.TopicPartition(env.queue, 0, confluent_kafka.OFFSET_BEGINNING)]
        )
        deadline = time.monotonic() + TIMEOUT
        while True:
            record = consumer.poll(0.5)
            if record is not None:
                assert record.error() is None, record.error()
                return _from_kafka(record.key(), record.value(), record.headers())
            assert time.monotonic() < deadline, "nothing arrived"
    finally:
        consumer.close()


def kafka_python_publish(env: Env, m: Message) -> Message:
    """kafka-python cannot send a null header value: it sends all the others."""
    assert m is SENT
    headers = [(k, v) for k, v in KAFKA_HEADERS if v is not None]
    producer = kafka.KafkaProducer(bootstrap_servers=env.broker.kafka_bootstrap)
    try:
        producer.send(env.queue, m.body, key=m.key.encode(), headers=headers).get(TIMEOUT)
    finally:
        producer.close()
    return Message(m.body, m.key, {k: v for k, v in m.headers.items() if v is not None}, m.props)


def kafka_python_receive(env: Env) -> Message:
    consumer = kafka.KafkaConsumer(
        bootstrap_servers=env.broker.kafka_bootstrap, enable_auto_commit=False
    )
    try:
        partition = kafka.TopicPartition(env.queue, 0)
        consumer.assign([partition])
        consumer.seek_to_beginning(partition)
        deadline = time.monotonic() + TIMEOUT
        while True:
            for records in consumer.poll(500).values():
                record = records[0]
                return _from_kafka(record.key, record.value, record.headers)
            assert time.monotonic() < deadline, "nothing arrived"
    finally:
        consumer.close()


# --- the matrix ---------------------------------------------------------------------

Publish = Callable[[Env, Message], Message | None]  # what it could send, if not all
Receive = Callable[[Env], Message]

CLIENTS: dict[str, tuple[Publish, Receive]] = {
    "pika": (pika_publish, pika_receive),
    "aio-pika": (aio_pika_publish, aio_pika_receive),
    "confluent-kafka": (confluent_publish, confluent_receive),
    "kafka-python": (kafka_python_publish, kafka_python_receive),
}


@pytest.fixture(scope="module")
def broker(tmp_path_factory) -> Iterator[BrokerThread]:
    with BrokerThread(tmp_path_factory.mktemp("cross") / "data", **OFF) as running:
        yield running


@pytest.fixture
def env(broker: BrokerThread) -> Iterator[Env]:
    name = f"x-{uuid.uuid4().hex[:10]}"
    with pika.BlockingConnection(pika.URLParameters(broker.amqp_url)) as conn:
        channel = conn.channel()
        channel.exchange_declare(name, "direct")
        channel.queue_declare(name, durable=True)
        channel.queue_bind(name, name, SENT.key)
    yield Env(broker, name, name)


def expected(sent: Message) -> Message:
    return Message(
        sent.body,
        sent.key,
        plain(sent.headers),
        {k: plain(v) for k, v in sent.props.items()},
    )


@pytest.mark.parametrize("consumer", list(CLIENTS))
@pytest.mark.parametrize("producer", list(CLIENTS))
def test_message_crosses_intact(env: Env, producer: str, consumer: str) -> None:
    sent = CLIENTS[producer][0](env, SENT) or SENT
    got = CLIENTS[consumer][1](env)
    want = expected(sent)
    assert got.body == want.body
    assert got.key == want.key
    assert got.props == want.props
    assert got.headers == want.headers
    for name, value in got.headers.items():  # same types, not only equal values
        assert type(value) is type(want.headers[name]), name


def test_kafka_consumer_sees_amqp_headers_by_name(env: Env) -> None:
    """The case the issue names: pika headers {"h": "v"} reach Kafka as h = v."""
    with pika.BlockingConnection(pika.URLParameters(env.broker.amqp_url)) as conn:
        conn.channel().basic_publish(
            env.exchange, SENT.key, b"x", pika.BasicProperties(headers={"h": "v"})
        )
    consumer = confluent_kafka.Consumer(
        {"bootstrap.servers": env.broker.kafka_bootstrap, "group.id": "unused"}
    )
    consumer.assign(
        [confluent_kafka.TopicPartition(env.queue, 0, confluent_kafka.OFFSET_BEGINNING)]
    )
    record = consumer.poll(TIMEOUT)
    consumer.close()
    assert record is not None and record.error() is None
    assert ("h", b"v") in record.headers()

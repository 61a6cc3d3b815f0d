"""One message, published with each client library and consumed with each one.

The record mapping (docs/architecture.md, "Record mapping") says how a message
looks in every protocol. Here one neutral message (body, key, application
headers of several types, the shared properties) is published through each
client in :data:`CLIENTS` into a queue that is also a Kafka topic, and read
back through each client: body, key / routing key, headers and properties
must arrive intact, AMQP properties as the well-known headers on the Kafka
side and back. A client that cannot express everything (SQS: no key, three
DataTypes, at most ten attributes a send) says what it sent and how it sees
a message (:data:`VIEWS`). Pub/Sub (google-cloud-pubsub) carries text
attributes only: no key, every value as its text.
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import decimal
import functools
import hashlib
import os
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import aio_pika
import boto3
import confluent_kafka
import kafka
import pika
import pytest
from botocore.config import Config
from google.cloud import pubsub_v1

from dovecote.core import headers as H
from dovecote.testing import BrokerThread

OFF = {"http": "off", "registry": "off"}
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
    pubsub_topic: str  # the Pub/Sub topic over the queue's log topic
    pubsub_subscription: str  # made before anything is published


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
    _props_from_text(props)
    return Message(value or b"", (key or b"").decode(), plain(view), props)


def _props_from_text(props: dict[str, Any]) -> None:
    """Well-known headers read as text, in neutral terms: numbers as ints,
    the timestamp from ms to seconds."""
    for name in (H.PRIORITY, H.DELIVERY_MODE):
        if name in props:
            props[name] = int(props[name])
    if H.TIMESTAMP in props:
        ms = int(props[H.TIMESTAMP])
        assert ms % 1000 == 0
        props[H.TIMESTAMP] = ms // 1000


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


# --- SQS ------------------------------------------------------------------------------


class Number(str):
    """An SQS ``Number`` attribute's text. Stored with the tag ``number`` (any
    size, kept as text), which AMQP and Kafka readers see as that text."""


class TableText(dict):
    """A String attribute holding a table's JSON (typed elements), decoded:
    publishers differ in integer widths (pika's int32, Kafka's int64), so
    the values are compared, not the text."""


def _table_text(text: str) -> TableText | None:
    if not text.startswith("{"):
        return None
    try:
        table = H.decode_typed(H.TABLE, text.encode())
    except ValueError:
        return None
    return TableText(plain(H.plain(table)))


SQS_REGION = "us-east-1"
# The props an SQS sender can set: String attributes of their well-known
# names (SQS has no fields for them). Ten attributes at most per message.
SQS_PROPS = (H.CONTENT_TYPE, H.CORRELATION_ID, H.TIMESTAMP, H.PRIORITY)
SQS_HEADERS = ("h", "tenant", "n", "amount", "blob", "when")


@functools.cache
def _sqs(endpoint: str) -> Any:
    return boto3.client(
        "sqs",
        endpoint_url=endpoint,
        region_name=SQS_REGION,
        aws_access_key_id="AKIDEXAMPLE",
        aws_secret_access_key="secret",
        config=Config(retries={"total_max_attempts": 1}),
    )


def _sqs_url(env: Env) -> tuple[Any, str]:
    """The AMQP-declared queue, found over SQS: it is the same queue."""
    sqs = _sqs(env.broker.aws_endpoint)
    return sqs, sqs.get_queue_url(QueueName=env.queue)["QueueUrl"]


def _attribute(value: Any) -> dict[str, Any]:
    if isinstance(value, bytes):
        return {"DataType": "Binary", "BinaryValue": value}
    if isinstance(value, datetime.datetime):
        return {"DataType": "Number", "StringValue": str(int(value.timestamp()))}
    if isinstance(value, int | decimal.Decimal) and not isinstance(value, bool):
        return {"DataType": "Number", "StringValue": str(value)}
    return {"DataType": "String", "StringValue": str(value)}


def sqs_publish(env: Env, m: Message) -> Message:
    """SendMessage with what SQS can carry: headers as typed attributes, a few
    properties as String attributes; the broker picks the MessageId."""
    sqs, url = _sqs_url(env)
    headers = {name: m.headers[name] for name in SQS_HEADERS}
    props: dict[str, Any] = {name: m.props[name] for name in SQS_PROPS}
    wire = {name: str(v) for name, v in props.items()}  # String attributes, as headers are
    wire[H.TIMESTAMP] = str(props[H.TIMESTAMP] * 1000)  # ms in the header
    attributes = {name: _attribute(v) for name, v in {**headers, **wire}.items()}
    assert len(attributes) <= 10
    sent = sqs.send_message(QueueUrl=url, MessageBody=m.body.decode(), MessageAttributes=attributes)
    assert sent["MD5OfMessageBody"] == hashlib.md5(m.body).hexdigest()
    props[H.MESSAGE_ID] = sent["MessageId"]
    for name, value in headers.items():
        if _attribute(value)["DataType"] == "Number":
            headers[name] = Number(_attribute(value)["StringValue"])
    return Message(m.body, "", headers, props)


def _attribute_value(attr: dict[str, Any]) -> Any:
    data_type = attr["DataType"]
    if data_type == "Binary":
        return bytes(attr["BinaryValue"])
    assert data_type in ("String", "Number"), data_type
    text = attr["StringValue"]
    if data_type == "Number":
        return Number(text)
    return _table_text(text) or text


def _md5_of_attributes(attributes: dict[str, Any]) -> str | None:
    """AWS's digest of message attributes, written here from its documentation
    (SDKs other than boto3 check it): per name in order, length-prefixed name,
    DataType, transport type (1 text, 2 binary) and value."""
    if not attributes:
        return None
    out = bytearray()

    def field(raw: bytes) -> None:
        out.extend(len(raw).to_bytes(4, "big") + raw)

    for name in sorted(attributes):
        attr = attributes[name]
        field(name.encode())
        field(attr["DataType"].encode())
        if "BinaryValue" in attr:
            out.append(2)
            field(bytes(attr["BinaryValue"]))
        else:
            out.append(1)
            field(attr["StringValue"].encode())
    return hashlib.md5(out).hexdigest()


def sqs_receive(env: Env) -> Message:
    """ReceiveMessage (a long poll) for all attributes, then DeleteMessage.
    Well-known names come back as String attributes: they are the props."""
    sqs, url = _sqs_url(env)
    deadline = time.monotonic() + TIMEOUT
    while True:
        got = sqs.receive_message(
            QueueUrl=url, WaitTimeSeconds=2, MessageAttributeNames=["All"], AttributeNames=["All"]
        )
        if got.get("Messages"):
            break
        assert time.monotonic() < deadline, "nothing arrived"
    (message,) = got["Messages"]
    sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    assert message["MD5OfBody"] == hashlib.md5(message["Body"].encode()).hexdigest()
    assert int(message["Attributes"]["SentTimestamp"]) > 0
    attributes = message.get("MessageAttributes", {})
    assert message.get("MD5OfMessageAttributes") == _md5_of_attributes(attributes)
    headers = {k: _attribute_value(v) for k, v in attributes.items()}
    props: dict[str, Any] = {}
    for name in list(headers):
        if name in H.WELL_KNOWN:
            value = headers.pop(name)
            assert type(value) is str, (name, value)  # String attributes, not Number
            props[name] = value
    assert H.MESSAGE_ID not in props  # it is the MessageId
    props[H.MESSAGE_ID] = message["MessageId"]
    _props_from_text(props)
    return Message(message["Body"].encode(), "", headers, props)


def _typed(value: Any) -> H.Element:
    """A plain value as the core's typed element (for the JSON of a table)."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return H.TypedValue(H.BOOL, value)
    if isinstance(value, int):
        return H.TypedValue("int64", value)
    if isinstance(value, decimal.Decimal):
        return H.TypedValue(H.DECIMAL, value)
    if isinstance(value, bytes):
        return H.TypedValue(H.BYTES, value)
    if isinstance(value, dict):
        return H.TypedValue(H.TABLE, {k: _typed(v) for k, v in value.items()})
    return H.TypedValue(H.ARRAY, [_typed(v) for v in value])


def sqs_view(m: Message) -> Message:
    """How an SQS reader sees a neutral message (docs/architecture.md, "Typed
    values", SQS DataType): no key, numbers and timestamps as Number, bools
    as String ``true``, tables as String of their JSON, bytes as Binary,
    nulls left out."""
    headers: dict[str, Any] = {}
    for name, value in m.headers.items():
        if value is None:
            continue
        if isinstance(value, bool):
            headers[name] = "true" if value else "false"
        elif isinstance(value, int | decimal.Decimal):
            headers[name] = Number(value)
        elif isinstance(value, dict):
            # as the text SQS serves, then decoded as sqs_receive decodes it
            text = H.encode_typed(_typed(value)).decode()  # type: ignore[arg-type]
            headers[name] = _table_text(text)
        else:
            headers[name] = value
    return Message(m.body, "", headers, m.props)


def neutral_view(m: Message) -> Message:
    """How an AMQP or Kafka reader sees it: an SQS Number is its text."""
    headers = {k: str(v) if isinstance(v, Number) else v for k, v in m.headers.items()}
    return Message(m.body, m.key, headers, m.props)


def aio_pika_view(m: Message) -> Message:
    """aio-pika reports an absent delivery-mode as 1 and priority as 0 (its defaults)."""
    seen = neutral_view(m)
    return Message(
        seen.body, seen.key, seen.headers, {H.DELIVERY_MODE: 1, H.PRIORITY: 0, **seen.props}
    )


# --- Pub/Sub --------------------------------------------------------------------------

PUBSUB_PROJECT = "matrix"
# What a Pub/Sub publisher sends: attributes are text, so bytes, tables and
# nulls stay behind; the props under their well-known names (timestamp in ms).
PUBSUB_HEADERS = ("h", "tenant", "n", "flag", "amount", "when")


def _attribute_text(value: Any) -> str:
    """A plain value as a Pub/Sub attribute: its text, as the broker writes it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime.datetime):
        return str(int(value.timestamp()))
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    return str(value)


@functools.cache
def _pubsub_clients(host: str) -> tuple[Any, Any]:
    os.environ["PUBSUB_EMULATOR_HOST"] = host
    return pubsub_v1.PublisherClient(), pubsub_v1.SubscriberClient()


def pubsub_publish(env: Env, m: Message) -> Message:
    publisher, _ = _pubsub_clients(env.broker.pubsub_host)
    headers = {name: _attribute_text(m.headers[name]) for name in PUBSUB_HEADERS}
    props = {name: v for name, v in m.props.items() if name != H.MESSAGE_ID}
    wire = {name: str(v) for name, v in props.items()}
    wire[H.TIMESTAMP] = str(m.props[H.TIMESTAMP] * 1000)  # ms in the header
    message_id = publisher.publish(env.pubsub_topic, m.body, **headers, **wire).result(TIMEOUT)
    return Message(m.body, "", headers, {**props, H.MESSAGE_ID: message_id})


def pubsub_receive(env: Env) -> Message:
    """Pull one message and ack it. Well-known names come back as attributes:
    they are the props; the message id is the message_id field."""
    _, subscriber = _pubsub_clients(env.broker.pubsub_host)
    deadline = time.monotonic() + TIMEOUT
    while True:
        got = subscriber.pull(subscription=env.pubsub_subscription, max_messages=1, timeout=5)
        if got.received_messages:
            break
        assert time.monotonic() < deadline, "nothing arrived"
    (received,) = got.received_messages
    subscriber.acknowledge(subscription=env.pubsub_subscription, ack_ids=[received.ack_id])
    message = received.message
    assert message.publish_time.timestamp() > 0
    headers: dict[str, Any] = {k: _table_text(v) or v for k, v in message.attributes.items()}
    props: dict[str, Any] = {}
    for name in list(headers):
        if name in H.WELL_KNOWN:
            props[name] = headers.pop(name)
    assert H.MESSAGE_ID not in props  # it is the message_id
    props[H.MESSAGE_ID] = message.message_id
    _props_from_text(props)
    return Message(message.data, "", headers, props)


def pubsub_view(m: Message) -> Message:
    """How a Pub/Sub reader sees a neutral message: no key, every header as
    its text (bytes in base64, tables as their JSON, decoded as
    pubsub_receive decodes it), nulls left out."""
    headers: dict[str, Any] = {}
    for name, value in m.headers.items():
        if value is None:
            continue
        if isinstance(value, dict):
            headers[name] = _table_text(H.encode_typed(_typed(value)).decode())  # type: ignore[arg-type]
        else:
            headers[name] = _attribute_text(value)
    return Message(m.body, "", headers, m.props)


# --- the matrix ---------------------------------------------------------------------

Publish = Callable[[Env, Message], Message | None]  # what it could send, if not all
Receive = Callable[[Env], Message]

CLIENTS: dict[str, tuple[Publish, Receive]] = {
    "pika": (pika_publish, pika_receive),
    "aio-pika": (aio_pika_publish, aio_pika_receive),
    "confluent-kafka": (confluent_publish, confluent_receive),
    "kafka-python": (kafka_python_publish, kafka_python_receive),
    "sqs": (sqs_publish, sqs_receive),
    "pubsub": (pubsub_publish, pubsub_receive),
}
View = Callable[[Message], Message]  # a neutral message as this consumer sees it
VIEWS: dict[str, View] = {"aio-pika": aio_pika_view, "sqs": sqs_view, "pubsub": pubsub_view}


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
    publisher, subscriber = _pubsub_clients(broker.pubsub_host)
    topic = publisher.topic_path(PUBSUB_PROJECT, name)
    publisher.create_topic(name=topic)  # over the queue's log topic
    subscription = subscriber.subscription_path(PUBSUB_PROJECT, name)
    subscriber.create_subscription(name=subscription, topic=topic)
    yield Env(broker, name, name, topic, subscription)


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
    want = VIEWS.get(consumer, neutral_view)(expected(sent))
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


def test_sqs_reads_mislabelled_kafka_headers_as_what_they_are(env: Env) -> None:
    """A Kafka application writes any bytes under any ``dovecote.types`` tag.
    A value that does not parse as its tag is plain text (or bytes) to every
    reader, SQS included: never a Number that is not a number, nor a String
    that is not text (which failed the whole receive)."""
    headers = [
        ("bad-bool", b"\xff\x00"),
        ("bad-int", b"hello"),
        ("too-big", b"99999999999999999999"),
        ("ctl-table", b'{"a":"\x01"}'),
        ("ok-int", b"-7"),
        (
            "dovecote.types",
            b'{"bad-bool":"bool","bad-int":"int64","too-big":"int64",'
            b'"ctl-table":"table","ok-int":"int8"}',
        ),
        ("message-id", b"\xfe"),  # not text: not a MessageId either
    ]
    producer = confluent_kafka.Producer({"bootstrap.servers": env.broker.kafka_bootstrap})
    producer.produce(env.queue, b"body", b"k", headers=headers)
    assert producer.flush(TIMEOUT) == 0
    sqs, url = _sqs_url(env)
    receive = {"QueueUrl": url, "WaitTimeSeconds": 5, "VisibilityTimeout": 0}
    (message,) = sqs.receive_message(**receive, MessageAttributeNames=["All"])["Messages"]
    assert message["MessageAttributes"] == {
        "bad-bool": {"DataType": "Binary", "BinaryValue": b"\xff\x00"},
        "bad-int": {"DataType": "String", "StringValue": "hello"},
        "too-big": {"DataType": "String", "StringValue": "99999999999999999999"},
        "ctl-table": {"DataType": "Binary", "BinaryValue": b'{"a":"\x01"}'},
        "ok-int": {"DataType": "Number", "StringValue": "-7"},
    }
    assert "\ufffd" not in message["MessageId"]
    (again,) = sqs.receive_message(**receive)["Messages"]
    assert again["MessageId"] == message["MessageId"]  # derived from where it is stored


def test_fifo_group_and_dedup_ids_cross(broker: BrokerThread) -> None:
    """MessageGroupId is ``ordering-key`` (and the record key), MessageDeduplicationId
    is ``deduplication-id``: a Kafka reader sees SQS's, and an SQS reader sees a
    Kafka producer's as its system attributes."""
    name = f"x-{uuid.uuid4().hex[:10]}.fifo"
    sqs = _sqs(broker.aws_endpoint)
    url = sqs.create_queue(QueueName=name, Attributes={"FifoQueue": "true"})["QueueUrl"]
    sent = sqs.send_message(
        QueueUrl=url, MessageBody="from sqs", MessageGroupId="g1", MessageDeduplicationId="d1"
    )
    producer = confluent_kafka.Producer({"bootstrap.servers": broker.kafka_bootstrap})
    producer.produce(
        name,
        b"from kafka",
        b"g2",
        headers=[("ordering-key", b"g2"), ("deduplication-id", b"d2"), ("message-id", b"k-1")],
    )
    assert producer.flush(TIMEOUT) == 0

    consumer = confluent_kafka.Consumer(
        {"bootstrap.servers": broker.kafka_bootstrap, "group.id": "unused"}
    )
    consumer.assign([confluent_kafka.TopicPartition(name, 0, confluent_kafka.OFFSET_BEGINNING)])
    record = consumer.poll(TIMEOUT)
    consumer.close()
    assert record is not None and record.error() is None
    assert (record.key(), record.value()) == (b"g1", b"from sqs")
    seen = dict(record.headers())
    assert seen["ordering-key"] == b"g1"
    assert seen["deduplication-id"] == b"d1"
    assert seen["message-id"] == sent["MessageId"].encode()

    got = sqs.receive_message(
        QueueUrl=url, MaxNumberOfMessages=10, MessageSystemAttributeNames=["All"]
    )["Messages"]
    by_body = {m["Body"]: m for m in got}
    assert set(by_body) == {"from sqs", "from kafka"}
    ours = by_body["from kafka"]
    assert ours["MessageId"] == "k-1"
    assert ours["Attributes"]["MessageGroupId"] == "g2"
    assert ours["Attributes"]["MessageDeduplicationId"] == "d2"
    assert by_body["from sqs"]["Attributes"]["MessageGroupId"] == "g1"


def test_pubsub_ordering_keys_cross(broker: BrokerThread, env: Env) -> None:
    """A Pub/Sub ordering key is the record key (what the core orders by) and
    the well-known ``ordering-key`` header: a Kafka reader sees both, and a
    Kafka record with that header reaches Pub/Sub with its ordering key."""
    options = pubsub_v1.types.PublisherOptions(enable_message_ordering=True)
    os.environ["PUBSUB_EMULATOR_HOST"] = broker.pubsub_host
    publisher = pubsub_v1.PublisherClient(publisher_options=options)
    publisher.publish(env.pubsub_topic, b"from pubsub", ordering_key="k1").result(TIMEOUT)
    consumer = confluent_kafka.Consumer(
        {"bootstrap.servers": broker.kafka_bootstrap, "group.id": "unused"}
    )
    consumer.assign(
        [confluent_kafka.TopicPartition(env.queue, 0, confluent_kafka.OFFSET_BEGINNING)]
    )
    record = consumer.poll(TIMEOUT)
    consumer.close()
    assert record is not None and record.error() is None
    assert (record.key(), record.value()) == (b"k1", b"from pubsub")
    assert (H.ORDERING_KEY, b"k1") in record.headers()

    producer = confluent_kafka.Producer({"bootstrap.servers": broker.kafka_bootstrap})
    producer.produce(env.queue, b"from kafka", key=b"k2", headers=[(H.ORDERING_KEY, b"k2")])
    assert producer.flush(TIMEOUT) == 0
    _, subscriber = _pubsub_clients(broker.pubsub_host)
    seen: dict[bytes, str] = {}
    deadline = time.monotonic() + TIMEOUT
    while len(seen) < 2 and time.monotonic() < deadline:
        got = subscriber.pull(subscription=env.pubsub_subscription, max_messages=10, timeout=5)
        for received in got.received_messages:
            seen[received.message.data] = received.message.ordering_key
        if got.received_messages:
            ids = [m.ack_id for m in got.received_messages]
            subscriber.acknowledge(subscription=env.pubsub_subscription, ack_ids=ids)
    assert seen == {b"from pubsub": "k1", b"from kafka": "k2"}

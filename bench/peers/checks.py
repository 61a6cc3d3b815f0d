"""Tiny produce/consume round trips through each peer with its usual client.

They prove that a started peer is usable by the client a workload will use
(right port, advertised address, auth, persistence mode) before anyone
trusts a benchmark figure from it. Each check is bounded in count and time
and raises on any mismatch.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable

from bench.peers._proc import PeerInfo

N = 5
TIMEOUT = 20.0


def _payloads(tag: str) -> list[bytes]:
    return [f"{tag}-{i}".encode() for i in range(N)]


def check_kafka(peer: PeerInfo) -> str:
    """Create a topic, produce N records with acks=all, consume them back in a group."""
    from confluent_kafka import Consumer, KafkaException, Producer
    from confluent_kafka.admin import AdminClient, NewTopic

    topic = f"check-{uuid.uuid4().hex[:8]}"
    conf = {"bootstrap.servers": peer.address}
    admin = AdminClient(conf)
    for future in admin.create_topics(
        [NewTopic(topic, num_partitions=1, replication_factor=1)]
    ).values():
        future.result(timeout=TIMEOUT)

    delivered: list[str] = []

    def on_delivery(err: object, msg: object) -> None:
        delivered.append("ok" if err is None else str(err))

    producer = Producer({**conf, "acks": "all", "linger.ms": 0})
    sent = _payloads(topic)
    for value in sent:
        producer.produce(topic, value, callback=on_delivery)
    if producer.flush(TIMEOUT) != 0 or delivered != ["ok"] * N:
        raise RuntimeError(f"produce failed: {delivered}")
    del producer, admin  # librdkafka handles: close them now, not when the broker is gone

    # Tansu completes a new group's join only after about half the session
    # timeout (23 s with librdkafka's default 45 s), so keep it short.
    consumer = Consumer(
        {
            **conf,
            "group.id": topic,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "session.timeout.ms": 6000,
        }
    )
    got: list[bytes] = []
    try:
        consumer.subscribe([topic])
        deadline = time.monotonic() + TIMEOUT
        while len(got) < N and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            if msg.error():
                raise KafkaException(msg.error())
            got.append(msg.value())
    finally:
        consumer.close()
    if got != sent:
        raise RuntimeError(f"consumed {got!r}, expected {sent!r}")
    return f"produced+consumed {N} records on {topic}"


def check_amqp(peer: PeerInfo) -> str:
    """Publish N persistent messages with publisher confirms, then consume and ack them."""
    import pika

    params = pika.ConnectionParameters(
        host=peer.host,
        port=peer.port,
        credentials=pika.PlainCredentials("guest", "guest"),
        connection_attempts=3,
        retry_delay=1,
        blocked_connection_timeout=TIMEOUT,
    )
    queue = f"check-{uuid.uuid4().hex[:8]}"
    sent = _payloads(queue)
    with pika.BlockingConnection(params) as conn:
        ch = conn.channel()
        ch.confirm_delivery()
        ch.queue_declare(queue, durable=True)
        for body in sent:
            # Raises UnroutableError / NackError if not confirmed.
            ch.basic_publish("", queue, body, pika.BasicProperties(delivery_mode=2), mandatory=True)
        got: list[bytes] = []
        for method, _props, body in ch.consume(queue, inactivity_timeout=TIMEOUT):
            if method is None:
                break
            got.append(body)
            ch.basic_ack(method.delivery_tag)
            if len(got) == N:
                break
        ch.cancel()
        ch.queue_delete(queue)
    if got != sent:
        raise RuntimeError(f"consumed {got!r}, expected {sent!r}")
    return f"published {N} with confirms, consumed+acked {N} on {queue}"


async def _check_nats(peer: PeerInfo) -> str:
    import nats

    nc = await nats.connect(f"nats://{peer.address}", connect_timeout=5, max_reconnect_attempts=0)
    try:
        # Core NATS: subscribe, publish, receive.
        subject = f"check.{uuid.uuid4().hex[:8]}"
        sub = await nc.subscribe(subject)
        sent = _payloads(subject)
        for body in sent:
            await nc.publish(subject, body)
        await nc.flush(timeout=5)
        got = [(await sub.next_msg(timeout=5)).data for _ in range(N)]
        if got != sent:
            raise RuntimeError(f"core: got {got!r}")

        # JetStream: stream, acked publishes, pull consumer.
        js = nc.jetstream(timeout=TIMEOUT)
        stream = f"CHECK_{uuid.uuid4().hex[:8]}"
        await js.add_stream(name=stream, subjects=[f"{stream}.>"], storage="file")
        js_subject = f"{stream}.events"
        seqs = [(await js.publish(js_subject, body)).seq for body in sent]
        if seqs != list(range(1, N + 1)):
            raise RuntimeError(f"JetStream acks had sequences {seqs}")
        psub = await js.pull_subscribe(js_subject, durable="check", stream=stream)
        msgs = await psub.fetch(N, timeout=TIMEOUT)
        for m in msgs:
            await m.ack()
        if [m.data for m in msgs] != sent:
            raise RuntimeError(f"JetStream: got {[m.data for m in msgs]!r}")
        await js.delete_stream(stream)
    finally:
        await nc.close()
    return f"core pub/sub {N}; JetStream {N} acked publishes (seq 1..{N}), pulled+acked {N}"


def check_nats(peer: PeerInfo) -> str:
    """Core publish/subscribe, then JetStream publish acks and a pull consumer."""
    return asyncio.run(asyncio.wait_for(_check_nats(peer), TIMEOUT * 2))


def check_redis(peer: PeerInfo) -> str:
    """XADD N entries, read them with XREADGROUP in a consumer group, XACK them."""
    import redis

    r = redis.Redis(host=peer.host, port=peer.port, socket_timeout=TIMEOUT)
    try:
        key = f"check-{uuid.uuid4().hex[:8]}"
        sent = _payloads(key)
        r.xgroup_create(key, "g", id="0", mkstream=True)
        ids = [r.xadd(key, {"v": body}) for body in sent]
        reply = r.xreadgroup("g", "c1", {key: ">"}, count=N, block=int(TIMEOUT * 1000))
        entries = reply[0][1] if reply else []
        got = [fields[b"v"] for _id, fields in entries]
        if got != sent:
            raise RuntimeError(f"XREADGROUP got {got!r}")
        acked = r.xack(key, "g", *ids)
        if acked != N:
            raise RuntimeError(f"XACK acknowledged {acked} of {N}")
        aof = r.config_get("appendonly")["appendonly"]
        r.delete(key)
    finally:
        r.close()
    return f"XADD {N}, XREADGROUP {N}, XACK {N} (appendonly={aof})"


def check_sqs(peer: PeerInfo) -> str:
    """Create a queue, send N messages in one batch, receive and delete them all."""
    import boto3

    sqs = boto3.client(
        "sqs",
        endpoint_url=f"http://{peer.address}",
        aws_access_key_id="x",
        aws_secret_access_key="x",
        region_name="us-east-1",
    )
    queue = f"check-{uuid.uuid4().hex[:8]}"
    url = sqs.create_queue(QueueName=queue)["QueueUrl"]
    sent = [body.decode() for body in _payloads(queue)]
    reply = sqs.send_message_batch(
        QueueUrl=url, Entries=[{"Id": str(i), "MessageBody": b} for i, b in enumerate(sent)]
    )
    if reply.get("Failed") or len(reply.get("Successful", [])) != N:
        raise RuntimeError(f"send_message_batch: {reply}")
    got: list[str] = []
    deadline = time.monotonic() + TIMEOUT
    while len(got) < N and time.monotonic() < deadline:
        messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get(
            "Messages", []
        )
        if messages:
            sqs.delete_message_batch(
                QueueUrl=url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                    for i, m in enumerate(messages)
                ],
            )
        got += [m["Body"] for m in messages]
    sqs.delete_queue(QueueUrl=url)
    if sorted(got) != sorted(sent):
        raise RuntimeError(f"received {got!r}, expected {sent!r}")
    return f"sent {N} in one batch, received+deleted {N} on {queue}"


def check_pubsub(peer: PeerInfo) -> str:
    """Create a topic and a subscription, publish N messages, pull and acknowledge them."""
    import os

    before = os.environ.get("PUBSUB_EMULATOR_HOST")
    os.environ["PUBSUB_EMULATOR_HOST"] = peer.address  # read when a client is made
    try:
        from google.cloud import pubsub_v1

        publisher, subscriber = pubsub_v1.PublisherClient(), pubsub_v1.SubscriberClient()
    finally:
        if before is None:
            os.environ.pop("PUBSUB_EMULATOR_HOST", None)
        else:
            os.environ["PUBSUB_EMULATOR_HOST"] = before
    name = f"check-{uuid.uuid4().hex[:8]}"
    topic = publisher.topic_path("bench-check", name)
    sub = subscriber.subscription_path("bench-check", name)
    try:
        publisher.create_topic(name=topic, timeout=TIMEOUT)
        subscriber.create_subscription(name=sub, topic=topic, timeout=TIMEOUT)
        sent = _payloads(name)
        for future in [publisher.publish(topic, data) for data in sent]:
            future.result(timeout=TIMEOUT)
        got: list[bytes] = []
        deadline = time.monotonic() + TIMEOUT
        while len(got) < N and time.monotonic() < deadline:
            reply = subscriber.pull(subscription=sub, max_messages=N, timeout=TIMEOUT)
            if reply.received_messages:
                subscriber.acknowledge(
                    subscription=sub, ack_ids=[m.ack_id for m in reply.received_messages]
                )
            got += [m.message.data for m in reply.received_messages]
        subscriber.delete_subscription(subscription=sub, timeout=TIMEOUT)
        publisher.delete_topic(topic=topic, timeout=TIMEOUT)
    finally:
        publisher.stop()
        subscriber.close()
    if sorted(got) != sorted(sent):
        raise RuntimeError(f"pulled {got!r}, expected {sent!r}")
    return f"published {N}, pulled+acked {N} on {name}"


CHECKS: dict[str, Callable[[PeerInfo], str]] = {
    "dovecote": check_amqp,
    "dovecote-aws": check_sqs,
    "dovecote-pubsub": check_pubsub,
    "moto": check_sqs,
    "pubsub-emulator": check_pubsub,
    "tansu": check_kafka,
    "rabbitmq": check_amqp,
    "nats": check_nats,
    "redis-durable": check_redis,
    "redis-fire-and-forget": check_redis,
}

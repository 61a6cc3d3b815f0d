"""Real client requests to mutate: what confluent-kafka (librdkafka) sends to
a broker while producing (every codec, idempotent), consuming in a group,
committing, and administering topics, captured as raw request frames from
the broker's side of the socket."""

from __future__ import annotations

import struct
import tempfile
import uuid

import confluent_kafka
from confluent_kafka.admin import AdminClient, ConfigResource, NewPartitions, NewTopic

from dovecote.kafka import server
from dovecote.testing import BrokerThread


def _exercise(bootstrap: str) -> None:
    topic = f"capture-{uuid.uuid4().hex[:8]}"
    quiet = {"bootstrap.servers": bootstrap, "log_level": 0}
    admin = AdminClient(quiet)
    admin.create_topics([NewTopic(topic, 2, 1)])[topic].result(30)
    for codec in ("none", "gzip", "snappy", "lz4", "zstd"):
        producer = confluent_kafka.Producer(
            quiet | {"compression.type": codec, "enable.idempotence": True, "linger.ms": 5}
        )
        for i in range(50):
            producer.produce(topic, b"v%d" % i, b"k%d" % (i % 5), headers=[("h", b"x")])
        assert producer.flush(30) == 0
    consumer = confluent_kafka.Consumer(
        quiet
        | {"group.id": f"g-{topic}", "auto.offset.reset": "earliest", "enable.auto.commit": False}
    )
    consumer.subscribe([topic])
    seen = 0
    for _ in range(100):
        msgs = consumer.consume(100, 0.2)
        seen += len(msgs)
        if msgs:
            consumer.commit(asynchronous=False)
        if seen >= 250:
            break
    consumer.close()
    resource = ConfigResource(ConfigResource.Type.TOPIC, topic)
    admin.describe_configs([resource])[resource].result(30)
    resource.set_config("retention.ms", "86400000")
    admin.alter_configs([resource])[resource].result(30)
    admin.create_partitions([NewPartitions(topic, 3)])[topic].result(30)
    admin.list_groups(timeout=30)
    admin.describe_consumer_groups([f"g-{topic}"])[f"g-{topic}"].result(30)
    admin.delete_topics([topic])[topic].result(30)


def capture_client_requests() -> list[bytes]:
    """Every distinct request frame confluent-kafka sent during :func:`_exercise`."""
    frames: dict[bytes, None] = {}
    original = server.KafkaConnection._dispatch

    def tap(self, frame, reserved: int) -> None:
        body = bytes(frame)
        frames.setdefault(struct.pack(">i", len(body)) + body, None)
        original(self, frame, reserved)

    server.KafkaConnection._dispatch = tap  # type: ignore[method-assign]
    try:
        with (
            tempfile.TemporaryDirectory(prefix="dovecote-capture-") as tmp,
            BrokerThread(tmp, amqp="off", http="off") as broker,
        ):
            _exercise(broker.kafka_bootstrap)
    finally:
        server.KafkaConnection._dispatch = original  # type: ignore[method-assign]
    return list(frames)

"""Produce and consume through each real client library, one way for all tests."""

from __future__ import annotations

import asyncio
import time

import aiokafka
import confluent_kafka
import kafka

Record = tuple[bytes, bytes, list[tuple[str, bytes]]]
Consumed = list[tuple[int, bytes, bytes]]  # partition, key, value

CLIENTS = ["confluent", "aiokafka", "kafka-python"]
CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]


def produce(
    client: str, bootstrap: str, topic: str, records: list[Record], codec: str = "none"
) -> None:
    if client == "confluent":
        producer = confluent_kafka.Producer(
            {
                "bootstrap.servers": bootstrap,
                "compression.type": codec,
                "linger.ms": 10,
                "enable.idempotence": True,
                "queue.buffering.max.messages": 200_000,
            }
        )
        errors = []

        def report(err, _msg):
            if err is not None:
                errors.append(err)

        for key, value, headers in records:
            producer.produce(topic, value, key, headers=headers, on_delivery=report)
            producer.poll(0)
        assert producer.flush(60) == 0
        assert not errors, errors[:3]
    elif client == "aiokafka":

        async def run() -> None:
            producer = aiokafka.AIOKafkaProducer(
                bootstrap_servers=bootstrap,
                compression_type=None if codec == "none" else codec,
                linger_ms=10,
                enable_idempotence=True,
                max_batch_size=256 * 1024,
            )
            await producer.start()
            try:
                futures = [
                    await producer.send(topic, value, key=key, headers=headers)
                    for key, value, headers in records
                ]
                await asyncio.gather(*futures)
            finally:
                await producer.stop()

        asyncio.run(run())
    elif client == "kafka-python":
        producer = kafka.KafkaProducer(
            bootstrap_servers=bootstrap,
            acks="all",
            compression_type=None if codec == "none" else codec,
            linger_ms=10,
            batch_size=256 * 1024,
        )
        futures = [
            producer.send(topic, value=value, key=key, headers=headers)
            for key, value, headers in records
        ]
        producer.flush(60)
        for future in futures[-10:]:
            future.get(30)
        producer.close()
    else:
        raise ValueError(client)


def consume(
    client: str,
    bootstrap: str,
    topic: str,
    expected: int,
    group: str | None = None,
    timeout: float = 120,
) -> Consumed:
    """Read ``expected`` records from the beginning (as a group member if ``group``)."""
    out: Consumed = []
    deadline = time.monotonic() + timeout
    if client == "confluent":
        consumer = confluent_kafka.Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": group or "unused",
                "auto.offset.reset": "earliest",
                "enable.auto.commit": group is not None,
            }
        )
        consumer.subscribe([topic])
        try:
            while len(out) < expected and time.monotonic() < deadline:
                for message in consumer.consume(10_000, 1.0):
                    assert message.error() is None, message.error()
                    out.append((message.partition(), message.key(), message.value()))
        finally:
            consumer.close()
    elif client == "aiokafka":

        async def run() -> None:
            consumer = aiokafka.AIOKafkaConsumer(
                topic,
                bootstrap_servers=bootstrap,
                group_id=group,
                auto_offset_reset="earliest",
                enable_auto_commit=group is not None,
            )
            await consumer.start()
            try:
                while len(out) < expected and time.monotonic() < deadline:
                    batch = await consumer.getmany(timeout_ms=1000, max_records=10_000)
                    for tp, messages in batch.items():
                        out.extend((tp.partition, m.key, m.value) for m in messages)
            finally:
                await consumer.stop()

        asyncio.run(run())
    elif client == "kafka-python":
        consumer = kafka.KafkaConsumer(
            topic,
            bootstrap_servers=bootstrap,
            group_id=group,
            auto_offset_reset="earliest",
            enable_auto_commit=group is not None,
        )
        try:
            while len(out) < expected and time.monotonic() < deadline:
                for tp, messages in consumer.poll(timeout_ms=1000, max_records=10_000).items():
                    out.extend((tp.partition, m.key, m.value) for m in messages)
        finally:
            consumer.close()
    else:
        raise ValueError(client)
    return out

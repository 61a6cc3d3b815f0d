"""Seeking by offset and time, and the errors a Kafka user expects to see."""

from __future__ import annotations

import time

import aiokafka
import confluent_kafka
import pytest
from confluent_kafka import KafkaError, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from kafka import KafkaConsumer
from kafka import TopicPartition as KpTopicPartition

from dovecote.testing import BrokerProcess


def create(broker, name: str, partitions: int = 1, **configs) -> None:
    admin = AdminClient({"bootstrap.servers": broker.kafka_bootstrap})
    admin.create_topics([NewTopic(name, partitions, 1, config=configs)])[name].result(30)


def produce_timed(broker, name: str, stamps: list[int]) -> None:
    producer = confluent_kafka.Producer({"bootstrap.servers": broker.kafka_bootstrap})
    for i, ts in enumerate(stamps):
        producer.produce(name, b"%d" % i, timestamp=ts)
    producer.flush(30)


def test_seek_by_offset_and_timestamp_confluent(broker, topic_name):
    create(broker, topic_name)
    base = 1_700_000_000_000
    produce_timed(broker, topic_name, [base + i * 1000 for i in range(100)])
    consumer = confluent_kafka.Consumer(
        {"bootstrap.servers": broker.kafka_bootstrap, "group.id": "seek"}
    )
    [found] = consumer.offsets_for_times([TopicPartition(topic_name, 0, base + 41_500)], timeout=10)
    assert found.offset == 42
    [after] = consumer.offsets_for_times(
        [TopicPartition(topic_name, 0, base + 10_000_000)], timeout=10
    )
    assert after.offset == -1  # nothing that late: the end
    consumer.assign([TopicPartition(topic_name, 0, 77)])
    message = consumer.poll(10)
    assert (
        message.offset() == 77
        and message.value() == b"77"
        and message.timestamp()[1] == base + 77_000
    )
    consumer.seek(TopicPartition(topic_name, 0, 5))
    assert consumer.poll(10).value() == b"5"
    consumer.close()


def test_seek_kafka_python_and_aiokafka(broker, topic_name):
    create(broker, topic_name)
    base = 1_700_000_000_000
    produce_timed(broker, topic_name, [base + i * 1000 for i in range(50)])
    tp = KpTopicPartition(topic_name, 0)
    consumer = KafkaConsumer(bootstrap_servers=broker.kafka_bootstrap)
    assert consumer.offsets_for_times({tp: base + 10_000})[tp].offset == 10
    assert consumer.beginning_offsets([tp])[tp] == 0 and consumer.end_offsets([tp])[tp] == 50
    consumer.assign([tp])
    consumer.seek(tp, 30)
    batch = consumer.poll(timeout_ms=5000)
    assert [m.value for m in batch[tp]][:2] == [b"30", b"31"]
    consumer.close()

    import asyncio

    async def run():
        consumer = aiokafka.AIOKafkaConsumer(bootstrap_servers=broker.kafka_bootstrap)
        await consumer.start()
        atp = aiokafka.TopicPartition(topic_name, 0)
        consumer.assign([atp])
        offsets = await consumer.offsets_for_times({atp: base + 20_000})
        assert offsets[atp].offset == 20
        consumer.seek(atp, 45)
        message = await consumer.getone()
        assert message.offset == 45
        await consumer.stop()

    asyncio.run(run())


def test_message_too_large(broker, topic_name):
    create(broker, topic_name, **{"max.message.bytes": "10000"})
    producer = confluent_kafka.Producer(
        {
            "bootstrap.servers": broker.kafka_bootstrap,
            "message.max.bytes": 2_000_000,
            "compression.type": "none",
        }
    )
    errors = []
    producer.produce(topic_name, b"x" * 50_000, on_delivery=lambda err, msg: errors.append(err))
    producer.flush(30)
    assert errors[0] is not None and errors[0].code() == KafkaError.MSG_SIZE_TOO_LARGE


def test_offset_out_of_range(broker, topic_name):
    create(broker, topic_name)
    produce_timed(broker, topic_name, [int(time.time() * 1000)] * 3)
    consumer = confluent_kafka.Consumer(
        {
            "bootstrap.servers": broker.kafka_bootstrap,
            "group.id": "oor",
            "auto.offset.reset": "error",
        }
    )
    consumer.assign([TopicPartition(topic_name, 0, 1000)])
    message = None
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        message = consumer.poll(1)
        if message is not None and message.error():
            break
    consumer.close()
    assert message is not None and message.error().code() == KafkaError._AUTO_OFFSET_RESET
    assert (
        "Offset out of range" in message.error().str()
        or "out of range" in message.error().str().lower()
    )


def test_unknown_topic_when_auto_create_is_off(tmp_path):
    config = tmp_path / "no-auto.toml"
    config.write_text("auto_create_topics = false\n")
    with BrokerProcess(
        tmp_path / "d", "--config", str(config), listeners={"amqp": "off"}
    ) as broker:
        producer = confluent_kafka.Producer(
            {"bootstrap.servers": broker.kafka_bootstrap, "message.timeout.ms": 3000}
        )
        errors = []
        producer.produce("never-created", b"x", on_delivery=lambda err, msg: errors.append(err))
        producer.flush(10)
        assert errors and errors[0].code() in (
            KafkaError.UNKNOWN_TOPIC_OR_PART,
            KafkaError._UNKNOWN_TOPIC,
            KafkaError._MSG_TIMED_OUT,
        )
        admin = AdminClient({"bootstrap.servers": broker.kafka_bootstrap})
        metadata = admin.list_topics("never-created", timeout=10)
        assert metadata.topics["never-created"].error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART


@pytest.mark.parametrize("client", ["confluent", "kafka-python"])
def test_auto_creation_on_produce(broker, client, topic_name):
    if client == "confluent":
        producer = confluent_kafka.Producer({"bootstrap.servers": broker.kafka_bootstrap})
        producer.produce(topic_name, b"x")
        assert producer.flush(30) == 0
    else:
        from kafka import KafkaProducer

        producer = KafkaProducer(bootstrap_servers=broker.kafka_bootstrap)
        producer.send(topic_name, b"x").get(30)
        producer.close()
    admin = AdminClient({"bootstrap.servers": broker.kafka_bootstrap})
    assert topic_name in admin.list_topics(timeout=10).topics

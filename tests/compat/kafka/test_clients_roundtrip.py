"""100k keyed records with headers, in every compression codec, produced by one
client library and consumed by another: nothing lost, nothing duplicated,
order per key and partition kept, headers intact."""

from __future__ import annotations

import confluent_kafka
import pytest
from confluent_kafka.admin import AdminClient, NewTopic

from .clients import CLIENTS, CODECS, consume, produce
from .conftest import check_order, records

N = 100_000


@pytest.mark.parametrize("codec", CODECS)
@pytest.mark.parametrize("producer_client", CLIENTS)
def test_roundtrip(broker, topic_name, producer_client, codec):
    consumer_client = CLIENTS[(CLIENTS.index(producer_client) + 1) % len(CLIENTS)]
    admin = AdminClient({"bootstrap.servers": broker.kafka_bootstrap})
    admin.create_topics([NewTopic(topic_name, num_partitions=3, replication_factor=1)])[
        topic_name
    ].result(30)
    sent = records(N)
    produce(producer_client, broker.kafka_bootstrap, topic_name, sent, codec)
    got = consume(consumer_client, broker.kafka_bootstrap, topic_name, N)
    assert len(got) == N
    assert sorted(v for _, _, v in got) == sorted(v for _, v, _ in sent)
    check_order(got)
    # A key always lands on one partition.
    partitions_of_key: dict[bytes, set[int]] = {}
    for partition, key, _ in got:
        partitions_of_key.setdefault(key, set()).add(partition)
    assert all(len(p) == 1 for p in partitions_of_key.values())


def test_headers_and_null_values_survive(broker, topic_name):
    producer = confluent_kafka.Producer({"bootstrap.servers": broker.kafka_bootstrap})
    producer.produce(
        topic_name, None, b"tombstone", headers=[("a", b"1"), ("a", b"2"), ("empty", None)]
    )
    producer.produce(topic_name, b"", None)
    producer.flush(30)
    consumer = confluent_kafka.Consumer(
        {
            "bootstrap.servers": broker.kafka_bootstrap,
            "group.id": "h",
            "auto.offset.reset": "earliest",
        }
    )
    consumer.subscribe([topic_name])
    got = []
    while len(got) < 2:
        message = consumer.poll(10)
        assert message is not None and message.error() is None
        got.append(message)
    consumer.close()
    assert got[0].value() is None and got[0].key() == b"tombstone"
    assert got[0].headers() == [("a", b"1"), ("a", b"2"), ("empty", None)]
    assert got[1].value() == b"" and got[1].key() is None

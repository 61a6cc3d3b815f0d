"""What no client library sends on purpose: corrupt batches, bad frames,
unknown versions, and pipelined requests whose answers must stay in order."""

from __future__ import annotations

import time

import confluent_kafka
from confluent_kafka.admin import AdminClient, NewTopic
from kio.schema.errors import ErrorCode

from dovecote.storage.batch import Record, build_batch

from .raw import RawKafka, ms

PRODUCE, FETCH, METADATA, API_VERSIONS = 0, 1, 3, 18


def produce_body(topic: str, records: bytes, acks: int = 1) -> dict:
    return {
        "transactional_id": None,
        "acks": acks,
        "timeout": ms(5000),
        "topic_data": [{"name": topic, "partition_data": [{"index": 0, "records": records}]}],
    }


def fetch_body(topic: str, offset: int, wait_ms: int, min_bytes: int = 1) -> dict:
    return {
        "replica_id": -1,
        "max_wait": ms(wait_ms),
        "min_bytes": min_bytes,
        "max_bytes": 1 << 20,
        "isolation_level": 0,
        "topics": [
            {
                "topic": topic,
                "partitions": [
                    {
                        "partition": 0,
                        "fetch_offset": offset,
                        "log_start_offset": -1,
                        "partition_max_bytes": 1 << 20,
                    }
                ],
            }
        ],
        "forgotten_topics_data": [],
        "rack_id": "",
    }


def make_topic(broker, name: str) -> None:
    admin = AdminClient({"bootstrap.servers": broker.kafka_bootstrap})
    admin.create_topics([NewTopic(name, 1, 1)])[name].result(30)


def still_serving(broker) -> bool:
    admin = AdminClient({"bootstrap.servers": broker.kafka_bootstrap})
    return admin.list_topics(timeout=10) is not None


def test_corrupt_batch_gets_corrupt_message(broker, topic_name):
    make_topic(broker, topic_name)
    raw = RawKafka(broker.kafka_bootstrap)
    batch = bytearray(build_batch([Record(b"hello")]))
    batch[-1] ^= 0xFF
    response = raw.call(PRODUCE, 9, produce_body(topic_name, bytes(batch)))
    partition = response.responses[0].partition_responses[0]
    assert partition.error_code == ErrorCode.corrupt_message
    good = raw.call(PRODUCE, 9, produce_body(topic_name, build_batch([Record(b"hello")])))
    assert good.responses[0].partition_responses[0].error_code == ErrorCode.none
    raw.close()


def test_oversized_and_garbage_frames_close_only_that_connection(broker):
    victim = RawKafka(broker.kafka_bootstrap)
    bystander = RawKafka(broker.kafka_bootstrap)
    victim.send_raw(b"\x7f\xff\xff\xff" + b"x" * 100)  # claims a 2 GiB request
    assert victim.closed_by_peer()
    garbage = RawKafka(broker.kafka_bootstrap)
    garbage.send_raw(
        b"\x00\x00\x00\x08" + b"\x00\x00\x00\x00\xff\xff\xff\xff"
    )  # produce v0: too old
    assert garbage.closed_by_peer()
    truncated = RawKafka(broker.kafka_bootstrap)
    truncated.send_raw(
        b"\x00\x00\x00\x0a" + b"\x00\x03\x00\x0c\x00\x00\x00\x01\x00\x99"
    )  # metadata, bad body
    assert truncated.closed_by_peer()
    response = bystander.call(
        METADATA,
        12,
        {
            "topics": None,
            "allow_auto_topic_creation": False,
            "include_topic_authorized_operations": False,
        },
    )
    assert response.brokers[0].node_id == 0
    assert still_serving(broker)


def test_unsupported_api_versions_version_is_answered_with_our_ranges(broker):
    raw = RawKafka(broker.kafka_bootstrap)
    # ApiVersions v99: the broker answers in v0 with UNSUPPORTED_VERSION and its ranges.
    raw.send_raw(b"\x00\x00\x00\x0a" + b"\x00\x12\x00\x63\x00\x00\x00\x07\xff\xff")
    correlation, body = raw.receive(API_VERSIONS, 0, flexible_header=False)
    assert correlation == 7
    assert body.error_code == ErrorCode.unsupported_version
    keys = {k.api_key: (k.min_version, k.max_version) for k in body.api_keys}
    assert keys[PRODUCE][0] == 3 and keys[FETCH][1] >= 12
    raw.close()


def test_responses_stay_in_request_order_and_long_polls_do_not_block_others(broker, topic_name):
    make_topic(broker, topic_name)
    poller = RawKafka(broker.kafka_bootstrap)
    # A fetch that waits up to 3 s, then a metadata request behind it on the same connection.
    first = poller.send(FETCH, 12, fetch_body(topic_name, 0, 3000))
    second = poller.send(
        METADATA,
        12,
        {
            "topics": None,
            "allow_auto_topic_creation": False,
            "include_topic_authorized_operations": False,
        },
    )
    # Meanwhile another connection is served at once.
    started = time.monotonic()
    producer = confluent_kafka.Producer(
        {"bootstrap.servers": broker.kafka_bootstrap, "linger.ms": 0}
    )
    producer.produce(topic_name, b"wake up")
    assert producer.flush(10) == 0
    assert time.monotonic() - started < 2.5
    # The fetch wakes up on the new data and answers first, then the metadata.
    correlation, fetched = poller.receive(FETCH, 12)
    assert correlation == first
    assert fetched.responses[0].partitions[0].records
    correlation, _ = poller.receive(METADATA, 12)
    assert correlation == second
    assert time.monotonic() - started < 2.5
    poller.close()


def test_acks_zero_gets_no_response(broker, topic_name):
    make_topic(broker, topic_name)
    raw = RawKafka(broker.kafka_bootstrap)
    raw.send(PRODUCE, 9, produce_body(topic_name, build_batch([Record(b"quiet")]), acks=0))
    answer = raw.call(
        METADATA,
        12,
        {
            "topics": [{"name": topic_name, "topic_id": None}],
            "allow_auto_topic_creation": False,
            "include_topic_authorized_operations": False,
        },
    )
    assert answer.topics[0].name == topic_name  # the metadata answer is the first one back
    raw.close()

"""Bytes a real client library builds decode to the right fields, and back.

kafka-python ships two independent protocol implementations: hand-written
structs (``kafka.protocol.old``) and classes generated from Kafka's JSON
schemas (``kafka.protocol.<area>``). Requests they encode go through
FrameReader + decode_request; responses we encode go through their decoders.
"""

from __future__ import annotations

import uuid
import warnings
from dataclasses import fields
from datetime import timedelta

import pytest

from dovecote.kafka.codec import (
    API_VERSIONS,
    ErrorCode,
    FrameReader,
    Request,
    api_versions_response,
    decode_request,
    encode_response,
    response_module,
    unsupported_api_versions_response,
)
from dovecote.storage.batch import Record, build_batch
from tests.unit.kafka.apis import SUPPORTED

with warnings.catch_warnings():
    # kafka-python 3 reads its JSON schemas with a deprecated importlib.resources call.
    warnings.simplefilter("ignore", DeprecationWarning)
    from kafka.protocol.consumer import FetchRequest
    from kafka.protocol.consumer.group import (
        HeartbeatRequest,
        JoinGroupRequest,
        OffsetCommitRequest,
    )
    from kafka.protocol.metadata import (
        ApiVersionsRequest,
        ApiVersionsResponse,
        MetadataRequest,
        MetadataResponse,
    )
    from kafka.protocol.old import api_versions as old_api_versions
    from kafka.protocol.old import fetch as old_fetch
    from kafka.protocol.old import metadata as old_metadata
    from kafka.protocol.old import produce as old_produce
    from kafka.protocol.producer import ProduceRequest, ProduceResponse


BATCH = build_batch([Record(b"v1", key=b"k1"), Record(b"v2", headers=[("h", b"x")])], timestamp=1)
TOPIC_ID = uuid.UUID("6ba7b810-9dad-11d1-80b4-00c04fd430c8")


def build(cls, **values):
    """A kio entity from those ``values`` its version has."""
    return cls(**{f.name: values[f.name] for f in fields(cls) if f.name in values})


def decode_client_bytes(message, correlation_id: int = 11) -> Request:
    """What the broker makes of ``message`` as kafka-python sends it."""
    message.with_header(correlation_id=correlation_id, client_id="kafka-python")
    frames = FrameReader(1 << 24).feed(message.encode(header=True, framed=True))
    assert len(frames) == 1
    request = decode_request(frames[0], SUPPORTED)
    assert (request.correlation_id, request.client_id) == (correlation_id, "kafka-python")
    return request


# --- requests -----------------------------------------------------------------


@pytest.mark.parametrize("version", range(0, 14))
def test_metadata_request(version):
    topic = MetadataRequest.MetadataRequestTopic
    topics = [topic(name="orders"), topic(name="payments")]
    if version >= 10:
        topics = [topic(name="orders", topic_id=TOPIC_ID), topic(name="payments")]
    message = MetadataRequest[version](topics=topics, allow_auto_topic_creation=False)
    request = decode_client_bytes(message)
    assert (request.api_key, request.api_version) == (3, version)
    assert [t.name for t in request.body.topics] == ["orders", "payments"]
    if version >= 10:
        assert [t.topic_id for t in request.body.topics] == [TOPIC_ID, None]
    if version >= 4:
        assert request.body.allow_auto_topic_creation is False


@pytest.mark.parametrize("version", [0, 1, 4, 8])
def test_metadata_request_hand_written(version):
    cls = getattr(old_metadata, f"MetadataRequest_v{version}")
    args = (["orders"], True) if version >= 4 else (["orders"],)
    if version >= 8:
        args = (["orders"], True, False, True)
    request = decode_client_bytes(cls(*args))
    assert [t.name for t in request.body.topics] == ["orders"]
    if version >= 8:
        assert request.body.include_topic_authorized_operations is True


@pytest.mark.parametrize("version", range(3, 14))
def test_produce_request(version):
    data = ProduceRequest.TopicProduceData
    partition = data.PartitionProduceData(index=2, records=BATCH)
    by = {"topic_id": TOPIC_ID} if version >= 13 else {"name": "orders"}
    message = ProduceRequest[version](
        transactional_id="tx-1",
        acks=-1,
        timeout_ms=30000,
        topic_data=[data(partition_data=[partition], **by)],
    )
    request = decode_client_bytes(message)
    body = request.body
    assert (request.api_key, request.api_version) == (0, version)
    assert (body.transactional_id, body.acks, body.timeout) == ("tx-1", -1, timedelta(seconds=30))
    (topic,) = body.topic_data
    assert topic.topic_id == TOPIC_ID if version >= 13 else topic.name == "orders"
    (part,) = topic.partition_data
    assert part.index == 2 and bytes(part.records) == BATCH


@pytest.mark.parametrize("version", [3, 7, 8])
def test_produce_request_hand_written(version):
    cls = getattr(old_produce, f"ProduceRequest_v{version}")
    request = decode_client_bytes(cls(None, 1, 1500, [("orders", [(0, BATCH), (1, BATCH)])]))
    body = request.body
    assert (body.transactional_id, body.acks, body.timeout) == (None, 1, timedelta(seconds=1.5))
    assert [(p.index, bytes(p.records)) for p in body.topic_data[0].partition_data] == [
        (0, BATCH),
        (1, BATCH),
    ]


@pytest.mark.parametrize("version", range(4, 19))
def test_fetch_request(version):
    topic = FetchRequest.FetchTopic
    partition = topic.FetchPartition(
        partition=1, fetch_offset=42, log_start_offset=-1, partition_max_bytes=1 << 20
    )
    by = {"topic_id": TOPIC_ID} if version >= 13 else {"topic": "orders"}
    message = FetchRequest[version](
        replica_id=-1,
        max_wait_ms=500,
        min_bytes=1,
        max_bytes=50 << 20,
        isolation_level=1,
        session_id=0,
        session_epoch=-1,
        topics=[topic(partitions=[partition], **by)],
        forgotten_topics_data=[],
        rack_id="rack-a",
    )
    request = decode_client_bytes(message)
    body = request.body
    assert body.max_wait == timedelta(milliseconds=500) and body.max_bytes == 50 << 20
    assert body.isolation_level == 1
    (got,) = body.topics
    assert got.topic_id == TOPIC_ID if version >= 13 else got.topic == "orders"
    (part,) = got.partitions
    assert (part.partition, part.fetch_offset, part.partition_max_bytes) == (1, 42, 1 << 20)
    if version >= 11:
        assert body.rack_id == "rack-a"


@pytest.mark.parametrize("version", [4, 5, 7, 10])
def test_fetch_request_hand_written(version):
    cls = getattr(old_fetch, f"FetchRequest_v{version}")
    partition = {4: (3, 77, 1024), 10: (3, 0, 77, -1, 1024)}.get(version, (3, 77, -1, 1024))
    topics = [("orders", [partition])]
    if version >= 7:
        message = cls(-1, 100, 1, 1 << 20, 0, 5, 6, topics, [])
    else:
        message = cls(-1, 100, 1, 1 << 20, 0, topics)
    body = decode_client_bytes(message).body
    (part,) = body.topics[0].partitions
    assert (body.topics[0].topic, part.partition, part.fetch_offset) == ("orders", 3, 77)
    if version >= 7:
        assert (body.session_id, body.session_epoch) == (5, 6)


@pytest.mark.parametrize("version", range(0, 5))
def test_api_versions_request(version):
    message = ApiVersionsRequest[version](
        client_software_name="kafka-python", client_software_version="3.0.12"
    )
    request = decode_client_bytes(message)
    assert (request.api_key, request.api_version) == (API_VERSIONS, version)
    if version >= 3:  # flexible body behind a v2 request header
        assert request.body.client_software_name == "kafka-python"
        assert request.flexible


@pytest.mark.parametrize("version", [0, 3])
def test_api_versions_request_hand_written(version):
    cls = getattr(old_api_versions, f"ApiVersionsRequest_v{version}")
    message = cls("kafka-python", "3.0") if version >= 3 else cls()
    request = decode_client_bytes(message)
    if version >= 3:
        assert request.body.client_software_version == "3.0"


def test_group_requests():
    join = JoinGroupRequest[9](
        group_id="g",
        session_timeout_ms=10000,
        rebalance_timeout_ms=30000,
        member_id="",
        group_instance_id=None,
        protocol_type="consumer",
        protocols=[JoinGroupRequest.JoinGroupRequestProtocol(name="range", metadata=b"\x00\x01")],
        reason="starting",
    )
    body = decode_client_bytes(join).body
    assert body.session_timeout == timedelta(seconds=10)
    assert [(p.name, p.metadata) for p in body.protocols] == [("range", b"\x00\x01")]
    assert body.reason == "starting"
    heartbeat = HeartbeatRequest[4](
        group_id="g", generation_id=3, member_id="m-1", group_instance_id=None
    )
    assert decode_client_bytes(heartbeat).body.member_id == "m-1"
    topic = OffsetCommitRequest.OffsetCommitRequestTopic
    commit = OffsetCommitRequest[8](
        group_id="g",
        generation_id_or_member_epoch=3,
        member_id="m-1",
        group_instance_id=None,
        topics=[
            topic(
                name="orders",
                partitions=[
                    topic.OffsetCommitRequestPartition(
                        partition_index=0, committed_offset=99, committed_metadata=None
                    )
                ],
            )
        ],
    )
    (part,) = decode_client_bytes(commit).body.topics[0].partitions
    assert (part.partition_index, part.committed_offset) == (0, 99)


# --- responses ----------------------------------------------------------------


@pytest.mark.parametrize("version", range(0, 5))
def test_api_versions_response_decodes_in_kafka_python(version):
    body = api_versions_response({0: (3, 13), 1: (4, 18), 18: (0, 4)}, version=version)
    frame = encode_response(Request(API_VERSIONS, version, 21, None, None), body)
    decoded = ApiVersionsResponse[version].decode(frame, header=True, framed=True)
    assert decoded.header.correlation_id == 21
    assert decoded.error_code == 0
    assert [(k.api_key, k.min_version, k.max_version) for k in decoded.api_keys] == [
        (0, 3, 13),
        (1, 4, 18),
        (18, 0, 4),
    ]


@pytest.mark.parametrize("asked", [3, 4])
def test_unsupported_api_versions_response_decodes_as_kafka_python_expects(asked):
    frame = unsupported_api_versions_response(8, {18: (0, 2), 3: (0, 12)})
    decoded = ApiVersionsResponse[asked].decode(frame, header=True, framed=True)
    assert decoded.error_code == ErrorCode.unsupported_version
    assert {k.api_key: k.max_version for k in decoded.api_keys} == {3: 12, 18: 2}
    old = old_api_versions.ApiVersionsResponse_v3.decode(frame, header=True, framed=True)
    assert old.error_code == 35


def test_metadata_response_decodes_in_kafka_python():
    m = response_module(3, 12)
    body = m.MetadataResponse(
        throttle_time=timedelta(0),
        brokers=(m.MetadataResponseBroker(node_id=1, host="localhost", port=9092, rack=None),),
        cluster_id="dovecote",
        controller_id=1,
        topics=(
            m.MetadataResponseTopic(
                error_code=ErrorCode.none,
                name="orders",
                topic_id=TOPIC_ID,
                is_internal=False,
                partitions=(
                    m.MetadataResponsePartition(
                        error_code=ErrorCode.none,
                        partition_index=0,
                        leader_id=1,
                        leader_epoch=0,
                        replica_nodes=(1,),
                        isr_nodes=(1,),
                        offline_replicas=(),
                    ),
                ),
                topic_authorized_operations=-2147483648,
            ),
        ),
    )
    frame = encode_response(Request(3, 12, 5, None, None), body)
    decoded = MetadataResponse[12].decode(frame, header=True, framed=True)
    assert decoded.header.correlation_id == 5
    assert [(b.node_id, b.host, b.port) for b in decoded.brokers] == [(1, "localhost", 9092)]
    (topic,) = decoded.topics
    assert (topic.name, topic.topic_id, topic.partitions[0].isr_nodes) == (
        "orders",
        TOPIC_ID,
        [1],
    )


@pytest.mark.parametrize("version", [3, 8, 9, 13])
def test_produce_response_decodes_in_kafka_python(version):
    m = response_module(0, version)
    partition = build(
        m.PartitionProduceResponse,
        index=0,
        error_code=ErrorCode.none,
        base_offset=100,
        log_append_time=None,
        log_start_offset=0,
        record_errors=(),
        error_message=None,
    )
    by = {"topic_id": TOPIC_ID} if version >= 13 else {"name": "orders"}
    body = m.ProduceResponse(
        responses=(m.TopicProduceResponse(partition_responses=(partition,), **by),),
        throttle_time=timedelta(0),
    )
    frame = encode_response(Request(0, version, 6, None, None), body)
    decoded = ProduceResponse[version].decode(frame, header=True, framed=True)
    (topic,) = decoded.responses
    assert topic.partition_responses[0].base_offset == 100

"""Zero-copy Produce decoding: kio's entities, records as views of the frame."""

from __future__ import annotations

import random
import struct
import uuid
import warnings
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dovecote.kafka.codec import (
    KIO_VERSIONS,
    ZERO_COPY_MIN_FRAME,
    FrameReader,
    MalformedRequest,
    decode_produce_request,
    decode_request,
    request_class,
)
from dovecote.kafka.codec.produce import _entity_classes
from dovecote.kafka.codec.schemas import body_reader
from dovecote.storage.batch import Record, build_batch
from tests.unit.kafka.apis import SUPPORTED, encode_body, request_frame
from tests.unit.kafka.samples import sample
from tests.unit.kafka.test_fuzz import MUTATIONS, decode_or_codec_error, mutate

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)  # kafka-python's schema loading
    from kafka.protocol.producer import ProduceRequest as KafkaPythonProduce

VERSIONS = range(KIO_VERSIONS[0][0], KIO_VERSIONS[0][1] + 1)
BIG = build_batch([Record(b"x" * 140_000), Record(b"y" * 140_000)], timestamp=1)


def produce(version: int, records_by_partition, name="orders", transactional_id=None):
    request_cls, topic_cls, partition_cls = _entity_classes(version)
    partitions = tuple(partition_cls(index=i, records=r) for i, r in records_by_partition)
    topic = (
        topic_cls(topic_id=uuid.UUID(int=7), partition_data=partitions)
        if version >= 13
        else topic_cls(name=name, partition_data=partitions)
    )
    return request_cls(
        transactional_id=transactional_id,
        acks=-1,
        timeout=timedelta(seconds=30),
        topic_data=(topic,),
    )


@pytest.mark.parametrize("version", VERSIONS)
def test_same_entities_as_kio_on_random_requests(version):
    cls = request_class(0, version)
    rng = random.Random(version)
    for _ in range(40):
        raw = encode_body(sample(cls, rng))
        expected, size = body_reader(0, version)(raw, 0)
        got, end = decode_produce_request(raw, 0, version)
        assert (got, end) == (expected, size)


@pytest.mark.parametrize("version", VERSIONS)
def test_records_are_views_of_the_frame(version):
    frame = request_frame(produce(version, [(0, BIG), (1, None), (2, b"")]))
    assert len(frame) >= ZERO_COPY_MIN_FRAME
    request = decode_request(frame, SUPPORTED)
    big, null, empty = request.body.topic_data[0].partition_data
    assert isinstance(big.records, memoryview) and big.records.obj is frame
    assert big.records == BIG and big.records.readonly
    assert null.records is None and bytes(empty.records) == b""
    assert (
        request.body
        == body_reader(0, version)(frame, len(frame) - len(encode_body(request.body)))[0]
    )


def test_small_requests_stay_on_kio_with_bytes():
    request = decode_request(request_frame(produce(9, [(0, b"small")])), SUPPORTED)
    assert type(request.body.topic_data[0].partition_data[0].records) is bytes


def test_big_request_from_kafka_python_through_the_frame_reader():
    data = KafkaPythonProduce.TopicProduceData
    message = KafkaPythonProduce[11](
        transactional_id=None,
        acks=1,
        timeout_ms=5000,
        topic_data=[
            data(name="orders", partition_data=[data.PartitionProduceData(index=0, records=BIG)])
        ],
    )
    message.with_header(correlation_id=3, client_id="kp")
    wire = message.encode(header=True, framed=True)
    reader = FrameReader(1 << 20)
    frames = [f for i in range(0, len(wire), 65536) for f in reader.feed(wire[i : i + 65536])]
    (request,) = [decode_request(f, SUPPORTED) for f in frames]
    (part,) = request.body.topic_data[0].partition_data
    assert isinstance(part.records, memoryview) and part.records == BIG


@pytest.mark.parametrize("version", [3, 9, 13])
def test_every_truncation_is_malformed(version):
    frame = request_frame(produce(version, [(0, BIG), (1, b"abc")], transactional_id="t"))
    header = len(frame) - len(encode_body(produce(version, [(0, BIG), (1, b"abc")], "orders", "t")))
    body = frame[header:]
    for cut in [*range(0, 60), *range(len(body) - 60, len(body))]:
        with pytest.raises(MalformedRequest):
            decode_produce_request(body[:cut], 0, version)


@pytest.mark.parametrize(
    ("version", "body"),
    [
        (3, struct.pack(">hhii", -1, 1, 100, 1) + struct.pack(">h", -1) + struct.pack(">i", 0)),
        (3, struct.pack(">hhii", -2, 1, 100, 0)),
        (3, struct.pack(">hhii", -1, 1, 100, -5)),
        (
            3,
            struct.pack(">hhii", -1, 1, 100, 1)
            + b"\x00\x01t"
            + struct.pack(">ii", 1, 0)
            + b"\xff\xff\xff\xfe",
        ),
        (9, b"\x00" + struct.pack(">hi", 1, 100) + b"\x02\x02\xff"),
    ],
)
def test_malformed_fields(version, body):
    with pytest.raises(MalformedRequest):
        decode_produce_request(body, 0, version)


def test_trailing_bytes_after_a_big_request_are_ignored():
    frame = request_frame(produce(9, [(0, BIG)]))
    assert decode_request(frame + b"\x00", SUPPORTED).body == decode_request(frame, SUPPORTED).body


def test_unknown_tags_are_skipped():
    frame = request_frame(produce(9, [(0, BIG)]))
    tagged = frame[:-1] + b"\x01\x05\x02ab"  # request-level tag section
    assert decode_request(tagged, SUPPORTED).body == decode_request(frame, SUPPORTED).body


BIG_FRAMES = [
    request_frame(produce(v, [(0, BIG), (3, b"tail")], transactional_id="tx")) for v in (3, 9, 13)
]


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.sampled_from(BIG_FRAMES), MUTATIONS)
def test_mutated_big_requests_only_raise_codec_errors(frame, mutations):
    decode_or_codec_error(mutate(frame, mutations))


@pytest.mark.parametrize("frame", BIG_FRAMES, ids=["v3", "v9", "v13"])
def test_every_structural_byte_mutated(frame):
    positions = [*range(0, 60), *range(len(frame) - 30, len(frame))]
    for at in positions:
        for value in (0x00, 0x01, 0x7F, 0x80, 0xFF):
            data = bytearray(frame)
            data[at] = value
            decode_or_codec_error(bytes(data))


@pytest.mark.parametrize("version", [3, 9])
def test_null_topic_or_partition_array_is_malformed(version):
    null = b"\x00" if version >= 9 else struct.pack(">i", -1)
    head = (b"\x00" if version >= 9 else struct.pack(">h", -1)) + struct.pack(">hi", 1, 100)
    with pytest.raises(MalformedRequest, match="non-nullable"):
        decode_produce_request(head + null, 0, version)
    name = b"\x02t" if version >= 9 else b"\x00\x01t"
    one = b"\x02" if version >= 9 else struct.pack(">i", 1)
    with pytest.raises(MalformedRequest, match="non-nullable"):
        decode_produce_request(head + one + name + null, 0, version)

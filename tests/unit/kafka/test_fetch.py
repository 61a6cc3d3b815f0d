"""encode_fetch_response: kio's bytes exactly (kio's own writer as the reference),
record buffers passed through uncopied."""

from __future__ import annotations

import struct
import uuid
import warnings
from dataclasses import fields
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dovecote.kafka.codec import (
    KIO_VERSIONS,
    ErrorCode,
    Request,
    RequestHeader,
    encode_fetch_response,
    response_module,
)
from dovecote.storage.batch import Record, build_batch
from tests.unit.kafka.apis import encode_body

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)  # kafka-python's schema loading
    from kafka.protocol.consumer import FetchResponse

VERSIONS = range(KIO_VERSIONS[1][0], KIO_VERSIONS[1][1] + 1)
INT32 = st.integers(-(2**31), 2**31 - 1)
INT64 = st.integers(-(2**63), 2**63 - 1)
BUFFER = st.binary(max_size=64) | st.binary(max_size=64).map(
    lambda b: memoryview(b"--" + b + b"--")[2:-2]
)
RECORDS = st.none() | BUFFER | st.lists(BUFFER, max_size=3)
ABORTED = st.none() | st.lists(st.tuples(INT64, INT64), max_size=2)
PARTITION = st.tuples(
    INT32, st.sampled_from(list(ErrorCode)), INT64, INT64, INT64, ABORTED, INT32, RECORDS
)


def build(cls, **values):
    return cls(**{f.name: values[f.name] for f in fields(cls) if f.name in values})


def kio_response(version, throttle_ms, error_code, session_id, topics):
    """The same response as a kio entity."""
    m = response_module(1, version)
    kio_topics = []
    for topic, partitions in topics:
        kio_partitions = []
        for index, code, hw, lso, start, aborted, preferred, records in partitions:
            if isinstance(records, list):
                records = b"".join(bytes(piece) for piece in records)
            elif records is not None:
                records = bytes(records)
            kio_partitions.append(
                build(
                    m.PartitionData,
                    partition_index=index,
                    error_code=ErrorCode(code),
                    high_watermark=hw,
                    last_stable_offset=lso,
                    log_start_offset=start,
                    aborted_transactions=None
                    if aborted is None
                    else tuple(
                        m.AbortedTransaction(producer_id=p, first_offset=f) for p, f in aborted
                    ),
                    preferred_read_replica=preferred,
                    records=records,
                )
            )
        kio_topics.append(
            build(
                m.FetchableTopicResponse,
                topic=topic,
                topic_id=topic,
                partitions=tuple(kio_partitions),
            )
        )
    return build(
        m.FetchResponse,
        throttle_time=timedelta(milliseconds=throttle_ms),
        error_code=ErrorCode(error_code),
        session_id=session_id,
        responses=tuple(kio_topics),
    )


@st.composite
def fetch_responses(draw):
    version = draw(st.sampled_from(VERSIONS))
    name = st.uuids().filter(lambda u: u.int) if version >= 13 else st.text(max_size=10)
    topics = draw(st.lists(st.tuples(name, st.lists(PARTITION, max_size=3)), max_size=3))
    return version, draw(INT32), draw(st.sampled_from(list(ErrorCode))), draw(INT32), topics


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(fetch_responses(), INT32)
def test_same_bytes_as_kio(response, correlation_id):
    version, throttle_ms, error_code, session_id, topics = response
    parts = encode_fetch_response(
        correlation_id, version, throttle_ms, error_code, session_id, topics
    )
    body = encode_body(kio_response(version, throttle_ms, error_code, session_id, topics))
    header = struct.pack(">i", correlation_id) + (b"\x00" if version >= 12 else b"")
    expected = struct.pack(">i", len(header) + len(body)) + header + body
    assert b"".join(parts) == expected


@pytest.mark.parametrize("version", VERSIONS)
def test_every_version_with_a_real_batch_decodes_in_kafka_python(version):
    batch = build_batch([Record(b"hello", key=b"k")], base_offset=5, timestamp=1000)
    topic = uuid.UUID(int=99) if version >= 13 else "orders"
    parts = encode_fetch_response(
        Request(1, version, 31, "c", None),
        version,
        0,
        0,
        123,
        [(topic, [(0, 0, 6, 6, 0, [(7, 3)], -1, batch), (1, 3, -1, -1, -1, None, -1, b"")])],
    )
    decoded = FetchResponse[version].decode(b"".join(parts), header=True, framed=True)
    assert decoded.header.correlation_id == 31
    (got,) = decoded.responses
    assert got.topic_id == topic if version >= 13 else got.topic == topic
    first, second = got.partitions
    assert (first.partition_index, first.high_watermark) == (0, 6)
    assert [(a.producer_id, a.first_offset) for a in first.aborted_transactions] == [(7, 3)]
    assert first.records == batch
    assert second.error_code == 3
    if version >= 7:
        assert decoded.session_id == 123


def test_record_buffers_are_passed_through_not_copied():
    big = memoryview(bytearray(4 << 20))
    pieces = [b"first-batch", memoryview(b"second-batch")]
    parts = encode_fetch_response(
        1,
        16,
        0,
        0,
        0,
        [
            (uuid.UUID(int=1), [(0, 0, 9, 9, 0, None, -1, big)]),
            (uuid.UUID(int=2), [(0, 0, 9, 9, 0, None, -1, pieces)]),
        ],
    )
    assert any(p is big for p in parts)
    assert any(p is pieces[0] for p in parts) and any(p is pieces[1] for p in parts)
    assert all(len(p) < 100 for p in parts if p is not big)
    (size,) = struct.unpack_from(">i", parts[0], 0)
    assert size == sum(len(p) for p in parts) - 4


def test_response_without_records_is_one_buffer():
    parts = encode_fetch_response(5, 12, 0, 0, 0, [("t", [(0, 1, 0, 0, 0, None, -1, None)])])
    assert len(parts) == 1 and type(parts[0]) is bytes


def test_header_must_be_the_fetch_request_it_answers():
    with pytest.raises(ValueError, match="not fetch v12"):
        encode_fetch_response(RequestHeader(1, 11, 1, None), 12, 0, 0, 0, [])
    with pytest.raises(ValueError, match="not fetch"):
        encode_fetch_response(RequestHeader(0, 12, 1, None), 12, 0, 0, 0, [])


@pytest.mark.parametrize("version", [3, 19])
def test_versions_kio_does_not_have_are_refused(version):
    with pytest.raises(ValueError, match="outside"):
        encode_fetch_response(1, version, 0, 0, 0, [])


def test_v13_and_later_need_topic_ids():
    with pytest.raises(TypeError, match="uuid"):
        encode_fetch_response(1, 13, 0, 0, 0, [("orders", [])])
    raw = b"".join(encode_fetch_response(1, 13, 0, 0, 0, [(bytes(range(16)), [])]))
    assert bytes(range(16)) in raw

"""decode_request: headers, version checks in the order the server needs, strict bodies."""

from __future__ import annotations

import struct
import uuid
from datetime import timedelta

import pytest
from kio.schema.api_versions.v3.request import ApiVersionsRequest
from kio.schema.heartbeat.v4.request import HeartbeatRequest
from kio.schema.metadata.v4.request import MetadataRequest as MetadataRequestV4
from kio.schema.metadata.v12.request import MetadataRequest, MetadataRequestTopic
from kio.schema.produce.v9.request import (
    PartitionProduceData,
    ProduceRequest,
    TopicProduceData,
)

from dovecote.kafka.codec import (
    MalformedRequest,
    Request,
    RequestHeader,
    UnknownApiKey,
    UnsupportedVersion,
    decode_request,
    decode_request_header,
    peek_header,
)
from dovecote.kafka.codec.primitives import uvarint
from tests.unit.kafka.apis import SUPPORTED, encode_body, request_frame

HEARTBEAT = HeartbeatRequest(group_id="g", generation_id=3, member_id="m", group_instance_id=None)
METADATA = MetadataRequest(
    topics=(MetadataRequestTopic(topic_id=uuid.UUID(int=5), name="orders"),),
    allow_auto_topic_creation=True,
    include_topic_authorized_operations=False,
)


def test_decodes_header_and_body():
    request = decode_request(request_frame(HEARTBEAT, correlation_id=99), SUPPORTED)
    assert request == Request(12, 4, 99, "test-client", HEARTBEAT)
    assert request.flexible
    assert request.header == RequestHeader(12, 4, 99, "test-client")


def test_non_flexible_header_has_no_tag_section():
    body = MetadataRequestV4(topics=None, allow_auto_topic_creation=False)
    frame = request_frame(body, client_id=None)
    assert frame[8:10] == b"\xff\xff" and len(frame) == 10 + len(encode_body(body))
    request = decode_request(frame, SUPPORTED)
    assert request.client_id is None and request.body == body and not request.flexible


def test_header_tagged_fields_are_kept_raw():
    frame = request_frame(METADATA, tags={3: b"abc", 0: b""})
    request = decode_request(frame, SUPPORTED)
    assert dict(request.tagged_fields) == {0: b"", 3: b"abc"}
    assert request.body == METADATA


def test_client_id_is_a_legacy_string_even_in_header_v2():
    frame = request_frame(METADATA, client_id="é")
    assert frame[8:12] == b"\x00\x02\xc3\xa9"
    assert decode_request(frame, SUPPORTED).client_id == "é"


def test_invalid_utf8_client_id_is_replaced_not_rejected():
    frame = bytearray(request_frame(HEARTBEAT, client_id="ab"))
    frame[10] = 0xFF
    assert decode_request(bytes(frame), SUPPORTED).client_id == "\ufffdb"


def test_memoryview_frames_decode_the_same():
    frame = b"junk" + request_frame(METADATA)
    assert decode_request(memoryview(frame)[4:], SUPPORTED).body == METADATA


def test_api_versions_v3_uses_header_v2_and_a_flexible_body():
    body = ApiVersionsRequest(client_software_name="librdkafka", client_software_version="2.6")
    frame = request_frame(body)
    _header, pos = decode_request_header(frame, flexible=True)
    assert frame[pos - 1] == 0  # empty header tag section
    assert decode_request(frame, SUPPORTED).body == body


# --- errors, in the order the server needs them ---------------------------


@pytest.mark.parametrize("size", range(8))
def test_frames_without_room_for_ids_are_malformed_with_no_ids(size):
    with pytest.raises(MalformedRequest) as info:
        decode_request(request_frame(HEARTBEAT)[:size], SUPPORTED)
    assert info.value.correlation_id is None


def test_unknown_api_key():
    frame = struct.pack(">hhih", 9999, 0, 5, -1)
    with pytest.raises(UnknownApiKey) as info:
        decode_request(frame, SUPPORTED)
    assert (info.value.api_key, info.value.api_version, info.value.correlation_id) == (9999, 0, 5)


def test_api_known_to_kio_but_not_enabled_is_unknown():
    with pytest.raises(UnknownApiKey):
        decode_request(request_frame(HEARTBEAT), {3: (0, 12)})


def test_version_outside_the_supported_range():
    with pytest.raises(UnsupportedVersion) as info:
        decode_request(request_frame(METADATA, correlation_id=41), {3: (0, 11)})
    assert (info.value.api_key, info.value.api_version, info.value.correlation_id) == (3, 12, 41)


def test_version_kio_does_not_have_even_if_enabled():
    frame = struct.pack(">hhih", 0, 2, 8, -1)  # Produce v2: gone since Kafka 4.0
    with pytest.raises(UnsupportedVersion) as info:
        decode_request(frame, {0: (0, 13)})
    assert info.value.correlation_id == 8


def test_api_versions_from_the_future_is_unsupported_before_any_parsing():
    # A newer client: version 99, header and body in a format nobody knows yet.
    frame = struct.pack(">hhi", 18, 99, 1234) + b"\xde\xad\xbe\xef"
    with pytest.raises(UnsupportedVersion) as info:
        decode_request(frame, SUPPORTED)
    assert (info.value.api_key, info.value.correlation_id) == (18, 1234)


def test_trailing_bytes_are_ignored_as_kafka_does():
    # librdkafka 2.x sends Metadata v13 with three bytes the schema does not have.
    request = decode_request(request_frame(HEARTBEAT) + b"\x01\x00\x00", SUPPORTED)
    assert request.body == decode_request(request_frame(HEARTBEAT), SUPPORTED).body


def test_truncated_body_is_malformed():
    frame = request_frame(HEARTBEAT)
    for cut in range(len(frame) - len(encode_body(HEARTBEAT)), len(frame)):
        with pytest.raises(MalformedRequest) as info:
            decode_request(frame[:cut], SUPPORTED)
        assert info.value.correlation_id == 7


@pytest.mark.parametrize(
    "header_tail",
    [
        b"\x00",  # client id length cut short
        struct.pack(">h", 5) + b"abc",  # client id runs past the end
        struct.pack(">h", -2),  # no length but -1 means null
        struct.pack(">h", -1) + b"\x01",  # one header tag, missing
        struct.pack(">h", -1) + b"\x01\x00\x05ab",  # tag value runs past the end
        struct.pack(">h", -1) + b"\xff\xff\xff\xff\xff\x01",  # varint too long
    ],
)
def test_malformed_headers(header_tail):
    frame = struct.pack(">hhi", 12, 4, 77) + header_tail
    with pytest.raises(MalformedRequest) as info:
        decode_request(frame, SUPPORTED)
    assert info.value.correlation_id == 77


def test_invalid_utf8_in_the_body_is_malformed():
    frame = bytearray(request_frame(HEARTBEAT, client_id=None))
    frame[12] = 0xFF  # group id "g" -> b"\xff" (header: 8 + 2 + 1 tag byte, length 1)
    with pytest.raises(MalformedRequest) as info:
        decode_request(bytes(frame), SUPPORTED)
    assert info.value.__cause__ is not None


def test_peek_header():
    assert peek_header(request_frame(METADATA, correlation_id=-3)) == (3, 12, -3)


# --- tagged fields kio does not know (KIP-482: skip them) -----------------


def with_unknown_tag(body_bytes: bytes, at: int, tag: int, value: bytes) -> bytes:
    """Replace the empty tag section at ``at`` with one holding an unknown tag."""
    assert body_bytes[at] == 0
    section = uvarint(1) + uvarint(tag) + uvarint(len(value)) + value
    return body_bytes[:at] + section + body_bytes[at + 1 :]


def test_unknown_top_level_tag_is_skipped():
    header = request_frame(HEARTBEAT)[: -len(encode_body(HEARTBEAT))]
    body = encode_body(HEARTBEAT)
    frame = header + with_unknown_tag(body, len(body) - 1, 42, b"future")
    assert decode_request(frame, SUPPORTED).body == HEARTBEAT


def test_unknown_nested_tag_is_skipped():
    body = encode_body(METADATA)
    header = request_frame(METADATA)[: -len(body)]
    at = 1 + 16 + 1 + len("orders")  # array length, topic id, name -> topic's tags
    frame = header + with_unknown_tag(body, at, 9, b"\x01\x02")
    assert decode_request(frame, SUPPORTED).body == METADATA
    assert decode_request(memoryview(b"--" + frame)[2:], SUPPORTED).body == METADATA


def test_unknown_tag_in_produce_partition_is_skipped():
    body = ProduceRequest(
        transactional_id=None,
        acks=-1,
        timeout=timedelta(seconds=5),
        topic_data=(
            TopicProduceData(
                name="t", partition_data=(PartitionProduceData(index=0, records=b"rec"),)
            ),
        ),
    )
    raw = encode_body(body)
    header = request_frame(body)[: -len(raw)]
    at = raw.index(b"rec") + 3  # the partition's tag section
    assert decode_request(header + with_unknown_tag(raw, at, 1, b"x"), SUPPORTED).body == body


def test_unknown_tag_that_overruns_the_frame_is_malformed():
    body = encode_body(HEARTBEAT)
    header = request_frame(HEARTBEAT)[: -len(body)]
    frame = header + body[:-1] + b"\x01\x2a\x10ab"
    with pytest.raises(MalformedRequest):
        decode_request(frame, SUPPORTED)


def test_a_panic_inside_kio_becomes_malformed_request(monkeypatch):
    panic = type("PanicException", (BaseException,), {})  # what pyo3 raises

    def reader(buffer, offset):
        raise panic("index out of bounds")

    monkeypatch.setattr("dovecote.kafka.codec.requests.body_reader", lambda key, version: reader)
    with pytest.raises(MalformedRequest, match="panicked") as info:
        decode_request(request_frame(HEARTBEAT), SUPPORTED)
    assert info.value.correlation_id == 7


def test_keyboard_interrupt_is_not_swallowed(monkeypatch):
    def reader(buffer, offset):
        raise KeyboardInterrupt

    monkeypatch.setattr("dovecote.kafka.codec.requests.body_reader", lambda key, version: reader)
    with pytest.raises(KeyboardInterrupt):
        decode_request(request_frame(HEARTBEAT), SUPPORTED)

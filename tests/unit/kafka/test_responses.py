"""encode_response: size prefix, the right response header, kio's body bytes."""

from __future__ import annotations

import random
import struct
from datetime import timedelta

import pytest
from kio.schema.api_versions.v0.response import ApiVersionsResponse as ApiVersionsResponseV0
from kio.schema.heartbeat.v4.response import HeartbeatResponse
from kio.schema.metadata.v4.response import MetadataResponse as MetadataResponseV4
from kio.serial import entity_reader

from dovecote.kafka.codec import (
    API_VERSIONS,
    ErrorCode,
    Request,
    RequestHeader,
    api_versions_response,
    encode_response,
    response_class,
    response_header_version,
    unsupported_api_versions_response,
)
from tests.unit.kafka.apis import ALL_VERSIONS, SUPPORTED, encode_body
from tests.unit.kafka.samples import sample

SAMPLES = 25


def split_response(frame: bytes, header_version: int) -> tuple[int, bytes]:
    """(correlation id, body) of a framed response, checking size and header."""
    (size,) = struct.unpack_from(">i", frame, 0)
    assert size == len(frame) - 4
    (correlation_id,) = struct.unpack_from(">i", frame, 4)
    if header_version == 1:
        assert frame[8] == 0  # empty tagged fields
        return correlation_id, frame[9:]
    return correlation_id, frame[8:]


@pytest.mark.parametrize(("name", "key", "version"), ALL_VERSIONS)
def test_response_round_trip(name, key, version):
    cls = response_class(key, version)
    reader = entity_reader(cls)
    rng = random.Random(f"response {key}/{version}")
    for i in range(SAMPLES):
        body = sample(cls, rng)
        correlation_id = rng.randint(-(2**31), 2**31 - 1)
        frame = encode_response(RequestHeader(key, version, correlation_id, None), body)
        got_id, raw = split_response(frame, response_header_version(key, version))
        assert got_id == correlation_id
        assert raw == encode_body(body)
        assert reader(raw, 0) == (body, len(raw)), f"sample {i}"


def test_flexible_response_gets_header_v1():
    body = HeartbeatResponse(throttle_time=timedelta(0), error_code=ErrorCode.none)
    frame = encode_response(Request(12, 4, 5, None, None), body)
    # size 12 = correlation id 4 + header tags 1 + throttle 4 + error 2 + body tags 1
    assert frame == struct.pack(">ii", 12, 5) + b"\x00" + bytes(7)


def test_non_flexible_response_gets_header_v0():
    body = MetadataResponseV4(
        throttle_time=timedelta(0), brokers=(), cluster_id=None, controller_id=1, topics=()
    )
    frame = encode_response(RequestHeader(3, 4, 9, "c"), body)
    assert frame[:8] == struct.pack(">ii", len(frame) - 4, 9)
    assert frame[8:] == encode_body(body)


def test_response_must_match_the_request():
    body = HeartbeatResponse(throttle_time=timedelta(0), error_code=ErrorCode.none)
    with pytest.raises(ValueError, match="does not answer"):
        encode_response(RequestHeader(12, 3, 1, None), body)
    with pytest.raises(ValueError, match="does not answer"):
        encode_response(RequestHeader(13, 4, 1, None), body)


@pytest.mark.parametrize("version", range(5))
def test_api_versions_response_lists_the_negotiated_ranges(version):
    supported = {0: (0, 99), 3: (4, 12), 18: (0, 4), 9999: (0, 0)}
    body = api_versions_response(supported, throttle_ms=25, version=version)
    assert body.__version__ == version and body.error_code == ErrorCode.none
    assert [(k.api_key, k.min_version, k.max_version) for k in body.api_keys] == [
        (0, 3, 13),
        (3, 4, 12),
        (18, 0, 4),
    ]
    if version >= 1:
        assert body.throttle_time == timedelta(milliseconds=25)
    frame = encode_response(RequestHeader(API_VERSIONS, version, 3, None), body)
    _, raw = split_response(frame, 0)  # header v0 even for flexible v3+
    assert raw == encode_body(body)


def test_api_versions_response_takes_feature_fields_from_v3():
    body = api_versions_response(SUPPORTED, version=4, finalized_features_epoch=7)
    assert body.finalized_features_epoch == 7


def test_unsupported_api_versions_response_is_v0_with_error_35():
    frame = unsupported_api_versions_response(1234, {18: (0, 4), 3: (0, 12)})
    correlation_id, raw = split_response(frame, 0)
    assert correlation_id == 1234
    body, size = entity_reader(ApiVersionsResponseV0)(raw, 0)
    assert size == len(raw)
    assert body.error_code == ErrorCode.unsupported_version == 35
    assert [(k.api_key, k.min_version, k.max_version) for k in body.api_keys] == [
        (3, 0, 12),
        (18, 0, 4),
    ]

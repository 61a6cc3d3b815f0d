"""The length pre-pass that stands between untrusted bytes and kio's native reader.

kio 0.6.5 reserves ``Vec::with_capacity(n)`` for an array length ``n`` read
from the wire; a huge ``n`` aborts the process. These frames would kill the
test run if the pre-pass let them through to kio.
"""

from __future__ import annotations

import struct

import pytest
from kio.schema.metadata.v8.request import MetadataRequest as MetadataRequestV8
from kio.schema.metadata.v12.request import MetadataRequest

from dovecote.kafka.codec import MalformedRequest, decode_request
from dovecote.kafka.codec.bounds import bounds_checker
from dovecote.kafka.codec.primitives import uvarint
from tests.unit.kafka.apis import SUPPORTED

V12_HEADER = struct.pack(">hhih", 3, 12, 1, -1) + b"\x00"
V8_HEADER = struct.pack(">hhih", 3, 8, 1, -1)


@pytest.mark.parametrize("count", [2**35 - 2, 2**31, 1000])
def test_huge_compact_array_length_is_rejected_before_kio(count):
    frame = V12_HEADER + uvarint(count + 1) + b"\x00" * 8
    with pytest.raises(MalformedRequest, match="items in"):
        decode_request(frame, SUPPORTED)


@pytest.mark.parametrize("count", [2**31 - 1, 100])
def test_huge_legacy_array_length_is_rejected_before_kio(count):
    frame = V8_HEADER + struct.pack(">i", count) + b"\x00" * 8
    with pytest.raises(MalformedRequest, match="items in"):
        decode_request(frame, SUPPORTED)


def test_nested_array_length_is_checked_too():
    # Fetch v15: one topic whose partitions array claims 2**30 entries.
    body = struct.pack(">iiiib", 1, 500, 1, 1 << 20, 0) + struct.pack(">ii", 0, -1)
    body += uvarint(2) + bytes(range(1, 17)) + uvarint(2**30 + 1) + b"\x00" * 4
    frame = struct.pack(">hhih", 1, 15, 1, -1) + b"\x00" + body
    with pytest.raises(MalformedRequest, match="items in"):
        decode_request(frame, SUPPORTED)


def test_a_length_that_fits_passes_and_kio_reports_the_truncation():
    frame = V8_HEADER + struct.pack(">i", 3) + b"\x00\x01a" + b"\x00\x00"
    with pytest.raises(MalformedRequest):
        decode_request(frame, SUPPORTED)


def test_null_and_empty_arrays():
    walk = bounds_checker(MetadataRequestV8)
    for raw in (struct.pack(">i", -1) + b"\x01\x00\x00", struct.pack(">i", 0) + b"\x01\x00\x00"):
        assert walk(raw, 0, len(raw)) == len(raw)
    with pytest.raises(MalformedRequest, match="negative"):
        walk(struct.pack(">i", -2) + b"\x01\x00\x00", 0, 7)


def test_walker_skips_unknown_tags_and_checks_known_tag_sizes():
    walk = bounds_checker(MetadataRequest)
    plain = b"\x01\x01\x00\x00"  # no topics, two bools, no tags
    assert walk(plain, 0, len(plain)) == len(plain)
    tagged = b"\x01\x01\x00" + b"\x01" + uvarint(77) + uvarint(3) + b"abc"
    assert walk(tagged, 0, len(tagged)) == len(tagged)
    overrun = b"\x01\x01\x00" + b"\x01" + uvarint(77) + uvarint(30) + b"abc"
    with pytest.raises(MalformedRequest):
        walk(overrun, 0, len(overrun))


def test_null_in_a_non_nullable_array_is_malformed_as_in_kafka():
    # Produce v9, topic_data (non-nullable) sent as a null compact array.
    frame = struct.pack(">hhih", 0, 9, 1, -1) + b"\x00" + b"\x00" + struct.pack(">hi", 1, 100)
    with pytest.raises(MalformedRequest, match="non-nullable"):
        decode_request(frame + b"\x00\x00", SUPPORTED)
    # Metadata v12 topics is nullable: null means "all topics".
    assert decode_request(V12_HEADER + b"\x00\x01\x00\x00", SUPPORTED).body.topics is None

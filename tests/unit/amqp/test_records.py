"""The Record header convention: AMQP blocks stored verbatim, foreign headers mapped in."""

from __future__ import annotations

from dovecote.amqp.codec import (
    EMPTY_PROPERTIES,
    PROPERTIES_HEADER,
    Typed,
    encode_properties,
    property_block_for_record,
    read_properties,
    record_headers_for_publish,
    stored_property_block,
)
from dovecote.storage.batch import Record, build_batch, decode_batch


def test_amqp_block_survives_the_log_byte_for_byte():
    block = encode_properties(headers={"n": Typed("l", 1)}, delivery_mode=2, priority=4)
    record = Record(value=b"body", key=b"rk", headers=record_headers_for_publish(block))
    (stored,) = decode_batch(build_batch([record]))
    assert stored.headers == [(PROPERTIES_HEADER, block)]
    assert stored_property_block(stored.headers) == block
    assert property_block_for_record(stored.headers, stored.timestamp) == block


def test_message_without_properties_is_still_marked_as_amqp():
    headers = record_headers_for_publish(EMPTY_PROPERTIES)
    assert property_block_for_record(headers, timestamp_ms=1_700_000_000_000) == EMPTY_PROPERTIES
    assert stored_property_block([]) is None
    assert stored_property_block([(PROPERTIES_HEADER, None)]) == EMPTY_PROPERTIES


def test_foreign_record_becomes_application_headers_and_timestamp():
    headers = [("trace-id", b"abc"), ("tenant", b"\xff\x00"), ("empty", None), ("trace-id", b"z")]
    block = property_block_for_record(headers, timestamp_ms=1_700_000_000_999)
    assert read_properties(block) == {
        "headers": {"trace-id": "z", "tenant": b"\xff\x00", "empty": None},
        "timestamp": 1_700_000_000,
    }
    assert property_block_for_record([]) == EMPTY_PROPERTIES


def test_reserved_and_overlong_names_are_not_mapped():
    headers = [("amqp.other", b"x"), ("k" * 256, b"x"), ("ok", b"1")]
    assert read_properties(property_block_for_record(headers)) == {"headers": {"ok": "1"}}


def test_foreign_headers_merge_into_an_amqp_block_without_overriding():
    block = encode_properties(headers={"a": 1}, priority=2)
    headers = [*record_headers_for_publish(block), ("a", b"kafka"), ("b", b"2")]
    merged = property_block_for_record(headers)
    assert read_properties(merged) == {"headers": {"a": 1, "b": "2"}, "priority": 2}
    same = [*record_headers_for_publish(block), ("a", b"kafka")]
    assert property_block_for_record(same) == block

"""The record mapping: AMQP blocks stored verbatim beside their neutral headers,
neutral headers (from any protocol) turned back into properties."""

from __future__ import annotations

import decimal
import json
import math

from hypothesis import given, settings
from hypothesis import strategies as st
from pamqp import commands as C

from dovecote.amqp.codec import (
    EMPTY_PROPERTIES,
    PROPERTIES_HEADER,
    Timestamp,
    Typed,
    encode_properties,
    properties_from_pamqp,
    property_block_for_record,
    read_properties,
    record_headers_for_publish,
    stored_property_block,
)
from dovecote.amqp.codec.records import block_from_headers, neutral_headers
from dovecote.amqp.mapping import delivery_fields
from dovecote.core.headers import TAGS, TYPES, WELL_KNOWN, application_headers, read_types
from dovecote.storage.batch import Record, build_batch, decode_batch
from tests.unit.amqp.test_properties import as_dict, pamqp_properties


def test_amqp_block_survives_the_log_byte_for_byte():
    block = encode_properties(headers={"n": Typed("l", 1)}, delivery_mode=2, priority=4)
    record = Record(value=b"body", key=b"rk", headers=record_headers_for_publish(block))
    (stored,) = decode_batch(build_batch([record]))
    assert stored.headers == [
        (PROPERTIES_HEADER, block),
        ("delivery-mode", b"2"),
        ("priority", b"4"),
        ("n", b"1"),
        (TYPES, b'{"n":"int64"}'),
    ]
    assert stored_property_block(stored.headers) == block
    assert property_block_for_record(stored.headers, stored.timestamp) == block


def test_delivery_mode_and_priority_alone_are_not_exposed():
    """Persistent and nothing else (what most publishers send): the record is
    just the block, as fast as ever; forwarded with more headers, it keeps them."""
    for block in (
        encode_properties(delivery_mode=2),
        encode_properties(delivery_mode=1, priority=0, headers={}),
    ):
        assert record_headers_for_publish(block) == [(PROPERTIES_HEADER, block)]
    block = encode_properties(delivery_mode=2, priority=4)
    forwarded = [*record_headers_for_publish(block), ("h", b"v")]
    assert read_properties(property_block_for_record(forwarded)) == {
        "delivery_mode": 2,
        "priority": 4,
        "headers": {"h": "v"},
    }
    with_type = encode_properties(delivery_mode=2, content_type="text/plain")
    assert record_headers_for_publish(with_type)[1:] == [
        ("content-type", b"text/plain"),
        ("delivery-mode", b"2"),  # exposed with the rest
    ]


def test_message_without_properties_is_still_marked_as_amqp():
    headers = record_headers_for_publish(EMPTY_PROPERTIES)
    assert headers == [(PROPERTIES_HEADER, EMPTY_PROPERTIES)]
    assert property_block_for_record(headers, timestamp_ms=1_700_000_000_000) == EMPTY_PROPERTIES
    assert stored_property_block([]) is None
    assert stored_property_block([(PROPERTIES_HEADER, None)]) == EMPTY_PROPERTIES


def test_properties_become_well_known_headers_and_table_entries_headers():
    block = encode_properties(
        content_type="application/json",
        correlation_id="c-1",
        timestamp=1_700_000_000,
        message_type="order.created",
        headers={"h": "v", "n": 7, "raw": b"\xff"},
    )
    assert neutral_headers(block) == [
        ("content-type", b"application/json"),
        ("correlation-id", b"c-1"),
        ("timestamp", b"1700000000000"),  # ms, as Kafka counts
        ("type", b"order.created"),
        ("h", b"v"),
        ("n", b"7"),
        ("raw", b"\xff"),
        (TYPES, b'{"n":"int8","raw":"string"}'),
    ]


def test_every_field_type_round_trips_exactly():
    table = {
        "s": "text",
        "b": Typed("b", -5),
        "B": Typed("B", 200),
        "s16": Typed("s", -300),
        "u": Typed("u", 60000),
        "I": Typed("I", -70000),
        "i": Typed("i", 2**32 - 1),
        "l": Typed("l", -(2**63)),
        "f": Typed("f", 0.1),  # float32: not exactly 0.1
        "d": 0.1,
        "t": False,
        "D": decimal.Decimal("-12.340"),
        "T": Timestamp(2**40),
        "x": bytearray(b"\x00\xff"),
        "S-bytes": b"\xfe\xff",
        "V": None,
        "F": {"inner": [Typed("B", 1), "two", {"deep": bytearray(b"3")}], "e": {}},
        "A": [],
    }
    block = encode_properties(headers=table, priority=9, cluster_id="c")
    headers = neutral_headers(block)
    assert block_from_headers(headers) == block  # byte for byte, type codes and order kept
    # and through the log, where a consumer of another protocol would read them
    (stored,) = decode_batch(build_batch([Record(b"", headers=headers)]))
    assert block_from_headers(stored.headers) == block


@settings(max_examples=150)
@given(pamqp_properties)
def test_neutral_headers_give_back_the_block(props: C.Basic.Properties):
    block = properties_from_pamqp(props)
    headers = neutral_headers(block)
    table = read_properties(block).get("headers") or {}
    if any(k in WELL_KNOWN or k.startswith(("amqp.", "dovecote.")) for k in table):
        return  # such entries stay in the stored block (see test below)
    if props.headers == {}:
        # An empty table has no headers to show; only the stored block keeps it.
        block = properties_from_pamqp(C.Basic.Properties(**{**as_dict(props), "headers": None}))
    assert block_from_headers(headers) == block


def test_entries_with_reserved_names_stay_in_the_block():
    block = encode_properties(headers={"dovecote.deaths": "no", "amqp.x": 1, "ok": "1"})
    assert neutral_headers(block) == [("ok", b"1")]
    record = [(PROPERTIES_HEADER, block), *neutral_headers(block)]
    assert property_block_for_record(record) == block


def test_foreign_record_becomes_application_headers_and_timestamp():
    headers = [("trace-id", b"abc"), ("tenant", b"\xff\x00"), ("empty", None), ("trace-id", b"z")]
    block = property_block_for_record(headers, timestamp_ms=1_700_000_000_999)
    assert read_properties(block) == {
        "headers": {"trace-id": "z", "tenant": bytearray(b"\xff\x00"), "empty": None},
        "timestamp": 1_700_000_000,
    }
    table = block[block.index(b"tenant") + 6 :]
    assert table[:1] == b"x"  # not UTF-8: a byte array
    assert property_block_for_record([]) == EMPTY_PROPERTIES


def test_well_known_headers_become_properties_when_they_fit():
    headers = [
        ("content-type", b"text/plain"),
        ("priority", b"5"),
        ("delivery-mode", b"2"),
        ("timestamp", b"1700000000123"),
        ("message-id", b"\xff"),  # not UTF-8: stays an entry
        ("reply-to", b"r" * 256),  # too long for a shortstr
        ("content-type", b"second"),  # only the first one is the property
    ]
    props = read_properties(block_from_headers(headers))
    assert props == {
        "content_type": "text/plain",
        "priority": 5,
        "delivery_mode": 2,
        "timestamp": 1_700_000_000,
        "headers": {
            "message-id": bytearray(b"\xff"),
            "reply-to": "r" * 256,
            "content-type": "second",
        },
    }
    assert read_properties(block_from_headers([("priority", b"high")])) == {
        "headers": {"priority": "high"}
    }


def test_reserved_and_overlong_names_are_not_mapped():
    headers = [("amqp.other", b"x"), ("k" * 256, b"x"), ("ok", b"1"), ("dovecote.x", b"y")]
    assert read_properties(property_block_for_record(headers)) == {"headers": {"ok": "1"}}


def test_headers_changed_after_publish_are_what_counts():
    """A stored block is sent as is only while the record's headers are still
    exactly its neutral headers (a Kafka app may forward the record with
    other headers); otherwise the block is built from the headers."""
    block = encode_properties(headers={"a": 1}, priority=2)
    published = record_headers_for_publish(block)
    assert property_block_for_record(published) == block
    changed = [*published, ("b", b"2")]
    assert read_properties(property_block_for_record(changed)) == {
        "headers": {"a": 1, "b": "2"},
        "priority": 2,
    }
    replaced = [(k, b"kafka" if k == "a" else v) for k, v in published]
    assert read_properties(property_block_for_record(replaced)) == {
        "headers": {"a": "kafka"},  # a mislabelled typed value reads as text
        "priority": 2,
    }


def test_bad_types_header_and_values_fall_back_to_text():
    assert read_types(b"not json") == {} and read_types(b'{"a":"nope","b":"int8"}') == {"b": "int8"}
    headers = [("n", b"300"), ("t", b"[1,"), (TYPES, b'{"n":"int8","t":"table"}')]
    assert read_properties(block_from_headers(headers)) == {"headers": {"n": "300", "t": "[1,"}}


def test_application_headers_decode_types():
    block = encode_properties(headers={"f": Typed("f", 0.5), "ts": Timestamp(5), "x": [1, "a"]})
    view = application_headers(neutral_headers(block))
    assert view == {"f": 0.5, "ts": 5, "x": [1, "a"]}
    nan = encode_properties(headers={"nan": float("nan")})
    assert math.isnan(application_headers(neutral_headers(nan))["nan"])


@given(st.lists(st.tuples(st.text(max_size=10), st.none() | st.binary(max_size=10)), max_size=8))
def test_any_foreign_headers_give_a_valid_block(headers):
    block = block_from_headers(headers, timestamp_ms=0)
    read_properties(block)  # decodes


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["a", "b", "priority", "timestamp"]),
            st.sampled_from(sorted(TAGS)),
            st.binary(max_size=12)
            | st.sampled_from([b"1", b"-1", b"1e400", b"300", b"nan", b"[]", b'{"a":{"x":1}}']),
        ),
        max_size=6,
    )
)
def test_mislabelled_typed_headers_never_break_a_delivery(entries):
    types = {name: tag for name, tag, _raw in entries}
    headers = [(name, raw) for name, _tag, raw in entries]
    headers.append((TYPES, json.dumps(types).encode()))
    read_properties(block_from_headers(headers, timestamp_ms=5))


def test_deeply_nested_typed_values_read_as_text():
    deep = b'{"a":' * 100_000 + b"1" + b"}" * 100_000
    headers = [("t", deep), (TYPES, b'{"t":"table"}')]
    assert read_properties(block_from_headers(headers))["headers"]["t"] == deep.decode()
    assert application_headers(headers) == {"t": deep.decode()}


def test_a_block_written_by_another_client_that_does_not_decode_is_ignored():
    headers = [(PROPERTIES_HEADER, b"\xff\xff\x01"), ("h", b"v")]
    assert read_properties(property_block_for_record(headers)) == {"headers": {"h": "v"}}
    block, _exchange, _key = delivery_fields(Record(b"", key=b"k", headers=headers))
    assert read_properties(block) == {"headers": {"h": "v"}}

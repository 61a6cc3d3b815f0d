"""Field tables: every type, pamqp parity, strict rejection of garbage."""

from __future__ import annotations

import datetime
import decimal
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pamqp import decode as pdecode
from pamqp import encode as pencode

from dovecote.amqp.codec import SyntaxError_, Timestamp, Typed, decode_table, encode_table
from dovecote.amqp.codec.tables import (
    MAX_DEPTH,
    REMOVE,
    check_table,
    decode_array,
    encode_value,
    update_table,
)
from tests.unit.amqp.strategies import normalize, tables


def roundtrip(table):
    raw = encode_table(table)
    decoded, end = decode_table(raw)
    assert end == len(raw)
    return decoded


@pytest.mark.parametrize(
    ("value", "code", "decoded"),
    [
        (True, b"t", True),
        (Typed("b", -5), b"b", -5),
        (Typed("B", 250), b"B", 250),
        (Typed("s", -300), b"s", -300),
        (Typed("u", 65000), b"u", 65000),
        (Typed("I", -70000), b"I", -70000),
        (Typed("i", 4_000_000_000), b"i", 4_000_000_000),
        (Typed("l", 5), b"l", 5),
        (Typed("f", 0.5), b"f", 0.5),
        (0.1, b"d", 0.1),
        (decimal.Decimal("12.345"), b"D", decimal.Decimal("12.345")),
        ("héllo", b"S", "héllo"),
        (b"\xff\x00", b"S", b"\xff\x00"),
        (bytearray(b"raw"), b"x", bytearray(b"raw")),
        ([1, "a", None], b"A", [1, "a", None]),
        (Timestamp(1_700_000_000), b"T", 1_700_000_000),
        ({"k": {"n": 1}}, b"F", {"k": {"n": 1}}),
        (None, b"V", None),
        (Typed("V", None), b"V", None),
        (Typed("T", 2**64 - 1), b"T", 2**64 - 1),
        (Typed("S", "x"), b"S", "x"),
        (Typed("x", b"x"), b"x", bytearray(b"x")),
        (Typed("D", "1.5"), b"D", decimal.Decimal("1.5")),
        (Typed("t", 0), b"t", False),
        (Typed("F", {"a": 1}), b"F", {"a": 1}),
        (Typed("A", (1, 2)), b"A", [1, 2]),
    ],
)
def test_every_field_type_roundtrips(value, code, decoded):
    assert encode_value(value)[:1] == code
    assert roundtrip({"key": value}) == {"key": decoded}


def test_long_L_reads_as_signed_64_like_rabbitmq():
    raw = b"\x01kL" + struct.pack(">q", -2)
    assert decode_table(struct.pack(">I", len(raw)) + raw)[0] == {"k": -2}


def test_integers_pick_the_smallest_type_like_pamqp():
    for value, code in [(1, b"b"), (-200, b"s"), (40000, b"u"), (-(2**31), b"I")]:
        assert encode_value(value)[:1] == code
    assert encode_value(2**32 - 1)[:1] == b"i"
    assert encode_value(2**40)[:1] == b"l"
    with pytest.raises(ValueError):
        encode_value(2**64)


def test_datetime_encodes_as_seconds():
    when = datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)
    assert roundtrip({"t": when})["t"].to_datetime() == when
    assert roundtrip({"t": when.replace(tzinfo=None)})["t"] == int(when.timestamp())


def test_key_order_is_preserved():
    assert list(roundtrip({"b": 1, "a": 2})) == ["b", "a"]


def test_unencodable_values_are_refused():
    with pytest.raises(TypeError):
        encode_table({"k": object()})
    with pytest.raises(ValueError):
        encode_table({"k" * 256: 1})
    with pytest.raises(ValueError):
        encode_value(Typed("B", 300))
    with pytest.raises(ValueError):
        encode_value(Typed("?", 1))


@settings(max_examples=100)
@given(tables)
def test_encoding_matches_pamqp(table):
    assert encode_table(table) == pencode.field_table(table)


@settings(max_examples=100)
@given(tables)
def test_decoding_matches_pamqp(table):
    raw = pencode.field_table(table)
    ours = decode_table(raw)[0]
    theirs = pdecode.field_table(raw)[1]
    assert normalize(ours) == normalize(theirs) == normalize(table)


@pytest.mark.parametrize(
    "raw",
    [
        b"\x00\x00\x00",  # length truncated
        b"\x00\x00\x00\x05\x01k",  # overruns
        b"\x00\x00\x00\x02\x01k",  # key without type
        b"\x00\x00\x00\x03\x01kZ",  # unknown type
        b"\x00\x00\x00\x03\x01k\x00",  # \x00 is no type (pamqp accepts it, RabbitMQ does not)
        b"\x00\x00\x00\x04\x01kI\x00",  # truncated int
        b"\x00\x00\x00\x07\x01kS\x00\x00\x00\x09",  # longstr overruns
        b"\x00\x00\x00\x04\x02\xff\xfeV",  # key not UTF-8
        b"\x00\x00\x00\x05\x01kD\x00\x00",  # truncated decimal
    ],
)
def test_garbage_is_a_502(raw):
    with pytest.raises(SyntaxError_) as info:
        decode_table(raw)
    assert info.value.reply_code == 502
    if len(raw) >= 4 and 4 + struct.unpack(">I", raw[:4])[0] <= len(raw):
        with pytest.raises(SyntaxError_):
            check_table(raw, 4, 4 + struct.unpack(">I", raw[:4])[0])


def test_nesting_depth_is_bounded():
    value: object = 1
    for _ in range(MAX_DEPTH + 2):
        value = [value]
    with pytest.raises(ValueError):
        encode_table({"deep": value})
    raw = b"b\x01"
    for _ in range(MAX_DEPTH + 2):
        raw = b"A" + struct.pack(">I", len(raw)) + raw
    table = b"\x01k" + raw
    with pytest.raises(SyntaxError_, match="deeply"):
        decode_table(struct.pack(">I", len(table)) + table)


@settings(max_examples=500)
@given(st.binary(max_size=64))
def test_check_table_agrees_with_decode_on_random_bytes(body):
    raw = struct.pack(">I", len(body)) + body
    try:
        decode_table(raw)
        ok = True
    except SyntaxError_:
        ok = False
    try:
        check_table(raw, 4, len(raw))
        checked = True
    except SyntaxError_:
        checked = False
    assert ok == checked


@settings(max_examples=100)
@given(tables, st.integers(0, 200), st.binary(min_size=1, max_size=4))
def test_mutated_tables_decode_or_raise_502(table, at, junk):
    raw = bytearray(encode_table(table))
    at %= len(raw)
    raw[at : at + len(junk)] = junk
    try:
        decode_table(bytes(raw))
    except SyntaxError_:
        pass


def test_decode_array():
    from dovecote.amqp.codec.tables import encode_array

    assert decode_array(encode_array([1, "x", [True]]))[0] == [1, "x", [True]]


def test_update_table_splices_raw_entries():
    original = encode_table({"a": Typed("l", 1), "b": "keep", "c": 3})
    body = original[4:]
    updated = update_table(body, 0, len(body), {"a": 2, "c": REMOVE, "d": [1]})
    assert decode_table(updated)[0] == {"a": 2, "b": "keep", "d": [1]}
    # "b" keeps its exact bytes
    assert b"\x01bS\x00\x00\x00\x04keep" in updated

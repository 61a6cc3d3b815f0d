"""Schema definitions and message validation (Avro with fastavro, Protocol
Buffers through protoc), without a broker."""

from __future__ import annotations

import io
import json

import fastavro
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dovecote.pubsub import schema_validation as sv

ORDER = {
    "type": "record",
    "name": "Order",
    "fields": [
        {"name": "id", "type": "string"},
        {"name": "qty", "type": "int"},
        {"name": "note", "type": ["null", "string"], "default": None},
    ],
}
PROTO3 = 'syntax = "proto3";\npackage shop.v1;\nmessage Order { string id = 1; int32 qty = 2; }\n'
PROTO2 = 'syntax = "proto2";\nmessage Order { required string id = 1; optional int32 qty = 2; }\n'


def avro() -> sv.Validator:
    return sv.compile_schema(sv.AVRO, json.dumps(ORDER))


def binary(record: dict) -> bytes:
    out = io.BytesIO()
    fastavro.schemaless_writer(out, fastavro.parse_schema(ORDER), record)
    return out.getvalue()


# --- Avro --------------------------------------------------------------------------


def test_avro_json_encoding():
    validator = avro()
    validator.validate(b'{"id": "a", "qty": 1}', sv.JSON)
    validator.validate(b'{"id": "a", "qty": 1, "note": {"string": "n"}}', sv.JSON)  # union
    validator.validate(b'{"id": "a", "qty": 1, "extra": true}', sv.JSON)  # ignored, as Java does
    for bad in (
        b'{"id": "a"}',  # missing field without default
        b'{"id": 1, "qty": 1}',  # wrong type
        b'{"id": "a", "qty": 1.5}',
        b'{"id": "a", "qty": 4294967296}',  # not an int32
        b'{"id": "a", "qty": 1, "note": "bare"}',  # unions are wrapped in Avro JSON
        b'{"id": "a",',
        b"[1, 2]",
        b"\xff",
    ):
        with pytest.raises(sv.MessageInvalid):
            validator.validate(bad, sv.JSON)


def test_avro_binary_must_be_consumed_exactly():
    validator = avro()
    data = binary({"id": "a", "qty": 7, "note": "n"})
    validator.validate(data, sv.BINARY)
    with pytest.raises(sv.MessageInvalid, match="1 bytes left"):
        validator.validate(data + b"\x00", sv.BINARY)
    for cut in range(len(data)):
        with pytest.raises(sv.MessageInvalid):
            validator.validate(data[:cut], sv.BINARY)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=40), st.integers(-(2**31), 2**31 - 1), st.none() | st.text(max_size=10))
def test_avro_binary_round_trips(ident, qty, note):
    avro().validate(binary({"id": ident, "qty": qty, "note": note}), sv.BINARY)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64))
def test_arbitrary_bytes_never_crash(data):
    for validator in (avro(), sv.compile_schema(sv.PROTOCOL_BUFFER, PROTO3)):
        for encoding in (sv.JSON, sv.BINARY):
            try:
                validator.validate(data, encoding)
            except sv.MessageInvalid:
                pass


@pytest.mark.parametrize(
    "definition",
    ["{not json", '{"type": "no-such-type"}', '{"type": "record", "name": "R", "fields": 3}'],
)
def test_avro_definitions_that_do_not_parse(definition):
    with pytest.raises(sv.SchemaInvalid):
        sv.compile_schema(sv.AVRO, definition)


# --- Protocol Buffers --------------------------------------------------------------


def test_proto3_json_and_binary():
    validator = sv.compile_schema(sv.PROTOCOL_BUFFER, PROTO3)
    validator.validate(b'{"id": "a", "qty": 3}', sv.JSON)
    validator.validate(b"{}", sv.JSON)
    validator.validate(b"\x0a\x01a\x10\x03", sv.BINARY)
    validator.validate(b"", sv.BINARY)  # every proto3 field is optional
    for bad in (b'{"unknown": 1}', b'{"qty": "many"}', b"not json"):
        with pytest.raises(sv.MessageInvalid):
            validator.validate(bad, sv.JSON)
    for bad in (b"\xff\xff\xff", b"\x0a\x05ab", b"\x0a\x01\xff"):  # corrupt, short, bad UTF-8
        with pytest.raises(sv.MessageInvalid):
            validator.validate(bad, sv.BINARY)


def test_proto2_required_fields():
    validator = sv.compile_schema(sv.PROTOCOL_BUFFER, PROTO2)
    validator.validate(b"\x0a\x01a", sv.BINARY)
    with pytest.raises(sv.MessageInvalid, match="required"):
        validator.validate(b"\x10\x03", sv.BINARY)
    with pytest.raises(sv.MessageInvalid, match="required"):
        validator.validate(b'{"qty": 3}', sv.JSON)


def test_proto_well_known_imports_only():
    with_timestamp = (
        'syntax = "proto3"; import "google/protobuf/timestamp.proto";'
        " message E { google.protobuf.Timestamp at = 1; }"
    )
    validator = sv.compile_schema(sv.PROTOCOL_BUFFER, with_timestamp)
    validator.validate(b'{"at": "2024-01-01T00:00:00Z"}', sv.JSON)
    with pytest.raises(sv.SchemaInvalid, match=r"other\.proto"):
        sv.compile_schema(
            sv.PROTOCOL_BUFFER, 'syntax = "proto3"; import "other.proto"; message A {}'
        )


@pytest.mark.parametrize(
    ("definition", "why"),
    [
        ("message {", "1:9: Expected message name"),
        ('syntax = "proto3"; message A { strin x = 1; }', '"strin" is not defined'),
        ('syntax = "proto3"; message A {} message B {}', "exactly one top-level type"),
        ('syntax = "proto3"; enum E { Z = 0; } message A {}', "exactly one top-level type"),
        ('syntax = "proto3";', "exactly one top-level type"),
    ],
)
def test_proto_definitions_that_do_not_compile(definition, why):
    with pytest.raises(sv.SchemaInvalid, match=why):
        sv.compile_schema(sv.PROTOCOL_BUFFER, definition)


def test_compiled_schemas_are_cached():
    definition = PROTO3 + "// cached\n"
    assert sv.cached(sv.PROTOCOL_BUFFER, definition) is None
    compiled = sv.compile_schema(sv.PROTOCOL_BUFFER, definition)
    assert sv.cached(sv.PROTOCOL_BUFFER, definition) is compiled
    assert sv.compile_schema(sv.PROTOCOL_BUFFER, definition) is compiled


def test_unknown_type():
    with pytest.raises(sv.SchemaInvalid):
        sv.compile_schema("XML", "<a/>")


@pytest.mark.parametrize(
    "items",
    [
        "null",
        {"type": "record", "name": "Empty", "fields": []},
        {"type": "fixed", "name": "F", "size": 0},
        {"type": "record", "name": "N", "fields": [{"name": "n", "type": "null"}]},
    ],
)
def test_avro_arrays_of_zero_size_items_are_refused(items):
    # A block count of 2^63 of them costs no bytes: one message could hang the broker.
    definition = json.dumps(
        {
            "type": "record",
            "name": "R",
            "fields": [{"name": "a", "type": {"type": "array", "items": items}}],
        }
    )
    with pytest.raises(sv.SchemaInvalid, match="zero bytes"):
        sv.compile_schema(sv.AVRO, definition)


def test_avro_recursive_and_named_types_compile():
    linked = {
        "type": "record",
        "name": "Node",
        "fields": [
            {"name": "v", "type": "int"},
            {"name": "next", "type": ["null", "Node"]},
            {"name": "kids", "type": {"type": "array", "items": "Node"}},
        ],
    }
    validator = sv.compile_schema(sv.AVRO, json.dumps(linked))
    validator.validate(
        b'{"v": 1, "next": {"Node": {"v": 2, "next": null, "kids": []}}, "kids": []}', sv.JSON
    )


def test_deeply_nested_json_is_invalid_not_a_crash():
    deep = b"[" * 100_000 + b"]" * 100_000
    for validator in (avro(), sv.compile_schema(sv.PROTOCOL_BUFFER, PROTO3)):
        with pytest.raises(sv.MessageInvalid):
            validator.validate(deep, sv.JSON)


def test_avro_json_encoding_of_bytes_enums_maps_and_named_unions():
    definition = {
        "type": "record",
        "name": "Doc",
        "namespace": "shop",
        "fields": [
            {"name": "raw", "type": "bytes"},
            {"name": "tag", "type": {"type": "fixed", "name": "Tag", "size": 2}},
            {"name": "color", "type": {"type": "enum", "name": "Color", "symbols": ["RED"]}},
            {"name": "counts", "type": {"type": "map", "values": "long"}},
            {"name": "who", "type": ["null", {"type": "record", "name": "Who", "fields": []}]},
            {"name": "n", "type": "int", "default": 5},
        ],
    }
    validator = sv.compile_schema(sv.AVRO, json.dumps(definition))
    good = {
        "raw": "\u00ff\u0000",
        "tag": "ab",
        "color": "RED",
        "counts": {"x": 1},
        "who": {"shop.Who": {}},
    }
    validator.validate(json.dumps(good).encode(), sv.JSON)
    validator.validate(json.dumps({**good, "who": {"Who": {}}}).encode(), sv.JSON)
    for change in (
        {"raw": "\u0100"},  # not a byte
        {"tag": "abc"},  # fixed(2)
        {"color": "BLUE"},
        {"counts": {"x": "1"}},
        {"who": {"Other": {}}},
    ):
        with pytest.raises(sv.MessageInvalid):
            validator.validate(json.dumps({**good, **change}).encode(), sv.JSON)

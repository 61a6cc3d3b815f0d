"""A compiled writer for kio entities: kio's bytes, several times faster.

kio's ``entity_writer`` makes a handful of Python calls per primitive (a
phantom-type check, ``struct.pack``, ``BytesIO.write``) and a ``BytesIO`` per
tagged-field section; a flexible Produce response with 8 partitions takes
~90 µs. :func:`entity_encoder` compiles each class once into closures that
append to one ``bytearray``: consecutive fixed-size fields become a single
``struct.pack``, arrays of entities a loop over the item encoder. The output
is byte-for-byte what kio writes, field semantics included (a tagged field is
left out when it equals its default; a null UUID is sixteen zero bytes;
durations and timestamps are whole milliseconds) -- the tests compare the two
on every request and response class of the broker's APIs.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import MISSING, Field, fields, is_dataclass
from functools import cache
from operator import attrgetter
from types import NoneType, UnionType
from typing import Any, Union, get_args, get_origin

from kio.serial._implicit_defaults import get_tagged_field_default

from dovecote.kafka.codec.primitives import uvarint

Encoder = Callable[[bytearray, Any], None]
"""``encode(out, value)`` appends the wire form of ``value`` to ``out``."""

STRUCT_CODES = {
    "int8": "b",
    "int16": "h",
    "int32": "i",
    "int64": "q",
    "uint8": "B",
    "uint16": "H",
    "uint32": "I",
    "uint64": "Q",
    "float64": "d",
    "bool": "?",
    "error_code": "h",  # ErrorCode is an IntEnum: struct packs it as an int
}
INT16 = struct.Struct(">h")
INT32 = struct.Struct(">i")
INT64 = struct.Struct(">q")
NULL_INT16 = INT16.pack(-1)
NULL_INT32 = INT32.pack(-1)
ZERO_UUID = bytes(16)
LEGACY_STRING_MAX = 2**15 - 1


def _shape(field: Field) -> tuple[Any, bool, bool]:
    """(item type, is array, nullable) of a kio dataclass field."""
    kind = field.type
    nullable = False
    if get_origin(kind) in (UnionType, Union):
        nullable = NoneType in get_args(kind)
        kind = next(a for a in get_args(kind) if a is not NoneType)
    if get_origin(kind) is tuple:
        inner = get_args(kind)[0]
        if get_origin(inner) in (UnionType, Union):
            inner = next(a for a in get_args(inner) if a is not NoneType)
        return inner, True, nullable
    return kind, False, nullable


# --- primitives ----------------------------------------------------------------


def _compact_bytes(nullable: bool) -> Encoder:
    def encode(out: bytearray, value: Any) -> None:
        if value is None:
            if not nullable:
                raise TypeError("Unexpectedly received None value")
            out.append(0)
            return
        if isinstance(value, str):
            value = value.encode()
        size = len(value) + 1
        if size < 0x80:
            out.append(size)
        else:
            out += uvarint(size)
        out += value

    return encode


def _legacy_string(nullable: bool) -> Encoder:
    def encode(out: bytearray, value: Any) -> None:
        if value is None:
            if not nullable:
                raise TypeError("Unexpectedly received None value")
            out += NULL_INT16
            return
        raw = value.encode()
        if len(raw) > LEGACY_STRING_MAX:
            raise ValueError(f"string of {len(raw)} bytes is too long for an int16 length")
        out += INT16.pack(len(raw))
        out += raw

    return encode


def _legacy_bytes(nullable: bool) -> Encoder:
    def encode(out: bytearray, value: Any) -> None:
        if value is None:
            if not nullable:
                raise TypeError("Unexpectedly received None value")
            out += NULL_INT32
            return
        out += INT32.pack(len(value))
        out += value

    return encode


def _uuid(out: bytearray, value: Any) -> None:
    out += ZERO_UUID if value is None else value.bytes


def _millis(packer: struct.Struct) -> Encoder:
    def encode(out: bytearray, value: Any) -> None:
        out += packer.pack(round(value.total_seconds() * 1000))

    return encode


def _timestamp(nullable: bool) -> Encoder:
    def encode(out: bytearray, value: Any) -> None:
        if value is None and nullable:
            out += INT64.pack(-1)
        else:
            out += INT64.pack(round(value.timestamp() * 1000))

    return encode


def _struct_encoder(code: str) -> Encoder:
    pack = struct.Struct(">" + code).pack

    def encode(out: bytearray, value: Any) -> None:
        out += pack(value)

    return encode


def _primitive(kafka_type: str, flexible: bool, nullable: bool) -> Encoder:
    code = STRUCT_CODES.get(kafka_type)
    if code is not None:
        return _struct_encoder(code)
    if kafka_type == "string":
        return _compact_bytes(nullable) if flexible else _legacy_string(nullable)
    if kafka_type in ("bytes", "records"):
        return _compact_bytes(nullable) if flexible else _legacy_bytes(nullable)
    if kafka_type == "uuid":
        return _uuid
    if kafka_type == "timedelta_i32":
        return _millis(INT32)
    if kafka_type == "timedelta_i64":
        return _millis(INT64)
    if kafka_type == "datetime_i64":
        return _timestamp(nullable)
    raise TypeError(f"no encoder for kafka type {kafka_type!r}")  # pragma: no cover


# --- structure -----------------------------------------------------------------


def _array(item: Encoder, flexible: bool) -> Encoder:
    def encode(out: bytearray, items: Any) -> None:
        if items is None:
            out += b"\x00" if flexible else NULL_INT32
            return
        if flexible:
            size = len(items) + 1
            if size < 0x80:
                out.append(size)
            else:
                out += uvarint(size)
        else:
            out += INT32.pack(len(items))
        for value in items:
            item(out, value)

    return encode


def _nullable_struct(item: Encoder) -> Encoder:
    def encode(out: bytearray, value: Any) -> None:
        if value is None:
            out.append(0xFF)  # int8 -1 (KIP-893)
        else:
            out.append(1)
            item(out, value)

    return encode


def _field_encoder(cls: type, field: Field, is_tag: bool) -> Encoder:
    flexible = bool(cls.__flexible__)
    inner, is_array, nullable = _shape(field)
    nullable = nullable and not is_tag  # kio writes tagged values as non-nullable
    if is_dataclass(inner):
        item = entity_encoder(inner)
        if is_array:
            return _array(item, flexible)
        return _nullable_struct(item) if nullable else item
    kafka_type = field.metadata["kafka_type"]
    if is_array:
        return _array(_primitive(kafka_type, flexible, False), flexible)
    return _primitive(kafka_type, flexible, nullable)


def _is_fixed(field: Field) -> str | None:
    """The struct code of a plain fixed-size field, None otherwise."""
    if "tag" in field.metadata:
        return None
    inner, is_array, nullable = _shape(field)
    if is_array or nullable or is_dataclass(inner):
        return None
    return STRUCT_CODES.get(field.metadata.get("kafka_type", ""))


def _fixed_run(names: list[str], codes: str) -> Encoder:
    pack = struct.Struct(">" + codes).pack
    if len(names) == 1:
        get_one = attrgetter(names[0])

        def encode_one(out: bytearray, entity: Any) -> None:
            out += pack(get_one(entity))

        return encode_one
    get_all = attrgetter(*names)

    def encode_run(out: bytearray, entity: Any) -> None:
        out += pack(*get_all(entity))

    return encode_run


def _plain_field(name: str, encode_value: Encoder) -> Encoder:
    get = attrgetter(name)

    def encode(out: bytearray, entity: Any) -> None:
        encode_value(out, get(entity))

    return encode


def _tag_default(field: Field) -> tuple[bool, Any]:
    """(has an explicit default, the value that is left off the wire)."""
    if field.default is not MISSING:
        return True, field.default
    return False, get_tagged_field_default(field)


@cache
def entity_encoder(cls: type) -> Encoder:
    """``encode(out, entity)`` for kio entity class ``cls``, as kio's writer would."""
    steps: list[Encoder] = []
    run_names: list[str] = []
    run_codes = ""
    tagged: list[tuple[int, str, Encoder, Any]] = []
    for field in fields(cls):
        tag = field.metadata.get("tag")
        if tag is not None:
            _explicit, default = _tag_default(field)
            tagged.append((tag, field.name, _field_encoder(cls, field, True), default))
            continue
        code = _is_fixed(field)
        if code is not None:
            run_names.append(field.name)
            run_codes += code
            continue
        if run_names:
            steps.append(_fixed_run(run_names, run_codes))
            run_names, run_codes = [], ""
        steps.append(_plain_field(field.name, _field_encoder(cls, field, False)))
    if run_names:
        steps.append(_fixed_run(run_names, run_codes))
    tagged.sort(key=lambda entry: entry[0])
    flexible = bool(cls.__flexible__)
    if tagged and not flexible:  # pragma: no cover - kio refuses these too
        raise ValueError(f"tagged fields on non-flexible {cls.__qualname__}")

    def encode_tags(out: bytearray, entity: Any) -> None:
        present = []
        for tag, name, encode_value, default in tagged:
            value = getattr(entity, name)
            if value == default:
                continue
            data = bytearray()
            encode_value(data, value)
            present.append((tag, data))
        out += uvarint(len(present))
        for tag, data in present:
            out += uvarint(tag)
            out += uvarint(len(data))
            out += data

    if len(steps) == 1 and not flexible:
        return steps[0]

    def encode(out: bytearray, entity: Any) -> None:
        for step in steps:
            step(out, entity)
        if flexible:
            if tagged:
                encode_tags(out, entity)
            else:
                out.append(0)

    return encode


def encode_entity(entity: Any) -> bytes:
    """The wire bytes of one kio entity."""
    out = bytearray()
    entity_encoder(type(entity))(out, entity)
    return bytes(out)

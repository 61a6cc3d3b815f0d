"""A pre-pass that keeps kio's native reader from aborting the process.

kio 0.6.5's compiled reader sizes every array with ``Vec::with_capacity(n)``
where ``n`` is the untrusted length prefix. A ~20-byte request claiming 2**35
elements makes Rust request 256 GiB and *abort* (not raise): one packet would
kill the broker. Every element of every Kafka array takes at least one byte,
so a length larger than the bytes left in the frame is malformed;
:func:`bounds_checker` walks a body's structure -- lengths only, no objects --
and rejects such lengths before kio sees the bytes. It also rejects null
arrays in non-nullable fields (kio would hand them on as None), skips tagged
fields kio does not know, and returns where the body ends, so trailing bytes
are caught here too.

The walk is compiled per entity class from kio's dataclass fields: runs of
fixed-size fields become one position increment, arrays of fixed-size items
one multiplication.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import Field, fields, is_dataclass
from functools import cache
from types import NoneType, UnionType
from typing import Any, Union, get_args, get_origin

from dovecote.kafka.codec.errors import MalformedRequest
from dovecote.kafka.codec.primitives import INT16, INT32, read_uvarint

Walker = Callable[[Any, int, int], int]
"""``walk(buffer, position, end) -> position after the value``."""

FIXED_SIZES = {
    "int8": 1,
    "uint8": 1,
    "bool": 1,
    "int16": 2,
    "uint16": 2,
    "error_code": 2,
    "int32": 4,
    "uint32": 4,
    "timedelta_i32": 4,
    "int64": 8,
    "uint64": 8,
    "float64": 8,
    "timedelta_i64": 8,
    "datetime_i64": 8,
    "uuid": 16,
}


def _shape(field: Field) -> tuple[Any, bool]:
    """(item type, is array) of a kio dataclass field."""
    kind = field.type
    if get_origin(kind) in (UnionType, Union):
        kind = next(a for a in get_args(kind) if a is not NoneType)
    if get_origin(kind) is tuple:
        inner = get_args(kind)[0]
        if get_origin(inner) in (UnionType, Union):
            inner = next(a for a in get_args(inner) if a is not NoneType)
        return inner, True
    return kind, False


def _is_nullable(field: Field) -> bool:
    return get_origin(field.type) in (UnionType, Union) and NoneType in get_args(field.type)


def _fixed(size: int) -> Walker:
    def walk(buf: Any, pos: int, end: int) -> int:
        return pos + size

    return walk


def _sized(flexible: bool, legacy_length: Any) -> Walker:
    """Strings and bytes: a length prefix (-1 / compact 0 = null) and the data."""
    if flexible:

        def walk_compact(buf: Any, pos: int, end: int) -> int:
            if pos < end and buf[pos] < 0x80:  # lengths under 127: one byte
                size = buf[pos]
                pos += 1
            else:
                size, pos = read_uvarint(buf, pos)
            return pos + size - 1 if size else pos

        return walk_compact
    unpack = legacy_length.unpack_from
    width = legacy_length.size

    def walk_legacy(buf: Any, pos: int, end: int) -> int:
        if pos + width > end:
            raise MalformedRequest("truncated length prefix")
        (size,) = unpack(buf, pos)
        if size < -1:
            raise MalformedRequest(f"negative length {size}")
        return pos + width + max(size, 0)

    return walk_legacy


def _array(flexible: bool, item: Walker | None, item_size: int, nullable: bool) -> Walker:
    """An array of ``item`` walkers, or of fixed ``item_size`` items when item is None.

    A null array where the schema does not allow one is malformed, as in Kafka
    ("non-nullable field ... was serialized as null"); kio would return None.
    """

    def walk(buf: Any, pos: int, end: int) -> int:
        if flexible:
            if pos < end and buf[pos] < 0x80:
                count = buf[pos] - 1
                pos += 1
            else:
                count, pos = read_uvarint(buf, pos)
                count -= 1
        else:
            if pos + 4 > end:
                raise MalformedRequest("truncated array length")
            (count,) = INT32.unpack_from(buf, pos)
            pos += 4
            if count < -1:
                raise MalformedRequest(f"negative array length {count}")
        if count <= 0:
            if count < 0 and not nullable:
                raise MalformedRequest("null array in a non-nullable field")
            return pos
        if count > end - pos:
            raise MalformedRequest(f"array of {count} items in {end - pos} bytes")
        if item is None:
            return pos + count * item_size
        for _ in range(count):
            pos = item(buf, pos, end)
        return pos

    return walk


def _nullable_struct(item: Walker) -> Walker:
    def walk(buf: Any, pos: int, end: int) -> int:
        if pos >= end:
            raise MalformedRequest("truncated struct marker")
        if buf[pos] == 0xFF:  # int8 -1: null (KIP-893)
            return pos + 1
        return item(buf, pos + 1, end)

    return walk


def _field_walker(cls: type, field: Field, is_tag: bool) -> tuple[Walker | None, int]:
    """(walker, 0) for a variable-size field, or (None, size) for a fixed-size one."""
    flexible = bool(cls.__flexible__)
    inner, is_array = _shape(field)
    if is_dataclass(inner):
        item: Walker | None = bounds_checker(inner)
        item_size = 0
        if not is_array and _is_nullable(field) and not is_tag:
            return _nullable_struct(bounds_checker(inner)), 0
    else:
        kafka_type = field.metadata["kafka_type"]
        item_size = FIXED_SIZES.get(kafka_type, 0)
        if item_size:
            item = None
        elif kafka_type == "string":
            item = _sized(flexible, INT16)
        elif kafka_type in ("bytes", "records"):
            item = _sized(flexible, INT32)
        else:  # pragma: no cover - a kio type this module does not know yet
            raise TypeError(f"no bounds walker for kafka type {kafka_type!r}")
    if is_array:
        return _array(flexible, item, item_size, _is_nullable(field) or is_tag), 0
    if item is None:
        return None, item_size
    return item, 0


@cache
def bounds_checker(cls: type) -> Walker:
    """The walker for kio entity class ``cls``: raises :class:`MalformedRequest`
    on impossible lengths or truncation, returns the position after the entity."""
    steps: list[Walker] = []
    run = 0  # bytes of consecutive fixed-size fields not yet emitted
    tagged: dict[int, Walker] = {}
    for field in fields(cls):
        tag = field.metadata.get("tag")
        walker, size = _field_walker(cls, field, tag is not None)
        if tag is not None:
            tagged[tag] = walker or _fixed(size)
        elif walker is None:
            run += size
        else:
            if run:
                steps.append(_fixed(run))
                run = 0
            steps.append(walker)
    flexible = bool(cls.__flexible__)

    def walk_tags(buf: Any, pos: int, end: int) -> int:
        count, pos = read_uvarint(buf, pos)
        for _ in range(count):
            tag, pos = read_uvarint(buf, pos)
            size, pos = read_uvarint(buf, pos)
            stop = pos + size
            if stop > end:
                raise MalformedRequest("tagged field runs past the end of the frame")
            known = tagged.get(tag)
            if known is not None and known(buf, pos, stop) != stop:
                raise MalformedRequest(f"tagged field {tag} has the wrong size")
            pos = stop
        return pos

    def walk(buf: Any, pos: int, end: int) -> int:
        for step in steps:
            pos = step(buf, pos, end)
        pos += run
        if flexible:
            if pos < end and buf[pos] == 0:  # no tagged fields: the usual case
                pos += 1
            else:
                pos = walk_tags(buf, pos, end)
        if pos > end:
            raise MalformedRequest("truncated request body")
        return pos

    def walk_fixed_flexible(buf: Any, pos: int, end: int) -> int:
        pos += run
        if pos < end and buf[pos] == 0:
            return pos + 1
        pos = walk_tags(buf, pos, end)
        if pos > end:
            raise MalformedRequest("truncated request body")
        return pos

    return walk_fixed_flexible if flexible and not steps else walk

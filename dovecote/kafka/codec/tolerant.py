"""A slower body reader that skips tagged fields kio does not know.

KIP-482 lets Kafka add tagged fields to existing versions, and a receiver must
skip tags it does not understand. kio's compiled reader raises ``KeyError``
instead, so a client built against a newer schema than kio's would be refused.
:func:`tolerant_reader` walks the same kio dataclasses in Python -- kio's own
readers for every primitive field, this module's recursion for structs and
arrays of structs -- and ignores unknown tags. :func:`decode_request` only
falls back to it when kio trips over an unknown tag, so the common path keeps
kio's speed.
"""

from __future__ import annotations

from dataclasses import Field, fields, is_dataclass
from functools import cache
from types import NoneType, UnionType
from typing import Any, Union, get_args, get_origin

from kio.serial._parse import get_field_reader
from kio.serial.readers import compact_array_reader, legacy_array_reader, read_int8

from dovecote.kafka.codec.errors import MalformedRequest
from dovecote.kafka.codec.primitives import read_uvarint
from dovecote.kafka.codec.schemas import Reader


def is_unknown_tag_error(exc: BaseException) -> bool:
    """Whether kio's reader failed only because of a tag it does not know."""
    return isinstance(exc, KeyError) and "Unknown tagged field" in str(exc)


def _struct_type(field: Field) -> tuple[type | None, bool, bool]:
    """(struct class or None for primitives, is array, is nullable) of a kio field."""
    kind = field.type
    nullable = False
    if get_origin(kind) in (UnionType, Union):
        args = [a for a in get_args(kind) if a is not NoneType]
        nullable = len(args) < len(get_args(kind))
        kind = args[0]
    if get_origin(kind) is tuple:
        inner = get_args(kind)[0]
        return (inner if is_dataclass(inner) else None), True, nullable
    return (kind if is_dataclass(kind) else None), False, nullable


def _field_reader(cls: type, field: Field, is_tag: bool) -> Reader:
    struct_cls, is_array, nullable = _struct_type(field)
    if struct_cls is None:
        return get_field_reader(cls, field, False, is_tag)
    item = tolerant_reader(struct_cls)
    if is_array:
        return (compact_array_reader if cls.__flexible__ else legacy_array_reader)(item)
    if nullable and not is_tag:  # KIP-893: int8 -1 = null, 1 = present
        return _nullable(item)
    return item


def _nullable(item: Reader) -> Reader:
    def read(buf: Any, pos: int) -> tuple[Any, int]:
        marker, _ = read_int8(buf, pos)
        if marker < 0:
            return None, 1
        value, size = item(buf, pos + 1)
        return value, size + 1

    return read


@cache
def tolerant_reader(cls: type) -> Reader:
    """``reader(buffer, offset) -> (entity, bytes read)`` for a kio entity
    class (kio's reader convention), skipping unknown tagged fields at every
    nesting level."""
    plain: list[tuple[str, Reader]] = []
    tagged: dict[int, tuple[str, Reader]] = {}
    for field in fields(cls):
        tag = field.metadata.get("tag")
        if tag is None:
            plain.append((field.name, _field_reader(cls, field, False)))
        else:
            tagged[tag] = (field.name, _field_reader(cls, field, True))
    flexible = bool(cls.__flexible__)

    def read(buf: Any, start: int) -> tuple[Any, int]:
        values: dict[str, Any] = {}
        pos = start
        for name, reader in plain:
            values[name], size = reader(buf, pos)
            pos += size
        if flexible:
            count, pos = read_uvarint(buf, pos)
            for _ in range(count):
                tag, pos = read_uvarint(buf, pos)
                size, pos = read_uvarint(buf, pos)
                end = pos + size
                if end > len(buf):
                    raise MalformedRequest("tagged field runs past the end of the frame")
                known = tagged.get(tag)
                if known is not None:
                    name, reader = known
                    values[name], used = reader(buf, pos)
                    if used != size:
                        raise MalformedRequest(f"tagged field {tag} has the wrong size")
                pos = end
        return cls(**values), pos - start

    return read

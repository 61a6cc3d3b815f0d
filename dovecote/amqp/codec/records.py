"""How AMQP properties live in a stored Record's headers, and back.

The neutral side is :mod:`dovecote.core.headers`: application headers by
name, well-known names for shared properties, typed values per its encoding.
The table in docs/architecture.md ("Record mapping") is the reference.

* **AMQP publish -> Record.** :func:`record_headers_for_publish` gives
  ``("amqp.properties", block)`` (the property block exactly as the publisher
  sent it, so AMQP consumers get it back byte for byte) followed by
  :func:`neutral_headers`: each property as its well-known header, then each
  headers-table entry as a header of its own name (strings as UTF-8; other
  types as typed values, their tags in ``dovecote.types``).
* **Record -> AMQP delivery.** :func:`property_block_for_record`: the stored
  block when the record's other headers are still exactly its neutral
  headers (the common case; nothing is decoded when there are none), else a
  block built from the headers by :func:`block_from_headers`.
* Names starting with ``amqp.`` are reserved for this adapter.

The record key and the routing key are the adapter's business, not this
module's.
"""

from __future__ import annotations

import decimal
from collections.abc import Sequence
from typing import Any

from dovecote.amqp.codec.errors import AMQPError
from dovecote.amqp.codec.properties import (
    _INDEX,
    _U32,
    _U64,
    EMPTY_PROPERTIES,
    _layout,
    encode_properties,
)
from dovecote.amqp.codec.tables import Timestamp, Typed, decode_table_typed, encode_value
from dovecote.core import headers as H

PROPERTIES_HEADER = "amqp.properties"
RESERVED_PREFIX = "amqp."
CLUSTER_ID = "amqp.cluster-id"  # deprecated in 0-9-1; kept for exact round trips
H.reserve_prefix(RESERVED_PREFIX)

RecordHeader = tuple[str, bytes | None]

_S, _O, _TS = 0, 1, 2
# (property, record header, kind) in wire order; ``headers`` is the table itself.
PROPERTY_HEADERS: tuple[tuple[str, str, int], ...] = (
    ("content_type", H.CONTENT_TYPE, _S),
    ("content_encoding", H.CONTENT_ENCODING, _S),
    ("delivery_mode", H.DELIVERY_MODE, _O),
    ("priority", H.PRIORITY, _O),
    ("correlation_id", H.CORRELATION_ID, _S),
    ("reply_to", H.REPLY_TO, _S),
    ("expiration", H.EXPIRATION, _S),
    ("message_id", H.MESSAGE_ID, _S),
    ("timestamp", H.TIMESTAMP, _TS),
    ("message_type", H.TYPE, _S),
    ("user_id", H.USER_ID, _S),
    ("app_id", H.APP_ID, _S),
    ("cluster_id", CLUSTER_ID, _S),
)
_BY_HEADER = {header: (prop, kind) for prop, header, kind in PROPERTY_HEADERS}
_WIRE = tuple((_INDEX[prop], header, kind) for prop, header, kind in PROPERTY_HEADERS)
_HEADERS_INDEX = _INDEX["headers"]

# AMQP field type code <-> neutral type tag
_INT_CODES = {
    "b": "int8",
    "B": "uint8",
    "s": "int16",
    "u": "uint16",
    "I": "int32",
    "i": "uint32",
    "l": "int64",
    "L": "int64",  # RabbitMQ reads L as signed 64-bit too
}
_INT_TAGS = {tag: code for code, tag in _INT_CODES.items() if code != "L"}


# --- AMQP -> neutral ------------------------------------------------------------------


def record_headers_for_publish(property_block: bytes) -> list[RecordHeader]:
    """The record headers that store a published message's properties."""
    return [(PROPERTIES_HEADER, property_block), *exposed_headers(property_block)]


_F_HEADERS, _F_DELIVERY_MODE, _F_PRIORITY = 0x2000, 0x1000, 0x0800
_BROKER_ONLY = _F_HEADERS | _F_DELIVERY_MODE | _F_PRIORITY


def broker_only(block: bytes) -> bool:
    """Whether ``block`` holds nothing but delivery-mode and priority (and maybe an
    empty headers table): flags that steer the broker (persistence, priority
    level) and that a reader of another protocol has no use for."""
    if len(block) < 2 or block[1] & 1:
        return False
    flags = (block[0] << 8) | block[1]
    if flags & ~_BROKER_ONLY:
        return False
    return not flags & _F_HEADERS or block[2:6] == b"\x00\x00\x00\x00"


def exposed_headers(block: bytes) -> list[RecordHeader]:
    """The neutral headers stored beside a published block: none for a block
    that is :func:`broker_only` (so the most common messages, persistent and
    nothing else, cost nothing more than their block), else all of them."""
    return [] if broker_only(block) else neutral_headers(block)


def headers_to_build_from(block: bytes, others: list[RecordHeader]) -> list[RecordHeader]:
    """What a block is rebuilt from when a record's headers no longer match its
    stored ``block``: the headers, after the block's own neutral headers when
    none were stored (they cannot have been changed)."""
    return [*neutral_headers(block), *others] if broker_only(block) else others


def neutral_headers(block: bytes) -> list[RecordHeader]:
    """A property block as neutral record headers (see the module docstring):
    properties first, in wire order, then the table's entries in order (names
    with a reserved prefix stay in the block only), then ``dovecote.types``."""
    if block == EMPTY_PROPERTIES:
        return []
    starts = _layout(block)[1]
    out: list[RecordHeader] = []
    for i, header, kind in _WIRE:
        pos = starts[i]
        if pos < 0:
            continue
        if kind == _S:  # UTF-8 already (the block was checked when published)
            out.append((header, block[pos + 1 : pos + 1 + block[pos]]))
        elif kind == _O:
            out.append((header, b"%d" % block[pos]))
        else:
            out.append((header, b"%d" % (_U64.unpack_from(block, pos)[0] * 1000)))
    start = starts[_HEADERS_INDEX]
    if start >= 0:
        end = start + 4 + _U32.unpack_from(block, start)[0]
        types: dict[str, str] = {}
        for key, code, value in decode_table_typed(block, start + 4, end):
            if H.is_reserved(key):
                continue
            if code == "S" and value.isascii():
                out.append((key, value))  # text: the bytes as they are
                continue
            element = _element(code, value)
            if element is None:
                out.append((key, None))
            elif isinstance(element, str):
                out.append((key, element.encode("utf-8")))
            else:
                out.append((key, H.encode_typed(element)))
                types[key] = element.tag
        if types:
            out.append(H.types_header(types))
    return out


def _element(code: str, value: Any) -> H.Element:
    """An AMQP field value (from ``decode_table_typed``) as a neutral element."""
    if code == "S":
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return H.TypedValue(H.STRING, value)
    if code == "V":
        return None
    tag = _INT_CODES.get(code)
    if tag is not None:
        return H.TypedValue(tag, value)
    if code == "t":
        return H.TypedValue(H.BOOL, value)
    if code == "f":
        return H.TypedValue("float32", value)
    if code == "d":
        return H.TypedValue("float64", value)
    if code == "D":
        return H.TypedValue(H.DECIMAL, value)
    if code == "T":
        return H.TypedValue(H.SECONDS, int(value))
    if code == "x":
        return H.TypedValue(H.BYTES, bytes(value))
    if code == "F":
        return H.TypedValue(H.TABLE, {k: _element(c, v) for k, c, v in value})
    if code == "A":
        return H.TypedValue(H.ARRAY, [_element(c, v) for c, v in value])
    raise ValueError(f"unknown field type {code!r}")


# --- neutral -> AMQP ------------------------------------------------------------------


def _amqp_value(element: H.Element | bytes) -> Any:
    """A neutral element as a value for ``encode_table`` (type codes kept)."""
    if element is None or isinstance(element, str):
        return element
    if isinstance(element, bytes):
        return bytearray(element)  # not UTF-8: a byte array
    tag, value = element
    code = _INT_TAGS.get(tag)
    if code is not None:
        return Typed(code, value)
    if tag == H.BOOL:
        return bool(value)
    if tag == "float32":
        return Typed("f", value)
    if tag == "float64":
        return Typed("d", value)
    if tag == H.DECIMAL:
        return Typed("D", value)
    if tag == H.SECONDS:
        return Timestamp(value)
    if tag == H.BYTES:
        return bytearray(value)
    if tag == H.STRING:
        return Typed("S", value)
    if tag == H.NUMBER:
        return str(value)
    if tag == H.TABLE:
        return {k: _amqp_value(v) for k, v in value.items()}
    if tag == H.ARRAY:
        return [_amqp_value(v) for v in value]
    raise ValueError(f"unknown type tag {tag!r}")


def _property(kind: int, raw: bytes | None) -> Any:
    """A well-known header's value as its AMQP property, or None when it cannot be one."""
    if raw is None:
        return None
    if kind == _S:
        if len(raw) > 255:
            return None
        try:
            return bytes(raw).decode("utf-8")
        except UnicodeDecodeError:
            return None
    if not raw.isdigit() or len(raw) > 24:
        return None
    number = int(raw)
    if kind == _O:
        return number if number <= 255 else None
    seconds = number // 1000
    return seconds if seconds < 2**64 else None


def block_from_headers(headers: Sequence[RecordHeader], timestamp_ms: int = -1) -> bytes:
    """The property block for a record's headers (reserved names already left
    out, except ``dovecote.types`` and ``amqp.cluster-id``).

    The first usable, untyped header of a well-known name becomes its property; every
    other header becomes a headers-table entry (last one of a name wins;
    names over 255 bytes are skipped): typed per ``dovecote.types``, else a
    longstr when UTF-8, a byte array when not, void when null. Without a
    ``timestamp`` header, ``timestamp_ms >= 0`` gives the timestamp property.
    """
    types = H.read_types(H.find(headers, H.TYPES))
    fields: dict[str, Any] = {}
    table: dict[str, Any] = {}
    for name, raw in headers:
        if name == H.TYPES:
            continue
        known = _BY_HEADER.get(name)
        if known is not None and known[0] not in fields and name not in types:
            value = _property(known[1], raw)
            if value is not None:
                fields[known[0]] = value
                continue
        if name == CLUSTER_ID or len(name.encode("utf-8")) > 255:
            continue
        value = _amqp_value(H.header_value(name, raw, types))
        if not isinstance(value, str) and value is not None:
            try:
                encode_value(value)
            except (ValueError, TypeError, decimal.InvalidOperation):
                value = bytes(raw or b"").decode("utf-8", "replace")  # as text, then
        table[name] = value
    if "timestamp" not in fields and timestamp_ms >= 0:
        fields["timestamp"] = timestamp_ms // 1000
    if table:
        fields["headers"] = table
    return encode_properties(fields) if fields else EMPTY_PROPERTIES


# --- record -> block, the whole rule --------------------------------------------------


def stored_property_block(headers: Sequence[RecordHeader]) -> bytes | None:
    """The stored ``amqp.properties`` block, or ``None`` for a non-AMQP record."""
    for name, value in headers:
        if name == PROPERTIES_HEADER:
            return value if value is not None else EMPTY_PROPERTIES
    return None


def property_block_for_record(headers: Sequence[RecordHeader], timestamp_ms: int = -1) -> bytes:
    """The property block to send when delivering a stored record to an AMQP consumer."""
    block = None
    others: list[RecordHeader] = []
    for name, value in headers:
        if name == PROPERTIES_HEADER:
            block = value if value is not None else EMPTY_PROPERTIES
        elif name == H.TYPES or name == CLUSTER_ID or not H.is_reserved(name):
            others.append((name, value))
    if block is not None:
        if not others:
            return block
        try:
            if others == exposed_headers(block):
                return block
            others = headers_to_build_from(block, others)
        except AMQPError:
            pass  # not a block this broker stored: the headers count
        timestamp_ms = -1  # published over AMQP: its headers say whether it had one
    return block_from_headers(others, timestamp_ms)

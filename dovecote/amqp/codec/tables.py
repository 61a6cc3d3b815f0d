"""AMQP field tables and arrays (RabbitMQ's dialect of spec 4.2.5.5).

Type codes, as RabbitMQ's errata defines them::

    t bool   b int8   B uint8   s int16   u uint16   I int32   i uint32
    l int64  L int64 (read only, as RabbitMQ)        f float32 d float64
    D decimal  S longstr  x bytes  A array  T timestamp  F table  V void

Decoding is strict and total: any truncated, overlong or unknown-typed input
raises :class:`~dovecote.amqp.codec.errors.SyntaxError_` (502); nothing else
escapes. Decoded Python types follow pamqp (``S`` gives ``str`` when the bytes
are UTF-8, else ``bytes``; ``x`` gives ``bytearray``; ``D`` gives ``Decimal``)
except ``T``, which gives :class:`Timestamp` (an ``int`` of seconds) so any
64-bit value round-trips instead of failing in ``datetime``.

Encoding infers the type like pamqp (smallest integer type, ``bool`` -> ``t``,
``bytearray`` -> ``x``, ``None`` -> ``V``) with three deliberate differences:
``float`` -> ``d`` (pamqp narrows to ``f`` and loses precision), ``bytes`` ->
``S`` (pamqp refuses bytes), and keys keep the mapping's order (pamqp sorts;
order carries no meaning in AMQP). :class:`Typed` forces a specific code.
"""

from __future__ import annotations

import calendar
import datetime
import decimal
import struct
import time
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from dovecote.amqp.codec.errors import SyntaxError_

MAX_DEPTH = 64  # nested tables/arrays; guards the Python stack against hostile input
MAX_TIMESTAMP = 2**64 - 1

_U32 = struct.Struct(">I")
_I8 = struct.Struct(">b")
_U8 = struct.Struct(">B")
_I16 = struct.Struct(">h")
_U16 = struct.Struct(">H")
_I32 = struct.Struct(">i")
_I64 = struct.Struct(">q")
_U64 = struct.Struct(">Q")
_F32 = struct.Struct(">f")
_F64 = struct.Struct(">d")
_DEC = struct.Struct(">Bi")

EMPTY_TABLE = b"\x00\x00\x00\x00"


class Timestamp(int):
    """A ``T`` value: seconds since the epoch, unsigned 64-bit, kept exact."""

    __slots__ = ()

    def to_datetime(self) -> datetime.datetime:
        """UTC datetime; raises ``OverflowError``/``ValueError`` past year 9999."""
        return datetime.datetime.fromtimestamp(int(self), tz=datetime.UTC)

    def __repr__(self) -> str:
        return f"Timestamp({int(self)})"


class Typed(NamedTuple):
    """Force a field type when encoding, e.g. ``Typed("B", 7)`` or ``Typed("f", 0.5)``."""

    code: str
    value: Any


# --- decoding ---------------------------------------------------------------


def _bad(text: str) -> SyntaxError_:
    return SyntaxError_(text)


def _entry_key(buf: bytes | memoryview, pos: int, stop: int) -> tuple[str, int]:
    """A table entry's key (a shortstr) and where its value starts."""
    klen = buf[pos]
    kend = pos + 1 + klen
    if kend >= stop:
        raise _bad("field table key overruns the table")
    try:
        return bytes(buf[pos + 1 : kend]).decode("utf-8"), kend
    except UnicodeDecodeError:
        raise _bad("field table key is not UTF-8") from None


def decode_table(buf: bytes, pos: int = 0, end: int | None = None) -> tuple[dict[str, Any], int]:
    """Decode the length-prefixed table at ``buf[pos:]``; return it and the position after it."""
    limit = len(buf) if end is None else end
    if pos + 4 > limit:
        raise _bad("field table length truncated")
    (size,) = _U32.unpack_from(buf, pos)
    start = pos + 4
    stop = start + size
    if stop > limit:
        raise _bad("field table longer than its container")
    return _table_body(buf, start, stop, 0), stop


def decode_array(buf: bytes, pos: int = 0, end: int | None = None) -> tuple[list[Any], int]:
    """Decode the length-prefixed array at ``buf[pos:]``; return it and the position after it."""
    limit = len(buf) if end is None else end
    if pos + 4 > limit:
        raise _bad("field array length truncated")
    (size,) = _U32.unpack_from(buf, pos)
    start = pos + 4
    stop = start + size
    if stop > limit:
        raise _bad("field array longer than its container")
    return _array_body(buf, start, stop, 0), stop


def _table_body(buf: bytes, pos: int, stop: int, depth: int) -> dict[str, Any]:
    if depth >= MAX_DEPTH:
        raise _bad("field tables nested too deeply")
    out: dict[str, Any] = {}
    while pos < stop:
        klen = buf[pos]
        kend = pos + 1 + klen
        if kend >= stop:  # the key and at least a type octet must fit
            raise _bad("field table key overruns the table")
        try:
            key = buf[pos + 1 : kend].decode("utf-8")
        except UnicodeDecodeError:
            raise _bad("field table key is not UTF-8") from None
        out[key], pos = _value(buf, kend, stop, depth)
    return out


def _array_body(buf: bytes, pos: int, stop: int, depth: int) -> list[Any]:
    if depth >= MAX_DEPTH:
        raise _bad("field arrays nested too deeply")
    out: list[Any] = []
    append = out.append
    while pos < stop:
        value, pos = _value(buf, pos, stop, depth)
        append(value)
    return out


def _value(buf: bytes, pos: int, stop: int, depth: int) -> tuple[Any, int]:
    """Decode one type-tagged value at ``pos`` (which must be < ``stop``)."""
    code = buf[pos]
    pos += 1
    if code == 83:  # S
        if pos + 4 > stop:
            raise _bad("longstr length truncated")
        (size,) = _U32.unpack_from(buf, pos)
        pos += 4
        end = pos + size
        if end > stop:
            raise _bad("longstr overruns its table")
        raw = buf[pos:end]
        try:
            return raw.decode("utf-8"), end
        except UnicodeDecodeError:
            return bytes(raw), end
    fixed = _FIXED.get(code)
    if fixed is not None:
        st, kind = fixed
        end = pos + st.size
        if end > stop:
            raise _bad(f"field value {chr(code)!r} truncated")
        value = st.unpack_from(buf, pos)[0]
        if kind == 1:
            value = value != 0
        elif kind == 2:
            value = Timestamp(value)
        return value, end
    if code == 70 or code == 65 or code == 120:  # F A x
        if pos + 4 > stop:
            raise _bad("field value length truncated")
        (size,) = _U32.unpack_from(buf, pos)
        pos += 4
        end = pos + size
        if end > stop:
            raise _bad("nested field value overruns its table")
        if code == 70:
            return _table_body(buf, pos, end, depth + 1), end
        if code == 65:
            return _array_body(buf, pos, end, depth + 1), end
        return bytearray(buf[pos:end]), end
    if code == 68:  # D
        end = pos + 5
        if end > stop:
            raise _bad("decimal truncated")
        scale, mantissa = _DEC.unpack_from(buf, pos)
        return decimal.Decimal(mantissa).scaleb(-scale), end
    if code == 86:  # V
        return None, pos
    raise _bad(f"unknown field type {bytes([code])!r}")


# code -> (struct, kind) where kind 0 = number, 1 = bool, 2 = timestamp
_FIXED: dict[int, tuple[struct.Struct, int]] = {
    ord("t"): (_U8, 1),
    ord("b"): (_I8, 0),
    ord("B"): (_U8, 0),
    ord("s"): (_I16, 0),
    ord("u"): (_U16, 0),
    ord("I"): (_I32, 0),
    ord("i"): (_U32, 0),
    ord("l"): (_I64, 0),
    ord("L"): (_I64, 0),  # RabbitMQ reads L as signed 64-bit too
    ord("f"): (_F32, 0),
    ord("d"): (_F64, 0),
    ord("T"): (_U64, 2),
}
_FIXED_SIZE = {code: st.size for code, (st, _kind) in _FIXED.items()}


# --- validation without building objects ------------------------------------


def check_table(buf: bytes, pos: int, stop: int, depth: int = 0) -> None:
    """Walk a table body ``buf[pos:stop]`` and raise 502 where :func:`decode_table` would.

    Cheaper than decoding (no Python objects for values), used to vet a
    published property block before the broker stores it.
    """
    if depth >= MAX_DEPTH:
        raise _bad("field tables nested too deeply")
    while pos < stop:
        klen = buf[pos]
        kend = pos + 1 + klen
        if kend >= stop:
            raise _bad("field table key overruns the table")
        if klen:
            key = buf[pos + 1 : kend]
            if not key.isascii():
                try:
                    key.decode("utf-8")
                except UnicodeDecodeError:
                    raise _bad("field table key is not UTF-8") from None
        pos = _skip_value(buf, kend, stop, depth)


def _check_array(buf: bytes, pos: int, stop: int, depth: int) -> None:
    if depth >= MAX_DEPTH:
        raise _bad("field arrays nested too deeply")
    while pos < stop:
        pos = _skip_value(buf, pos, stop, depth)


def _skip_value(buf: bytes, pos: int, stop: int, depth: int) -> int:
    code = buf[pos]
    pos += 1
    size = _FIXED_SIZE.get(code)
    if size is not None:
        end = pos + size
        if end > stop:
            raise _bad(f"field value {chr(code)!r} truncated")
        return end
    if code == 83 or code == 70 or code == 65 or code == 120:  # S F A x
        if pos + 4 > stop:
            raise _bad("field value length truncated")
        (length,) = _U32.unpack_from(buf, pos)
        pos += 4
        end = pos + length
        if end > stop:
            raise _bad("field value overruns its table")
        if code == 70:
            check_table(buf, pos, end, depth + 1)
        elif code == 65:
            _check_array(buf, pos, end, depth + 1)
        return end
    if code == 68:
        end = pos + 5
        if end > stop:
            raise _bad("decimal truncated")
        return end
    if code == 86:
        return pos
    raise _bad(f"unknown field type {bytes([code])!r}")


# --- raw entries: edit a table without re-encoding what is not touched -------


def iter_table_entries(buf: bytes, pos: int, stop: int) -> list[tuple[str, int, int]]:
    """``(key, entry_start, entry_end)`` for each entry of a table body ``buf[pos:stop]``.

    ``buf[entry_start:entry_end]`` is the whole encoded entry (key, type, value),
    so entries can be copied into a new table byte for byte.
    """
    out = []
    while pos < stop:
        key, kend = _entry_key(buf, pos, stop)
        end = _skip_value(buf, kend, stop, 0)
        out.append((key, pos, end))
        pos = end
    return out


REMOVE = object()
"""Marker for :func:`update_table`: delete this key."""


def update_table(buf: bytes, pos: int, stop: int, updates: Mapping[str, Any]) -> bytes:
    """Return a new length-prefixed table: ``buf[pos:stop]`` (a table body) with ``updates``.

    Untouched entries keep their exact bytes and order; replaced keys stay in
    place; new keys go at the end; a value of :data:`REMOVE` deletes the key.
    """
    parts: list[bytes] = []
    seen: set[str] = set()
    for key, start, end in iter_table_entries(buf, pos, stop):
        if key in updates:
            if key in seen:
                continue  # a duplicate key: keep only the updated first occurrence
            seen.add(key)
            value = updates[key]
            if value is not REMOVE:
                _encode_entry(key, value, parts)
        else:
            parts.append(buf[start:end])
    for key, value in updates.items():
        if key not in seen and value is not REMOVE:
            _encode_entry(key, value, parts)
    body = b"".join(parts)
    return _U32.pack(len(body)) + body


# --- encoding ---------------------------------------------------------------


def encode_table(table: Mapping[str, Any] | None) -> bytes:
    """Encode a mapping as a length-prefixed field table (``None``/empty -> 4 zero bytes)."""
    if not table:
        return EMPTY_TABLE
    parts: list[bytes] = []
    for key, value in table.items():
        _encode_entry(key, value, parts)
    body = b"".join(parts)
    return _U32.pack(len(body)) + body


def encode_array(values: Sequence[Any]) -> bytes:
    """Encode a sequence as a length-prefixed field array."""
    parts: list[bytes] = []
    for value in values:
        _encode_value(value, parts, 0)
    body = b"".join(parts)
    return _U32.pack(len(body)) + body


def encode_value(value: Any) -> bytes:
    """Encode one type-tagged field value (as inside a table or array)."""
    parts: list[bytes] = []
    _encode_value(value, parts, 0)
    return b"".join(parts)


def _encode_entry(key: str, value: Any, parts: list[bytes], depth: int = 0) -> None:
    raw = key.encode("utf-8") if isinstance(key, str) else bytes(key)
    if len(raw) > 255:
        raise ValueError(f"field table key longer than 255 bytes: {key!r}")
    parts.append(_U8.pack(len(raw)) + raw)
    _encode_value(value, parts, depth)


def _encode_value(value: Any, parts: list[bytes], depth: int) -> None:
    if depth > MAX_DEPTH:
        raise ValueError("field value nested too deeply")
    if isinstance(value, str):
        raw = value.encode("utf-8")
        parts.append(b"S" + _U32.pack(len(raw)) + raw)
    elif isinstance(value, bool):
        parts.append(b"t\x01" if value else b"t\x00")
    elif isinstance(value, Timestamp):
        parts.append(_timestamp(int(value)))
    elif isinstance(value, int):
        parts.append(_integer(value))
    elif isinstance(value, bytes):
        parts.append(b"S" + _U32.pack(len(value)) + value)
    elif isinstance(value, float):
        parts.append(b"d" + _F64.pack(value))
    elif value is None:
        parts.append(b"V")
    elif isinstance(value, Mapping):
        sub: list[bytes] = []
        for key, item in value.items():
            _encode_entry(key, item, sub, depth + 1)
        body = b"".join(sub)
        parts.append(b"F" + _U32.pack(len(body)) + body)
    elif isinstance(value, list | tuple) and not isinstance(value, Typed):
        sub = []
        for item in value:
            _encode_value(item, sub, depth + 1)
        body = b"".join(sub)
        parts.append(b"A" + _U32.pack(len(body)) + body)
    elif isinstance(value, bytearray | memoryview):
        raw = bytes(value)
        parts.append(b"x" + _U32.pack(len(raw)) + raw)
    elif isinstance(value, decimal.Decimal):
        parts.append(b"D" + _decimal(value))
    elif isinstance(value, datetime.datetime | time.struct_time):
        parts.append(b"T" + _U64.pack(_seconds(value)))
    elif isinstance(value, Typed):
        parts.append(_typed(value, depth))
    else:
        raise TypeError(f"cannot encode {type(value).__name__} in a field table: {value!r}")


def _integer(value: int) -> bytes:
    if -128 <= value <= 127:
        return b"b" + _I8.pack(value)
    if -32768 <= value <= 32767:
        return b"s" + _I16.pack(value)
    if 0 <= value <= 65535:
        return b"u" + _U16.pack(value)
    if -(2**31) <= value < 2**31:
        return b"I" + _I32.pack(value)
    if 0 <= value < 2**32:
        return b"i" + _U32.pack(value)
    if -(2**63) <= value < 2**63:
        return b"l" + _I64.pack(value)
    raise ValueError(f"integer out of field-table range: {value}")


def _decimal(value: decimal.Decimal) -> bytes:
    exponent = value.as_tuple().exponent
    if not isinstance(exponent, int):
        raise ValueError(f"cannot encode {value} as an AMQP decimal")
    if exponent > 0:
        scale, mantissa = 0, int(value)
    else:
        scale, mantissa = -exponent, int(value.scaleb(-exponent))
    if not 0 <= scale <= 255 or not -(2**31) <= mantissa < 2**31:
        raise ValueError(f"decimal out of AMQP range: {value}")
    return _DEC.pack(scale, mantissa)


def _seconds(value: datetime.datetime | time.struct_time) -> int:
    if isinstance(value, datetime.datetime):
        if value.tzinfo is None or value.tzinfo.utcoffset(value) is None:
            value = value.replace(tzinfo=datetime.UTC)  # naive means UTC, as in pamqp
        return int(value.timestamp())
    return calendar.timegm(value)


def _timestamp(seconds: int) -> bytes:
    if not 0 <= seconds <= MAX_TIMESTAMP:
        raise ValueError(f"timestamp out of range: {seconds}")
    return b"T" + _U64.pack(seconds)


_TYPED_STRUCTS: dict[str, struct.Struct] = {
    "b": _I8,
    "B": _U8,
    "s": _I16,
    "u": _U16,
    "I": _I32,
    "i": _U32,
    "l": _I64,
    "L": _I64,
    "f": _F32,
    "d": _F64,
}


def _typed(typed: Typed, depth: int) -> bytes:
    code, value = typed
    st = _TYPED_STRUCTS.get(code)
    try:
        if st is not None:
            return code.encode() + st.pack(value)
        if code == "t":
            return b"t\x01" if value else b"t\x00"
        if code in ("S", "x"):
            raw = value.encode("utf-8") if isinstance(value, str) else bytes(value)
            return code.encode() + _U32.pack(len(raw)) + raw
        if code == "T":
            seconds = value if isinstance(value, int) else _seconds(value)
            return _timestamp(seconds)
        if code == "D":
            return b"D" + _decimal(decimal.Decimal(value))
        if code == "V":
            return b"V"
        if code in ("F", "A"):
            parts: list[bytes] = []
            _encode_value(dict(value) if code == "F" else list(value), parts, depth)
            return b"".join(parts)
    except struct.error as exc:
        raise ValueError(f"{value!r} does not fit field type {code!r}: {exc}") from None
    raise ValueError(f"unknown field type code {code!r}")


# --- typed decoding: values with their type codes (for exact translation) -------


def decode_table_typed(
    buf: bytes, pos: int, stop: int, depth: int = 0
) -> list[tuple[str, str, Any]]:
    """A table body ``buf[pos:stop]`` as ``(key, code, value)`` entries in order.

    Like :func:`decode_table`, but each value keeps its type code; a nested
    table (``F``) is again a list of entries and an array (``A``) a list of
    ``(code, value)`` pairs. ``S`` values are ``bytes`` (UTF-8 or not).
    """
    if depth >= MAX_DEPTH:
        raise _bad("field tables nested too deeply")
    out: list[tuple[str, str, Any]] = []
    while pos < stop:
        key, kend = _entry_key(buf, pos, stop)
        (code, value), pos = _typed_value(buf, kend, stop, depth)
        out.append((key, code, value))
    return out


def _typed_value(buf: bytes, pos: int, stop: int, depth: int) -> tuple[tuple[str, Any], int]:
    code = buf[pos]
    end = _skip_value(buf, pos, stop, depth)
    if code == 83:  # S: the raw bytes
        return ("S", bytes(buf[pos + 5 : end])), end
    if code == 70:  # F
        return ("F", decode_table_typed(buf, pos + 5, end, depth + 1)), end
    if code == 65:  # A
        if depth + 1 >= MAX_DEPTH:
            raise _bad("field arrays nested too deeply")
        items = []
        inner = pos + 5
        while inner < end:
            item, inner = _typed_value(buf, inner, end, depth + 1)
            items.append(item)
        return ("A", items), end
    value, end = _value(buf, pos, stop, depth)
    return (chr(code), value), end

"""Method frame payloads <-> pamqp method objects, without pamqp's slow paths.

pamqp supplies the method classes (``pamqp.commands``) and their argument
layout (``__slots__`` plus ``_<name>`` type strings); from that layout this
module compiles a small plan per method and decodes/encodes with it. That is
several times faster than ``Frame.unmarshal``/``marshal``, and stricter:
truncated or trailing bytes, bad UTF-8 in a shortstr and malformed tables all
raise :class:`~dovecote.amqp.codec.errors.SyntaxError_` (502), where pamqp
would silently cut a string short. Encoding skips pamqp's ``validate()`` (its
name regexes reject names RabbitMQ accepts) but keeps wire-level checks.

The hottest client methods (basic.publish/ack/nack/reject) get hand-written
decoders. ``longlong`` is unsigned here, as the spec says (pamqp uses signed);
the two agree on every value below 2**63.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pamqp import base, commands

from dovecote.amqp.codec.errors import CommandInvalid, FrameError, SyntaxError_
from dovecote.amqp.codec.tables import EMPTY_TABLE, decode_table, encode_table

_U32 = struct.Struct(">I")
_INDEX = _U32
_FIXED_CODES = {"octet": "B", "short": "H", "long": "I", "longlong": "Q", "timestamp": "Q"}

# plan op kinds
_FIXED, _BITS, _SHORTSTR, _LONGSTR, _TABLE = range(5)

# Methods that carry content (a header and body frames follow them).
BASIC_PUBLISH = commands.Basic.Publish.index
BASIC_RETURN = commands.Basic.Return.index
BASIC_DELIVER = commands.Basic.Deliver.index
BASIC_GET_OK = commands.Basic.GetOk.index
CONTENT_METHODS = frozenset({BASIC_PUBLISH, BASIC_RETURN, BASIC_DELIVER, BASIC_GET_OK})


@dataclass(frozen=True, slots=True)
class MethodSpec:
    """What the codec knows about one method: pamqp class, ids and argument plan."""

    cls: type[base.Frame]
    index: int
    class_id: int
    method_id: int
    names: tuple[str, ...]
    plan: tuple[tuple[Any, ...], ...]
    has_content: bool


def _compile(cls: type[base.Frame]) -> MethodSpec:
    names = tuple(cls.__slots__)
    plan: list[tuple[Any, ...]] = []
    fixed: list[str] = []
    fixed_codes: list[str] = []
    bits: list[str] = []

    def flush_fixed() -> None:
        if fixed:
            plan.append((_FIXED, struct.Struct(">" + "".join(fixed_codes)), tuple(fixed)))
            fixed.clear()
            fixed_codes.clear()

    def flush_bits() -> None:
        if bits:
            plan.append((_BITS, tuple(bits)))
            bits.clear()

    for name in names:
        kind = cls.amqp_type(name)
        if kind == "bit":
            flush_fixed()
            if len(bits) == 8:
                flush_bits()
            bits.append(name)
            continue
        flush_bits()
        code = _FIXED_CODES.get(kind)
        if code is not None:
            fixed.append(name)
            fixed_codes.append(code)
            continue
        flush_fixed()
        op = {"shortstr": _SHORTSTR, "longstr": _LONGSTR, "table": _TABLE}.get(kind)
        if op is None:  # pragma: no cover - pamqp's spec uses no other types
            raise TypeError(f"{cls.name}.{name}: unsupported AMQP type {kind!r}")
        plan.append((op, name))
    flush_fixed()
    flush_bits()
    index = cls.index
    return MethodSpec(
        cls=cls,
        index=index,
        class_id=index >> 16,
        method_id=index & 0xFFFF,
        names=names,
        plan=tuple(plan),
        has_content=index in CONTENT_METHODS,
    )


SPECS: dict[int, MethodSpec] = {
    index: _compile(cls) for index, cls in commands.INDEX_MAPPING.items()
}
"""Every AMQP 0-9-1 method (plus RabbitMQ extensions pamqp knows), by ``class_id << 16 | method_id``."""

_SPECS_BY_CLASS: dict[type, MethodSpec] = {spec.cls: spec for spec in SPECS.values()}


def spec_for(method: base.Frame | type[base.Frame]) -> MethodSpec:
    """The :class:`MethodSpec` of a pamqp method instance or class."""
    cls = method if isinstance(method, type) else type(method)
    return _SPECS_BY_CLASS[cls]


# --- decoding ---------------------------------------------------------------


def decode_method(payload: bytes, channel: int = 0) -> base.Frame:
    """Decode a method frame payload (class id, method id, arguments) to a pamqp object.

    Raises :class:`CommandInvalid` (503) for an unknown class/method and
    :class:`SyntaxError_` (502) for arguments that do not decode exactly.
    """
    if len(payload) < 4:  # RabbitMQ: an unparseable frame, 501
        raise FrameError("method frame shorter than its class and method ids", channel=channel)
    (index,) = _INDEX.unpack_from(payload, 0)
    fast = _FAST_DECODERS.get(index)
    try:
        if fast is not None:
            return fast(payload)
        spec = SPECS.get(index)
        if spec is None:
            raise CommandInvalid(
                f"unknown method: class {index >> 16}, method {index & 0xFFFF}",
                channel=channel,
                class_id=index >> 16,
                method_id=index & 0xFFFF,
            )
        return _decode_generic(spec, payload)
    except SyntaxError_ as exc:
        exc.channel, exc.class_id, exc.method_id = channel, index >> 16, index & 0xFFFF
        raise
    except (IndexError, struct.error):
        raise SyntaxError_(
            "method arguments truncated",
            channel=channel,
            class_id=index >> 16,
            method_id=index & 0xFFFF,
        ) from None
    except UnicodeDecodeError:
        raise SyntaxError_(
            "shortstr argument is not UTF-8",
            channel=channel,
            class_id=index >> 16,
            method_id=index & 0xFFFF,
        ) from None


def _decode_generic(spec: MethodSpec, buf: bytes) -> base.Frame:
    end = len(buf)
    pos = 4
    values: list[Any] = []
    for op in spec.plan:
        kind = op[0]
        if kind == _SHORTSTR:
            size = buf[pos]
            pos += 1
            stop = pos + size
            if stop > end:
                raise SyntaxError_(f"shortstr {op[1]} truncated")
            values.append(buf[pos:stop].decode("utf-8"))
            pos = stop
        elif kind == _FIXED:
            st = op[1]
            values.extend(st.unpack_from(buf, pos))
            pos += st.size
        elif kind == _BITS:
            octet = buf[pos]
            pos += 1
            values.extend(bool(octet & (1 << bit)) for bit in range(len(op[1])))
        elif kind == _TABLE:
            table, pos = decode_table(buf, pos, end)
            values.append(table)
        else:  # _LONGSTR
            (size,) = _U32.unpack_from(buf, pos)
            pos += 4
            stop = pos + size
            if stop > end:
                raise SyntaxError_(f"longstr {op[1]} truncated")
            raw = buf[pos:stop]
            try:
                values.append(raw.decode("utf-8"))
            except UnicodeDecodeError:
                values.append(raw)  # binary longstr, e.g. a SASL response
            pos = stop
    if pos != end:
        raise SyntaxError_(f"{end - pos} unexpected bytes after the method arguments")
    method = spec.cls.__new__(spec.cls)
    for name, value in zip(spec.names, values, strict=True):
        setattr(method, name, value)
    return method


_Publish = commands.Basic.Publish
_Ack = commands.Basic.Ack
_Nack = commands.Basic.Nack
_Reject = commands.Basic.Reject
_new = object.__new__  # pamqp methods define no __new__; skip __init__'s validate()
_QB = struct.Struct(">QB")
_QB_SIZE = 4 + _QB.size


def _decode_publish(buf: bytes) -> base.Frame:
    # ticket:short exchange:shortstr routing_key:shortstr mandatory,immediate:bits
    pos = 7 + buf[6]
    exchange = buf[7:pos].decode("utf-8")
    rk_end = pos + 1 + buf[pos]
    routing_key = buf[pos + 1 : rk_end].decode("utf-8")
    bits = buf[rk_end]
    if rk_end + 1 != len(buf):
        raise SyntaxError_("basic.publish arguments have the wrong length")
    method = _new(_Publish)
    method.ticket = (buf[4] << 8) | buf[5]
    method.exchange = exchange
    method.routing_key = routing_key
    method.mandatory = bool(bits & 1)
    method.immediate = bool(bits & 2)
    return method


def _decode_ack(buf: bytes) -> base.Frame:
    if len(buf) != _QB_SIZE:
        raise SyntaxError_("basic.ack arguments have the wrong length")
    tag, bits = _QB.unpack_from(buf, 4)
    method = _new(_Ack)
    method.delivery_tag = tag
    method.multiple = bool(bits & 1)
    return method


def _decode_nack(buf: bytes) -> base.Frame:
    if len(buf) != _QB_SIZE:
        raise SyntaxError_("basic.nack arguments have the wrong length")
    tag, bits = _QB.unpack_from(buf, 4)
    method = _new(_Nack)
    method.delivery_tag = tag
    method.multiple = bool(bits & 1)
    method.requeue = bool(bits & 2)
    return method


def _decode_reject(buf: bytes) -> base.Frame:
    if len(buf) != _QB_SIZE:
        raise SyntaxError_("basic.reject arguments have the wrong length")
    tag, bits = _QB.unpack_from(buf, 4)
    method = _new(_Reject)
    method.delivery_tag = tag
    method.requeue = bool(bits & 1)
    return method


_FAST_DECODERS: dict[int, Callable[[bytes], base.Frame]] = {
    _Publish.index: _decode_publish,
    _Ack.index: _decode_ack,
    _Nack.index: _decode_nack,
    _Reject.index: _decode_reject,
}


# --- encoding ---------------------------------------------------------------


def encode_method_payload(method: base.Frame) -> bytes:
    """Encode a pamqp method object as a method frame payload (ids + arguments).

    ``None`` arguments encode as their type's zero value. Values that do not
    fit the wire type raise ``ValueError``.
    """
    spec = _SPECS_BY_CLASS.get(type(method))
    if spec is None:
        raise TypeError(f"not an AMQP method: {method!r}")
    parts = [_INDEX.pack(spec.index)]
    append = parts.append
    for op in spec.plan:
        kind = op[0]
        if kind == _SHORTSTR:
            append(_shortstr(getattr(method, op[1], None), op[1]))
        elif kind == _FIXED:
            values = [getattr(method, name, None) or 0 for name in op[2]]
            try:
                append(op[1].pack(*values))
            except struct.error as exc:
                raise ValueError(f"{spec.cls.name}: {op[2]}={values}: {exc}") from None
        elif kind == _BITS:
            octet = 0
            for bit, name in enumerate(op[1]):
                if getattr(method, name, None):
                    octet |= 1 << bit
            append(bytes((octet,)))
        elif kind == _TABLE:
            value = getattr(method, op[1], None)
            append(encode_table(value) if value else EMPTY_TABLE)
        else:
            append(_longstr(getattr(method, op[1], None)))
    return b"".join(parts)


def _shortstr(value: str | bytes | None, name: str = "shortstr") -> bytes:
    if not value:
        return b"\x00"
    raw = value.encode("utf-8") if isinstance(value, str) else bytes(value)
    if len(raw) > 255:
        raise ValueError(f"{name} longer than 255 bytes")
    return bytes((len(raw),)) + raw


def _longstr(value: str | bytes | None) -> bytes:
    if not value:
        return b"\x00\x00\x00\x00"
    raw = value.encode("utf-8") if isinstance(value, str) else bytes(value)
    return _U32.pack(len(raw)) + raw

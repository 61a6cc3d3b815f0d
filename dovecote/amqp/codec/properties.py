"""Basic content properties kept as the raw block the publisher sent.

A content header frame payload is ``class-id:16 weight:16 body-size:64``
followed by the *property block*: one or more 16-bit flag words (bit 0 of
each says another word follows) and then the present properties in order.
The broker stores that block verbatim (see :mod:`~dovecote.amqp.codec.records`)
and re-sends it on delivery, so the common path never decodes properties.

When it does need a field (routing, TTL, priority, headers exchanges, DLX),
:func:`read_properties` / :class:`Properties` decode only the fields asked
for, skipping the rest by their length prefixes. :func:`encode_properties`
builds a block (messages from Kafka/SQS/Pub/Sub), :func:`update_properties`
and :func:`update_headers` change a block while copying every untouched byte
(e.g. adding ``x-death``).

Property names follow pamqp (``message_type`` for the spec's ``type``).
``timestamp`` is an ``int`` of seconds; ``headers`` is a ``dict`` decoded by
:mod:`~dovecote.amqp.codec.tables`.
"""

from __future__ import annotations

import datetime
import struct
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from pamqp import commands

from dovecote.amqp.codec.errors import FrameError, SyntaxError_
from dovecote.amqp.codec.tables import (
    REMOVE,
    _seconds,
    check_table,
    decode_table,
    encode_table,
    update_table,
)

BASIC_CLASS_ID = 60

PROPERTY_NAMES: tuple[str, ...] = (
    "content_type",
    "content_encoding",
    "headers",
    "delivery_mode",
    "priority",
    "correlation_id",
    "reply_to",
    "expiration",
    "message_id",
    "timestamp",
    "message_type",
    "user_id",
    "app_id",
    "cluster_id",
)
"""Basic properties in wire order; the i-th is flagged by bit ``15 - i``."""

ROUTING_FIELDS: tuple[str, ...] = (
    "delivery_mode",
    "priority",
    "expiration",
    "headers",
    "message_id",
    "timestamp",
    "content_type",
)
"""The fields the broker reads per message for routing and queue semantics."""

_S, _T, _O, _TS = 0, 1, 2, 3  # shortstr, table, octet, timestamp
_KINDS = (_S, _S, _T, _O, _O, _S, _S, _S, _S, _TS, _S, _S, _S, _S)
_INDEX = {name: i for i, name in enumerate(PROPERTY_NAMES)}
_FLAG = {name: 1 << (15 - i) for i, name in enumerate(PROPERTY_NAMES)}
_KNOWN_FLAGS = 0xFFFC  # bits 15..2; bit 1 names no property, bit 0 = continuation

_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")
_HEADER = struct.Struct(">HHQ")

EMPTY_PROPERTIES = b"\x00\x00"
"""The property block of a message without properties."""


def split_content_header(payload: bytes, channel: int = 0) -> tuple[int, int, int, bytes]:
    """Split a content header frame payload into ``(class_id, weight, body_size, block)``.

    Only the fixed 12 bytes and the presence of a flag word are checked here;
    :func:`check_properties` vets the block itself.
    """
    if len(payload) < 14:
        raise FrameError("content header frame too short", channel=channel)
    class_id, weight, body_size = _HEADER.unpack_from(payload, 0)
    return class_id, weight, body_size, payload[12:]


def _flags(block: bytes) -> tuple[int, int]:
    """Return ``(flags, position after the flag words)``; flags of later words are or-ed
    in above bit 15 so unknown properties are detectable."""
    n = len(block)
    if n < 2:
        raise SyntaxError_("property flags truncated")
    word = (block[0] << 8) | block[1]
    if not word & 1:
        return word, 2
    flags, pos, shift = word & 0xFFFE, 2, 16
    while word & 1:
        if pos + 2 > n:
            raise SyntaxError_("property flags truncated")
        word = (block[pos] << 8) | block[pos + 1]
        flags |= (word & 0xFFFE) << shift
        pos += 2
        shift += 16
    return flags, pos


_PLANS: dict[int, tuple[tuple[int, int], ...]] = {}  # flags -> ((index, kind), ...) present


def _plan(flags: int) -> tuple[tuple[int, int], ...]:
    """The present properties for a flag set, memoised (at most 2**14 distinct sets)."""
    plan = _PLANS.get(flags)
    if plan is None:
        if flags & ~_KNOWN_FLAGS:
            raise SyntaxError_(f"property flags 0x{flags:x} name properties class basic lacks")
        plan = _PLANS[flags] = tuple((i, _KINDS[i]) for i in range(14) if flags & (0x8000 >> i))
    return plan


def _layout(block: bytes, check: bool = False) -> tuple[int, list[int]]:
    """Return ``(flags, starts)``: ``starts[i]`` is where property i's bytes begin (or -1).

    Walks every present field by its length prefix; raises 502 if the block
    names an unknown property, a field overruns the block, or bytes trail.
    With ``check`` it also validates shortstr UTF-8 and table contents.
    """
    n = len(block)
    if n >= 2 and not block[1] & 1:
        flags = (block[0] << 8) | block[1]
        pos = 2
    else:
        flags, pos = _flags(block)
    starts = [-1] * 14
    for i, kind in _plan(flags):
        starts[i] = pos
        if kind == _S:
            if pos >= n:
                raise SyntaxError_(f"property {PROPERTY_NAMES[i]} truncated")
            end = pos + 1 + block[pos]
            if check and end <= n:
                raw = block[pos + 1 : end]
                if not raw.isascii():
                    _utf8(raw, i)
        elif kind == _O:
            end = pos + 1
        elif kind == _TS:
            end = pos + 8
        else:
            if pos + 4 > n:
                raise SyntaxError_("property headers truncated")
            end = pos + 4 + _U32.unpack_from(block, pos)[0]
            if check and end <= n:
                check_table(block, pos + 4, end)
        if end > n:
            raise SyntaxError_(f"property {PROPERTY_NAMES[i]} truncated")
        pos = end
    if pos != n:
        raise SyntaxError_(f"{n - pos} unexpected bytes after the properties")
    return flags, starts


def _utf8(raw: bytes, i: int) -> None:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        raise SyntaxError_(f"property {PROPERTY_NAMES[i]} is not UTF-8") from None


def check_properties(block: bytes) -> None:
    """Raise :class:`SyntaxError_` (502) unless every property in ``block`` decodes.

    Run once when a message is published so stored blocks are always readable.
    """
    if block == EMPTY_PROPERTIES:
        return
    _layout(block, check=True)


def _decode_at(block: bytes, i: int, pos: int) -> Any:
    kind = _KINDS[i]
    if kind == _S:
        try:
            return block[pos + 1 : pos + 1 + block[pos]].decode("utf-8")
        except UnicodeDecodeError:
            raise SyntaxError_(f"property {PROPERTY_NAMES[i]} is not UTF-8") from None
    if kind == _O:
        return block[pos]
    if kind == _TS:
        return _U64.unpack_from(block, pos)[0]
    return decode_table(block, pos)[0]


def read_properties(block: bytes, wanted: Iterable[str] = PROPERTY_NAMES) -> dict[str, Any]:
    """Decode just the ``wanted`` properties present in ``block`` into a dict.

    Absent properties are left out. Unwanted fields are skipped by length,
    never decoded. Raises :class:`SyntaxError_` (502) on a malformed block.
    """
    if block == EMPTY_PROPERTIES:
        return {}
    _flags_value, starts = _layout(block)
    out: dict[str, Any] = {}
    for name in wanted:
        i = _INDEX[name]
        pos = starts[i]
        if pos >= 0:
            out[name] = _decode_at(block, i, pos)
    return out


class Properties(Mapping[str, Any]):
    """A lazy, read-only view of a property block: fields decode on first access.

    Works as a mapping of present properties (``props["priority"]``,
    ``props.get("headers")``, ``dict(props)``) and by attribute, where an
    absent property reads as ``None`` (``props.delivery_mode``). ``block``
    is the raw bytes to store or re-send.
    """

    __slots__ = ("_cache", "_starts", "block")

    def __init__(self, block: bytes) -> None:
        self.block = block
        self._starts: list[int] | None = None
        self._cache: dict[str, Any] = {}

    def _layout(self) -> list[int]:
        starts = self._starts
        if starts is None:
            starts = [-1] * 14 if self.block == EMPTY_PROPERTIES else _layout(self.block)[1]
            self._starts = starts
        return starts

    def __getitem__(self, name: str) -> Any:
        cache = self._cache
        if name in cache:
            return cache[name]
        i = _INDEX[name]
        pos = self._layout()[i]
        if pos < 0:
            raise KeyError(name)
        value = cache[name] = _decode_at(self.block, i, pos)
        return value

    def __contains__(self, name: object) -> bool:
        i = _INDEX.get(name) if isinstance(name, str) else None
        return i is not None and self._layout()[i] >= 0

    def __iter__(self) -> Iterator[str]:
        starts = self._layout()
        return (name for i, name in enumerate(PROPERTY_NAMES) if starts[i] >= 0)

    def __len__(self) -> int:
        return sum(1 for pos in self._layout() if pos >= 0)

    def __repr__(self) -> str:
        return f"Properties({dict(self)!r})"

    def to_pamqp(self) -> commands.Basic.Properties:
        """A pamqp ``Basic.Properties`` (timestamp as a UTC datetime when one can hold it)."""
        values = dict(self)
        if "timestamp" in values:
            try:
                values["timestamp"] = datetime.datetime.fromtimestamp(
                    values["timestamp"], tz=datetime.UTC
                )
            except (OverflowError, ValueError, OSError):
                pass  # beyond year 9999: keep the int
        props = object.__new__(commands.Basic.Properties)
        for name in commands.Basic.Properties.__slots__:
            setattr(props, name, values.get(name, "" if name == "cluster_id" else None))
        return props


def _attr(name: str) -> property:
    def get(self: Properties) -> Any:
        try:
            return self[name]
        except KeyError:
            return None

    return property(get, doc=f"The ``{name}`` property, or ``None`` when absent.")


for _name in PROPERTY_NAMES:
    setattr(Properties, _name, _attr(_name))
del _name


# --- encoding ---------------------------------------------------------------


def _encode_field(i: int, value: Any) -> bytes:
    kind = _KINDS[i]
    name = PROPERTY_NAMES[i]
    if kind == _S:
        raw = value.encode("utf-8") if isinstance(value, str) else bytes(value)
        if len(raw) > 255:
            raise ValueError(f"property {name} longer than 255 bytes")
        return bytes((len(raw),)) + raw
    if kind == _O:
        if not isinstance(value, int) or not 0 <= value <= 255:
            raise ValueError(f"property {name} must be an int in 0..255, not {value!r}")
        return bytes((value,))
    if kind == _TS:
        seconds = value if isinstance(value, int) else _seconds(value)
        if not 0 <= seconds < 2**64:
            raise ValueError(f"property timestamp out of range: {value!r}")
        return _U64.pack(seconds)
    if not isinstance(value, Mapping):
        raise TypeError(f"property headers must be a mapping, not {type(value).__name__}")
    return encode_table(value)


def encode_properties(props: Mapping[str, Any] | None = None, /, **fields: Any) -> bytes:
    """Build a property block from a mapping and/or keyword arguments.

    ``None`` means absent; an empty string is a present empty shortstr (pamqp
    drops those). ``timestamp`` takes int seconds, a ``datetime`` or a
    ``struct_time``. ``headers`` is encoded as in :func:`~.tables.encode_table`.
    Unknown names raise ``TypeError``.
    """
    if props:
        fields = {**props, **fields}
    encoded: list[tuple[int, bytes]] = []
    for name, value in fields.items():
        i = _INDEX.get(name)
        if i is None:
            raise TypeError(f"unknown basic property {name!r}")
        if value is not None:
            encoded.append((i, _encode_field(i, value)))
    encoded.sort()
    flags = 0
    for i, _raw in encoded:
        flags |= 0x8000 >> i
    return _U16.pack(flags) + b"".join([raw for _i, raw in encoded])


def properties_from_pamqp(props: commands.Basic.Properties) -> bytes:
    """Encode a pamqp ``Basic.Properties``; same bytes as pamqp for what pamqp can encode."""
    values = {}
    for name in PROPERTY_NAMES:
        value = getattr(props, name, None)
        if value is not None and value != "":
            values[name] = value
    return encode_properties(values)


def update_properties(block: bytes, /, **changes: Any) -> bytes:
    """Return ``block`` with ``changes`` applied; ``None`` removes a property.

    Every property not named keeps its exact bytes.
    """
    unknown = set(changes) - _INDEX.keys()
    if unknown:
        raise TypeError(f"unknown basic properties: {sorted(unknown)}")
    if block == EMPTY_PROPERTIES:
        return encode_properties(changes)
    _flags_value, starts = _layout(block)
    ends = _ends(block, starts)
    flags = 0
    parts = [b""]
    for i, name in enumerate(PROPERTY_NAMES):
        if name in changes:
            value = changes[name]
            if value is None:
                continue
            parts.append(_encode_field(i, value))
        elif starts[i] >= 0:
            parts.append(block[starts[i] : ends[i]])
        else:
            continue
        flags |= 1 << (15 - i)
    parts[0] = _U16.pack(flags)
    return b"".join(parts)


def _ends(block: bytes, starts: list[int]) -> list[int]:
    """End offsets matching ``starts`` (fields are contiguous, in order)."""
    ends = [-1] * 14
    following = len(block)
    for i in range(13, -1, -1):
        if starts[i] >= 0:
            ends[i] = following
            following = starts[i]
    return ends


def update_headers(block: bytes, updates: Mapping[str, Any]) -> bytes:
    """Return ``block`` with entries of its ``headers`` table set or removed.

    Existing entries keep their bytes and order; a value of :data:`REMOVE`
    deletes a key; the table is created when absent. Typical use: the broker
    adding ``x-death`` or ``x-delay`` bookkeeping to a stored message.
    """
    if block == EMPTY_PROPERTIES:
        _flags_value, starts = 0, [-1] * 14
    else:
        _flags_value, starts = _layout(block)
    i = _INDEX["headers"]
    if starts[i] < 0:
        live = {k: v for k, v in updates.items() if v is not REMOVE}
        if not live:
            return block
        table = encode_table(live)
    else:
        pos = starts[i]
        end = pos + 4 + _U32.unpack_from(block, pos)[0]
        table = update_table(block, pos + 4, end, updates)
    return _replace_raw(block, starts, i, table)


def _replace_raw(block: bytes, starts: list[int], i: int, raw: bytes) -> bytes:
    """Splice ``raw`` in as property ``i``'s encoded bytes, copying all others."""
    ends = _ends(block, starts)
    flags = 0
    parts = [b""]
    for j in range(14):
        if j == i:
            parts.append(raw)
        elif starts[j] >= 0:
            parts.append(block[starts[j] : ends[j]])
        else:
            continue
        flags |= 1 << (15 - j)
    parts[0] = _U16.pack(flags)
    return b"".join(parts)

"""Record headers every protocol agrees on: well-known names and typed values.

A record's headers are ``(name, bytes | None)`` pairs. Protocols meet on them:
an application header set by one protocol is a header of the same name for
every other, and the message properties protocols share have one well-known
name each (the constants below). The table in docs/architecture.md ("Record
mapping") says how each adapter translates to and from them.

Values are bytes. Plain text is its UTF-8 bytes and needs nothing more. A
value of another type (a number, a flag, a decimal, a timestamp, raw bytes, a
nested table or list) is written as text per :func:`encode_typed`, and the
header :data:`TYPES` (a JSON object ``{name: tag}``) gives its type tag, so
that a protocol with typed headers gets back exactly what was sent, and one
without them still shows readable text. ``None`` (a null header) is a null.

Names with a reserved prefix are not application headers: ``dovecote.``
belongs to the core (TTL deadlines, dead-letter history, :data:`TYPES`), and
each adapter registers the prefix of its own bookkeeping with
:func:`reserve_prefix`. :func:`application_headers` is the typed, reserved-free
view of a record's headers (what a headers exchange matches on).
"""

from __future__ import annotations

import base64
import decimal
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from dovecote.storage.batch import Record

Header = tuple[str, bytes | None]

# --- well-known names (message properties that several protocols share) -----------

CONTENT_TYPE = "content-type"
CONTENT_ENCODING = "content-encoding"
MESSAGE_ID = "message-id"
CORRELATION_ID = "correlation-id"
REPLY_TO = "reply-to"
TIMESTAMP = "timestamp"  # ms since the epoch, decimal text
EXPIRATION = "expiration"  # per-message time to live in ms, decimal text
TYPE = "type"  # the message's type name
USER_ID = "user-id"
APP_ID = "app-id"
PRIORITY = "priority"  # 0..255, decimal text
DELIVERY_MODE = "delivery-mode"  # 1 transient, 2 persistent
ORDERING_KEY = "ordering-key"  # in order per key (message group / ordering key)
DEDUPLICATION_ID = "deduplication-id"  # what a dedup window compares (else message-id)

WELL_KNOWN: frozenset[str] = frozenset(
    {
        CONTENT_TYPE,
        CONTENT_ENCODING,
        MESSAGE_ID,
        CORRELATION_ID,
        REPLY_TO,
        TIMESTAMP,
        EXPIRATION,
        TYPE,
        USER_ID,
        APP_ID,
        PRIORITY,
        DELIVERY_MODE,
        ORDERING_KEY,
        DEDUPLICATION_ID,
    }
)

# --- reserved names ---------------------------------------------------------------

CORE_PREFIX = "dovecote."
TYPES = CORE_PREFIX + "types"  # JSON {header name: type tag} for typed values

# Record headers the core itself interprets (adapters write them at publish).
EXPIRES_AT = "dovecote.expires-at"  # absolute ms: drop or dead-letter after this
DELIVER_AT = "dovecote.deliver-at"  # absolute ms: not deliverable before this
EXCHANGE_HEADER = "dovecote.exchange"  # the exchange a record was published to (absent: default)
# Written by the core when it dead-letters a record (see core/dead_letters.py).
DEATHS = "dovecote.deaths"  # JSON list of dead-letter events, newest first (adapters render them)

_reserved: list[str] = [CORE_PREFIX]
_reserved_tuple: tuple[str, ...] = (CORE_PREFIX,)


def reserve_prefix(prefix: str) -> None:
    """An adapter keeps its own bookkeeping headers under ``prefix`` (e.g. ``"x."``):
    they are not application headers for any other protocol."""
    global _reserved_tuple
    if prefix not in _reserved:
        _reserved.append(prefix)
        _reserved_tuple = tuple(_reserved)


def reserved_prefixes() -> tuple[str, ...]:
    return _reserved_tuple


def is_reserved(name: str) -> bool:
    return name.startswith(_reserved_tuple)


# --- typed values -------------------------------------------------------------------

INT_TAGS: dict[str, tuple[int, int]] = {
    "int8": (-(2**7), 2**7 - 1),
    "uint8": (0, 2**8 - 1),
    "int16": (-(2**15), 2**15 - 1),
    "uint16": (0, 2**16 - 1),
    "int32": (-(2**31), 2**31 - 1),
    "uint32": (0, 2**32 - 1),
    "int64": (-(2**63), 2**63 - 1),
}
FLOAT_TAGS = frozenset({"float32", "float64"})
BOOL = "bool"
DECIMAL = "decimal"
NUMBER = "number"  # a decimal number of any size, kept as its text
SECONDS = "timestamp"  # seconds since the epoch
BYTES = "bytes"  # raw bytes (a byte array)
STRING = "string"  # a string whose bytes are not UTF-8, kept as they are
TABLE = "table"  # JSON object of typed elements (see encode_typed)
ARRAY = "array"  # JSON list of typed elements
TAGS = frozenset(
    {*INT_TAGS, *FLOAT_TAGS, BOOL, DECIMAL, NUMBER, SECONDS, BYTES, STRING, TABLE, ARRAY}
)


class TypedValue(NamedTuple):
    """A value with its type tag (one of :data:`TAGS`). For ``table`` the value
    is a dict and for ``array`` a list, of elements: ``str``, ``None`` or
    :class:`TypedValue`."""

    tag: str
    value: Any


Element = str | None | TypedValue
_compact = json.JSONEncoder(separators=(",", ":"))


def encode_typed(item: TypedValue) -> bytes:
    """A typed value as header bytes: integers, floats, decimals, numbers and
    timestamps as their decimal text, bools as ``true``/``false``, bytes and
    strings as they are, tables and arrays as JSON of their elements
    (a string element is a JSON string, ``None`` is null, any other element is
    ``{tag: text}`` with bytes and strings in base64, or ``{"table": {...}}``
    / ``{"array": [...]}``)."""
    tag, value = item
    if tag in (TABLE, ARRAY):
        return _compact.encode(_json_element(item)[tag]).encode()
    if tag in (BYTES, STRING):
        return bytes(value)
    return _text(tag, value).encode()


def decode_typed(tag: str, raw: bytes) -> TypedValue:
    """The inverse of :func:`encode_typed`; ValueError on a value that does not parse."""
    if tag in (BYTES, STRING):
        return TypedValue(tag, bytes(raw))
    text = raw.decode("utf-8")
    if tag in (TABLE, ARRAY):
        data = json.loads(text)
        return _from_json({tag: data})  # type: ignore[return-value]
    return TypedValue(tag, _parse(tag, text))


def _text(tag: str, value: Any) -> str:
    if tag == BOOL:
        return "true" if value else "false"
    if tag in FLOAT_TAGS:
        return repr(float(value))
    if tag in (DECIMAL, NUMBER):
        return str(value)
    if tag in INT_TAGS or tag == SECONDS:
        return str(int(value))
    raise ValueError(f"unknown type tag {tag!r}")


def _parse(tag: str, text: str) -> Any:
    if tag in INT_TAGS:
        value = int(text)
        low, high = INT_TAGS[tag]
        if not low <= value <= high:
            raise ValueError(f"{value} does not fit {tag}")
        return value
    if tag in FLOAT_TAGS:
        return float(text)
    if tag == BOOL:
        if text not in ("true", "false"):
            raise ValueError(f"not a bool: {text!r}")
        return text == "true"
    if tag in (DECIMAL, NUMBER):
        try:
            value = decimal.Decimal(text)
        except decimal.InvalidOperation:
            raise ValueError(f"not a number: {text!r}") from None
        if not value.is_finite():
            raise ValueError(f"not a finite number: {text!r}")
        return value if tag == DECIMAL else text
    if tag == SECONDS:
        value = int(text)
        if value < 0:
            raise ValueError("negative timestamp")
        return value
    raise ValueError(f"unknown type tag {tag!r}")


def _json_element(element: Element) -> Any:
    if element is None or isinstance(element, str):
        return element
    tag, value = element
    if tag == TABLE:
        return {TABLE: {k: _json_element(v) for k, v in value.items()}}
    if tag == ARRAY:
        return {ARRAY: [_json_element(v) for v in value]}
    if tag in (BYTES, STRING):
        return {tag: base64.b64encode(bytes(value)).decode()}
    return {tag: _text(tag, value)}


MAX_DEPTH = 64  # nested tables and arrays


def _from_json(data: Any, depth: int = 0) -> Element:
    if data is None or isinstance(data, str):
        return data
    if depth > MAX_DEPTH:
        raise ValueError("typed value nested too deeply")
    if not isinstance(data, dict) or len(data) != 1:
        raise ValueError(f"not a typed element: {data!r}")
    ((tag, value),) = data.items()
    if tag == TABLE:
        if not isinstance(value, dict):
            raise ValueError("a table element must be a JSON object")
        return TypedValue(TABLE, {str(k): _from_json(v, depth + 1) for k, v in value.items()})
    if tag == ARRAY:
        if not isinstance(value, list):
            raise ValueError("an array element must be a JSON list")
        return TypedValue(ARRAY, [_from_json(v, depth + 1) for v in value])
    if not isinstance(value, str):
        raise ValueError(f"a {tag} element must be text")
    if tag in (BYTES, STRING):
        return TypedValue(tag, base64.b64decode(value, validate=True))
    return TypedValue(tag, _parse(tag, value))


def types_header(types: Mapping[str, str]) -> Header:
    """The :data:`TYPES` header for ``{name: tag}``."""
    return (TYPES, _compact.encode(types).encode())


def read_types(raw: bytes | None) -> dict[str, str]:
    """The tags of a :data:`TYPES` header (empty when absent or unreadable)."""
    if not raw:
        return {}
    try:
        data = json.loads(bytes(raw))
    except ValueError:
        return {}
    if not isinstance(data, dict):
        return {}
    return {str(k): v for k, v in data.items() if isinstance(v, str) and v in TAGS}


def plain(element: Element | bytes) -> Any:
    """A typed element as a plain Python value (int, float, bool, Decimal, str,
    bytes, dict, list, None): what routing compares."""
    if not isinstance(element, TypedValue):
        return element
    tag, value = element
    if tag == TABLE:
        return {k: plain(v) for k, v in value.items()}
    if tag == ARRAY:
        return [plain(v) for v in value]
    return value


def header_value(name: str, raw: bytes | None, types: Mapping[str, str]) -> Element | bytes:
    """One header's value: typed per ``types``, else text when UTF-8, else bytes."""
    if raw is None:
        return None
    tag = types.get(name)
    if tag is not None:
        try:
            return decode_typed(tag, raw)
        except (ValueError, RecursionError):
            pass  # a mislabelled value reads as untyped
    try:
        return bytes(raw).decode("utf-8")
    except UnicodeDecodeError:
        return bytes(raw)


def find(headers: Iterable[Header], name: str) -> bytes | None:
    """The last value of header ``name`` (None when absent)."""
    found = None
    for key, value in headers:
        if key == name:
            found = value
    return found


def header_int(record: Record, name: str) -> int | None:
    for key, value in record.headers:
        if key == name and value is not None:
            try:
                return int(value)
            except ValueError:
                return None
    return None


def application_headers(headers: Sequence[Header]) -> dict[str, Any]:
    """Every non-reserved header as a plain Python value (last one of a name wins),
    typed values decoded: how a headers exchange sees a stored record."""
    types = read_types(find(headers, TYPES))
    out: dict[str, Any] = {}
    for name, raw in headers:
        if not is_reserved(name):
            out[name] = plain(header_value(name, raw, types))
    return out

"""How SQS and SNS messages are stored as Dovecote records, and read back.

The neutral side is :mod:`dovecote.core.headers` (docs/architecture.md,
"Record mapping across protocols"): message attributes are record headers of
the same name, typed values carry their tag in ``dovecote.types``.

* **Attributes -> headers** (:func:`attributes_to_headers`). ``String`` is its
  UTF-8 text, untagged; ``Number`` is its text tagged ``number``; ``Binary``
  is the bytes tagged ``bytes``. SNS's ``String.Array`` is its JSON text,
  untagged: every other protocol reads it as the text the publisher wrote
  (an ``array`` tag would need its elements re-encoded and would lose the
  exact text, numbers and all). A DataType other than the plain three (a
  custom label such as ``Number.float``, or ``String.Array``) is kept in the
  header ``sqs.data-types`` (JSON ``{header: DataType}``), written only when
  there is one, so SQS reads back the exact DataType.
* **Headers -> attributes** (:func:`headers_to_attributes`), for records from
  any protocol: every non-reserved header except the ones SQS shows
  elsewhere (``message-id`` is MessageId, ``deduplication-id`` and
  ``ordering-key`` are system attributes). Other well-known headers
  (``content-type``, ``correlation-id``...) have no SQS field, so they are
  String attributes under their own names: nothing an AMQP publisher set is
  hidden from an SQS reader. Null headers are skipped (SQS has no null).
* An attribute whose name is reserved (``dovecote.x``, ``amqp.x``...) or is
  one of those three names is stored as ``sqs.attr.<name>``, so it neither
  clashes with the broker's own headers nor gets lost on the way back.
* SQS bookkeeping (:func:`sqs_headers`): MessageGroupId -> ``ordering-key``,
  MessageDeduplicationId -> ``deduplication-id``, the message id ->
  ``message-id``, AWSTraceHeader -> ``sqs.aws-trace-header``, SenderId ->
  ``sqs.sender-id``, a delay -> ``dovecote.deliver-at``; SentTimestamp is
  the record timestamp.

The per-message path parses no JSON unless a header needs it.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dovecote.aws.ids import uuid4_text
from dovecote.core import headers as H

if TYPE_CHECKING:
    from dovecote.storage.batch import Record

__all__ = [
    "DATA_TYPES",
    "SqsMeta",
    "attributes_to_headers",
    "headers_to_attributes",
    "last_message_id",
    "message_id_of",
    "new_message_id",
    "read_sqs_headers",
    "sqs_headers",
]

Header = H.Header

PREFIX = "sqs."
H.reserve_prefix(PREFIX)

DATA_TYPES = "sqs.data-types"  # JSON {header name: DataType} for non-plain DataTypes
TRACE_HEADER = "sqs.aws-trace-header"  # the AWSTraceHeader system attribute
SENDER_ID = "sqs.sender-id"  # SenderId: who sent it
ESCAPED = "sqs.attr."  # an attribute whose own name is reserved or shown elsewhere

# Well-known headers SQS shows as something other than a message attribute.
SHOWN_ELSEWHERE = frozenset({H.MESSAGE_ID, H.DEDUPLICATION_ID, H.ORDERING_KEY})

_PLAIN = frozenset({"String", "Number", "Binary"})
_NUMBER_TAGS = frozenset({*H.INT_TAGS, *H.FLOAT_TAGS, H.DECIMAL, H.NUMBER, H.SECONDS})
_BINARY_TAGS = frozenset({H.BYTES, H.STRING})
_compact = json.JSONEncoder(separators=(",", ":"))  # as core.headers.types_header writes
# Characters SQS refuses in a String value (it accepts the XML 1.0 set):
# a header holding any of them is served as Binary rather than as broken text.
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_NON_FINITE = frozenset({b"nan", b"inf", b"-inf", b"+inf", b"infinity", b"-infinity"})


# --- attributes -> headers ------------------------------------------------------------


def _header_name(name: str) -> str:
    if name in SHOWN_ELSEWHERE or H.is_reserved(name):
        return ESCAPED + name
    return name


def attributes_to_headers(attributes: Mapping[str, Mapping[str, Any]] | None) -> list[Header]:
    """SQS/SNS ``MessageAttributes`` (botocore's shape) as record headers."""
    if not attributes:
        return []
    out: list[Header] = []
    types: dict[str, str] | None = None
    labels: dict[str, str] | None = None
    for name, attr in attributes.items():
        data_type: str = attr["DataType"]
        header = _header_name(name)
        base = data_type.partition(".")[0]
        if base == "Binary":
            raw = attr.get("BinaryValue")
            value = raw.encode() if isinstance(raw, str) else bytes(raw or b"")
            tag: str | None = H.BYTES
        else:
            value = str(attr.get("StringValue") or "").encode("utf-8")
            tag = H.NUMBER if base == "Number" else None
        out.append((header, value))
        if tag is not None:
            if types is None:
                types = {}
            types[header] = tag
        if data_type not in _PLAIN:
            if labels is None:
                labels = {}
            labels[header] = data_type
    if labels:
        out.append((DATA_TYPES, _encoded(labels)))
    if types:
        out.append((H.TYPES, _encoded(types)))
    return out


# Senders repeat the same attribute layout message after message, so the JSON
# of a {name: tag} or {name: DataType} map is computed once per distinct map
# (and parsed once per distinct blob on the way back). Bounded: cleared when full.
_CACHE_LIMIT = 4096
_encode_cache: dict[tuple[tuple[str, str], ...], bytes] = {}
_decode_cache: dict[tuple[bool, bytes], dict[str, str]] = {}


def _encoded(mapping: dict[str, str]) -> bytes:
    key = tuple(mapping.items())
    raw = _encode_cache.get(key)
    if raw is None:
        if len(_encode_cache) >= _CACHE_LIMIT:
            _encode_cache.clear()
        raw = _encode_cache[key] = _compact.encode(mapping).encode("utf-8")
    return raw


def _decoded(raw: bytes, is_types: bool) -> dict[str, str]:
    """A TYPES (``is_types``) or DATA_TYPES header's map; callers must not change it."""
    key = (is_types, bytes(raw))
    found = _decode_cache.get(key)
    if found is None:
        if len(_decode_cache) >= _CACHE_LIMIT:
            _decode_cache.clear()
        found = H.read_types(raw) if is_types else _read_json_object(raw)
        _decode_cache[key] = found
    return found


# --- headers -> attributes ------------------------------------------------------------


def _matcher(wanted: Sequence[str] | None) -> Any:
    """A predicate on attribute names for ReceiveMessage's MessageAttributeNames
    (None when nothing is wanted, which is SQS's default)."""
    if not wanted:
        return None
    exact: set[str] = set()
    prefixes: list[str] = []
    for item in wanted:
        if item in ("All", ".*"):
            return lambda name: True
        if item.endswith(".*"):
            prefixes.append(item[:-1])  # keep the dot: "a.*" matches "a.b", not "ab"
        else:
            exact.add(item)
    starts = tuple(prefixes)
    return lambda name: name in exact or name.startswith(starts)


def _data_type(tag: str | None, raw: bytes) -> str:
    """The plain DataType for a header value and its tag. A value that does not
    parse as its tag is untagged, as the core reads it (a Kafka application
    can write any bytes under any tag): a Number is always a number and a
    String always text SQS can carry."""
    if tag in _BINARY_TAGS:
        return "Binary"
    if tag in _NUMBER_TAGS and _is_number(tag, raw):  # type: ignore[arg-type]
        return "Number"
    # untagged, mislabelled, bool (true/false), table and array (their JSON)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return "Binary"
    return "Binary" if _NOT_XML.search(text) else "String"


def _is_number(tag: str, raw: bytes) -> bool:
    """Whether ``raw`` reads as ``tag`` and is finite (SQS has no Number for nan or infinity)."""
    if tag in H.FLOAT_TAGS and raw.lower() in _NON_FINITE:
        return False
    try:
        H.decode_typed(tag, raw)
    except ValueError:  # UnicodeDecodeError included
        return False
    return True


def _read_json_object(raw: bytes | None) -> dict[str, str]:
    if not raw:
        return {}
    try:
        data = json.loads(raw)
    except ValueError:
        return {}
    if not isinstance(data, dict):
        return {}
    return {str(k): v for k, v in data.items() if isinstance(v, str)}


def headers_to_attributes(
    headers: Sequence[Header], wanted: Sequence[str] | None
) -> dict[str, dict[str, Any]]:
    """A record's application headers as SQS ``MessageAttributes`` (botocore's shape),
    restricted to ``wanted`` (ReceiveMessage's MessageAttributeNames: names,
    ``All``/``.*`` or ``prefix.*``); empty when nothing is wanted."""
    match = _matcher(wanted)
    if match is None:
        return {}
    picked: list[tuple[str, str, bytes]] = []
    types_raw: bytes | None = None
    labels_raw: bytes | None = None
    for header, raw in headers:
        if header.startswith(PREFIX):
            if header == DATA_TYPES:
                labels_raw = raw
                continue
            if not header.startswith(ESCAPED):
                continue
            name = header[len(ESCAPED) :]
        elif header == H.TYPES:
            types_raw = raw
            continue
        elif header in SHOWN_ELSEWHERE or H.is_reserved(header):
            continue
        else:
            name = header
        if raw is not None and match(name):
            picked.append((name, header, bytes(raw)))
    if not picked:
        return {}
    types = _decoded(types_raw, True) if types_raw else {}
    labels = _decoded(labels_raw, False) if labels_raw else {}
    out: dict[str, dict[str, Any]] = {}
    for name, header, raw in picked:
        data_type = _data_type(types.get(header), raw)
        label = labels.get(header)
        if label is not None and label.partition(".")[0] == data_type:
            data_type = label
        if data_type.startswith("Binary"):
            out[name] = {"DataType": data_type, "BinaryValue": raw}
        else:
            out[name] = {"DataType": data_type, "StringValue": raw.decode("utf-8")}
    return out


# --- message ids ------------------------------------------------------------------------

_ID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "dovecote:sqs:message-id")


def new_message_id() -> str:
    """A fresh MessageId, as SQS makes them (a random UUID)."""
    return uuid4_text()


def message_id_of(record: Record, queue_name: str, partition: int = 0) -> str:
    """The record's ``message-id`` header (the last one, when it is UTF-8 text),
    else a UUID derived from where it is stored (queue, partition, offset): a
    message published over Kafka or AMQP without an id keeps the same
    MessageId across receives."""
    found = _message_id(H.find(record.headers, H.MESSAGE_ID))
    if found is not None:
        return found
    return str(uuid.uuid5(_ID_NAMESPACE, f"{queue_name}\x00{partition}\x00{record.offset}"))


def _message_id(raw: bytes | None) -> str | None:
    """A ``message-id`` header as a MessageId: non-empty UTF-8 text, else None
    (an id with replacement characters would name no message)."""
    if not raw:
        return None
    try:
        return bytes(raw).decode("utf-8")
    except UnicodeDecodeError:
        return None


# --- SQS system fields ----------------------------------------------------------------


def sqs_headers(
    message_id: str,
    *,
    group_id: str | None,
    dedup_id: str | None,
    trace_header: str | None,
    sender_id: str | None,
    delay_until_ms: int | None,
) -> list[Header]:
    """The headers a SendMessage stores besides the attributes' (see the module doc)."""
    out: list[Header] = [(H.MESSAGE_ID, message_id.encode("utf-8"))]
    if group_id is not None:
        out.append((H.ORDERING_KEY, group_id.encode("utf-8")))
    if dedup_id is not None:
        out.append((H.DEDUPLICATION_ID, dedup_id.encode("utf-8")))
    if trace_header is not None:
        out.append((TRACE_HEADER, trace_header.encode("utf-8")))
    if sender_id is not None:
        out.append((SENDER_ID, sender_id.encode("utf-8")))
    if delay_until_ms is not None:
        out.append((H.DELIVER_AT, b"%d" % delay_until_ms))
    return out


@dataclass(frozen=True, slots=True)
class SqsMeta:
    """What a ReceiveMessage reports from a record's headers (None: not there)."""

    message_id: str | None = None
    group_id: str | None = None
    dedup_id: str | None = None
    trace_header: str | None = None
    sender_id: str | None = None
    dead_letter_source: str | None = None  # the queue it was last dead-lettered from
    sequence: bytes | None = None  # a FIFO message's SequenceNumber header, as stored


def _text(raw: bytes | None) -> str | None:
    if raw is None:
        return None
    return bytes(raw).decode("utf-8", "replace")


def _last_death_queue(raw: bytes | None) -> str | None:
    if not raw:
        return None
    try:
        deaths = json.loads(raw)
    except ValueError:
        return None
    if isinstance(deaths, list) and deaths and isinstance(deaths[0], dict):
        queue = deaths[0].get("queue")
        return queue if isinstance(queue, str) else None
    return None


SEQUENCE = "sqs.sequence-number"  # a FIFO message's SequenceNumber
# Header name -> its place in read_sqs_headers' scan.
_META_FIELDS = {
    H.MESSAGE_ID: 0,
    H.ORDERING_KEY: 1,
    H.DEDUPLICATION_ID: 2,
    TRACE_HEADER: 3,
    SENDER_ID: 4,
    H.DEATHS: 5,
    SEQUENCE: 6,
}


def read_sqs_headers(headers: Sequence[Header]) -> SqsMeta:
    """The SQS system fields of a record's headers, in one scan (the last of a name wins)."""
    found: list[bytes | None] = [None] * 7
    seen = False
    fields = _META_FIELDS
    for name, raw in headers:
        index = fields.get(name)
        if index is not None:
            found[index] = raw
            seen = True
    if not seen:
        return _NO_META
    return SqsMeta(
        _message_id(found[0]),
        _text(found[1]),
        _text(found[2]),
        _text(found[3]),
        _text(found[4]),
        _last_death_queue(found[5]),
        found[6],
    )


_NO_META = SqsMeta()


def last_message_id(headers: Sequence[Header]) -> str | None:
    """The MessageId of the last ``message-id`` header (None: none, or not
    UTF-8): what :func:`read_sqs_headers` gives, for a receive that wants
    no other system field."""
    for i in range(len(headers) - 1, -1, -1):
        name, raw = headers[i]
        if name == H.MESSAGE_ID:
            return _message_id(raw)
    return None

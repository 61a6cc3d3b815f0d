"""How AMQP properties live in a stored Record's headers, and back.

Convention (one rule per direction):

* **AMQP publish -> Record.** The record gets one header,
  ``("amqp.properties", property_block)``: the property flags and list exactly
  as in the publisher's content header frame (2 bytes when there are none).
  Its presence marks a message published over AMQP. Routing fields are read
  from it on demand with :func:`~.properties.read_properties`; nothing is
  duplicated into other headers.
* **Record -> AMQP delivery.** With an ``amqp.properties`` header the block is
  re-sent byte for byte. Every other record header whose name does not start
  with ``amqp.`` (Kafka headers, SQS/Pub/Sub attributes) becomes an
  application header: a longstr (``S``) holding the value bytes, or void
  (``V``) for a null value. Such headers are added only where the AMQP
  headers table lacks the key (the publisher's own entries win); a repeated
  record header name keeps its last value; names over 255 UTF-8 bytes cannot
  be table keys and are skipped. A record without ``amqp.properties`` also
  gets ``timestamp`` = record timestamp in seconds when it has one.
* Names starting with ``amqp.`` are reserved for this module.

The record key and the routing key are the adapter's business, not this
module's.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from dovecote.amqp.codec.properties import (
    EMPTY_PROPERTIES,
    Properties,
    encode_properties,
    update_headers,
)

PROPERTIES_HEADER = "amqp.properties"
RESERVED_PREFIX = "amqp."

RecordHeader = tuple[str, bytes | None]


def record_headers_for_publish(property_block: bytes) -> list[RecordHeader]:
    """The record headers that store a published message's properties."""
    return [(PROPERTIES_HEADER, property_block)]


def stored_property_block(headers: Sequence[RecordHeader]) -> bytes | None:
    """The stored ``amqp.properties`` block, or ``None`` for a non-AMQP record."""
    for name, value in headers:
        if name == PROPERTIES_HEADER:
            return value if value is not None else EMPTY_PROPERTIES
    return None


def _foreign(headers: Sequence[RecordHeader]) -> dict[str, bytes | None]:
    """Non-reserved record headers as application headers (last value wins)."""
    out: dict[str, bytes | None] = {}
    for name, value in headers:
        if name.startswith(RESERVED_PREFIX) or len(name.encode("utf-8")) > 255:
            continue
        out[name] = value
    return out


def property_block_for_record(headers: Sequence[RecordHeader], timestamp_ms: int = -1) -> bytes:
    """The property block to send when delivering a stored record to an AMQP consumer."""
    block = None
    plain = True
    for name, value in headers:
        if name == PROPERTIES_HEADER:
            block = value if value is not None else EMPTY_PROPERTIES
        else:
            plain = False
    if block is not None and plain:
        return block  # the common case: published over AMQP, nothing added since
    foreign = _foreign(headers)
    if block is None:
        fields: dict[str, Any] = {}
        if foreign:
            fields["headers"] = foreign
        if timestamp_ms >= 0:
            fields["timestamp"] = timestamp_ms // 1000
        return encode_properties(fields) if fields else EMPTY_PROPERTIES
    if not foreign:
        return block
    existing = Properties(block).get("headers") or {}
    missing = {k: v for k, v in foreign.items() if k not in existing}
    return update_headers(block, missing) if missing else block

"""AMQP messages <-> core records, on the per-message paths.

A published message becomes one record: body = value, routing key = key,
header ``amqp.properties`` (the raw property block, re-sent byte for byte to
AMQP consumers), ``amqp.exchange`` (omitted for the default exchange), the
block's neutral headers (each property under its well-known name, each
headers-table entry under its own name, see
:mod:`~dovecote.amqp.codec.records` and docs/architecture.md "Record
mapping") and, with an ``expiration`` property, ``dovecote.expires-at``
(absolute ms) for the core's TTL. :func:`publish_props` looks only at the
properties the broker acts on, answers from the flag bits when it can and
caches what it parsed per distinct block (publishers tend to send the same
block over and over); the neutral headers are cached per block the same way.

On delivery :func:`delivery_fields` gives back block, exchange and routing
key as bytes, ready for the frame encoders: the stored block when the
record's headers still say what it says (checked against the cached neutral
headers), else one built from the headers (records from other protocols).
A dead-lettered record's ``dovecote.deaths`` history becomes ``x-death`` and
``x-first-death-*``.
"""

from __future__ import annotations

import json
import time
from typing import Any, NamedTuple

from dovecote.amqp.codec import (
    EMPTY_PROPERTIES,
    PROPERTIES_HEADER,
    AMQPError,
    Timestamp,
    Typed,
    read_properties,
    update_headers,
    update_properties,
)
from dovecote.amqp.codec.records import (
    CLUSTER_ID,
    block_from_headers,
    broker_only,
    exposed_headers,
    headers_to_build_from,
)
from dovecote.core.headers import DEATHS, EXCHANGE_HEADER, EXPIRES_AT, TYPES, is_reserved
from dovecote.storage.batch import Record

# Property flag bits (first flag word), spec order.
F_HEADERS = 0x2000
F_DELIVERY_MODE = 0x1000
F_PRIORITY = 0x0800
F_REPLY_TO = 0x0200
F_EXPIRATION = 0x0100
F_USER_ID = 0x0010
_INTERESTING = F_DELIVERY_MODE | F_PRIORITY | F_REPLY_TO | F_EXPIRATION | F_USER_ID
LEGACY_EXCHANGE_HEADER = "amqp.exchange"  # the exchange header of records stored by older versions
_CACHE_LIMIT = 4096
_CACHE_BLOCK_MAX = 2048  # bytes


class PublishProps(NamedTuple):
    """What the broker needs from a message's properties."""

    persistent: bool = False
    priority: int | None = None
    expiration: str | None = None
    reply_to: str | None = None
    user_id: str | None = None
    has_headers: bool = False


NO_PROPS = PublishProps()
PERSISTENT = PublishProps(persistent=True)
_HEADERS_ONLY = PublishProps(has_headers=True)
_cache: dict[bytes, PublishProps] = {}
_neutral: dict[bytes, list[tuple[str, bytes | None]]] = {}


def publish_props(block: bytes) -> PublishProps:
    """The routing-relevant properties of a (codec-validated) property block."""
    if len(block) < 2:
        return NO_PROPS
    flags = (block[0] << 8) | block[1]
    if flags == 0:
        return NO_PROPS
    if flags == F_DELIVERY_MODE:
        return PERSISTENT if block[2] == 2 else NO_PROPS
    if not flags & _INTERESTING and not flags & 1:
        return _HEADERS_ONLY if flags & F_HEADERS else NO_PROPS
    props = _cache.get(block)
    if props is None:
        values = read_properties(
            block, ("delivery_mode", "priority", "expiration", "reply_to", "user_id")
        )
        props = PublishProps(
            persistent=values.get("delivery_mode") == 2,
            priority=values.get("priority"),
            expiration=values.get("expiration"),
            reply_to=values.get("reply_to"),
            user_id=values.get("user_id"),
            has_headers=bool(flags & F_HEADERS),
        )
        if len(_cache) >= _CACHE_LIMIT:
            _cache.clear()
        _cache[block] = props
    return props


def headers_table(block: bytes) -> dict[str, Any]:
    """The decoded ``headers`` property (empty when absent)."""
    return read_properties(block, ("headers",)).get("headers") or {}


def parse_expiration(value: str) -> int:
    """Milliseconds from an ``expiration`` property, or ValueError with RabbitMQ's reason."""
    try:
        ms = int(value)
    except ValueError:
        raise ValueError("no_integer") from None
    if ms < 0:
        raise ValueError(f"{{value_negative,{ms}}}")
    return ms


def neutral_of(block: bytes) -> list[tuple[str, bytes | None]] | None:
    """The neutral headers stored beside a block (``exposed_headers``), cached
    per distinct block (the list is shared: never change it); None for bytes
    that are not a valid block."""
    found = _neutral.get(block)
    if found is None:
        try:
            found = exposed_headers(block)
        except AMQPError:
            return None  # not from our publish path (a Kafka client wrote it)
        if len(block) <= _CACHE_BLOCK_MAX:  # the cache holds no big tables
            if len(_neutral) >= _CACHE_LIMIT:
                _neutral.clear()
            _neutral[block] = found
    return found


def publish_record(
    body: bytes, routing_key: bytes, block: bytes, exchange: bytes, expires_at: int | None
) -> Record:
    headers: list[tuple[str, bytes | None]] = [(PROPERTIES_HEADER, block)]
    if exchange:
        headers.append((EXCHANGE_HEADER, exchange))
    if not broker_only(block):
        headers += neutral_of(block) or ()  # published blocks are checked: never None
    if expires_at is not None:
        headers.append((EXPIRES_AT, b"%d" % expires_at))
    return Record(body, key=routing_key, headers=headers)


# --- delivery ---------------------------------------------------------------------


def delivery_fields(record: Record) -> tuple[bytes, bytes, bytes]:
    """(property block, exchange, routing key) to deliver ``record`` with."""
    headers = record.headers
    key = record.key or b""
    if headers and headers[0][0] == PROPERTIES_HEADER:
        # As publish_record wrote it: block, exchange?, the block's neutral headers.
        block = headers[0][1] or EMPTY_PROPERTIES
        n = len(headers)
        if n == 1:
            return block, b"", key
        exchange = b""
        start = 1
        if headers[1][0] == EXCHANGE_HEADER:
            exchange = headers[1][1] or b""
            start = 2
        derived = neutral_of(block)
        if (
            derived is not None
            and start + len(derived) == n
            and (start == n or headers[start:] == derived)
        ):
            return block, exchange, key
    block = None
    exchange = b""
    deaths = None
    others: list[tuple[str, bytes | None]] = []
    for name, value in headers:
        if name == PROPERTIES_HEADER:
            block = value or EMPTY_PROPERTIES
        elif name in (EXCHANGE_HEADER, LEGACY_EXCHANGE_HEADER):
            exchange = value or b""
        elif name == DEATHS:
            deaths = value
        elif name in (TYPES, CLUSTER_ID) or not is_reserved(name):
            others.append((name, value))
    if block is None:
        block = block_from_headers(others, record.timestamp)  # from another protocol
        if len(key) > 255 or not _utf8(key):
            key = b""
    elif others and others != neutral_of(block):
        # Its headers were changed on the way (a Kafka application forwarded
        # it): the headers are what counts.
        if neutral_of(block) is not None:
            others = headers_to_build_from(block, others)
        block = block_from_headers(others, -1)
        if len(key) > 255 or not _utf8(key):
            key = b""
    if deaths:
        block = render_deaths(block, deaths)
    return block, exchange, key


def _utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def render_deaths(block: bytes, deaths_json: bytes) -> bytes:
    """Add ``x-death`` and ``x-first-death-*`` to a block from the core's death
    history; move an ``expiration`` into ``original-expiration`` as RabbitMQ does."""
    try:
        deaths = json.loads(deaths_json)
    except ValueError:
        return block
    if not deaths:
        return block
    try:
        expiration = read_properties(block, ("expiration",)).get("expiration")
    except AMQPError:
        expiration = None
    first = next((d for d in deaths if d.get("first")), deaths[-1])
    entries = []
    for death in deaths:
        entry: dict[str, Any] = {
            "count": Typed("l", int(death.get("count", 1))),
            "reason": death.get("reason", ""),
            "queue": death.get("queue", ""),
            "time": Timestamp(int(death.get("time", time.time()))),
            "exchange": death.get("exchange", ""),
            "routing-keys": list(death.get("routing-keys", [])),
        }
        if expiration is not None and death is first:
            entry["original-expiration"] = expiration
        entries.append(entry)
    if expiration is not None:
        block = update_properties(block, expiration=None)
    return update_headers(
        block,
        {
            "x-death": entries,
            "x-first-death-exchange": first.get("exchange", ""),
            "x-first-death-queue": first.get("queue", ""),
            "x-first-death-reason": first.get("reason", ""),
        },
    )

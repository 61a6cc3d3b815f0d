"""Pub/Sub messages <-> core records (the record-mapping table in
docs/architecture.md).

- ``data`` is the record value; ``publish_time`` its timestamp.
- ``attributes`` are headers by name. An attribute whose name is reserved
  (``dovecote.``, ``amqp.``, ``sqs.``, ``pubsub.``...) or is shown as a field of
  its own (``message-id``, ``ordering-key``, ``deduplication-id``) is kept
  under ``pubsub.attr.<name>`` and read back under its own name.
- ``ordering_key`` is the record key (what the core orders by) and the
  well-known ``ordering-key`` header, as an SQS MessageGroupId is.
- ``message_id`` is the ``message-id`` header (an AMQP message-id, an SQS
  MessageId); a Pub/Sub publish stores the id it answers with there, made
  from the record's place in its topic (``offset``, or ``partition-offset``
  past partition 0), so readers of every protocol see the same id. A record
  without the header (a Kafka produce) gets that offset form on delivery.

The other way, every non-reserved header of a record from any protocol is an
attribute: UTF-8 values as they are (typed values are already their text),
other bytes in base64.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from dovecote.core import headers as H

if TYPE_CHECKING:
    from dovecote.storage.batch import Record

Header = H.Header

PREFIX = "pubsub."
H.reserve_prefix(PREFIX)
ESCAPED = "pubsub.attr."  # an attribute whose own name is reserved or shown elsewhere

SHOWN_ELSEWHERE = frozenset({H.MESSAGE_ID, H.DEDUPLICATION_ID, H.ORDERING_KEY})
_NOT_ATTRIBUTES = SHOWN_ELSEWHERE | {H.TYPES}


def attributes_to_headers(
    attributes: Mapping[str, str], ordering_key: str = "", message_id: str = ""
) -> list[Header]:
    """Headers of a published message: its id first, ordering key last (as SQS
    puts its group)."""
    out: list[Header] = [(H.MESSAGE_ID, message_id.encode("ascii"))] if message_id else []
    for name, value in attributes.items():
        if name in SHOWN_ELSEWHERE or H.is_reserved(name):
            name = ESCAPED + name
        out.append((name, value.encode("utf-8")))
    if ordering_key:
        out.append((H.ORDERING_KEY, ordering_key.encode("utf-8")))
    return out


def headers_to_attributes(headers: Sequence[Header]) -> dict[str, str]:
    """The attributes a Pub/Sub subscriber sees for a record of any protocol."""
    out: dict[str, str] = {}
    for name, raw in headers:
        if name.startswith(ESCAPED):
            name = name[len(ESCAPED) :]
        elif raw is None or name in _NOT_ATTRIBUTES or H.is_reserved(name):
            continue  # a null has no text; the rest are shown elsewhere or not at all
        out[name] = _text(raw)
    return out


def ordering_key_of(record: Record) -> str:
    """The ordering key: the ``ordering-key`` header, else empty (a Kafka key is
    a partitioning key, not a promise of per-key delivery order)."""
    raw = H.find(record.headers, H.ORDERING_KEY)
    return "" if raw is None else _text(raw)


def message_id(partition: int, offset: int) -> str:
    """The id of the record at ``offset``: what a Pub/Sub publish answers."""
    return str(offset) if partition == 0 else f"{partition}-{offset}"


def message_id_of(record: Record, partition: int, offset: int) -> str:
    raw = H.find(record.headers, H.MESSAGE_ID)
    return message_id(partition, offset) if raw is None else _text(raw)


def parse_message_id(text: str) -> tuple[int, int] | None:
    """(partition, offset) of a :func:`message_id`, or None."""
    head, sep, tail = text.partition("-")
    try:
        return (int(head), int(tail)) if sep else (0, int(head))
    except ValueError:
        return None


def _text(raw: bytes | None) -> str:
    if raw is None:
        return ""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return base64.b64encode(raw).decode("ascii")

"""Publishing: a burst of basic.publish frames -> records -> one append per queue.

The connection hands a channel every run of consecutive publishes to the same
exchange and routing key that one read from the socket produced.
:func:`prepare` turns such a run into :class:`Run` s (cut further only where
the priority or, for headers routing, the headers table changes, so order is
kept), checking what RabbitMQ checks per message (``immediate``,
``expiration``, ``user_id``, ``reply_to`` for direct reply-to). The channel
then routes each run once and stores it with ``QueueManager.enqueue_now``.

Publisher confirms are tracked per run in :class:`Confirms`: a run's
sequence numbers are acknowledged when its appends are durable (or at once
for transient messages and unroutable ones), nacked when a queue refused it
(``x-overflow=reject-publish``) or the disk failed, and the acks that become
due together go out as one ``basic.ack multiple=true``.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from dovecote.amqp.codec import Message, encode_basic_ack, encode_basic_nack, update_properties
from dovecote.amqp.errors import (
    NOT_IMPLEMENTED,
    PRECONDITION_FAILED,
    ChannelError,
    ConnectionError_,
)
from dovecote.amqp.mapping import (
    NO_PROPS,
    PERSISTENT,
    headers_table,
    parse_expiration,
    publish_props,
    publish_record,
)
from dovecote.storage.batch import Record

REPLY_TO = "amq.rabbitmq.reply-to"
REPLY_TO_PREFIX = REPLY_TO + "."

PENDING, ACK, NACK = 0, 1, 2


@dataclass(slots=True)
class Run:
    """Consecutive messages that route alike and are stored as one batch."""

    priority: int | None
    headers: dict[str, Any] | None
    records: list[Record] = field(default_factory=list)
    messages: list[Message] = field(default_factory=list)
    blocks: list[bytes] = field(default_factory=list)  # as stored (reply-to rewritten)
    persistent: bool = False


@dataclass(slots=True)
class Batch:
    exchange: str
    routing_key: str
    runs: list[Run]


def prepare(
    exchange: str,
    routing_key: str,
    messages: list[Message],
    *,
    user: str,
    headers_routing: Callable[[], bool],
    reply_to: Callable[[], str | None],
) -> Batch:
    """Check and convert a run of publishes; raises the error RabbitMQ would."""
    ex_bytes = exchange.encode("utf-8")
    rk_bytes = routing_key.encode("utf-8")
    runs: list[Run] = []
    current: Run | None = None
    now_ms = 0
    for message in messages:
        if message.method.immediate:
            raise ConnectionError_(NOT_IMPLEMENTED, "immediate=true", 60, 40)
        block = message.property_block
        props = publish_props(block)
        expires_at = None
        if props is not NO_PROPS and props is not PERSISTENT:
            if props.expiration is not None:
                try:
                    ttl = parse_expiration(props.expiration)
                except ValueError as err:
                    raise ChannelError(
                        PRECONDITION_FAILED,
                        f"invalid expiration '{props.expiration}': {err}",
                        60,
                        40,
                    ) from None
                now_ms = now_ms or int(time.time() * 1000)
                expires_at = now_ms + ttl
            if props.user_id is not None and props.user_id != user:
                raise ChannelError(
                    PRECONDITION_FAILED,
                    f"user_id property set to '{props.user_id}' but authenticated user was '{user}'",
                    60,
                    40,
                )
            if props.reply_to == REPLY_TO:
                token = reply_to()
                if token is None:
                    raise ChannelError(
                        PRECONDITION_FAILED, "fast reply consumer does not exist", 60, 40
                    )
                block = update_properties(block, reply_to=REPLY_TO_PREFIX + token)
        headers = headers_table(block) if props.has_headers and headers_routing() else None
        priority = props.priority
        if current is None or current.priority != priority or current.headers != headers:
            current = Run(priority, headers)
            runs.append(current)
        current.records.append(publish_record(message.body, rk_bytes, block, ex_bytes, expires_at))
        current.messages.append(message)
        current.blocks.append(block)
        if props.persistent:
            current.persistent = True
    return Batch(exchange, routing_key, runs)


class Confirms:
    """Publisher-confirm bookkeeping of one channel in confirm mode."""

    __slots__ = ("entries", "seq")

    def __init__(self) -> None:
        self.seq = 0  # last sequence number handed out
        self.entries: deque[list[int]] = deque()  # [last seq, status], in order

    def add(self, count: int, status: int = PENDING) -> list[int]:
        """Number the next ``count`` publishes; returns their entry."""
        self.seq += count
        entry = [self.seq, status]
        self.entries.append(entry)
        return entry

    def ready(self) -> bool:
        return bool(self.entries) and self.entries[0][1] != PENDING

    def frames(self, channel: int) -> list[bytes]:
        """Confirms that are due, in order, coalesced into multiple acks."""
        out: list[bytes] = []
        entries = self.entries
        ack_to = 0
        while entries and entries[0][1] != PENDING:
            last, status = entries.popleft()
            if status == ACK:
                ack_to = last
                continue
            if ack_to:
                out.append(encode_basic_ack(channel, ack_to, True))
                ack_to = 0
            # multiple=true covers just this run: everything before it is confirmed
            out.append(encode_basic_nack(channel, last, True, False))
        if ack_to:
            out.append(encode_basic_ack(channel, ack_to, True))
        return out

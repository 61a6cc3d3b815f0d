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

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from dovecote.amqp.codec import (
    Message,
    encode_basic_ack,
    encode_basic_nack,
    encode_return,
    update_properties,
)
from dovecote.amqp.errors import (
    ACCESS_REFUSED,
    NO_ROUTE,
    NOT_FOUND,
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
from dovecote.core.ratelog import RateLimitedLog
from dovecote.storage.batch import Record

if TYPE_CHECKING:
    from dovecote.amqp.connection import Connection

# A full disk fails every publish of every connection: one line now and then.
noisy = RateLimitedLog(logging.getLogger(__name__))

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


class Publishing:
    """Mixin of :class:`~dovecote.amqp.channel.Channel`: storing publishes,
    returns, direct reply-to and confirms."""

    connection: Connection
    number: int
    confirms: Confirms | None
    tx: Any
    reply_consumer: Any

    def publish(self, exchange: str, routing_key: str, messages: list[Message]) -> None:
        """A run of publishes to one exchange and routing key, from one read."""
        connection = self.connection
        found = connection.queues.router.exchanges.get(exchange)
        if found is None:
            raise ChannelError(NOT_FOUND, f"no exchange '{exchange}' in vhost '/'", 60, 40)
        if found.internal:
            raise ChannelError(
                ACCESS_REFUSED,
                f"cannot publish to internal exchange '{exchange}' in vhost '/'",
                60,
                40,
            )
        batch = prepare(
            exchange,
            routing_key,
            messages,
            user=connection.user,
            headers_routing=connection.headers_routing,
            reply_to=self._reply_token,
        )
        if self.tx is not None:
            self.tx.publishes.append(batch)
            return
        self._execute(batch, None)

    def _reply_token(self) -> str | None:
        return self.reply_consumer.token if self.reply_consumer is not None else None

    def _execute(self, batch: Batch, waits_out: list[asyncio.Future[None]] | None) -> None:
        qm = self.connection.queues
        exchange, routing_key = batch.exchange, batch.routing_key
        if exchange == "" and routing_key.startswith(REPLY_TO_PREFIX):
            for run in batch.runs:
                self._publish_direct(routing_key, run)
            return
        for run in batch.runs:
            names = qm.route(exchange, routing_key, run.headers)
            self._store(names, run, exchange, routing_key, waits_out)

    def _store(
        self,
        names: set[str],
        run: Run,
        exchange: str,
        routing_key: str,
        waits_out: list[asyncio.Future[None]] | None,
    ) -> None:
        confirms = self.confirms
        durable = run.persistent and (confirms is not None or waits_out is not None)
        try:
            result, waits = self.connection.queues.enqueue_now(
                names, run.records, priority=run.priority, durable=durable
            )
        except OSError as exc:
            if waits_out is not None:
                raise  # tx.commit fails as a whole
            self._not_stored(run, exc)
            return
        if not result.routed:
            self._return_unroutable(run, exchange, routing_key)
        if waits_out is not None:
            waits_out.extend(waits)
        if confirms is None:
            return
        # The core decided message by message where a full queue refuses them.
        for count, refused in result.runs(len(run.records)):
            if refused:
                confirms.add(count, NACK)
                self.connection.confirm_later(self)
            elif waits:
                self._confirm_when_durable(confirms.add(count), waits)
            else:
                confirms.add(count, ACK)
                self.connection.confirm_later(self)

    def _not_stored(self, run: Run, exc: OSError) -> None:
        """The disk refused the append (full, failing): nack what has confirms,
        and have the resource monitor look now, so publishers are blocked
        (disk alarm) without waiting for its next round."""
        noisy.log(
            logging.WARNING,
            "store",
            "AMQP publish not stored (%s); nacked where confirms are on",
            exc.strerror or exc,
        )
        if self.confirms is not None:
            self.confirms.add(len(run.records), NACK)
            self.connection.confirm_later(self)
        self.connection.listener.monitor.check()

    def _confirm_when_durable(self, entry: list[int], waits: list[asyncio.Future[None]]) -> None:
        remaining = [len(waits)]
        connection = self.connection

        def done(future: asyncio.Future[None]) -> None:
            failed = future.cancelled() or future.exception() is not None
            if failed:
                entry[1] = NACK
            remaining[0] -= 1
            if remaining[0] == 0:
                if entry[1] != NACK:
                    entry[1] = ACK
                if not self.closing:
                    connection.confirm_later(self)

        for wait in waits:
            wait.add_done_callback(done)

    def _return_unroutable(self, run: Run, exchange: str, routing_key: str) -> None:
        connection = self.connection
        for message, block in zip(run.messages, run.blocks, strict=True):
            if message.method.mandatory:
                connection.send(
                    encode_return(
                        self.number,
                        NO_ROUTE,
                        "NO_ROUTE",
                        exchange,
                        routing_key,
                        block,
                        message.body,
                        connection.frame_max,
                    )
                )

    def _publish_direct(self, routing_key: str, run: Run) -> None:
        target = self.connection.listener.reply_consumers.get(routing_key[len(REPLY_TO_PREFIX) :])
        if target is None:
            self._return_unroutable(run, "", routing_key)
        else:
            for message, block in zip(run.messages, run.blocks, strict=True):
                target.deliver_direct(routing_key, block, message.body)
        if self.confirms is not None:
            self.confirms.add(len(run.records), ACK)
            self.connection.confirm_later(self)

    def confirm_frames(self) -> list[bytes]:
        return self.confirms.frames(self.number) if self.confirms is not None else []

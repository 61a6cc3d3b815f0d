"""basic.consume as a sink of the core's push delivery.

The loop, credit accounting, burst sizing and refill policy are the core's
(:mod:`dovecote.core.delivery`); an AMQP :class:`Consumer` is the sink it
pushes to: it writes ``basic.deliver`` frames through its channel, reports
the connection's writability (TCP backpressure) and turns a server-side stop
into ``basic.cancel`` (or an internal error). It also parses the consume and
queue arguments the core has neutral names for: ``x-priority``,
``x-stream-offset`` and ``x-single-active-consumer``.
"""

from __future__ import annotations

import asyncio
import datetime
import re
import time
from collections.abc import Awaitable, Mapping
from typing import TYPE_CHECKING, Any

from dovecote.amqp.codec.tables import Timestamp
from dovecote.amqp.errors import PRECONDITION_FAILED, ChannelError
from dovecote.core.cursor import FIRST, LAST, NEXT, AtTime, StartAt, StreamCursor
from dovecote.core.delivery import PushConsumer
from dovecote.core.queue_settings import QueueSettings
from dovecote.core.queues import Queue
from dovecote.core.subscription_state import Delivery

if TYPE_CHECKING:
    from dovecote.amqp.interfaces import ChannelView


class Consumer:
    """One basic.consume: its tag, the channel it delivers on, and its core consumer."""

    __slots__ = (
        "channel",
        "exclusive",
        "no_ack",
        "push",
        "queue",
        "stream",
        "sub",
        "tag",
        "tag_bytes",
    )

    def __init__(
        self,
        channel: ChannelView,
        queue: Queue,
        tag: str,
        *,
        no_ack: bool,
        prefetch: int,
        exclusive: bool,
        priority: int = 0,
        start: StartAt | None = None,
    ) -> None:
        self.channel = channel
        self.queue = queue
        self.tag = tag
        self.tag_bytes = tag.encode("utf-8")
        self.no_ack = no_ack
        self.exclusive = exclusive
        cursor = None if start is None else StreamCursor(queue.subscription, start)
        self.stream = cursor is not None
        # what acks and nacks of this consumer's deliveries settle (nothing, for a stream)
        self.sub = cursor if cursor is not None else queue.subscription
        self.push = PushConsumer(
            self,
            channel,  # lease owner
            prefetch=prefetch,
            pool=channel.credit_pool,
            auto_ack=no_ack,
            priority=priority,
            exclusive=exclusive,
            source=cursor,
        )

    def __repr__(self) -> str:
        return f"<Consumer {self.tag} on {self.queue.name}>"

    # --- the core's DeliverySink ----------------------------------------------------

    def deliver(self, deliveries: list[Delivery]) -> None:
        self.channel.deliver(self, deliveries)

    def writable(self) -> bool:
        return not self.channel.connection.write_paused

    def wait_writable(self) -> Awaitable[None]:
        # Shielded: the core cancels what it waited on when something else
        # woke it first, and the connection's drain future is shared by
        # every consumer on it.
        return asyncio.shield(self.channel.connection.writable())

    def cancelled(self, error: BaseException | None) -> None:
        if error is None:
            self.channel.server_cancel(self)
        else:
            self.channel.connection.internal_error(f"consumer {self.tag} failed")


# --- arguments ----------------------------------------------------------------------------


def consumer_priority(arguments: Mapping[str, Any] | None) -> int:
    """``x-priority`` (any integer; RabbitMQ's default is 0)."""
    value = (arguments or {}).get("x-priority")
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int):
        raise ChannelError(
            PRECONDITION_FAILED, f"invalid arg 'x-priority': expected integer, got {value!r}"
        )
    return value


def single_active_consumer(arguments: Mapping[str, Any] | None, queue: str = "") -> bool:
    """``x-single-active-consumer`` of queue.declare (a boolean)."""
    value = (arguments or {}).get("x-single-active-consumer")
    if value is None:
        return False
    if not isinstance(value, bool):
        raise ChannelError(
            PRECONDITION_FAILED,
            f"invalid arg 'x-single-active-consumer' for queue '{queue}' in vhost '/': "
            f'"expected bool, got {value!r}"',
        )
    return value


def delivery_settings(
    args: QueueSettings,
    arguments: Mapping[str, Any],
    queue: str,
    *,
    durable: bool,
    exclusive: bool,
    auto_delete: bool,
) -> QueueSettings:
    """Add what queue.declare says about delivery to ``args`` (parsed from the
    other x-arguments): ``x-single-active-consumer`` and ``x-queue-type:
    stream``, which RabbitMQ allows only for durable, shared queues."""
    args.single_active_consumer = single_active_consumer(arguments, queue)
    kind = arguments.get("x-queue-type")
    if isinstance(kind, bytes):
        kind = kind.decode("utf-8", "replace")
    if kind == "stream":
        for wrong, flag in (
            (not durable, "non-durable"),
            (exclusive, "exclusive-owner"),
            (auto_delete, "auto-delete"),
        ):
            if wrong:
                raise ChannelError(
                    PRECONDITION_FAILED,
                    f"invalid property '{flag}' for queue '{queue}' in vhost '/'",
                )
        for key in arguments:
            if key.startswith("x-") and key not in STREAM_ARGUMENTS:
                raise ChannelError(
                    PRECONDITION_FAILED,
                    f"invalid arg '{key}' for queue '{queue}' in vhost '/' "
                    "of queue type rabbit_stream_queue",
                )
        args.stream = True
        # What is consumed stays; size and age limits are retention of the log.
        args.retention_bytes, args.max_length_bytes = args.max_length_bytes, None
        age = arguments.get("x-max-age")
        if age is not None:
            args.retention_ms = _max_age_ms(age, queue)
    return args


# What RabbitMQ accepts on a stream queue (the cluster ones change nothing here).
STREAM_ARGUMENTS = frozenset(
    {
        "x-queue-type",
        "x-max-length-bytes",
        "x-max-age",
        "x-stream-max-segment-size-bytes",
        "x-stream-filter-size-bytes",
        "x-queue-leader-locator",
        "x-initial-cluster-size",
    }
)


def _max_age_ms(value: Any, queue: str) -> int:
    """``x-max-age`` ("7D", "12h", ...: units Y M D h m s) in milliseconds."""
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    match = _INTERVAL.match(value) if isinstance(value, str) else None
    if match is None or int(match.group(1)) <= 0:
        raise ChannelError(
            PRECONDITION_FAILED,
            f"invalid arg 'x-max-age' for queue '{queue}' in vhost '/': {value!r}",
        )
    return int(match.group(1)) * _UNIT_S[match.group(2)] * 1000


_INTERVAL = re.compile(r"^(\d+)([YMDhms])$")
_UNIT_S = {"Y": 365 * 86400, "M": 30 * 86400, "D": 86400, "h": 3600, "m": 60, "s": 1}


def stream_start(arguments: Mapping[str, Any] | None) -> StartAt:
    """Where ``x-stream-offset`` says a stream consumer starts (default: next).

    ``first``, ``last``, ``next``, an offset, a timestamp (AMQP timestamp,
    seconds) or an interval back from now (``"30m"``, units Y M D h m s).
    """
    value = (arguments or {}).get("x-stream-offset")
    if value is None:
        return NEXT
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if isinstance(value, Timestamp):  # an int: test it before offsets
        return AtTime(int(value) * 1000)
    if isinstance(value, datetime.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=datetime.UTC)
        return AtTime(int(value.timestamp() * 1000))
    if isinstance(value, str):
        if value in (FIRST, LAST, NEXT):
            return value
        match = _INTERVAL.match(value)
        if match:
            seconds = int(match.group(1)) * _UNIT_S[match.group(2)]
            return AtTime(int((time.time() - seconds) * 1000))
    elif isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    raise ChannelError(PRECONDITION_FAILED, f"invalid arg 'x-stream-offset': {value!r}")

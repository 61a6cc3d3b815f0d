"""basic.consume as a sink of the core's push delivery.

The loop, credit accounting, burst sizing and refill policy are the core's
(:mod:`dovecote.core.delivery`); an AMQP :class:`Consumer` is the sink it
pushes to: it writes ``basic.deliver`` frames through its channel, reports
the connection's writability (TCP backpressure) and turns a server-side stop
into ``basic.cancel`` (or an internal error).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TYPE_CHECKING

from dovecote.core.cursor import StartAt, StreamCursor
from dovecote.core.delivery import PushConsumer
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

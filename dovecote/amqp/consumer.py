"""One delivery loop per basic.consume.

The loop leases as many records as the consumer may have in flight (its
prefetch credit, capped by the channel's global prefetch) in one
``Subscription.pull``, writes them as one burst and then sleeps until one of
three things changes: new data in the queue (``Subscription.wait``), credit
freed by acks (:meth:`Consumer.kick`), or the socket draining after
backpressure. So the cost is per batch, not per message, and a slow client
is never pushed more than its TCP window and its prefetch.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from dovecote.core.queues import Queue
from dovecote.core.subscription import Delivery

if TYPE_CHECKING:
    from dovecote.amqp.interfaces import ChannelView

log = logging.getLogger(__name__)

PULL_MAX = 2000  # records leased per pull at most (no_ack or unlimited prefetch)
BURST_BYTES = 1 << 20  # and about this many body bytes, so one burst never floods memory
PULL_STEP = 256  # a burst is pulled in steps of at most this many records
IDLE_WAIT = 30.0  # seconds between re-checks of an idle queue (leases, delays)
REFILL_FRACTION = 8  # top a consumer up once 1/8 of its window is free...
REFILL_DELAY = 0.005  # ...or this many seconds after the first ack, whichever is first


class Consumer:
    """A consumer on a queue: its tag, credit accounting and delivery task."""

    __slots__ = (
        "_refill",
        "_unwatch",
        "_waiter",
        "avg_size",
        "channel",
        "exclusive",
        "no_ack",
        "prefetch",
        "queue",
        "sub",
        "tag",
        "tag_bytes",
        "task",
        "unacked",
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
    ) -> None:
        self.channel = channel
        self.queue = queue
        self.sub = queue.subscription
        self.tag = tag
        self.tag_bytes = tag.encode("utf-8")
        self.no_ack = no_ack
        self.prefetch = prefetch  # 0 = unlimited
        self.exclusive = exclusive
        self.unacked = 0
        self.avg_size = 65536.0  # running mean body size (pessimistic at first)
        self.task: asyncio.Task[None] | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._refill: asyncio.TimerHandle | None = None
        self._unwatch = self.sub.on_close(self.kick)

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self._run(), name=f"consumer {self.tag}")

    def stop(self) -> None:
        """Stop delivering (cancel, channel or connection closed)."""
        self._unwatch()
        if self._refill is not None:
            self._refill.cancel()
            self._refill = None
        if self.task is not None:
            self.task.cancel()
            self.task = None

    def kick(self) -> None:
        """Credit was freed (or the queue went away): look again."""
        if self._refill is not None:
            self._refill.cancel()
            self._refill = None
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def acked(self) -> None:
        """Acks freed credit. A consumer whose client acks one message at a time
        is topped up in bursts (an eighth of its window, or after a few ms),
        not once per ack: the client still holds most of its window, and the
        broker saves a wake-up, a pull and a socket write per message."""
        if self._waiter is None or self._refill is not None:
            return  # not waiting for credit, or a top-up is already due
        credit = self.credit()
        if credit <= 0:
            return
        window = self.prefetch or PULL_MAX
        limit = self.channel.global_prefetch
        if limit:
            window = min(window, limit)
        if credit >= max(1, window // REFILL_FRACTION):
            self.kick()
        else:
            self._refill = asyncio.get_running_loop().call_later(REFILL_DELAY, self.kick)

    def credit(self) -> int:
        """How many more deliveries the consumer may have in flight now."""
        if self.no_ack:
            return PULL_MAX
        credit = PULL_MAX
        if self.prefetch:
            credit = min(credit, self.prefetch - self.unacked)
        limit = self.channel.global_prefetch
        if limit:
            credit = min(credit, limit - len(self.channel.unacked))
        return credit

    def _pull_burst(self, credit: int) -> list[Delivery]:
        """Lease up to ``credit`` records but only about BURST_BYTES of bodies,
        in steps sized by the bodies seen so far."""
        sub = self.sub
        out: list[Delivery] = []
        size = 0
        while len(out) < credit and size < BURST_BYTES:
            step = max(1, min(PULL_STEP, credit - len(out), int(BURST_BYTES / self.avg_size)))
            got = sub.pull(step, self.channel)
            if not got:
                break
            got_size = sum(len(d.record.value or b"") for d in got)
            self.avg_size = max(64.0, 0.5 * self.avg_size + 0.5 * got_size / len(got))
            size += got_size
            out += got
        return out

    async def _run(self) -> None:
        channel = self.channel
        connection = channel.connection
        sub = self.sub
        loop = asyncio.get_running_loop()
        try:
            while True:
                if sub.closed:
                    channel.server_cancel(self)
                    return
                if connection.write_paused:
                    await connection.writable()
                    continue
                credit = self.credit()
                if credit <= 0:
                    self._waiter = loop.create_future()
                    try:
                        await self._waiter
                    finally:
                        self._waiter = None
                    continue
                deliveries = self._pull_burst(credit)
                if deliveries:
                    channel.deliver(self, deliveries)
                    await asyncio.sleep(0)  # let the burst go out and acks come in
                else:
                    await sub.wait(IDLE_WAIT)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("consumer %s on queue %s failed", self.tag, self.queue.name)
            connection.internal_error(f"consumer {self.tag} failed")

"""One AMQP channel: consumers, deliveries, get, acknowledgements, confirm and tx modes.

The exchange and queue methods come from :mod:`~dovecote.amqp.declare`,
storing publishes from :mod:`~dovecote.amqp.publish`. Handlers are plain methods keyed by method index in :data:`HANDLERS`. A
handler either finishes at once (returns ``None``) or returns a coroutine
for work that must await the core (declarations, which are fsynced into the
catalog; a get or purge that first waits for pending appends to become
visible; a transaction commit). The connection runs such a coroutine before
it reads anything else, so replies keep the order of requests.

Delivery tags are per channel. ``unacked`` maps each outstanding tag to
``(consumer, subscription, delivery token)`` in tag order, so
``multiple=true`` acks take a prefix. Acks return consumer credit at once and
are settled in the core in bursts (one ``Subscription.ack`` per queue every
few ms, see ``Connection.settle_later``).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from typing import TYPE_CHECKING, Any

from pamqp import base
from pamqp import commands as C

from dovecote.amqp.arguments import consumer_priority, stream_start
from dovecote.amqp.codec import Typed, encode_delivery_parts, encode_get_ok, update_headers
from dovecote.amqp.consumer import Consumer
from dovecote.amqp.declare import Declarations, generated_name
from dovecote.amqp.errors import (
    ACCESS_REFUSED,
    NOT_ALLOWED,
    NOT_IMPLEMENTED,
    PRECONDITION_FAILED,
    ChannelError,
    ConnectionError_,
)
from dovecote.amqp.mapping import delivery_fields
from dovecote.amqp.publish import REPLY_TO, Batch, Confirms, Publishing
from dovecote.core.cursor import StreamCursor
from dovecote.core.delivery import ConsumerRefused, CreditPool
from dovecote.core.queues import Queue
from dovecote.core.subscription import Subscription
from dovecote.core.subscription_state import Delivery

if TYPE_CHECKING:
    from dovecote.amqp.interfaces import ConnectionView

log = logging.getLogger(__name__)

# (consumer or None for basic.get, what settles it, the delivery's token as a
# plain (partition, offset, attempt) tuple: cheaper than DeliveryToken per record).
# A stream consumer's deliveries settle on its cursor, where acks only return credit.
Unacked = tuple[Consumer | None, Subscription | StreamCursor, tuple[int, int, int]]


class ReplyConsumer:
    """A consumer of the ``amq.rabbitmq.reply-to`` pseudo-queue (direct reply-to)."""

    __slots__ = ("tag", "tag_bytes", "token")

    def __init__(self, tag: str, token: str) -> None:
        self.tag = tag
        self.tag_bytes = tag.encode("utf-8")
        self.token = token


class Tx:
    """What a transactional channel holds until tx.commit."""

    __slots__ = ("publishes", "settles")

    def __init__(self) -> None:
        self.publishes: list[Batch] = []
        self.settles: list[tuple[str, list[tuple[int, Unacked]], bool]] = []

    def take(self) -> tuple[list[Batch], list[tuple[str, list[tuple[int, Unacked]], bool]]]:
        publishes, settles = self.publishes, self.settles
        self.publishes, self.settles = [], []
        return publishes, settles


class Channel(Declarations, Publishing):
    def __init__(self, connection: ConnectionView, number: int) -> None:
        self.connection = connection
        self.number = number
        self.closing = False
        self.consumers: dict[str, Consumer] = {}
        self.reply_consumer: ReplyConsumer | None = None
        self.next_tag = 1
        self.unacked: dict[int, Unacked] = {}
        self.prefetch_count = 0  # per consumer (basic.qos global=false)
        # shared by the channel's consumers (global=true); basic.get deliveries count too
        self.credit_pool = CreditPool(0, self.unacked.__len__)
        self.confirms: Confirms | None = None
        self.tx: Tx | None = None
        self.last_queue: str | None = None
        self._acks: dict[Subscription | StreamCursor, list[tuple[int, int, int]]] = {}

    def __repr__(self) -> str:
        return f"<Channel {self.number} of {self.connection!r}>"

    # --- output ------------------------------------------------------------------

    def send(self, method: base.Frame) -> None:
        self.connection.send_method(self.number, method)

    # --- channel class ------------------------------------------------------------

    def on_channel_flow(self, m: C.Channel.Flow) -> None:
        if not m.active:
            raise ConnectionError_(NOT_IMPLEMENTED, "active=false")
        self.send(C.Channel.FlowOk(True))

    def on_channel_close(self, m: C.Channel.Close) -> None:
        self.connection.close_channel(self)

    def on_ignored(self, m: base.Frame) -> None:
        """A reply the client owes us (cancel-ok after a server cancel): nothing to do."""

    # --- consuming ----------------------------------------------------------------

    def on_basic_qos(self, m: C.Basic.Qos) -> None:
        # prefetch_size is ignored (no client sets it; RabbitMQ never implemented it)
        count = m.prefetch_count
        if m.global_:
            self.credit_pool.limit = count
        else:
            # RabbitMQ: a limit per consumer for consumers created after this.
            # Also applied to the channel's existing consumers, so clients that
            # follow the spec's per-channel reading (Celery raising its
            # prefetch while consuming) get what they asked for.
            self.prefetch_count = count
            for consumer in self.consumers.values():
                consumer.push.prefetch = count
        self._kick_consumers()
        self.send(C.Basic.QosOk())

    def on_basic_consume(self, m: C.Basic.Consume) -> None:
        connection = self.connection
        name = self._queue_name(m.queue)
        tag = m.consumer_tag or generated_name("amq.ctag-")
        if tag in self.consumers or (self.reply_consumer and self.reply_consumer.tag == tag):
            raise ConnectionError_(NOT_ALLOWED, f"attempt to reuse consumer tag '{tag}'")
        if name == REPLY_TO:
            self._consume_reply_to(m, tag)
            return
        queue = connection.queues.get_queue(name, connection)
        start = None
        if queue.settings.stream:
            # RabbitMQ: stream consumers read with credit and settle to get it back
            if not self.prefetch_count:
                raise ChannelError(
                    PRECONDITION_FAILED,
                    f"consumer prefetch count is not set for 'queue '{name}' in vhost '/''",
                )
            if m.no_ack:
                raise ConnectionError_(
                    NOT_IMPLEMENTED,
                    "automatic acknowledgement not supported by stream queues "
                    f"queue '{name}' in vhost '/'",
                )
            start = stream_start(m.arguments)
        consumer = Consumer(
            self,
            queue,
            tag,
            no_ack=m.no_ack,
            prefetch=self.prefetch_count,
            exclusive=m.exclusive,
            priority=consumer_priority(m.arguments),
            start=start,
        )
        try:
            connection.queues.consumer_added(queue, consumer.push)
        except ConsumerRefused:
            raise ChannelError(
                ACCESS_REFUSED, f"queue '{name}' in vhost '/' in exclusive use"
            ) from None
        self.consumers[tag] = consumer
        if not m.nowait:
            self.send(C.Basic.ConsumeOk(tag))

    def _consume_reply_to(self, m: C.Basic.Consume, tag: str) -> None:
        if not m.no_ack:
            raise ChannelError(PRECONDITION_FAILED, "reply consumer cannot acknowledge")
        if self.reply_consumer is not None:
            raise ChannelError(PRECONDITION_FAILED, "reply consumer already set")
        token = secrets.token_urlsafe(24)
        self.reply_consumer = ReplyConsumer(tag, token)
        self.connection.listener.reply_consumers[token] = self
        if not m.nowait:
            self.send(C.Basic.ConsumeOk(tag))

    def on_basic_cancel(self, m: C.Basic.Cancel) -> Any:
        tag = m.consumer_tag
        reply = self.reply_consumer
        if reply is not None and reply.tag == tag:
            self._drop_reply_consumer()
        consumer = self.consumers.pop(tag, None)
        if consumer is None:
            if not m.nowait:
                self.send(C.Basic.CancelOk(tag))
            return None
        self._stop_consumer(consumer)
        return self._cancelled(consumer, None if m.nowait else tag)

    async def _cancelled(self, consumer: Consumer, reply_tag: str | None) -> None:
        await self.connection.queues.consumer_removed(consumer.queue)  # auto-delete
        if reply_tag is not None:
            self.send(C.Basic.CancelOk(reply_tag))

    def _stop_consumer(self, consumer: Consumer) -> None:
        delivery = consumer.queue.delivery
        if delivery is not None:
            delivery.detach(consumer.push)

    def _drop_reply_consumer(self) -> None:
        reply = self.reply_consumer
        if reply is not None:
            self.connection.listener.reply_consumers.pop(reply.token, None)
            self.reply_consumer = None

    def server_cancel(self, consumer: Consumer) -> None:
        """The queue went away under a consumer: tell the client (consumer_cancel_notify)."""
        if self.consumers.get(consumer.tag) is not consumer:
            return
        del self.consumers[consumer.tag]
        self._stop_consumer(consumer)
        if self.connection.capability("consumer_cancel_notify"):
            self.send(C.Basic.Cancel(consumer.tag, nowait=True))

    def deliver(self, consumer: Consumer, deliveries: list[Delivery]) -> None:
        """Write a burst of basic.deliver frames and track their tags."""
        connection = self.connection
        if self.closing:
            consumer.sub.nack([d.token for d in deliveries], requeue=True)
            return
        out = connection.out
        number = self.number
        frame_max = connection.frame_max
        ctag = consumer.tag_bytes
        sub = consumer.sub
        unacked = self.unacked
        track = not consumer.no_ack
        stream = consumer.stream
        tag = self.next_tag
        for d in deliveries:
            record = d.record
            block, exchange, routing_key = delivery_fields(record)
            if stream:  # as RabbitMQ: where the consumer is, for resuming later
                block = update_headers(block, {"x-stream-offset": Typed("l", d.offset)})
            out.extend(
                encode_delivery_parts(
                    number,
                    ctag,
                    tag,
                    d.count > 1,
                    exchange,
                    routing_key,
                    block,
                    record.value or b"",
                    frame_max,
                )
            )
            if track:
                unacked[tag] = (consumer, sub, (d.partition, d.offset, d.attempt))
            tag += 1
        self.next_tag = tag
        connection.want_flush()

    def deliver_direct(self, routing_key: str, block: bytes, body: bytes) -> None:
        """A direct reply-to message: straight to the reply consumer, no queue."""
        reply = self.reply_consumer
        if reply is None or self.closing:
            return
        connection = self.connection
        tag = self.next_tag
        self.next_tag += 1
        connection.out.extend(
            encode_delivery_parts(
                self.number,
                reply.tag_bytes,
                tag,
                False,
                b"",
                routing_key,
                block,
                body,
                connection.frame_max,
            )
        )
        connection.want_flush()

    def on_basic_get(self, m: C.Basic.Get) -> Any:
        queue = self._queue(m.queue)
        if queue.settings.stream:
            raise ConnectionError_(NOT_IMPLEMENTED, "basic.get not supported by stream queues")
        if self.connection.has_pending_appends(queue):
            return self._get_when_visible(queue, m.no_ack)
        self._get(queue, m.no_ack)
        return None

    async def _get_when_visible(self, queue: Queue, no_ack: bool) -> None:
        await self.connection.visible(queue)
        self._get(queue, no_ack)

    def _get(self, queue: Queue, no_ack: bool) -> None:
        queue.touch()
        sub = queue.subscription
        deliveries = sub.pull(1, self)
        if not deliveries:
            self.send(C.Basic.GetEmpty())
            return
        d = deliveries[0]
        tag = self.next_tag
        self.next_tag += 1
        if no_ack:
            sub.ack([d.token])
        else:
            self.unacked[tag] = (None, sub, d.token)
        block, exchange, routing_key = delivery_fields(d.record)
        self.connection.send(
            encode_get_ok(
                self.number,
                tag,
                d.count > 1,
                exchange,
                routing_key,
                sub.ready_count(),
                block,
                d.record.value or b"",
                self.connection.frame_max,
            )
        )

    # --- acknowledgements ---------------------------------------------------------

    def _take(self, tag: int, multiple: bool) -> list[tuple[int, Unacked]]:
        """Remove and return the outstanding deliveries an ack/nack/reject names."""
        unacked = self.unacked
        if multiple:
            if tag == 0:
                taken = list(unacked.items())
                unacked.clear()
                return taken
            if tag in unacked:
                taken = []
                for t in unacked:
                    taken.append(t)
                    if t == tag:
                        break
                return [(t, unacked.pop(t)) for t in taken]
        else:
            entry = unacked.pop(tag, None)
            if entry is not None:
                return [(tag, entry)]
        raise ChannelError(PRECONDITION_FAILED, f"unknown delivery tag {tag}")

    def on_basic_ack(self, m: C.Basic.Ack) -> None:
        taken = self._take(m.delivery_tag, m.multiple)
        if self.tx is not None:
            self.tx.settles.append(("ack", taken, False))
            return
        self._ack(taken)

    def _ack(self, taken: list[tuple[int, Unacked]]) -> None:
        acks = self._acks
        for _tag, (consumer, sub, token) in taken:
            if consumer is not None:
                consumer.push.in_flight -= 1
            items = acks.get(sub)
            if items is None:
                acks[sub] = [token]
            else:
                items.append(token)
        self.connection.settle_later(self)

    def flush_acks(self) -> None:
        """Settle the acks collected so far, one ``Subscription.ack`` per queue."""
        acks, self._acks = self._acks, {}
        for sub, items in acks.items():
            if not sub.closed:
                sub.ack(items)

    def credit_freed(self) -> None:
        """Acks of this read freed credit: let consumers decide to top up."""
        for consumer in self.consumers.values():
            consumer.push.refill()

    def _kick_consumers(self) -> None:
        for consumer in self.consumers.values():
            consumer.push.kick()

    def on_basic_nack(self, m: C.Basic.Nack) -> None:
        self._reject(self._take(m.delivery_tag, m.multiple), m.requeue)

    def on_basic_reject(self, m: C.Basic.Reject) -> None:
        self._reject(self._take(m.delivery_tag, False), m.requeue)

    def _reject(self, taken: list[tuple[int, Unacked]], requeue: bool) -> None:
        if self.tx is not None:
            self.tx.settles.append(("nack", taken, requeue))
            return
        self._nack(taken, requeue)

    def _nack(self, taken: list[tuple[int, Unacked]], requeue: bool) -> None:
        by_sub: dict[Subscription | StreamCursor, list[tuple[int, int, int]]] = {}
        for _tag, (consumer, sub, token) in taken:
            if consumer is not None:
                consumer.push.in_flight -= 1
            by_sub.setdefault(sub, []).append(token)
        for sub, items in by_sub.items():
            if not sub.closed:
                sub.nack(items, requeue=requeue)
        self._kick_consumers()

    def on_basic_recover(self, m: C.Basic.Recover) -> None:
        self._recover()
        self.send(C.Basic.RecoverOk())

    def on_basic_recover_async(self, m: C.Basic.RecoverAsync) -> None:
        self._recover()

    def _recover(self) -> None:
        # requeue=false (redeliver to the same consumer) is done as requeue=true, as RabbitMQ does
        taken = list(self.unacked.items())
        self.unacked.clear()
        self._nack(taken, True)

    # --- confirms and transactions --------------------------------------------------------

    def on_confirm_select(self, m: C.Confirm.Select) -> None:
        if self.tx is not None:
            raise ChannelError(PRECONDITION_FAILED, "cannot switch from tx to confirm mode")
        if self.confirms is None:
            self.confirms = Confirms()
        if not m.nowait:
            self.send(C.Confirm.SelectOk())

    def on_tx_select(self, m: C.Tx.Select) -> None:
        if self.confirms is not None:
            raise ChannelError(PRECONDITION_FAILED, "cannot switch from confirm to tx mode")
        if self.tx is None:
            self.tx = Tx()
        self.send(C.Tx.SelectOk())

    def on_tx_commit(self, m: C.Tx.Commit) -> Any:
        if self.tx is None:
            raise ChannelError(PRECONDITION_FAILED, "channel is not transactional")
        publishes, settles = self.tx.take()
        waits: list[asyncio.Future[None]] = []
        for batch in publishes:
            self._execute(batch, waits)
        for kind, taken, requeue in settles:
            if kind == "ack":
                self._ack(taken)
            else:
                self._nack(taken, requeue)
        if waits:
            return self._commit_when_durable(waits)
        self.send(C.Tx.CommitOk())
        return None

    async def _commit_when_durable(self, waits: list[asyncio.Future[None]]) -> None:
        await asyncio.gather(*waits)
        self.send(C.Tx.CommitOk())

    def on_tx_rollback(self, m: C.Tx.Rollback) -> None:
        if self.tx is None:
            raise ChannelError(PRECONDITION_FAILED, "channel is not transactional")
        _publishes, settles = self.tx.take()
        restored = dict(self.unacked)
        for _kind, taken, _requeue in settles:
            restored.update(taken)
        self.unacked = dict(sorted(restored.items()))
        self.send(C.Tx.RollbackOk())

    # --- closing ----------------------------------------------------------------------

    def release(self) -> list[Queue]:
        """The channel is closing: stop consumers, requeue what it holds.

        Returns the queues whose consumer count dropped, for the connection to
        report to the core (which may delete auto-delete queues) in order.
        """
        self.closing = True
        gone = []
        for consumer in list(self.consumers.values()):
            self._stop_consumer(consumer)
            if not consumer.queue.subscription.closed:
                gone.append(consumer.queue)
        self.consumers.clear()
        self._drop_reply_consumer()
        self.flush_acks()
        taken = list(self.unacked.items())
        if self.tx is not None:
            for _kind, held, _requeue in self.tx.settles:
                taken.extend(held)
            self.tx = None
        self.unacked.clear()
        if taken:
            self._nack(taken, True)
        self.confirms = None
        return gone


HANDLERS: dict[int, Any] = {
    C.Channel.Flow.index: Channel.on_channel_flow,
    C.Channel.Close.index: Channel.on_channel_close,
    C.Exchange.Declare.index: Channel.on_exchange_declare,
    C.Exchange.Delete.index: Channel.on_exchange_delete,
    C.Exchange.Bind.index: Channel.on_exchange_bind,
    C.Exchange.Unbind.index: Channel.on_exchange_unbind,
    C.Queue.Declare.index: Channel.on_queue_declare,
    C.Queue.Bind.index: Channel.on_queue_bind,
    C.Queue.Unbind.index: Channel.on_queue_unbind,
    C.Queue.Purge.index: Channel.on_queue_purge,
    C.Queue.Delete.index: Channel.on_queue_delete,
    C.Basic.Qos.index: Channel.on_basic_qos,
    C.Basic.Consume.index: Channel.on_basic_consume,
    C.Basic.Cancel.index: Channel.on_basic_cancel,
    C.Basic.CancelOk.index: Channel.on_ignored,
    C.Basic.Get.index: Channel.on_basic_get,
    C.Basic.Ack.index: Channel.on_basic_ack,
    C.Basic.Nack.index: Channel.on_basic_nack,
    C.Basic.Reject.index: Channel.on_basic_reject,
    C.Basic.Recover.index: Channel.on_basic_recover,
    C.Basic.RecoverAsync.index: Channel.on_basic_recover_async,
    C.Confirm.Select.index: Channel.on_confirm_select,
    C.Tx.Select.index: Channel.on_tx_select,
    C.Tx.Commit.index: Channel.on_tx_commit,
    C.Tx.Rollback.index: Channel.on_tx_rollback,
}
"""Method index -> handler; anything else a client sends on a channel is 503."""

SETTLE_METHODS = frozenset({C.Basic.Ack.index, C.Basic.Nack.index, C.Basic.Reject.index})
"""Methods that need not wait for pending publishes of the same read to be stored."""

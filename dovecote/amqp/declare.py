"""Exchange and queue methods of a channel (declare, delete, bind, unbind, purge).

Each awaits the core (durable declarations are fsynced into the catalog) and
answers with the method's ``-ok`` unless ``nowait``. Names are checked as
RabbitMQ checks them: the default exchange and ``amq.*`` names are
reserved, an empty queue name means "the last queue declared on this
channel", and ``amq.rabbitmq.reply-to`` is the direct reply-to pseudo-queue.
Queue x-arguments become core settings in :mod:`dovecote.amqp.arguments`.
Unbinding what is already gone answers ``unbind-ok``, as RabbitMQ does.
"""

from __future__ import annotations

import secrets
from base64 import urlsafe_b64encode
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pamqp import base
from pamqp import commands as C

from dovecote.amqp.arguments import check_equivalent, delivery_settings, queue_settings, reserved
from dovecote.amqp.errors import (
    ACCESS_REFUSED,
    NOT_FOUND,
    PRECONDITION_FAILED,
    ChannelError,
)
from dovecote.amqp.publish import REPLY_TO, REPLY_TO_PREFIX
from dovecote.core.queues import Queue, plain_arguments
from dovecote.core.routing import EXCHANGE, EXCHANGE_TYPES

if TYPE_CHECKING:
    from dovecote.amqp.interfaces import ConnectionView

QUEUE_TYPES = ("classic", "quorum", "stream")


def generated_name(prefix: str) -> str:
    """``amq.gen-...`` / ``amq.ctag-...``: 22 URL-safe characters, as RabbitMQ."""
    return prefix + urlsafe_b64encode(secrets.token_bytes(16)).rstrip(b"=").decode()


class Declarations:
    """Mixin of :class:`~dovecote.amqp.channel.Channel`: the exchange and queue classes."""

    connection: ConnectionView
    last_queue: str | None
    reply_consumer: Any
    send: Callable[[base.Frame], None]

    # --- queues by name ------------------------------------------------------------

    def _queue_name(self, name: str) -> str:
        if name:
            return name
        if self.last_queue is None:
            raise ChannelError(NOT_FOUND, "no previously declared queue")
        return self.last_queue

    def _queue(self, name: str) -> Queue:
        return self.connection.queues.get_queue(self._queue_name(name), self.connection)

    # --- exchanges ----------------------------------------------------------------

    async def on_exchange_declare(self, m: C.Exchange.Declare) -> None:
        name, kind = m.exchange, m.exchange_type
        if not m.passive:
            if name == "":
                raise ChannelError(
                    ACCESS_REFUSED, "operation not permitted on the default exchange"
                )
            if kind not in EXCHANGE_TYPES:
                # RabbitMQ 3.13+: a channel error (503 connection close before)
                raise ChannelError(PRECONDITION_FAILED, f"invalid exchange type '{kind}'")
            if reserved(name) and name not in self.connection.queues.router.exchanges:
                raise ChannelError(
                    ACCESS_REFUSED, f"exchange name '{name}' contains reserved prefix 'amq.*'"
                )
        await self.connection.queues.declare_exchange(
            name,
            kind,
            durable=m.durable,
            auto_delete=m.auto_delete,
            internal=m.internal,
            arguments=m.arguments,
            passive=m.passive,
        )
        if not m.nowait:
            self.send(C.Exchange.DeclareOk())

    async def on_exchange_delete(self, m: C.Exchange.Delete) -> None:
        name = m.exchange
        if name == "":
            raise ChannelError(ACCESS_REFUSED, "operation not permitted on the default exchange")
        if reserved(name) and name in self.connection.queues.router.exchanges:
            raise ChannelError(
                ACCESS_REFUSED, f"deletion of system exchange '{name}' in vhost '/' not allowed"
            )
        await self.connection.queues.delete_exchange(name, if_unused=m.if_unused)
        if not m.nowait:
            self.send(C.Exchange.DeleteOk())

    async def on_exchange_bind(self, m: C.Exchange.Bind) -> None:
        await self.connection.queues.bind(
            m.source, m.destination, m.routing_key, kind=EXCHANGE, arguments=m.arguments
        )
        if not m.nowait:
            self.send(C.Exchange.BindOk())

    async def on_exchange_unbind(self, m: C.Exchange.Unbind) -> None:
        await self.connection.queues.unbind(
            m.source, m.destination, m.routing_key, kind=EXCHANGE, arguments=m.arguments
        )
        if not m.nowait:
            self.send(C.Exchange.UnbindOk())

    # --- queues ---------------------------------------------------------------------

    async def on_queue_declare(self, m: C.Queue.Declare) -> None:
        connection = self.connection
        qm = connection.queues
        name = m.queue
        if name == REPLY_TO or (m.passive and name.startswith(REPLY_TO_PREFIX)):
            self._declare_reply_to(m)
            return
        server_named = not name
        if server_named:
            name = self._queue_name(name) if m.passive else generated_name("amq.gen-")
        arguments = plain_arguments(m.arguments)
        kind = arguments.get("x-queue-type")
        if kind is not None and str(kind) not in QUEUE_TYPES:
            raise ChannelError(
                PRECONDITION_FAILED,
                f"invalid arg 'x-queue-type' for queue '{name}' in vhost '/': "
                f"\"unsupported queue type '{kind}'\"",
            )
        settings = None
        if not m.passive and name not in qm.queues:
            if reserved(name) and not server_named:
                raise ChannelError(
                    ACCESS_REFUSED, f"queue name '{name}' contains reserved prefix 'amq.*'"
                )
            settings = queue_settings(arguments, name)
            settings = delivery_settings(
                settings,
                arguments,
                name,
                durable=m.durable,
                exclusive=m.exclusive,
                auto_delete=m.auto_delete,
            )
        queue = await qm.declare_queue(
            name,
            durable=m.durable,
            exclusive_owner=connection if m.exclusive else None,
            auto_delete=m.auto_delete,
            settings=settings,
            arguments=arguments,
            passive=m.passive,
            owner=connection,
        )
        if not m.passive:
            check_equivalent(name, arguments, queue.arguments)
        self.last_queue = name
        queue.touch()  # x-expires counts from the last use
        await qm.visible(queue)
        if not m.nowait:
            self.send(declare_ok(name, queue.message_count(), queue.consumers))

    def _declare_reply_to(self, m: C.Queue.Declare) -> None:
        name = m.queue
        if name != REPLY_TO:
            token = name[len(REPLY_TO_PREFIX) :]
            if token not in self.connection.listener.reply_consumers:
                raise ChannelError(NOT_FOUND, f"no queue '{name}' in vhost '/'")
        if not m.nowait:
            self.send(declare_ok(name, 0, 1 if self.reply_consumer else 0))

    async def on_queue_bind(self, m: C.Queue.Bind) -> None:
        name = self._queue_name(m.queue)
        self._queue(name)  # exists and is not another connection's exclusive queue
        await self.connection.queues.bind(m.exchange, name, m.routing_key, arguments=m.arguments)
        if not m.nowait:
            self.send(C.Queue.BindOk())

    async def on_queue_unbind(self, m: C.Queue.Unbind) -> None:
        name = self._queue_name(m.queue)
        if name in self.connection.queues.queues:
            self._queue(name)  # not another connection's exclusive queue
        await self.connection.queues.unbind(m.exchange, name, m.routing_key, arguments=m.arguments)
        self.send(C.Queue.UnbindOk())

    async def on_queue_purge(self, m: C.Queue.Purge) -> None:
        queue = self._queue(m.queue)
        await self.connection.queues.visible(queue)
        count = await self.connection.queues.purge_queue(queue.name, self.connection)
        if not m.nowait:
            self.send(C.Queue.PurgeOk(count))

    async def on_queue_delete(self, m: C.Queue.Delete) -> None:
        connection = self.connection
        name = self._queue_name(m.queue)
        queue = connection.queues.queues.get(name)
        count = 0
        if queue is not None:
            connection.queues.get_queue(name, connection)
            await connection.queues.visible(queue)
            try:
                count = await connection.queues.delete_queue(
                    name, if_unused=m.if_unused, if_empty=m.if_empty, owner=connection
                )
            except Exception as exc:
                # RabbitMQ names the vhost in these texts
                text = str(exc)
                if text.endswith(("in use", "not empty")):
                    what = "in use" if text.endswith("in use") else "not empty"
                    raise ChannelError(
                        PRECONDITION_FAILED, f"queue '{name}' in vhost '/' {what}"
                    ) from None
                raise
        if not m.nowait:
            self.send(C.Queue.DeleteOk(count))


def declare_ok(name: str, messages: int, consumers: int) -> C.Queue.DeclareOk:
    """queue.declare-ok for any name a client may declare. pamqp's constructor
    refuses names outside the spec's ``[a-zA-Z0-9-_.:]`` (plus a few), which
    RabbitMQ and clients accept ("ütf-8 names", spaces...): building the reply
    raised, and the connection was closed with 541 (found by the AMQP fuzzer)."""
    reply = C.Queue.DeclareOk.__new__(C.Queue.DeclareOk)
    reply.queue, reply.message_count, reply.consumer_count = name, messages, consumers
    return reply

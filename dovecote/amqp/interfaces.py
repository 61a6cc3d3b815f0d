"""What the lower pieces of the AMQP adapter see of the upper ones.

Imports in ``dovecote.amqp`` run one way: server -> connection -> channel ->
consumer / publish / declare (and all of them -> codec, errors, mapping,
auth, alarms). Where a lower piece must reach up (a channel sends through
its connection, a consumer delivers through its channel, the handshake
checks the listener's users) it holds one of these small protocols instead
of importing the class above it. ``tests/unit/amqp/test_import_direction.py``
keeps it so.
"""

from __future__ import annotations

from collections.abc import Coroutine, Iterable
from typing import Any, Protocol

from pamqp import base

from dovecote.amqp.auth import Users
from dovecote.core.alarms import ResourceMonitor
from dovecote.core.broker import BrokerCore
from dovecote.core.config import BrokerConfig
from dovecote.core.delivery import CreditPool
from dovecote.core.queues import Queue, QueueManager
from dovecote.core.subscription_state import Delivery


class ListenerView(Protocol):
    """The AMQP listener (:class:`dovecote.amqp.server.AMQPListener`), as its
    connections and channels use it."""

    core: BrokerCore
    config: BrokerConfig
    queues: QueueManager
    users: Users
    connections: set[Any]
    # token -> the channel with the amq.rabbitmq.reply-to consumer
    reply_consumers: dict[str, Any]

    @property
    def monitor(self) -> ResourceMonitor: ...

    @property
    def alarms(self) -> frozenset[str]: ...

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> None: ...


class ChannelView(Protocol):
    """A channel (:class:`dovecote.amqp.channel.Channel`), as its connection
    calls back into it and its consumers deliver through it."""

    number: int
    closing: bool
    connection: ConnectionView
    credit_pool: CreditPool  # the channel's global prefetch, shared by its consumers

    def flush_acks(self) -> None: ...

    def credit_freed(self) -> None: ...

    def confirm_frames(self) -> Iterable[bytes]: ...

    def server_cancel(self, consumer: Any) -> None: ...

    def deliver(self, consumer: Any, deliveries: list[Delivery]) -> None: ...


class ConnectionView(Protocol):
    """A connection (:class:`dovecote.amqp.connection.Connection`), as its
    channels (and their declare, publish and consumer parts) use it."""

    listener: ListenerView
    queues: QueueManager
    frame_max: int
    user: str
    out: list[bytes | memoryview]

    @property
    def write_paused(self) -> bool: ...

    async def writable(self) -> None: ...

    def send(self, data: bytes) -> None: ...

    def send_method(self, channel: int, method: base.Frame) -> None: ...

    def want_flush(self) -> None: ...

    def settle_later(self, channel: ChannelView) -> None: ...

    def confirm_later(self, channel: ChannelView) -> None: ...

    def capability(self, name: str) -> bool: ...

    def close_channel(self, channel: ChannelView) -> None: ...

    def internal_error(self, text: str) -> None: ...

    def headers_routing(self) -> bool: ...

    def has_pending_appends(self, queue: Queue) -> bool: ...

    async def visible(self, queue: Queue) -> None: ...

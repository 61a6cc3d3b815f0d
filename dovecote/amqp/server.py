"""The AMQP 0-9-1 listener: accepts connections and holds what they share.

``start_listener(broker, host, port)`` is what :class:`dovecote.server.Broker`
calls. The listener owns the user table and the direct reply-to registry
(token -> channel with an ``amq.rabbitmq.reply-to`` consumer), and subscribes
to the core's resource alarms (:mod:`dovecote.core.alarms`), which block
publishing connections.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from dovecote.amqp.arguments import install
from dovecote.amqp.auth import Users
from dovecote.amqp.connection import Connection
from dovecote.core.alarms import ResourceMonitor

if TYPE_CHECKING:
    from dovecote.amqp.channel import Channel
    from dovecote.server import Broker

log = logging.getLogger(__name__)

SHUTDOWN_GRACE = 2.0


class AMQPListener:
    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        self.core = broker.core
        self.config = broker.config
        self.queues = broker.core.queues
        self.users = Users.from_config(self.config.amqp_users, self.config.amqp_loopback_users)
        self.connections: set[Connection] = set()
        self.reply_consumers: dict[str, Channel] = {}
        self._unsubscribe: Callable[[], None] | None = None
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    async def start(self, host: str, port: int) -> None:
        loop = asyncio.get_running_loop()
        install(self.queues)  # amq.* exchanges, x-match
        self._server = await loop.create_server(lambda: Connection(self), host, port)
        self._unsubscribe = self.core.resources.subscribe(self._alarms_changed)

    @property
    def address(self) -> tuple[str, int]:
        assert self._server is not None and self._server.sockets
        host, port = self._server.sockets[0].getsockname()[:2]
        return host, port

    @property
    def monitor(self) -> ResourceMonitor:
        """The core's resource monitor (a refused append asks it to look now)."""
        return self.core.resources

    @property
    def alarms(self) -> frozenset[str]:
        """The broker's resource alarms now (a new connection starts blocked)."""
        return self.core.resources.alarms

    def _alarms_changed(self, alarms: frozenset[str]) -> None:
        for connection in list(self.connections):
            connection.set_alarms(alarms)

    def spawn(self, coro: Any) -> None:
        """Run background work (queue clean-up after a close) and log failures."""
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("AMQP background task failed", exc_info=task.exception())

    async def close(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        if self._server is not None:
            self._server.close()
        for connection in list(self.connections):
            connection.shutdown()
        deadline = asyncio.get_running_loop().time() + SHUTDOWN_GRACE
        while self.connections and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.02)
        for connection in list(self.connections):
            connection.abort()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=SHUTDOWN_GRACE)
        if self._server is not None:
            await self._server.wait_closed()


async def start_listener(broker: Broker, host: str, port: int) -> AMQPListener:
    listener = AMQPListener(broker)
    await listener.start(host, port)
    return listener

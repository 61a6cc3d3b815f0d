"""One AMQP 0-9-1 connection: dispatch, output, backpressure, alarms, closing.

(The handshake and heartbeats are in :mod:`~dovecote.amqp.handshake`.)

Reading: each ``data_received`` chunk is decoded by the sans-I/O
:class:`~dovecote.amqp.codec.CommandReader` into commands, and all of them
are handled before anything is awaited. Consecutive publishes on one channel
to one exchange and routing key are collected and stored as one batch when
something else comes along or the chunk ends (without confirms the run may
linger 1 ms for the next chunk); acks return credit at once and are settled
in the core every 10 ms. A handler that must await (a declaration, a
commit) suspends reading until it is done, so replies stay in request order.

Writing: frames are appended to ``out`` and written once per chunk (or per
loop turn, for deliveries and confirms) with ``transport.writelines``. When
the transport's buffer passes its high-water mark the connection stops
reading and consumers stop pulling until it drains (TCP backpressure).

Errors: a :class:`~dovecote.amqp.errors.ChannelError` closes the channel; a
:class:`~dovecote.amqp.errors.ConnectionError_` or a codec error closes the
connection (after ``connection.close`` / ``close-ok``, or at once when the
byte stream is out of sync). Either way other connections are untouched.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import TYPE_CHECKING, Any

from pamqp import base
from pamqp import commands as C

from dovecote.amqp.admission import Admission
from dovecote.amqp.channel import HANDLERS, SETTLE_METHODS, Channel
from dovecote.amqp.codec import (
    FRAME_MIN_SIZE,
    PROTOCOL_HEADER,
    AMQPError,
    BadProtocolHeader,
    CodecError,
    CommandReader,
    Heartbeat,
    Message,
    MethodFrame,
    ProtocolHeader,
    encode_method,
)
from dovecote.amqp.errors import (
    CHANNEL_ERROR,
    COMMAND_INVALID,
    CONNECTION_FORCED,
    INTERNAL_ERROR,
    NOT_ALLOWED,
    REPLY_SUCCESS,
    ConnectionError_,
    ServerError,
    from_core,
    reply_text,
)
from dovecote.amqp.handshake import (
    AWAIT_HEADER,
    AWAIT_OPEN,
    CLOSED,
    CLOSING,
    RUNNING,
    ConnectionMethods,
)
from dovecote.core.errors import BrokerError
from dovecote.core.queues import Queue
from dovecote.core.ratelog import RateLimitedLog
from dovecote.core.routing import HEADERS

if TYPE_CHECKING:
    from dovecote.amqp.server import AMQPListener

log = logging.getLogger(__name__)
# A client sending garbage in a loop would otherwise fill the disk with the log.
noisy = RateLimitedLog(log)

WRITE_HIGH_WATER = 4 * 1024 * 1024
# Acks are settled in the core at most this late: a client acking one message
# per packet then costs one settle (and one progress record, which the core
# fsyncs) per 10 ms, not one per ack. Credit returns to consumers at once.
SETTLE_DELAY = 0.01
# Publishes without confirms may wait this long for more of their run (see
# Connection._end_of_read), and at most this many.
PUBLISH_LINGER = 0.001
LINGER_MAX = 1000
CLOSE_OK_TIMEOUT = 3.0  # how long to wait for close-ok after sending connection.close
FATAL_CLOSE_DELAY = 0.2  # let the close frame out before dropping an out-of-sync stream


class _Failure:
    """A codec error, queued behind the commands that decoded before it."""

    __slots__ = ("error",)

    def __init__(self, error: CodecError) -> None:
        self.error = error


class Connection(ConnectionMethods, asyncio.Protocol):
    def __init__(self, listener: AMQPListener) -> None:
        self.listener = listener
        self.queues = listener.queues
        config = listener.config
        self.loop = asyncio.get_running_loop()
        self.reader = CommandReader(max_body_size=config.amqp_max_message_bytes)
        self.transport: asyncio.Transport | None = None
        self.peer: tuple[str, int] | None = None
        self.state = AWAIT_HEADER
        self.user = ""
        self.client_properties: dict[str, Any] = {}
        self.channels: dict[int, Channel] = {}
        self.frame_max = FRAME_MIN_SIZE
        self.channel_max = config.amqp_channel_max
        self.heartbeat = 0
        self.out: list[bytes | memoryview] = []
        self._flush_pending = False
        self._inbox: deque[Any] = deque()
        self._busy = False
        self._read_pauses: set[str] = set()
        self.admission = Admission(
            listener.core.memory,
            pause=lambda: self._pause_reading("budget"),
            resume=self._budget_granted,
        )
        self._group: list[Any] | None = None  # [channel, exchange, routing key, messages]
        self._settle: set[Channel] = set()
        self._settle_timer: asyncio.TimerHandle | None = None
        self._linger: asyncio.TimerHandle | None = None
        self._credit: set[Channel] = set()
        self._confirm: set[Channel] = set()
        self._headers_routing: bool | None = None
        self.write_paused = False
        self._writable: asyncio.Future[None] | None = None
        self.published = False
        self.blocked = False
        self._blocked_sent = False
        self._alarms: frozenset[str] = frozenset()
        self.last_received = self.loop.time()
        self._sent = False
        self._timer: asyncio.TimerHandle | None = None
        self._close_timer: asyncio.TimerHandle | None = None
        self._stall: asyncio.TimerHandle | None = None
        self.stall_timeout = listener.config.request_stall_timeout_ms / 1000
        self._tasks: set[asyncio.Task[Any]] = set()

    def __repr__(self) -> str:
        peer = f"{self.peer[0]}:{self.peer[1]}" if self.peer else "?"
        return f"<AMQP connection {peer} user={self.user or '-'}>"

    # --- transport callbacks --------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no asyncio.Transport
        peer = transport.get_extra_info("peername")
        self.peer = (str(peer[0]), int(peer[1])) if isinstance(peer, tuple) else None
        transport.set_write_buffer_limits(high=WRITE_HIGH_WATER)
        self.listener.connections.add(self)
        timeout = self.listener.config.amqp_handshake_timeout_ms / 1000
        self._timer = self.loop.call_later(timeout, self._handshake_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        previous = self.state
        if previous == RUNNING and self._group is not None:
            self._flush_publishes()  # what arrived before the socket went is stored
        self.state = CLOSED
        for timer in (
            self._timer,
            self._close_timer,
            self._settle_timer,
            self._linger,
            self._stall,
        ):
            if timer is not None:
                timer.cancel()
        self._inbox.clear()
        self._group = None
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)
        gone: list[Queue] = []
        for channel in list(self.channels.values()):
            gone += channel.release()
        self.channels.clear()
        self.listener.connections.discard(self)
        self.admission.close()
        for task in self._tasks:
            task.cancel()
        if previous >= AWAIT_OPEN or gone:
            self.listener.spawn(self._forget(gone))

    async def _forget(self, gone: list[Queue]) -> None:
        """After the socket is gone: consumer counts (auto-delete), then exclusive queues."""
        qm = self.queues
        for queue in gone:
            await qm.consumer_removed(queue)
        await qm.owner_gone(self)

    def data_received(self, data: bytes) -> None:
        self.last_received = self.loop.time()
        if self.state == CLOSED:
            return
        self._flush_pending = True  # everything this chunk causes goes out in one write
        try:
            try:
                commands = self.reader.feed(data)
            except BadProtocolHeader:
                self.out.append(PROTOCOL_HEADER)
                self._flush()
                self._drop()
                return
            except CodecError as exc:
                self._inbox.extend(exc.events)
                self._inbox.append(_Failure(exc))
            else:
                self._inbox.extend(commands)
            self._process()
            if self.blocked and self.published:
                self._block()
            self._settle_budget()
        finally:
            self._flush()

    def eof_received(self) -> bool | None:
        return None  # close our side too

    def pause_writing(self) -> None:
        self.write_paused = True
        self._pause_reading("write")

    def resume_writing(self) -> None:
        self.write_paused = False
        waiter = self._writable
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        self._writable = None
        self._resume_reading("write")

    async def writable(self) -> None:
        """Wait until the transport's buffer drains below its low-water mark."""
        if not self.write_paused:
            return
        if self._writable is None:
            self._writable = self.loop.create_future()
        await self._writable

    # --- the in-flight budget (see dovecote.amqp.admission) --------------------------

    def _held(self) -> int:
        """Bytes of messages received and not handled yet."""
        held = self.reader.assembler.pending_bytes()
        for command in self._inbox:
            if type(command) is Message:
                held += len(command.body) + len(command.property_block)
        if self._group is not None:
            for message in self._group[3]:
                held += len(message.body) + len(message.property_block)
        return held

    def _settle_budget(self) -> None:
        if self.state == CLOSED:
            return
        self.admission.settle(self._held())
        if self.admission.reserved and self._stall is None:
            self._stall = self.loop.call_later(self.stall_timeout, self._check_stall)

    def _check_stall(self) -> None:
        """Drop a connection whose unfinished message holds budget while the
        client sends nothing more (as the Kafka listener does with
        ``request_stall_timeout_ms``); time we spent not reading is not its."""
        self._stall = None
        if self.state == CLOSED or not self.admission.reserved:
            return
        now = self.loop.time()
        if self._read_pauses:
            self.last_received = now
        elif now - self.last_received >= self.stall_timeout:
            noisy.log(
                logging.WARNING,
                "stall",
                "%r: no more of a message for %.0fs while it holds %d bytes of the "
                "in-flight budget; closing",
                self,
                now - self.last_received,
                self.admission.reserved,
            )
            self.abort()
            return
        delay = max(self.stall_timeout - (now - self.last_received), 0.01)
        self._stall = self.loop.call_later(delay, self._check_stall)

    def _budget_granted(self) -> None:
        # Called from inside the budget's bookkeeping: carry on at the next turn.
        self._resume_reading("budget")
        self.loop.call_soon(self._settle_budget)

    def _pause_reading(self, reason: str) -> None:
        if reason in self._read_pauses:
            return
        self._read_pauses.add(reason)
        transport = self.transport
        if transport is not None and not transport.is_closing() and transport.is_reading():
            transport.pause_reading()

    def _resume_reading(self, reason: str) -> None:
        self._read_pauses.discard(reason)
        transport = self.transport
        if (
            not self._read_pauses
            and transport is not None
            and not transport.is_closing()
            and not transport.is_reading()
        ):
            transport.resume_reading()

    # --- output ---------------------------------------------------------------------

    def want_flush(self) -> None:
        if not self._flush_pending:
            self._flush_pending = True
            self.loop.call_soon(self._flush)

    def send(self, data: bytes) -> None:
        self.out.append(data)
        self.want_flush()

    def send_method(self, channel: int, method: base.Frame) -> None:
        self.out.append(encode_method(channel, method))
        self.want_flush()

    def settle_later(self, channel: Channel) -> None:
        """``channel`` took acks: return its credit now, settle them shortly."""
        self._credit.add(channel)
        self._settle.add(channel)
        if self._settle_timer is None:
            self._settle_timer = self.loop.call_later(SETTLE_DELAY, self.settle)

    def settle(self) -> None:
        """Settle every collected ack in the core now."""
        if self._settle_timer is not None:
            self._settle_timer.cancel()
            self._settle_timer = None
        channels, self._settle = self._settle, set()
        for channel in channels:
            channel.flush_acks()

    def confirm_later(self, channel: Channel) -> None:
        self._confirm.add(channel)
        self.want_flush()

    def _flush(self) -> None:
        self._flush_pending = False
        if self._credit:
            channels, self._credit = self._credit, set()
            for channel in channels:
                if not channel.closing:
                    channel.credit_freed()
        if self._confirm:
            channels, self._confirm = self._confirm, set()
            for channel in channels:
                if not channel.closing:
                    self.out.extend(channel.confirm_frames())
        out = self.out
        if out:
            self.out = []
            transport = self.transport
            if transport is not None and not transport.is_closing():
                transport.writelines(out)
                self._sent = True

    # --- dispatch ---------------------------------------------------------------------

    def _process(self) -> None:
        """Handle queued commands until done or until a handler must await."""
        inbox = self._inbox
        self._headers_routing = None
        while inbox and not self._busy and self.state != CLOSED:
            command = inbox.popleft()
            kind = type(command)
            try:
                if kind is Message:
                    self._on_message(command)
                elif kind is MethodFrame:
                    self._on_method(command.channel, command.method)
                elif kind is Heartbeat:
                    pass
                elif kind is ProtocolHeader:
                    self._on_protocol_header()
                else:
                    self._on_codec_error(command.error)
            except Exception as exc:
                self._on_error(command, exc)
        if not self._busy:
            self._end_of_read()

    def _end_of_read(self) -> None:
        """Store the run of publishes the read ended with, or let it linger.

        Without confirms nobody waits for the store, so the run may wait up
        to PUBLISH_LINGER for the next read to extend it: a client that
        sends one message per packet then costs one append per few
        messages, not one per message. Anything else the connection does
        first stores the run (ordering is kept); with confirms or in a
        transaction it is stored at once.
        """
        group = self._group
        if group is None:
            return
        channel = group[0]
        if channel.confirms is not None or channel.tx is not None or len(group[3]) >= LINGER_MAX:
            self._flush_publishes()
        elif self._linger is None:
            self._linger = self.loop.call_later(PUBLISH_LINGER, self._linger_over)

    def _linger_over(self) -> None:
        self._linger = None
        if self.state == CLOSED:
            return
        self._flush_publishes()
        self._settle_budget()
        self._flush()

    def _on_error(self, command: Any, exc: Exception) -> None:
        channel, method = 0, None
        if isinstance(command, Message | MethodFrame):
            channel, method = command.channel, command.method
        if isinstance(exc, BrokerError):
            exc = from_core(exc)
        elif not isinstance(exc, ServerError):
            log.exception("%r: internal error handling %r", self, method)
            exc = ConnectionError_(INTERNAL_ERROR, "internal error")
        self.fail(channel, exc, method)

    def fail(self, channel: int, exc: ServerError, method: base.Frame | None = None) -> None:
        """Send the channel or connection exception ``exc`` for ``method`` on ``channel``."""
        if not exc.class_id and method is not None:
            exc.class_id, exc.method_id = method.index >> 16, method.index & 0xFFFF
        found = self.channels.get(channel)
        if exc.hard or found is None or self.state != RUNNING:
            self.close(exc.code, exc.reply_text, exc.class_id, exc.method_id)
            return
        if found.closing:
            return
        if self._group is not None and self._group[0] is found:
            self._flush_publishes()  # publishes before the failing method still count
            if found.closing:
                return
        noisy.log(
            logging.INFO,
            f"channel:{exc.code}",
            "%r: channel %d error: %s",
            self,
            channel,
            exc.reply_text,
        )
        self.send_method(
            channel, C.Channel.Close(exc.code, exc.reply_text, exc.class_id, exc.method_id)
        )
        self.reader.discard(channel)
        self._release_channel(found)

    def _release_channel(self, channel: Channel) -> None:
        if self._group is not None and self._group[0] is channel:
            self._flush_publishes()  # they came before whatever closes the channel
        gone = channel.release()
        if gone:
            self.listener.spawn(self._consumers_gone(gone))

    def _release_all(self) -> None:
        """Release every channel now (requeue leases, stop consumers)."""
        gone: list[Queue] = []
        for channel in list(self.channels.values()):
            gone += channel.release()
        self.channels.clear()
        self._group = None
        if gone:
            self.listener.spawn(self._consumers_gone(gone))

    async def _consumers_gone(self, gone: list[Queue]) -> None:
        for queue in gone:
            await self.queues.consumer_removed(queue)

    def _on_message(self, message: Message) -> None:
        channel = self.channels.get(message.channel)
        if channel is None or self.state != RUNNING:
            if self.state == CLOSING:
                return
            raise ConnectionError_(CHANNEL_ERROR, "expected 'channel.open'")
        if channel.closing:
            return
        method = message.method
        if method.index != C.Basic.Publish.index:
            raise ConnectionError_(COMMAND_INVALID, f"unexpected method {method.name}")
        self.published = True
        group = self._group
        if (
            group is not None
            and group[0] is channel
            and group[1] == method.exchange
            and group[2] == method.routing_key
        ):
            group[3].append(message)
            return
        if group is not None:
            self._flush_publishes()
        self._group = [channel, method.exchange, method.routing_key, [message]]

    def _flush_publishes(self) -> None:
        if self._linger is not None:
            self._linger.cancel()
            self._linger = None
        group = self._group
        if group is None:
            return
        self._group = None
        channel, exchange, routing_key, messages = group
        if channel.closing:
            return
        try:
            channel.publish(exchange, routing_key, messages)
        except Exception as exc:
            self._on_error(messages[0], exc)

    def headers_routing(self) -> bool:
        """Whether any headers exchange has bindings (then publishes with a
        headers table are routed by it); worked out once per read."""
        active = self._headers_routing
        if active is None:
            active = self._headers_routing = any(
                e.type == HEADERS and e.bindings for e in self.queues.router.exchanges.values()
            )
        return active

    def _on_method(self, number: int, method: base.Frame) -> None:
        if number == 0:
            self._flush_publishes()  # publish-then-close: the publishes count
            self._on_connection_method(method)
            return
        state = self.state
        if state != RUNNING:
            if state == CLOSING:
                return
            raise ConnectionError_(CHANNEL_ERROR, f"unexpected method in connection state {state}")
        index = method.index
        channel = self.channels.get(number)
        if channel is None:
            if index == C.Channel.Open.index:
                self._open_channel(number)
                return
            raise ConnectionError_(CHANNEL_ERROR, "expected 'channel.open'")
        if channel.closing:
            if index == C.Channel.CloseOk.index:
                del self.channels[number]
            elif index == C.Channel.Close.index:
                self.send_method(number, C.Channel.CloseOk())
                del self.channels[number]
            return
        if index == C.Channel.Open.index:
            raise ConnectionError_(CHANNEL_ERROR, "second 'channel.open' seen")
        handler = HANDLERS.get(index)
        if handler is None:
            raise ConnectionError_(COMMAND_INVALID, "unimplemented method")
        if index not in SETTLE_METHODS:
            self._flush_publishes()  # a publish before it in this read happens before it
        result = handler(channel, method)
        if result is not None:
            self._run_async(number, method, result)

    def _run_async(self, number: int, method: base.Frame, coro: Any) -> None:
        self.settle()  # what the awaited method sees (counts, deletes) includes earlier acks
        self._busy = True
        self._pause_reading("busy")
        self._flush()
        task = self.loop.create_task(self._await(number, method, coro))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _await(self, number: int, method: base.Frame, coro: Any) -> None:
        try:
            await coro
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if self.state != CLOSED:
                self._on_error(MethodFrame(number, method), exc)
        finally:
            self._busy = False
        if self.state == CLOSED:
            return
        self._flush_pending = True
        try:
            self._process()
            self._settle_budget()
        finally:
            self._flush()
        if not self._busy:
            self._resume_reading("busy")

    def _open_channel(self, number: int) -> None:
        if number > self.channel_max:
            raise ConnectionError_(
                NOT_ALLOWED, f"channel {number} exceeds negotiated channel_max {self.channel_max}"
            )
        self.channels[number] = Channel(self, number)
        self.send_method(number, C.Channel.OpenOk())

    def close_channel(self, channel: Channel) -> None:
        """The client closed ``channel``: release it and answer close-ok."""
        self.reader.discard(channel.number)
        self._release_channel(channel)
        self.channels.pop(channel.number, None)
        self.send_method(channel.number, C.Channel.CloseOk())

    def capability(self, name: str) -> bool:
        caps = self.client_properties.get("capabilities")
        return isinstance(caps, dict) and bool(caps.get(name))

    # --- flushing queues before reads ---------------------------------------------------

    def has_pending_appends(self, queue: Queue) -> bool:
        """Whether the queue has appends not yet visible to readers (awaiting fsync)."""
        return queue.pending_appends()

    async def visible(self, queue: Queue) -> None:
        """Wait until what was published before is visible (counts, get, purge see it)."""
        await self.queues.visible(queue)

    # --- alarms ---------------------------------------------------------------

    def set_alarms(self, alarms: frozenset[str]) -> None:
        """A resource alarm was raised or cleared: block or unblock publishers.

        As in RabbitMQ, only connections that publish are blocked (sent
        ``connection.blocked`` and no longer read); one that has not published
        yet is blocked when it does.
        """
        if self.state != RUNNING:
            return
        self._alarms = alarms
        if alarms:
            self.blocked = True
            if self.published:
                self._block()
        else:
            self.blocked = False
            if self._blocked_sent:
                self.send_method(0, C.Connection.Unblocked())
                self._blocked_sent = False
            self._resume_reading("alarm")

    def _block(self) -> None:
        if not self._blocked_sent and self.capability("connection.blocked"):
            reason = " & ".join(f"low on {name}" for name in sorted(self._alarms))
            self.send_method(0, C.Connection.Blocked(reason))
            self._blocked_sent = True
        self._pause_reading("alarm")

    # --- closing --------------------------------------------------------------------------

    def _on_codec_error(self, exc: CodecError) -> None:
        if self.state == CLOSING:
            return
        if isinstance(exc, AMQPError):
            self.close(
                exc.reply_code, exc.reply_text, exc.class_id, exc.method_id, wait=not exc.fatal
            )
        else:
            self._drop()

    def close(
        self, code: int, text: str, class_id: int = 0, method_id: int = 0, *, wait: bool = True
    ) -> None:
        """Send connection.close and release everything; wait for close-ok
        (``wait``) or drop the socket shortly after."""
        if self.state in (CLOSING, CLOSED):
            return
        if self.state == RUNNING and self._group is not None:
            self._flush_publishes()  # they came before whatever closes the connection
            if self.state in (CLOSING, CLOSED):
                return
        if code != REPLY_SUCCESS and code != CONNECTION_FORCED:
            noisy.log(logging.INFO, f"close:{code}", "%r: closing: %s", self, text)
        self.state = CLOSING
        self._inbox.clear()
        self._group = None
        self.send_method(0, C.Connection.Close(code, text, class_id, method_id))
        self._flush()
        self._release_all()
        delay = CLOSE_OK_TIMEOUT if wait else FATAL_CLOSE_DELAY
        self._close_timer = self.loop.call_later(delay, self._drop)

    def internal_error(self, text: str) -> None:
        self.close(INTERNAL_ERROR, reply_text(INTERNAL_ERROR, text))

    def shutdown(self) -> None:
        """The broker is stopping (RabbitMQ's text for it)."""
        if self.state == RUNNING:
            self.close(
                CONNECTION_FORCED,
                reply_text(
                    CONNECTION_FORCED, "broker forced connection closure with reason 'shutdown'"
                ),
                wait=False,
            )
        else:
            self._drop()

    def _drop(self) -> None:
        """Close the socket (after writing what is buffered)."""
        transport = self.transport
        if transport is not None and not transport.is_closing():
            self._flush()
            transport.close()
        if self.state != CLOSED:
            self.state = CLOSING

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

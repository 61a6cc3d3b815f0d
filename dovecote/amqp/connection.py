"""One AMQP 0-9-1 connection: dispatch, output, closing.

(The handshake and heartbeats are in :mod:`~dovecote.amqp.handshake`; flow
control, the in-flight budget and the stall watchdog are the shared
:mod:`dovecote.core.flow`; resource alarms are shown by
:mod:`~dovecote.amqp.alarms`.)

Reading: each ``data_received`` chunk is decoded by the sans-I/O
:class:`~dovecote.amqp.codec.CommandReader` into commands, and all of them
are handled before anything is awaited. Consecutive publishes on one channel
to one exchange and routing key are collected and stored as one batch when
something else comes along or the chunk ends (without confirms the run may
linger 1 ms for the next chunk); acks return credit at once and are settled
in the core every 10 ms (:mod:`~dovecote.amqp.settling`). A handler that must await (a declaration, a
commit) suspends reading until it is done, so replies stay in request order.

Writing: frames are appended to ``out`` and written once per chunk (or per
loop turn, for deliveries and confirms) with ``transport.writelines``. When
the transport's buffer passes its high-water mark the connection stops
reading and consumers stop pulling until it drains (TCP backpressure).

The in-flight budget: what a connection holds between socket reads is
messages it has not handled yet (content still arriving, charged at its
announced size as soon as the content header is in; publishes lingering for
their run; commands queued behind a handler that awaits). After each read it
is settled with the connection's :class:`~dovecote.core.flow.Flow`, which
stops reading while the budget refuses (TCP slows the client down, as
RabbitMQ's credit flow does; ``connection.blocked`` is only for resource
alarms) and closes the connection if an unfinished message holds budget for
``request_stall_timeout_ms`` with nothing more arriving.

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

from dovecote.amqp.alarms import Blocking
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
from dovecote.amqp.settling import Settling
from dovecote.core.errors import BrokerError
from dovecote.core.flow import Flow
from dovecote.core.queues import Queue
from dovecote.core.ratelog import RateLimitedLog

if TYPE_CHECKING:
    from dovecote.amqp.interfaces import ListenerView

log = logging.getLogger(__name__)
# A client sending garbage in a loop would otherwise fill the disk with the log.
noisy = RateLimitedLog(log)

WRITE_HIGH_WATER = 4 * 1024 * 1024
# Publishes without confirms may wait this long for more of their run (see
# Connection._end_of_read), and at most this many.
PUBLISH_LINGER = 0.001
LINGER_MAX = 1000
BUSY = "busy"  # reason to stop reading: a handler is awaited
CLOSE_OK_TIMEOUT = 3.0  # how long to wait for close-ok after sending connection.close
FATAL_CLOSE_DELAY = 0.2  # let the close frame out before dropping an out-of-sync stream


class _Failure:
    """A codec error, queued behind the commands that decoded before it."""

    __slots__ = ("error",)

    def __init__(self, error: CodecError) -> None:
        self.error = error


class Connection(ConnectionMethods, asyncio.Protocol):
    def __init__(self, listener: ListenerView) -> None:
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
        core = listener.core
        self.flow = Flow(self, core.memory, core.clock, config.request_stall_timeout_ms / 1000)
        self.blocking = Blocking(self.flow, self.send_method, self._can_tell_blocked)
        self._group: list[Any] | None = None  # [channel, exchange, routing key, messages]
        self.settling = Settling(self.loop)
        self._linger: asyncio.TimerHandle | None = None
        self._headers_routing: bool | None = None
        self.published = False
        self._sent = False
        self._timer: asyncio.TimerHandle | None = None
        self._close_timer: asyncio.TimerHandle | None = None
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
            self._linger,
        ):
            if timer is not None:
                timer.cancel()
        self._inbox.clear()
        self._group = None
        self.flow.close()
        self.settling.close()
        gone: list[Queue] = []
        for channel in list(self.channels.values()):
            gone += channel.release()
        self.channels.clear()
        self.listener.connections.discard(self)
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
        self.flow.received()
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
            if self.blocking.active and self.published:
                self.blocking.block()
            self._settle_budget()
        finally:
            self._flush()

    def eof_received(self) -> bool | None:
        return None  # close our side too

    def pause_writing(self) -> None:
        self.flow.pause_writing()

    def resume_writing(self) -> None:
        self.flow.resume_writing()

    @property
    def write_paused(self) -> bool:
        """The transport's buffer is past its high-water mark (consumers wait)."""
        return self.flow.writing_paused

    async def writable(self) -> None:
        """Wait until the transport's buffer drains below its low-water mark."""
        await self.flow.writable()

    # --- flow control (what dovecote.core.flow.Flow asks of a connection) -------------

    def pause_reading(self) -> None:
        transport = self.transport
        if transport is not None and not transport.is_closing() and transport.is_reading():
            transport.pause_reading()

    def resume_reading(self) -> None:
        transport = self.transport
        if transport is not None and not transport.is_closing() and not transport.is_reading():
            transport.resume_reading()

    def budget_granted(self) -> None:
        self.loop.call_soon(self._settle_budget)

    def stalled(self, idle: float) -> None:
        """An unfinished message held budget while the client sent nothing more."""
        noisy.log(
            logging.WARNING,
            "stall",
            "%r: no more of a message for %.0fs while it holds %d bytes of the "
            "in-flight budget; closing",
            self,
            idle,
            self.flow.reserved,
        )
        self.abort()

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
        self.flow.settle(self._held())
        self.flow.watch()

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
        self.settling.ack_later(channel)

    def settle(self) -> None:
        """Settle every collected ack in the core now."""
        self.settling.settle()

    def confirm_later(self, channel: Channel) -> None:
        self.settling.confirm_later(channel)
        self.want_flush()

    def _flush(self) -> None:
        self._flush_pending = False
        if self.settling.pending:
            self.settling.before_write(self.out)
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
        """Whether any headers exchange has bindings, or any binding a filter
        (then publishes with a headers table are routed by it); worked out
        once per read."""
        active = self._headers_routing
        if active is None:
            active = self._headers_routing = any(
                e.routes_by_headers for e in self.queues.router.exchanges.values()
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
        self.flow.pause(BUSY)
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
            self.flow.resume(BUSY)

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
        """A resource alarm was raised or cleared: block or unblock (if it publishes)."""
        if self.state == RUNNING:
            self.blocking.set(alarms, self.published)

    def _can_tell_blocked(self) -> bool:
        return self.capability("connection.blocked")

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

"""Sans-I/O frame reader: bytes in, typed frame events out.

Wire layout (spec 2.3.5 / 4.2.3)::

    protocol header  "AMQP" 0 0 9 1                  (client -> server, once)
    frame            type:8 channel:16 size:32 payload[size] 0xCE

:class:`FrameReader` buffers partial input, so it can be fed one byte at a
time or a whole socket read. Events:

* :class:`ProtocolHeader` -- the client's 0-9-1 header was accepted
* :class:`MethodFrame` -- channel and decoded pamqp method object
* :class:`ContentHeaderFrame` -- channel, class id, body size, raw property block
* :class:`ContentBodyFrame` -- channel and a body fragment
* :class:`Heartbeat`

Checks mirror RabbitMQ's reader: a payload larger than ``frame_max``
(0 = unlimited) or a missing frame-end octet is a fatal
:class:`~.errors.FrameError` (501); an unknown frame type or a non-empty
heartbeat is a non-fatal 501 (as is a method frame too short to hold its class and
method ids); a heartbeat off channel 0 or a content frame on
channel 0 is :class:`~.errors.UnexpectedFrame` (505). Like RabbitMQ it lets a
payload reach ``frame_max`` bytes (the spec caps the whole frame there)
because clients commonly get that off by 8. Until tune-ok the limit is the
spec's 4096-byte ``frame-min-size``; the server raises it by assigning
``reader.frame_max`` after tune-ok.

After a non-fatal error the reader has consumed the bad frame and keeps its
place: call ``feed(b"")`` to continue with what was already buffered. After
a fatal error every call raises the same error again.
"""

from __future__ import annotations

import struct
from typing import Any, NamedTuple, Protocol

from pamqp import base

from dovecote.amqp.codec.errors import (
    AMQPError,
    BadProtocolHeader,
    CodecError,
    FrameError,
    UnexpectedFrame,
)
from dovecote.amqp.codec.methods import decode_method

PROTOCOL_HEADER = b"AMQP\x00\x00\x09\x01"
"""The 0-9-1 protocol header; also what the server answers to a bad one."""

FRAME_METHOD = 1
FRAME_HEADER = 2
FRAME_BODY = 3
FRAME_HEARTBEAT = 8
FRAME_END = 0xCE
FRAME_MIN_SIZE = 4096
FRAME_OVERHEAD = 8  # 7-byte frame header + frame-end octet

_FRAME_HEADER = struct.Struct(">BHI")
_CONTENT_HEADER = struct.Struct(">HHQ")


class ProtocolHeader(NamedTuple):
    """The client sent the AMQP 0-9-1 protocol header."""

    major: int = 0
    minor: int = 9
    revision: int = 1


class MethodFrame(NamedTuple):
    """A method frame: ``method`` is a pamqp ``base.Frame`` such as ``Basic.Publish``."""

    channel: int
    method: base.Frame


class ContentHeaderFrame(NamedTuple):
    """A content header frame; ``properties`` is the raw property block (flags + list)."""

    channel: int
    class_id: int
    weight: int
    body_size: int
    properties: bytes


class ContentBodyFrame(NamedTuple):
    """One content body frame's payload."""

    channel: int
    payload: bytes


class Heartbeat(NamedTuple):
    """A heartbeat frame (always channel 0)."""

    channel: int = 0


HEARTBEAT = Heartbeat()

FrameEvent = ProtocolHeader | MethodFrame | ContentHeaderFrame | ContentBodyFrame | Heartbeat


class FrameSink(Protocol):
    """Receives frames instead of the event list (what :class:`~.content.ContentAssembler`
    implements); each hook returns an event to emit, or ``None``."""

    def on_method(self, channel: int, method: base.Frame) -> Any: ...

    def on_header(
        self, channel: int, class_id: int, weight: int, body_size: int, block: bytes
    ) -> Any: ...

    def on_body(self, channel: int, payload: bytes) -> Any: ...


class FrameReader:
    """Incremental AMQP 0-9-1 frame decoder for one connection (no I/O).

    ``expect_protocol_header=False`` skips the 8-byte handshake, for reading
    server output (tests) or a stream that already passed it. With a
    ``sink`` the method/header/body frames go to the sink's hooks, and
    whatever they return is emitted instead (no per-frame event objects).
    """

    __slots__ = ("_buf", "_error", "_frame_max", "_need", "_sink", "_started")

    def __init__(
        self,
        *,
        frame_max: int = FRAME_MIN_SIZE,
        expect_protocol_header: bool = True,
        sink: FrameSink | None = None,
    ):
        self._sink = sink
        self._buf = bytearray()
        self._need = 0
        self._started = not expect_protocol_header
        self._error: CodecError | None = None
        self.frame_max = frame_max

    @property
    def frame_max(self) -> int:
        """Largest accepted frame payload in bytes; 0 means no limit."""
        return self._frame_max

    @frame_max.setter
    def frame_max(self, value: int) -> None:
        if value < 0:
            raise ValueError("frame_max must be >= 0")
        self._frame_max = value

    @property
    def buffered(self) -> int:
        """Bytes received but not yet decoded (part of a frame)."""
        return len(self._buf)

    def feed(self, data: bytes | bytearray | memoryview = b"") -> list[FrameEvent]:
        """Decode every complete frame in the buffered input plus ``data``.

        Raises a :class:`~.errors.CodecError`; its ``events`` attribute holds
        the frames decoded before the failure in this call.
        """
        if self._error is not None:
            self._error.events = []
            raise self._error
        buf = self._buf
        if buf:
            buf += data
            if len(buf) < self._need:
                return []
            data = bytes(buf)
            buf.clear()
        elif not isinstance(data, bytes):
            data = bytes(data)
        if not data:
            return []
        events: list[FrameEvent] = []
        pos = 0
        if not self._started:
            pos = self._handshake(data, events)
            if pos == 0:
                return events
        try:
            pos = self._frames(data, pos, events)
        except AMQPError as exc:
            exc.events = events
            if exc.fatal:
                self._error = exc
            raise
        return events

    def _handshake(self, data: bytes, events: list[FrameEvent]) -> int:
        """Consume the protocol header; return the position after it (0 = need more)."""
        head = data[:8]
        if not PROTOCOL_HEADER.startswith(head[:4]) or (len(head) == 8 and head != PROTOCOL_HEADER):
            self._error = BadProtocolHeader(head)
            raise self._error
        if len(head) < 8:
            self._buf += data
            self._need = 8
            return 0
        self._started = True
        events.append(ProtocolHeader())
        return 8

    def _frames(self, data: bytes, pos: int, events: list[Any]) -> int:
        n = len(data)
        frame_max = self._frame_max
        unpack_header = _FRAME_HEADER.unpack_from
        append = events.append
        sink = self._sink
        while n - pos >= 7:
            ftype, channel, size = unpack_header(data, pos)
            if frame_max and size > frame_max:
                raise FrameError(
                    f"frame of {size} bytes exceeds frame_max {frame_max}",
                    channel=channel,
                    fatal=True,
                )
            end = pos + 7 + size
            if end >= n:
                self._keep(data, pos, end + 1 - pos)
                return pos
            if data[end] != FRAME_END:
                raise FrameError(
                    f"frame end octet 0x{data[end]:02x}, expected 0xce", channel=channel, fatal=True
                )
            start = pos + 7
            pos = end + 1  # the frame is consumed whatever happens below
            try:
                if ftype == FRAME_METHOD:
                    method = decode_method(data[start:end], channel)
                    if sink is None:
                        append(MethodFrame(channel, method))
                    else:
                        event = sink.on_method(channel, method)
                        if event is not None:
                            append(event)
                elif ftype == FRAME_BODY:
                    if channel == 0:
                        raise UnexpectedFrame("content body frame on channel 0")
                    if sink is None:
                        append(ContentBodyFrame(channel, data[start:end]))
                    else:
                        event = sink.on_body(channel, data[start:end])
                        if event is not None:
                            append(event)
                elif ftype == FRAME_HEADER:
                    if channel == 0:
                        raise UnexpectedFrame("content header frame on channel 0")
                    if size < 14:
                        raise FrameError("content header frame too short", channel=channel)
                    class_id, weight, body_size = _CONTENT_HEADER.unpack_from(data, start)
                    block = data[start + 12 : end]
                    if sink is None:
                        append(ContentHeaderFrame(channel, class_id, weight, body_size, block))
                    else:
                        event = sink.on_header(channel, class_id, weight, body_size, block)
                        if event is not None:
                            append(event)
                elif ftype == FRAME_HEARTBEAT:
                    if size:
                        raise FrameError("heartbeat frame with a payload", channel=channel)
                    if channel:
                        raise UnexpectedFrame(
                            f"heartbeat frame on channel {channel}", channel=channel
                        )
                    append(HEARTBEAT)
                else:
                    raise FrameError(f"unknown frame type {ftype}", channel=channel)
            except AMQPError:
                self._keep(data, pos)  # the bad frame is consumed; resume after it
                raise
        self._keep(data, pos, 7)
        return pos

    def _keep(self, data: bytes, pos: int, need: int = 0) -> None:
        """Buffer ``data[pos:]``: an incomplete frame needing ``need`` bytes in all,
        or (``need=0``) input left over after an error, to parse on the next feed."""
        if pos < len(data):
            self._buf[:] = memoryview(data)[pos:]
        self._need = need

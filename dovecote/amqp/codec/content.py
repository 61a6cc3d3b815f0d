"""Content assembly: content method + header + body frames -> one :class:`Message`.

Per channel the protocol is a small state machine (spec 4.2.6, RabbitMQ's
``rabbit_command_assembler``)::

    method --(content method)--> header --(body_size > 0)--> body ... --> method

Violations are connection errors: a header or body where a method is due, a
method (or anything else) where a header or body is due, or a header for
another class are :class:`~.errors.UnexpectedFrame` (505); more body bytes
than announced, or a body larger than ``max_body_size``, are
:class:`~.errors.FrameError` (501). The property block is vetted once by
:func:`~.properties.check_properties` (502 on garbage) so whatever the broker
stores can always be read back.

Body fragments are kept as the reader produced them and joined once when the
last one arrives; a single-frame body is passed on without any copy.
"""

from __future__ import annotations

from pamqp import base

from dovecote.amqp.codec.errors import AMQPError, FrameError, UnexpectedFrame
from dovecote.amqp.codec.frames import (
    FRAME_MIN_SIZE,
    ContentBodyFrame,
    ContentHeaderFrame,
    FrameEvent,
    FrameReader,
    Heartbeat,
    MethodFrame,
    ProtocolHeader,
)
from dovecote.amqp.codec.methods import CONTENT_METHODS
from dovecote.amqp.codec.properties import EMPTY_PROPERTIES, Properties, check_properties

DEFAULT_MAX_BODY_SIZE = 128 * 1024 * 1024  # RabbitMQ's default max_message_size


class Message:
    """A complete content-bearing command (basic.publish, or deliver/get-ok/return).

    ``property_block`` is the raw property block exactly as received (store it
    as is); ``properties`` decodes fields lazily from it; ``body`` is bytes.
    """

    __slots__ = ("_properties", "body", "channel", "method", "property_block")

    def __init__(
        self, channel: int, method: base.Frame, property_block: bytes, body: bytes
    ) -> None:
        self.channel = channel
        self.method = method
        self.property_block = property_block
        self.body = body
        self._properties: Properties | None = None

    @property
    def properties(self) -> Properties:
        """Lazy view of the properties; decoding happens on field access."""
        props = self._properties
        if props is None:
            props = self._properties = Properties(self.property_block)
        return props

    def __repr__(self) -> str:
        return (
            f"Message(channel={self.channel}, method={self.method.name}, "
            f"properties={len(self.property_block)}B, body={len(self.body)}B)"
        )


class _Pending:
    """A channel's content in progress."""

    __slots__ = ("block", "chunks", "method", "remaining", "size")

    def __init__(self, method: base.Frame) -> None:
        self.method = method
        self.block: bytes | None = None  # None until the header arrives
        self.remaining = 0
        self.size = 0  # property block + announced body, once the header arrived
        self.chunks: list[bytes] = []


def _ids(method: base.Frame) -> tuple[int, int]:
    return method.index >> 16, method.index & 0xFFFF


class ContentAssembler:
    """Turns frame events into command events, enforcing content sequencing per channel.

    ``process(event)`` returns the event to hand on, or ``None`` while content
    is incomplete. Method frames without content and heartbeats pass through.
    """

    __slots__ = ("_pending", "check_properties", "max_body_size")

    def __init__(
        self, *, max_body_size: int = DEFAULT_MAX_BODY_SIZE, check_properties: bool = True
    ):
        self._pending: dict[int, _Pending] = {}
        self.max_body_size = max_body_size
        self.check_properties = check_properties

    def in_progress(self, channel: int) -> bool:
        """Whether ``channel`` is between a content method and its last body frame."""
        return channel in self._pending

    def discard(self, channel: int) -> None:
        """Forget partial content on ``channel`` (e.g. when the channel closes)."""
        self._pending.pop(channel, None)

    def pending_bytes(self) -> int:
        """Announced size (properties + body) of the messages still arriving."""
        return sum(p.size for p in self._pending.values()) if self._pending else 0

    def process(self, event: FrameEvent) -> Message | FrameEvent | None:
        """Advance the channel's state with one frame event."""
        cls = type(event)
        if cls is MethodFrame:
            return self.on_method(event.channel, event.method)  # type: ignore[union-attr]
        if cls is ContentHeaderFrame:
            return self.on_header(*event)  # type: ignore[arg-type]
        if cls is ContentBodyFrame:
            return self.on_body(*event)  # type: ignore[arg-type]
        return event  # Heartbeat, ProtocolHeader

    def on_method(self, channel: int, method: base.Frame) -> MethodFrame | None:
        """A method frame: content methods open content, others pass through."""
        pending = self._pending.get(channel)
        if pending is not None:
            del self._pending[channel]
            raise self._unexpected(
                channel, pending, f"method {method.name} while content was expected"
            )
        if method.index in CONTENT_METHODS:
            self._pending[channel] = _Pending(method)
            return None
        return MethodFrame(channel, method)

    def on_header(
        self, channel: int, class_id: int, weight: int, body_size: int, block: bytes
    ) -> Message | None:
        """A content header frame; completes the message when ``body_size`` is 0."""
        pending = self._pending.get(channel)
        if pending is None:
            raise UnexpectedFrame(
                "expected method frame, got content header frame instead", channel=channel
            )
        method = pending.method
        if pending.block is not None or class_id != method.index >> 16 or weight != 0:
            del self._pending[channel]
            if pending.block is not None:
                raise self._unexpected(
                    channel, pending, "content header frame where body was expected"
                )
            raise self._unexpected(
                channel,
                pending,
                f"expected content header for class {method.index >> 16}, "
                f"got one for class {class_id} (weight {weight}) instead",
            )
        if body_size > self.max_body_size:
            del self._pending[channel]
            class_id, method_id = _ids(method)
            raise FrameError(
                f"content body size {body_size} exceeds maximum allowed size {self.max_body_size}",
                channel=channel,
                class_id=class_id,
                method_id=method_id,
            )
        if self.check_properties and block != EMPTY_PROPERTIES:
            try:
                check_properties(block)
            except AMQPError as exc:
                del self._pending[channel]
                exc.channel = channel
                exc.class_id, exc.method_id = _ids(method)
                raise
        if body_size == 0:
            del self._pending[channel]
            return Message(channel, method, block, b"")
        pending.block = block
        pending.remaining = body_size
        pending.size = len(block) + body_size
        return None

    def on_body(self, channel: int, payload: bytes) -> Message | None:
        """A content body frame; completes the message when the last byte arrives."""
        pending = self._pending.get(channel)
        if pending is None:
            raise UnexpectedFrame(
                "expected method frame, got content body frame instead", channel=channel
            )
        if pending.block is None:
            del self._pending[channel]
            raise self._unexpected(channel, pending, "content body frame where header was expected")
        remaining = pending.remaining - len(payload)
        if remaining < 0:
            del self._pending[channel]
            class_id, method_id = _ids(pending.method)
            raise FrameError(
                "content body frame exceeds remaining content size",
                channel=channel,
                class_id=class_id,
                method_id=method_id,
            )
        if remaining:
            pending.remaining = remaining
            pending.chunks.append(payload)
            return None
        del self._pending[channel]
        chunks = pending.chunks
        if chunks:
            chunks.append(payload)
            payload = b"".join(chunks)
        return Message(channel, pending.method, pending.block, payload)

    @staticmethod
    def _unexpected(channel: int, pending: _Pending, text: str) -> UnexpectedFrame:
        class_id, method_id = _ids(pending.method)
        return UnexpectedFrame(text, channel=channel, class_id=class_id, method_id=method_id)


Command = ProtocolHeader | MethodFrame | Message | Heartbeat


class CommandReader:
    """:class:`FrameReader` feeding a :class:`ContentAssembler`: bytes in, commands out.

    Events are :class:`ProtocolHeader`, :class:`MethodFrame` (methods without
    content), :class:`Message` (content methods with their properties and body)
    and :class:`Heartbeat`. Frames go straight from the reader's loop into
    the assembler, without intermediate event objects. An error carries the
    commands completed before it in ``events``; after a non-fatal one,
    ``feed()`` resumes with the frames that followed the bad one.
    """

    __slots__ = ("assembler", "frames")

    def __init__(
        self,
        *,
        frame_max: int = FRAME_MIN_SIZE,
        max_body_size: int = DEFAULT_MAX_BODY_SIZE,
        expect_protocol_header: bool = True,
        check_properties: bool = True,
    ) -> None:
        self.assembler = ContentAssembler(
            max_body_size=max_body_size, check_properties=check_properties
        )
        self.frames = FrameReader(
            frame_max=frame_max, expect_protocol_header=expect_protocol_header, sink=self.assembler
        )

    @property
    def frame_max(self) -> int:
        """Largest accepted frame payload; set it after tune-ok."""
        return self.frames.frame_max

    @frame_max.setter
    def frame_max(self, value: int) -> None:
        self.frames.frame_max = value

    def discard(self, channel: int) -> None:
        """Forget partial content on ``channel``."""
        self.assembler.discard(channel)

    def feed(self, data: bytes | bytearray | memoryview = b"") -> list[Command]:
        """Decode ``data`` (plus anything buffered) into complete commands."""
        return self.frames.feed(data)  # type: ignore[return-value]

"""Typed codec errors that carry the reply the server must send.

Every failure the codec can detect in peer input surfaces as a subclass of
:class:`CodecError`, never as ``struct.error``/``IndexError``/``UnicodeError``,
so the connection adapter has one ``except`` clause and a ready answer:

* :class:`BadProtocolHeader` -- the first 8 bytes are not ``AMQP 0-0-9-1``;
  the server writes :data:`~dovecote.amqp.codec.frames.PROTOCOL_HEADER` and
  closes the socket (spec 4.2.2).
* :class:`AMQPError` subclasses -- connection exceptions; the server sends
  ``connection.close`` built by :meth:`AMQPError.close_method` and then
  ignores everything but ``connection.close``/``close-ok``.

``fatal`` says the byte stream lost frame sync (oversized frame, bad frame end,
bad protocol header): the reader refuses further input and the server should
close the socket after a short grace period, as RabbitMQ does.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pamqp import commands

FRAME_ERROR = 501
SYNTAX_ERROR = 502
COMMAND_INVALID = 503
CHANNEL_ERROR = 504
UNEXPECTED_FRAME = 505
NOT_IMPLEMENTED = 540
INTERNAL_ERROR = 541

MAX_REPLY_TEXT = 255  # reply-text is a shortstr


class CodecError(Exception):
    """Base of every error raised for bad peer input.

    ``events`` holds what the same ``feed()`` call decoded before the error,
    so nothing that arrived ahead of the bad bytes is lost.
    """

    fatal: bool = False

    def __init__(self, text: str, *, fatal: bool | None = None) -> None:
        super().__init__(text)
        self.text = text
        self.events: list[Any] = []
        if fatal is not None:
            self.fatal = fatal


class BadProtocolHeader(CodecError):
    """The connection did not start with ``AMQP\\x00\\x00\\x09\\x01``.

    ``received`` is what the peer sent (up to 8 bytes); answer with our own
    protocol header and close.
    """

    fatal = True

    def __init__(self, received: bytes) -> None:
        super().__init__(f"unsupported protocol header {received!r}")
        self.received = received


class AMQPError(CodecError):
    """A connection exception: ``reply_code``/``reply_text`` go into connection.close.

    ``class_id``/``method_id`` name the offending method when one is known
    (0 otherwise); ``channel`` is the channel the bad frame arrived on.
    """

    reply_code: ClassVar[int] = INTERNAL_ERROR

    def __init__(
        self,
        text: str,
        *,
        channel: int = 0,
        class_id: int = 0,
        method_id: int = 0,
        fatal: bool | None = None,
    ) -> None:
        super().__init__(text, fatal=fatal)
        self.channel = channel
        self.class_id = class_id
        self.method_id = method_id

    @property
    def reply_text(self) -> str:
        """``text`` cut to fit a shortstr (255 UTF-8 bytes), with the code name in front."""
        full = f"{type(self).reply_name} - {self.text}"
        raw = full.encode("utf-8")
        if len(raw) <= MAX_REPLY_TEXT:
            return full
        return raw[:MAX_REPLY_TEXT].decode("utf-8", "ignore")

    reply_name: ClassVar[str] = "INTERNAL_ERROR"

    def close_method(self) -> commands.Connection.Close:
        """The ``connection.close`` the server should send on channel 0."""
        return commands.Connection.Close(
            self.reply_code, self.reply_text, self.class_id, self.method_id
        )

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.reply_code}, {self.text!r}, channel={self.channel}, "
            f"class_id={self.class_id}, method_id={self.method_id}, fatal={self.fatal})"
        )


class FrameError(AMQPError):
    """501: a frame could not be decoded (bad end octet, too large, truncated, unknown type)."""

    reply_code = FRAME_ERROR
    reply_name = "FRAME_ERROR"


class SyntaxError_(AMQPError):  # trailing underscore: don't shadow the builtin
    """502: a frame held illegal values (undecodable method arguments, bad field table)."""

    reply_code = SYNTAX_ERROR
    reply_name = "SYNTAX_ERROR"


class CommandInvalid(AMQPError):
    """503: the peer sent a method this protocol does not define."""

    reply_code = COMMAND_INVALID
    reply_name = "COMMAND_INVALID"


class UnexpectedFrame(AMQPError):
    """505: a frame arrived where the protocol forbids it (e.g. a method inside content)."""

    reply_code = UNEXPECTED_FRAME
    reply_name = "UNEXPECTED_FRAME"

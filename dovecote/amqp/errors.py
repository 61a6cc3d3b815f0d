"""Channel and connection exceptions as the server raises them, with RabbitMQ's codes.

A handler raises :class:`ChannelError` (the channel is closed, the connection
lives on) or :class:`ConnectionError_` (the whole connection is closed); the
connection turns either into ``channel.close`` / ``connection.close`` naming
the method that failed. Core errors map onto them by :func:`from_core`, with
the texts RabbitMQ uses (``NOT_FOUND - no queue 'q' in vhost '/'``) so that
client code matching on them keeps working.
"""

from __future__ import annotations

import re
from typing import ClassVar

from dovecote.core.errors import BrokerError
from dovecote.core.queues import AccessRefused, NotFound, PreconditionFailed, ResourceLocked

REPLY_SUCCESS = 200
CONNECTION_FORCED = 320
NO_ROUTE = 312
ACCESS_REFUSED = 403
NOT_FOUND = 404
RESOURCE_LOCKED = 405
PRECONDITION_FAILED = 406
COMMAND_INVALID = 503
CHANNEL_ERROR = 504
UNEXPECTED_FRAME = 505
NOT_ALLOWED = 530
NOT_IMPLEMENTED = 540
INTERNAL_ERROR = 541

REPLY_NAMES = {
    CONNECTION_FORCED: "CONNECTION_FORCED",
    NO_ROUTE: "NO_ROUTE",
    ACCESS_REFUSED: "ACCESS_REFUSED",
    NOT_FOUND: "NOT_FOUND",
    RESOURCE_LOCKED: "RESOURCE_LOCKED",
    PRECONDITION_FAILED: "PRECONDITION_FAILED",
    COMMAND_INVALID: "COMMAND_INVALID",
    CHANNEL_ERROR: "CHANNEL_ERROR",
    UNEXPECTED_FRAME: "UNEXPECTED_FRAME",
    NOT_ALLOWED: "NOT_ALLOWED",
    NOT_IMPLEMENTED: "NOT_IMPLEMENTED",
    INTERNAL_ERROR: "INTERNAL_ERROR",
}


def reply_text(code: int, text: str) -> str:
    """``NAME - text`` cut to a shortstr (255 UTF-8 bytes)."""
    full = f"{REPLY_NAMES.get(code, 'ERROR')} - {text}"
    raw = full.encode("utf-8")
    return full if len(raw) <= 255 else raw[:255].decode("utf-8", "ignore")


class ServerError(Exception):
    """An AMQP exception; ``class_id``/``method_id`` name the failing method
    (filled in by the connection when the handler left them 0)."""

    hard: ClassVar[bool] = False

    def __init__(self, code: int, text: str, class_id: int = 0, method_id: int = 0) -> None:
        super().__init__(text)
        self.code = code
        self.text = text
        self.class_id = class_id
        self.method_id = method_id

    @property
    def reply_text(self) -> str:
        return reply_text(self.code, self.text)


class ChannelError(ServerError):
    """A soft error: ``channel.close`` with this code; other channels go on."""


class ConnectionError_(ServerError):  # underscore: don't shadow the builtin
    """A hard error: ``connection.close`` with this code."""

    hard = True


_CORE_CODES: dict[type[BrokerError], int] = {
    NotFound: NOT_FOUND,
    PreconditionFailed: PRECONDITION_FAILED,
    ResourceLocked: RESOURCE_LOCKED,
    AccessRefused: ACCESS_REFUSED,
}


def from_core(exc: BrokerError, vhost: str = "/") -> ChannelError:
    """The channel error RabbitMQ would send for a core error."""
    code = PRECONDITION_FAILED
    for cls, value in _CORE_CODES.items():
        if isinstance(exc, cls):
            code = value
            break
    text = str(exc)
    if code == NOT_FOUND and text.startswith(("no queue '", "no exchange '")):
        text = f"{text} in vhost '{vhost}'"
    else:
        # "... for queue 'q': ..." -> "... for queue 'q' in vhost '/': ..."
        text = _NAMED.sub(lambda m: f"{m.group(0)} in vhost '{vhost}'", text, count=1)
    return ChannelError(code, text)


_NAMED = re.compile(r"(?:for |locked )(?:queue|exchange) '[^']*'")

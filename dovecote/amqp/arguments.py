"""AMQP declarations in the core's terms: x-arguments, standard exchanges, reserved names.

RabbitMQ's rules live here, not in the core: ``queue_settings`` turns a
queue's x-arguments into neutral :class:`~dovecote.core.queue_settings.QueueSettings`
(with RabbitMQ's error texts), ``check_equivalent`` compares a redeclare's
arguments with the first declaration's (RabbitMQ's 406 texts), and
``install`` gives a queue manager the ``amq.*`` exchanges every vhost has
and the headers exchange's ``x-match`` convention.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dovecote.amqp.errors import PRECONDITION_FAILED, ChannelError
from dovecote.core.queue_settings import (
    DROP_HEAD,
    REJECT_NEW,
    REJECT_NEW_DEAD_LETTER,
    QueueSettings,
)
from dovecote.core.queues import QueueManager
from dovecote.core.routing import DIRECT, FANOUT, HEADERS, TOPIC, HeadersMatching

VHOST = "/"
RESERVED_PREFIX = "amq."

# Exchanges every vhost has, as in RabbitMQ.
STANDARD_EXCHANGES = {
    "amq.direct": DIRECT,
    "amq.fanout": FANOUT,
    "amq.topic": TOPIC,
    "amq.headers": HEADERS,
    "amq.match": HEADERS,
}

# x-match all/any, all-with-x/any-with-x; other x- arguments are not matched.
HEADERS_MATCHING = HeadersMatching(mode_key="x-match", reserved_prefix="x-", with_suffix="-with-x")

OVERFLOWS = {
    "drop-head": DROP_HEAD,
    "reject-publish": REJECT_NEW,
    "reject-publish-dlx": REJECT_NEW_DEAD_LETTER,
}


def install(queues: QueueManager) -> None:
    """What an AMQP listener adds to the core when it starts: the standard
    exchanges (reserved: never deleted) and how headers exchanges read x-match."""
    queues.router.headers_matching = HEADERS_MATCHING
    for name, kind in STANDARD_EXCHANGES.items():
        queues.declare_reserved_exchange(name, kind)


def reserved(name: str) -> bool:
    """Names clients may not declare: ``amq.*``."""
    return name.startswith(RESERVED_PREFIX)


def queue_settings(arguments: Mapping[str, Any], queue: str = "") -> QueueSettings:
    """Validate a queue's x-arguments into settings; errors read as
    RabbitMQ's (``invalid arg 'x-max-length' for queue 'q' in vhost '/': ...``)."""
    where = f" for queue '{queue}' in vhost '{VHOST}'" if queue else ""

    def invalid(name: str, why: str) -> ChannelError:
        return ChannelError(PRECONDITION_FAILED, f"invalid arg '{name}'{where}: {why}")

    def number(name: str, minimum: int = 0) -> int | None:
        value = arguments.get(name)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            kind = "longstr" if isinstance(value, str | bytes) else type(value).__name__
            raise invalid(name, f'"expected integer, got {kind}"')
        if value < minimum:
            reason = "value_negative" if value < 0 else "value_zero"
            raise invalid(name, f"{{{reason},{value}}}")
        return value

    overflow = OVERFLOWS.get(_text(arguments.get("x-overflow", "drop-head")))
    if overflow is None:
        raise invalid("x-overflow", "invalid_overflow")
    priority = number("x-max-priority")
    if priority is not None and priority > 255:
        raise invalid("x-max-priority", f"{{max_value_exceeded,{priority}}}")
    dlx = arguments.get("x-dead-letter-exchange")
    dlk = arguments.get("x-dead-letter-routing-key")
    return QueueSettings(
        message_ttl_ms=number("x-message-ttl"),
        expires_ms=number("x-expires", 1),
        max_length=number("x-max-length"),
        max_length_bytes=number("x-max-length-bytes"),
        overflow=overflow,
        dead_letter_exchange=None if dlx is None else _text(dlx),
        dead_letter_routing_key=None if dlk is None else _text(dlk),
        max_priority=priority,
        max_deliveries=number("x-delivery-limit"),
    )


def check_equivalent(queue: str, arguments: Mapping[str, Any], current: Mapping[str, Any]) -> None:
    """A redeclare must carry the same x-arguments as the first declaration
    (RabbitMQ's ``inequivalent arg`` 406). Both are plain (JSON) values."""
    for key in sorted(set(arguments) | set(current)):
        if key.startswith("x-") and arguments.get(key) != current.get(key):
            raise ChannelError(
                PRECONDITION_FAILED,
                f"inequivalent arg '{key}' for queue '{queue}' in vhost '{VHOST}': received "
                f"'{_shown(arguments.get(key))}' but current is '{_shown(current.get(key))}'",
            )


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _shown(value: Any) -> str:
    """An argument value as RabbitMQ prints it in inequivalence errors."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return str(value).lower()
    return _text(value)

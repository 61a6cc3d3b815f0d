"""AMQP declarations in the core's terms: x-arguments, standard exchanges, reserved names.

RabbitMQ's rules live here, not in the core: ``queue_settings`` turns a
queue's x-arguments into neutral :class:`~dovecote.core.queue_settings.QueueSettings`
(with RabbitMQ's error texts), ``check_equivalent`` compares a redeclare's
arguments with the first declaration's (RabbitMQ's 406 texts), and
``install`` gives a queue manager the ``amq.*`` exchanges every vhost has
and the headers exchange's ``x-match`` convention. The consume arguments
(``x-priority``, ``x-stream-offset``) and the delivery ones of queue.declare
(``x-single-active-consumer``, stream queues) are parsed here too.
"""

from __future__ import annotations

import datetime
import re
import time
from collections.abc import Mapping
from typing import Any

from dovecote.amqp.codec.tables import Timestamp
from dovecote.amqp.errors import PRECONDITION_FAILED, ChannelError
from dovecote.core.cursor import FIRST, LAST, NEXT, AtTime, StartAt
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


# --- consumers and streams ----------------------------------------------------------------


def consumer_priority(arguments: Mapping[str, Any] | None) -> int:
    """``x-priority`` (any integer; RabbitMQ's default is 0)."""
    value = (arguments or {}).get("x-priority")
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int):
        raise ChannelError(
            PRECONDITION_FAILED, f"invalid arg 'x-priority': expected integer, got {value!r}"
        )
    return value


def single_active_consumer(arguments: Mapping[str, Any] | None, queue: str = "") -> bool:
    """``x-single-active-consumer`` of queue.declare (a boolean)."""
    value = (arguments or {}).get("x-single-active-consumer")
    if value is None:
        return False
    if not isinstance(value, bool):
        raise ChannelError(
            PRECONDITION_FAILED,
            f"invalid arg 'x-single-active-consumer' for queue '{queue}' in vhost '/': "
            f'"expected bool, got {value!r}"',
        )
    return value


def delivery_settings(
    args: QueueSettings,
    arguments: Mapping[str, Any],
    queue: str,
    *,
    durable: bool,
    exclusive: bool,
    auto_delete: bool,
) -> QueueSettings:
    """Add what queue.declare says about delivery to ``args`` (parsed from the
    other x-arguments): ``x-single-active-consumer`` and ``x-queue-type:
    stream``, which RabbitMQ allows only for durable, shared queues."""
    args.single_active_consumer = single_active_consumer(arguments, queue)
    kind = arguments.get("x-queue-type")
    if isinstance(kind, bytes):
        kind = kind.decode("utf-8", "replace")
    if kind == "stream":
        for wrong, flag in (
            (not durable, "non-durable"),
            (exclusive, "exclusive-owner"),
            (auto_delete, "auto-delete"),
        ):
            if wrong:
                raise ChannelError(
                    PRECONDITION_FAILED,
                    f"invalid property '{flag}' for queue '{queue}' in vhost '/'",
                )
        for key in arguments:
            if key.startswith("x-") and key not in STREAM_ARGUMENTS:
                raise ChannelError(
                    PRECONDITION_FAILED,
                    f"invalid arg '{key}' for queue '{queue}' in vhost '/' "
                    "of queue type rabbit_stream_queue",
                )
        args.stream = True
        # What is consumed stays; size and age limits are retention of the log.
        args.retention_bytes, args.max_length_bytes = args.max_length_bytes, None
        age = arguments.get("x-max-age")
        if age is not None:
            args.retention_ms = _max_age_ms(age, queue)
    return args


# What RabbitMQ accepts on a stream queue (the cluster ones change nothing here).
STREAM_ARGUMENTS = frozenset(
    {
        "x-queue-type",
        "x-max-length-bytes",
        "x-max-age",
        "x-stream-max-segment-size-bytes",
        "x-stream-filter-size-bytes",
        "x-queue-leader-locator",
        "x-initial-cluster-size",
    }
)


def _max_age_ms(value: Any, queue: str) -> int:
    """``x-max-age`` ("7D", "12h", ...: units Y M D h m s) in milliseconds."""
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    match = _INTERVAL.match(value) if isinstance(value, str) else None
    if match is None or int(match.group(1)) <= 0:
        raise ChannelError(
            PRECONDITION_FAILED,
            f"invalid arg 'x-max-age' for queue '{queue}' in vhost '/': {value!r}",
        )
    return int(match.group(1)) * _UNIT_S[match.group(2)] * 1000


_INTERVAL = re.compile(r"^(\d+)([YMDhms])$")
_UNIT_S = {"Y": 365 * 86400, "M": 30 * 86400, "D": 86400, "h": 3600, "m": 60, "s": 1}


def stream_start(arguments: Mapping[str, Any] | None) -> StartAt:
    """Where ``x-stream-offset`` says a stream consumer starts (default: next).

    ``first``, ``last``, ``next``, an offset, a timestamp (AMQP timestamp,
    seconds) or an interval back from now (``"30m"``, units Y M D h m s).
    """
    value = (arguments or {}).get("x-stream-offset")
    if value is None:
        return NEXT
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if isinstance(value, Timestamp):  # an int: test it before offsets
        return AtTime(int(value) * 1000)
    if isinstance(value, datetime.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=datetime.UTC)
        return AtTime(int(value.timestamp() * 1000))
    if isinstance(value, str):
        if value in (FIRST, LAST, NEXT):
            return value
        match = _INTERVAL.match(value)
        if match:
            seconds = int(match.group(1)) * _UNIT_S[match.group(2)]
            return AtTime(int((time.time() - seconds) * 1000))
    elif isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    raise ChannelError(PRECONDITION_FAILED, f"invalid arg 'x-stream-offset': {value!r}")

"""How a queue behaves, in neutral terms: :class:`QueueSettings`.

Queues are described by settings, not by any protocol's arguments; each
protocol adapter translates its own declarations (arguments, attributes)
into settings and keeps its own rules about names and equivalence. The
settings are stored in the catalog as JSON (queues written before they had
these names are read too) and decide the subscription behaviour of the
queue (:func:`subscription_config`). Apart from the queue manager so that
adapters can build settings without it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

from dovecote.core.subscription_state import SubscriptionConfig

# Overflow behaviours of a queue with a length limit.
DROP_HEAD = "drop-head"  # drop (dead-letter) the oldest records
REJECT_NEW = "reject-new"  # refuse the new record
REJECT_NEW_DEAD_LETTER = "reject-new-dead-letter"  # refuse it and dead-letter it
OVERFLOWS = (DROP_HEAD, REJECT_NEW, REJECT_NEW_DEAD_LETTER)


@dataclass
class QueueSettings:
    """How a queue behaves, in neutral terms; adapters translate their own
    declarations (arguments, attributes, subscription settings) into it.

    Stored in the catalog as JSON (:meth:`to_json`); :meth:`from_json` also
    reads queues written before the settings had these names."""

    max_length: int | None = None  # records; None = unlimited
    max_length_bytes: int | None = None
    overflow: str = DROP_HEAD  # one of OVERFLOWS
    message_ttl_ms: int | None = None  # records expire this long after their timestamp
    expires_ms: int | None = None  # the queue is deleted after this long unused
    dead_letter_exchange: str | None = None  # re-route dead letters through this exchange
    dead_letter_routing_key: str | None = None  # ... with this key (None: the record's)
    dead_letter_queue: str | None = None  # or store them in this queue (redrive)
    max_deliveries: int | None = None  # dead-letter instead of delivering more often
    max_priority: int | None = None  # priority levels 0..max_priority
    delivery_delay_ms: int = 0  # default delay before a record may be delivered
    retention_ms: int | None = None  # settled or not, records older than this go
    lease_ms: int | None = None  # visibility timeout; None = until settled
    ordered: bool = False  # in order per key, one in flight per key
    dedup_window_ms: int | None = None  # drop repeats of a message id within this window
    single_active_consumer: bool = False  # one consumer receives at a time
    stream: bool = False  # consuming reads without removing: each consumer is a cursor
    retention_bytes: int | None = None  # streams: the log is kept under this size
    # Records past message_ttl_ms are dead-lettered (RabbitMQ); False: they are
    # just dropped (SQS's retention period never moves a message to a DLQ).
    dead_letter_expired: bool = True

    @property
    def limited(self) -> bool:
        return self.max_length is not None or self.max_length_bytes is not None

    @property
    def refuses_when_full(self) -> bool:
        """Whether a publish can be refused, so batches are decided record by record."""
        return self.limited and self.overflow != DROP_HEAD

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> QueueSettings:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        return cls(**values)

    @classmethod
    def from_stored(cls, meta: Mapping[str, Any]) -> QueueSettings:
        """A queue's settings from its catalog entry, old format included
        (``args``, with ``delivery_limit`` and the old overflow names)."""
        if "settings" in meta:
            return cls.from_json(meta["settings"])
        old = dict(meta.get("args", {}))
        if "delivery_limit" in old:
            old["max_deliveries"] = old.pop("delivery_limit")
        old["overflow"] = _OLD_OVERFLOWS.get(old.get("overflow", DROP_HEAD), DROP_HEAD)
        return cls.from_json(old)


_OLD_OVERFLOWS = {
    "drop-head": DROP_HEAD,
    "reject-publish": REJECT_NEW,
    "reject-publish-dlx": REJECT_NEW_DEAD_LETTER,
}


def subscription_config(settings: QueueSettings) -> SubscriptionConfig:
    """The subscription behaviour a queue's settings ask for."""
    return SubscriptionConfig(
        lease_ms=settings.lease_ms,
        max_deliveries=settings.max_deliveries,
        message_ttl_ms=settings.message_ttl_ms,
        ordered=settings.ordered,
        priority=settings.max_priority is not None,
        delivery_delay_ms=settings.delivery_delay_ms,
    )

"""The plain data of a subscription: its settings, where it stands in each
partition, and what it has handed out.

:class:`SubscriptionConfig`, :class:`Cursor` (one per partition), :class:`Lease`
and :class:`Delivery` are the state that
:class:`~dovecote.core.subscription.Subscription` moves. They live apart from
it so that the modules that only name them (push delivery, the subscription
store, queue settings, adapters) need not import the queue semantics, and the
subscription module is about behaviour alone.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field

from dovecote.core.tokens import DeliveryToken
from dovecote.storage.batch import Record

_new_tuple = tuple.__new__

DeadLetterHandler = Callable[[Record, str], Awaitable[None]]
RecordFilter = Callable[[Record], bool]


class DeadLetterDeferred(Exception):
    """Raised by a dead-letter handler that cannot store the record now (its
    target is gone): the record is not dropped but stays in the subscription,
    undelivered, and is dead-lettered again ``retry_ms`` later."""

    def __init__(self, retry_ms: int, why: str = "") -> None:
        super().__init__(why or "dead letter deferred")
        self.retry_ms = retry_ms


# Delivery count so far -> ms to wait before the record is delivered again.
RedeliveryDelay = Callable[[int], int]


@dataclass(slots=True)
class SubscriptionConfig:
    lease_ms: int | None = None  # default lease; None = held until acked or released
    max_deliveries: int | None = None  # dead-letter instead of delivering more often
    message_ttl_ms: int | None = None  # per-subscription TTL from the record timestamp
    ordered: bool = False  # one in flight per record key
    # ordered: records without a key are one group too (every record in order);
    # False leaves them unordered (only keyed records are ordered)
    order_unkeyed: bool = True
    priority: bool = False  # partitions are priority levels, highest index first
    delivery_delay_ms: int = 0  # records become deliverable this long after their timestamp
    filter: RecordFilter | None = None  # records it rejects are settled, never delivered
    # A nack that requeues without a delay of its own, and a lease that expires,
    # redeliver after this (retry backoff); None: at once
    redelivery_delay: RedeliveryDelay | None = None
    # Ordered: a nack (or an expired lease) of a keyed record also gives back
    # the key's later records still leased (their tokens go stale), so they
    # are delivered again after it, in order (False: they stay leased).
    requeue_following: bool = False


@dataclass(slots=True)
class Lease:
    owner: object
    deadline: float  # monotonic seconds; inf = until released
    record: Record
    attempt: int = -1


@dataclass(slots=True)
class Delivery:
    partition: int
    offset: int
    record: Record
    count: int  # 1 on first delivery; adapters report it as the receive count / attempt
    attempt: int = -1  # unique to this delivery: see ``token``

    @property
    def redelivered(self) -> bool:
        return self.count > 1

    @property
    def token(self) -> DeliveryToken:
        """What ack, nack and extend take; ``str(token)`` is its wire form.
        (A plain ``(partition, offset, attempt)`` tuple is accepted too: hot
        paths that never show the token build that instead, it is cheaper.)"""
        return _new_tuple(DeliveryToken, (self.partition, self.offset, self.attempt))


@dataclass
class Cursor:
    """Delivery state of one partition."""

    floor: int = 0  # everything below is settled
    position: int = 0  # next offset to read from the log
    settled: set[int] = field(default_factory=set)  # settled offsets >= floor
    leased: dict[int, Lease] = field(default_factory=dict)
    ready: list[int] = field(default_factory=list)  # heap of requeued offsets
    requeued: dict[int, Record] = field(default_factory=dict)  # their records
    counts: dict[int, int] = field(default_factory=dict)  # deliveries so far
    buffer: deque[Record] = field(default_factory=deque)  # read ahead, offset >= position
    delayed: list[tuple[float, int]] = field(default_factory=list)  # heap (due wall ms, offset)
    delayed_records: dict[int, Record] = field(default_factory=dict)
    # ordered: records waiting for their group's record in flight, a heap of
    # offsets per group; only the lowest goes back to ``ready`` when it ends
    parked: dict[bytes | None, list[int]] = field(default_factory=dict)
    parked_records: dict[int, Record] = field(default_factory=dict)

    def advance_floor(self) -> None:
        settled = self.settled
        floor = self.floor
        while floor in settled:
            settled.discard(floor)
            floor += 1
        self.floor = floor

    def reset(self, floor: int, settled: Iterable[int] = ()) -> None:
        """Everything below ``floor`` and in ``settled`` is settled, the rest
        deliverable again; leases are dropped (their tokens go stale)."""
        self.floor = self.position = floor
        self.settled = {o for o in settled if o >= floor}
        self.leased.clear()
        self.ready.clear()
        self.requeued.clear()
        self.buffer.clear()
        self.delayed.clear()
        self.delayed_records.clear()
        self.parked.clear()
        self.parked_records.clear()
        self.counts = {o: c for o, c in self.counts.items() if o >= floor}
        self.advance_floor()
        # Settled offsets at the floor moved it: reading starts there, not
        # below (records read below the floor would be taken for unsettled).
        self.position = self.floor

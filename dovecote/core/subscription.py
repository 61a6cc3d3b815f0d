"""Queue semantics on a log: competing consumers with per-record leases.

A subscription is a cursor over every partition of a topic. Records below a
partition's *floor* are settled (acknowledged, dead-lettered or expired);
between the floor and the *read position* each record is either settled out
of order, leased to a consumer, or ready to be delivered again. Records at and
after the read position are read from the log in chunks and delivered in
order. So a queue is never copied: it is a topic plus this bookkeeping, and
the same topic can still be read as a stream.

- ``pull`` leases up to N ready records to an owner (a channel, a
  receiver), redeliveries first in offset order (requeued messages keep their
  place, as RabbitMQ does), then fresh records; priority subscriptions take
  from the highest partition first. Every delivery carries a
  :class:`~dovecote.core.tokens.DeliveryToken` unique to that attempt.
- ``ack`` settles; ``nack`` requeues, delays or dead-letters; ``extend`` moves
  a lease's deadline. They take tokens: a token whose lease is gone (settled,
  or expired and delivered again to someone else) is stale, changes nothing
  and is reported back. A lease that passes its deadline is requeued on
  time; ``release`` requeues everything an owner held (its connection went
  away).
- Delivery counts decide the redelivered flag and the delivery limit; TTL and
  the delivery limit send records to the dead-letter callback with a reason.
- With ``ordered`` only one record per key is in flight at a time (message
  groups, ordering keys), and a requeued record of a key is
  delivered again before the later ones.
- Delays (per subscription and per record), a filter hook that settles
  records nobody should see, and seeks (to an offset, a time or a named
  snapshot).

Timers: each subscription has one :class:`~dovecote.core.clock.Alarm` on the
injected clock, armed for its earliest lease deadline, delay end or head TTL.
A subscription with nothing due has no timer, so idle queues cost nothing.
The head of each partition is looked at when it may have changed (a pull, a
requeue, an append to an empty queue), not on a sweep.

Progress is made durable by :class:`~dovecote.core.substate.SubscriptionStore`:
every change is logged as ranges of delivered and settled offsets, coalesced
per loop turn, so the cost is per burst, not per record.

The plain state this moves (config, cursors, leases, deliveries) is in
:mod:`~dovecote.core.subscription_state`; the header names it reads are in
:mod:`~dovecote.core.headers`.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
import secrets
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING

from dovecote.core.clock import Alarm, Clock, SystemClock
from dovecote.core.errors import BrokerError, UnknownPartition
from dovecote.core.headers import DELIVER_AT, EXPIRES_AT, header_int
from dovecote.core.subscription_state import (
    Cursor,
    DeadLetterDeferred,
    DeadLetterHandler,
    Delivery,
    Lease,
    RecordFilter,
    SubscriptionConfig,
)
from dovecote.core.tokens import DeliveryToken, Settled
from dovecote.core.topic import Partition, Topic
from dovecote.storage.batch import Record
from dovecote.storage.log import OffsetOutOfRange

if TYPE_CHECKING:
    from dovecote.core.substate import SubscriptionStore

log = logging.getLogger(__name__)

READ_CHUNK = 256 * 1024
NEVER = float("inf")
DEAD_LETTERING = object()  # lease owner while a record is moved to its dead-letter target
EXPIRED = "expired"
_EMPTY = -1.0  # head state: known to have no record
_TIMED_OUT = object()
# A token, or a bare (partition, offset) pair that names whatever lease holds
# that offset (for owners whose leases never expire, such as a channel that
# holds its deliveries until it acks or closes).
TokenLike = DeliveryToken | tuple[int, int, int] | tuple[int, int]


class UnknownSnapshot(BrokerError, LookupError):
    pass


class Subscription:
    def __init__(
        self,
        sub_id: str,
        topic: Topic,
        config: SubscriptionConfig | None = None,
        store: SubscriptionStore | None = None,
        on_dead_letter: DeadLetterHandler | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.id = sub_id
        self.topic = topic
        self.config = config or SubscriptionConfig()
        self.store = store
        self.on_dead_letter = on_dead_letter
        self.clock: Clock = clock or SystemClock()
        self.cursors: list[Cursor] = []
        # (deadline, attempt, partition, offset); entries of settled or
        # extended leases stay until they come up and are skipped
        self._lease_heap: list[tuple[float, int, int, int]] = []
        # Attempt serials start at a random point so a token from before a
        # restart (or of another subscription) does not name a new lease.
        self._attempts = itertools.count(secrets.randbits(48))
        self._waiters: set[asyncio.Future[object]] = set()
        # Ordering keys with records in flight (or delayed), and how many.
        self._groups_in_flight: dict[bytes | None, int] = {}
        self._rr = 0
        self._dead_letter_tasks: set[asyncio.Task[None]] = set()
        self._close_callbacks: list[Callable[[], None]] = []
        # owner -> called with each of its leases that ends (None: all ended)
        self._owner_watchers: dict[object, Callable[[Lease | None], None]] = {}
        self._alarm = Alarm(self.clock, self._on_alarm)
        self._head_due: list[float | None] = []  # per partition: None unknown, _EMPTY, wall ms
        self._head_check_scheduled = False
        self._timers_started = False  # False until made inside a running loop
        self._append_watchers: dict[int, asyncio.Future[None]] = {}
        self._local_snapshots: dict[str, object] = {}
        self.closed = False
        self.sync_partitions()
        if store is not None:
            store.restore(self)
        self._heads_changed()

    def __repr__(self) -> str:
        return f"<Subscription {self.id} on {self.topic.name}>"

    @property
    def filter(self) -> RecordFilter | None:
        return self.config.filter

    @filter.setter
    def filter(self, predicate: RecordFilter | None) -> None:
        """Records ``predicate`` rejects are settled without being delivered."""
        self.config.filter = predicate

    def sync_partitions(self) -> None:
        """Track partitions added to the topic since the subscription was made."""
        while len(self.cursors) < len(self.topic.partitions):
            start = self.topic.partitions[len(self.cursors)].log_start_offset
            self.cursors.append(Cursor(floor=start, position=start))
            self._head_due.append(None)

    # --- counting ------------------------------------------------------------

    def ready_count(self) -> int:
        """Records deliverable now or later (not leased, not settled)."""
        total = 0
        for index, cursor in enumerate(self.cursors):
            hw = self.topic.partitions[index].high_watermark
            total += max(0, hw - cursor.floor) - len(cursor.settled) - len(cursor.leased)
        return max(0, total)

    def unacked_count(self) -> int:
        return sum(len(c.leased) for c in self.cursors)

    def delayed_count(self) -> int:
        """Records seen but waiting for their delay to end (not yet visible)."""
        return sum(len(c.delayed) for c in self.cursors)

    def leases_of(self, owner: object) -> list[DeliveryToken]:
        return [
            DeliveryToken(index, offset, lease.attempt)
            for index, cursor in enumerate(self.cursors)
            for offset, lease in cursor.leased.items()
            if lease.owner is owner
        ]

    def watch_owner(
        self, owner: object, callback: Callable[[Lease | None], None]
    ) -> Callable[[], None]:
        """Call ``callback(lease)`` whenever a lease of ``owner`` ends (acked,
        given back, expired, dead-lettered, dropped with its records), and
        ``callback(None)`` when a seek drops them all. For owners whose
        leases are settled by calls that do not name them (Pub/Sub acks come
        on any connection): their push credit comes back through this.
        Returns a function that unregisters it."""
        self._owner_watchers[owner] = callback

        def remove() -> None:
            if self._owner_watchers.get(owner) is callback:
                del self._owner_watchers[owner]

        return remove

    def _lease_ended(self, lease: Lease) -> None:
        callback = self._owner_watchers.get(lease.owner)
        if callback is not None:
            callback(lease)

    # --- delivering ------------------------------------------------------------

    def pull(
        self,
        max_records: int,
        owner: object,
        lease_ms: int | None = None,
        *,
        group_batches: bool = False,
    ) -> list[Delivery]:
        """Lease up to ``max_records`` ready records to ``owner``.

        On an ordered subscription a key with a record in flight is blocked;
        ``group_batches`` lets one pull lease several consecutive records of
        a key that was free when it began (SQS FIFO receives do: the group
        then stays blocked until every one of them is settled or released)."""
        if self.closed or max_records <= 0:
            return []
        if not self._timers_started:
            self._heads_changed()
        self.sync_partitions()
        clock = self.clock
        now = clock.monotonic()
        heap = self._lease_heap
        if heap and heap[0][0] <= now:
            self.expire_leases()
        lease_ms = self.config.lease_ms if lease_ms is None else lease_ms
        deadline = NEVER if lease_ms is None else now + lease_ms / 1000
        now_ms = clock.wall_ms()
        moved: list[int] = []
        out: list[Delivery] = []
        for index in self._partition_order():
            if len(out) >= max_records:
                break
            if self._pull_partition(
                index, max_records - len(out), owner, deadline, now_ms, out, group_batches
            ):
                moved.append(index)
        if out:
            if deadline != NEVER:
                self._alarm.arm(deadline)
            if self.store is not None:
                self.store.delivered(self, out)
        if moved:
            self._heads_changed(moved)
        return out

    def _partition_order(self) -> list[int]:
        n = len(self.cursors)
        if self.config.priority:
            return list(range(n - 1, -1, -1))
        self._rr = (self._rr + 1) % n if n else 0
        return [(self._rr + i) % n for i in range(n)]

    def _pull_partition(
        self,
        index: int,
        limit: int,
        owner: object,
        deadline: float,
        now_ms: int,
        out: list[Delivery],
        group_batches: bool = False,
    ) -> bool:
        """Lease what is ready in one partition; True if its head moved."""
        cursor = self.cursors[index]
        if cursor.delayed and cursor.delayed[0][0] <= now_ms:
            self._release_due_delays(cursor, now_ms)
        config = self.config
        ordered = config.ordered
        unkeyed = config.order_unkeyed
        max_deliveries = config.max_deliveries
        accept = config.filter
        groups = self._groups_in_flight
        counts = cursor.counts
        leased = cursor.leased
        attempts = self._attempts
        filtered: list[int] = []
        batch_keys: set[bytes | None] = set()  # keys this pull took (group_batches)
        taken = 0
        moved = False
        while taken < limit:
            item = self._take_next(index, cursor)
            if item is None:
                break
            moved = True
            offset, record = item
            grouped = ordered and (unkeyed or record.key is not None)
            if grouped and record.key in groups and record.key not in batch_keys:
                self._park(cursor, offset, record)
                continue
            verdict = self._check(record, now_ms)
            if verdict is not None:
                if verdict is EXPIRED:
                    self._dead_letter(index, cursor, offset, record, EXPIRED)
                else:
                    self._delay(cursor, offset, record, verdict)
                    # later records of its key wait for it, batch or not
                    batch_keys.discard(record.key)
                continue
            count = counts.get(offset, 0) + 1
            if accept is not None and count == 1 and not self._accepts(accept, record):
                filtered.append(offset)
                if grouped:
                    self._release_parked(record.key)
                continue
            if max_deliveries is not None and count > max_deliveries:
                self._dead_letter(index, cursor, offset, record, "delivery_limit")
                continue
            if grouped:
                groups[record.key] = groups.get(record.key, 0) + 1
                if group_batches and record.key not in batch_keys:
                    batch_keys.add(record.key)
                    # Its waiting records may come too, in offset order from
                    # the ready heap (they precede any not read yet).
                    self._release_all_parked(record.key)
            attempt = next(attempts)
            counts[offset] = count
            leased[offset] = Lease(owner, deadline, record, attempt)
            if deadline != NEVER:
                heapq.heappush(self._lease_heap, (deadline, attempt, index, offset))
            out.append(Delivery(index, offset, record, count, attempt))
            taken += 1
        if filtered:
            self._settle_many(index, cursor, filtered)
        return moved

    def _accepts(self, accept: RecordFilter, record: Record) -> bool:
        """The filter's verdict; a filter that fails lets the record through
        (a broken filter must not silently drop messages)."""
        try:
            return bool(accept(record))
        except Exception:
            log.exception("filter of %r failed on offset %d; delivered", self, record.offset)
            return True

    def _take_next(self, index: int, cursor: Cursor) -> tuple[int, Record] | None:
        """The lowest requeued record, else the next fresh one from the log."""
        if cursor.ready:
            offset = heapq.heappop(cursor.ready)
            return offset, cursor.requeued.pop(offset)
        record = self._next_fresh(index, cursor)
        return None if record is None else (record.offset, record)

    def _peek(self, index: int, cursor: Cursor) -> Record | None:
        """The record ``_take_next`` would return, left in place."""
        if cursor.ready:
            return cursor.requeued[cursor.ready[0]]
        buffer = cursor.buffer
        settled = cursor.settled
        while True:
            while buffer:
                if buffer[0].offset in settled:
                    buffer.popleft()
                    continue
                return buffer[0]
            if not self._fill(index, cursor):
                return None

    def _next_fresh(self, index: int, cursor: Cursor) -> Record | None:
        buffer = cursor.buffer
        settled = cursor.settled
        while True:
            while buffer:
                record = buffer.popleft()
                if record.offset not in settled:
                    return record
            if not self._fill(index, cursor):
                return None

    def _fill(self, index: int, cursor: Cursor) -> bool:
        """Read the next chunk of the log into the buffer; False at the end."""
        partition = self.topic.partitions[index]
        if cursor.position < partition.log_start_offset:
            self._skip_to(cursor, partition.log_start_offset)
        if cursor.position >= partition.high_watermark:
            return False
        try:
            records = partition.read_records(cursor.position, READ_CHUNK)
        except OffsetOutOfRange:
            self._skip_to(cursor, partition.log_start_offset)
            return False
        if not records:
            return False
        expected = cursor.position
        for record in records:
            # Offsets with no record (control batches, compaction) settle themselves.
            for gap in range(expected, record.offset):
                cursor.settled.add(gap)
            expected = record.offset + 1
        cursor.buffer.extend(records)
        cursor.position = expected
        cursor.advance_floor()
        return True

    def _skip_to(self, cursor: Cursor, offset: int) -> None:
        """Records below ``offset`` are gone from the log (retention)."""
        if offset > cursor.floor:
            for stale in [o for o in cursor.leased if o < offset]:
                lease = cursor.leased.pop(stale)
                if self._owner_watchers:
                    self._lease_ended(lease)
            cursor.settled = {o for o in cursor.settled if o >= offset}
            cursor.counts = {o: c for o, c in cursor.counts.items() if o >= offset}
            cursor.floor = offset
        cursor.position = max(cursor.position, offset)
        cursor.buffer.clear()

    def _expiry(self, record: Record) -> float | None:
        """Wall ms after which ``record`` is expired, if it ever is."""
        ttl = self.config.message_ttl_ms
        due: float | None = None if ttl is None else record.timestamp + ttl
        if record.headers:
            expires = header_int(record, EXPIRES_AT)
            if expires is not None and (due is None or expires < due):
                due = expires
        return due

    def _check(self, record: Record, now_ms: int) -> str | int | None:
        """EXPIRED, the wall ms it is delayed until, or None (deliverable)."""
        ttl = self.config.message_ttl_ms
        if ttl is not None and record.timestamp + ttl <= now_ms:
            return EXPIRED
        due = 0
        delay = self.config.delivery_delay_ms
        if delay:
            due = record.timestamp + delay
        if record.headers:
            expires = header_int(record, EXPIRES_AT)
            if expires is not None and expires <= now_ms:
                return EXPIRED
            deliver_at = header_int(record, DELIVER_AT)
            if deliver_at is not None and deliver_at > due:
                due = deliver_at
        return due if due > now_ms else None

    def _delay(self, cursor: Cursor, offset: int, record: Record, due_ms: int) -> None:
        heapq.heappush(cursor.delayed, (due_ms, offset))
        cursor.delayed_records[offset] = record
        if self._grouped(record):
            # Later records of its group wait for it (order holds across delays).
            groups = self._groups_in_flight
            groups[record.key] = groups.get(record.key, 0) + 1
        self._alarm.arm(self._monotonic_of(due_ms))

    def _release_due_delays(self, cursor: Cursor, now_ms: int) -> bool:
        released = False
        while cursor.delayed and cursor.delayed[0][0] <= now_ms:
            _, offset = heapq.heappop(cursor.delayed)
            record = cursor.delayed_records.pop(offset)
            # Strip the delay so it is not taken for delayed again.
            if record.headers:
                record.headers = [(k, v) for k, v in record.headers if k != DELIVER_AT]
            self._finish_group(record)
            self._requeue(cursor, offset, record)
            released = True
        return released

    def next_due_ms(self) -> float | None:
        """Wall-clock ms when the next delayed record becomes deliverable."""
        dues = [c.delayed[0][0] for c in self.cursors if c.delayed]
        return min(dues) if dues else None

    def _monotonic_of(self, wall_ms: float) -> float:
        clock = self.clock
        return clock.monotonic() + (wall_ms - clock.wall_ms()) / 1000

    # --- settling ---------------------------------------------------------------

    def _lease_for(self, item: TokenLike) -> tuple[int, Cursor, int, Lease] | None:
        """The current lease ``item`` names, or None (stale)."""
        if len(item) == 3:
            index, offset, attempt = item  # type: ignore[misc]
        else:
            index, offset = item  # type: ignore[misc]
            attempt = None
        if not 0 <= index < len(self.cursors):
            return None
        cursor = self.cursors[index]
        lease = cursor.leased.get(offset)
        if lease is None or lease.owner is DEAD_LETTERING:
            return None
        if attempt is not None and lease.attempt != attempt:
            return None
        return index, cursor, offset, lease

    def ack(self, items: Iterable[TokenLike]) -> Settled:
        """Settle leased records. Returns how many were settled (an int) and
        which items were stale (their lease was gone or belongs to a later
        delivery)."""
        done = 0
        stale: list[TokenLike] = []
        touched: dict[int, list[int]] = {}
        cursors = self.cursors
        ncursors = len(cursors)
        ordered = self.config.ordered
        watched = self._owner_watchers
        for item in items:
            if len(item) == 3:
                index, offset, attempt = item  # type: ignore[misc]
            else:
                index, offset = item  # type: ignore[misc]
                attempt = None
            if not 0 <= index < ncursors:
                stale.append(item)
                continue
            cursor = cursors[index]
            lease = cursor.leased.get(offset)
            if (
                lease is None
                or lease.owner is DEAD_LETTERING
                or (attempt is not None and lease.attempt != attempt)
            ):
                stale.append(item)
                continue
            del cursor.leased[offset]
            if watched:
                self._lease_ended(lease)
            if ordered:
                self._finish_group(lease.record)
            cursor.settled.add(offset)
            cursor.counts.pop(offset, None)
            offsets = touched.get(index)
            if offsets is None:
                touched[index] = [offset]
            else:
                offsets.append(offset)
            done += 1
        for index, offsets in touched.items():
            cursors[index].advance_floor()
            if self.store is not None and not self.closed:
                self.store.settled(self, index, offsets)
        if done and ordered:
            self._wake()
        heap = self._lease_heap
        if len(heap) > 4096 and len(heap) > 4 * self.unacked_count():
            self._compact_lease_heap()
        return Settled(done, stale)

    def _compact_lease_heap(self) -> None:
        """Drop heap entries of settled or extended leases (they would stay
        until their deadline: with long leases and many acks, a lot)."""
        heap = []
        for index, cursor in enumerate(self.cursors):
            for offset, lease in cursor.leased.items():
                if lease.deadline != NEVER and lease.owner is not DEAD_LETTERING:
                    heap.append((lease.deadline, lease.attempt, index, offset))
        heapq.heapify(heap)
        self._lease_heap = heap

    def nack(
        self, items: Iterable[TokenLike], *, requeue: bool = True, delay_ms: int | None = None
    ) -> Settled:
        """Give records back: requeue (after ``delay_ms``; None: after the
        config's ``redelivery_delay`` for each record's delivery count, or at
        once without one) or, with ``requeue=False``, dead-letter them with
        reason 'rejected'."""
        done = 0
        stale: list[TokenLike] = []
        now_ms = self.clock.wall_ms()
        backoff = self.config.redelivery_delay if delay_ms is None else None
        following = self.config.requeue_following and self.config.ordered
        given_back: list[tuple[int, Cursor, int, bytes | None]] = []
        for item in items:
            found = self._lease_for(item)
            if found is None:
                stale.append(item)
                continue
            index, cursor, offset, lease = found
            if following and self._grouped(lease.record):
                given_back.append((index, cursor, offset, lease.record.key))
            del cursor.leased[offset]
            if self._owner_watchers:
                self._lease_ended(lease)
            self._finish_group(lease.record)
            done += 1
            delay = delay_ms or 0
            if backoff is not None:
                delay = self._backoff(backoff, cursor.counts.get(offset, 1))
            if not requeue:
                self._dead_letter(index, cursor, offset, lease.record, "rejected")
            elif delay > 0:
                self._delay(cursor, offset, lease.record, now_ms + delay)
            else:
                self._requeue(cursor, offset, lease.record)
        if given_back:
            self._give_back_following(given_back)
        if done:
            self._heads_changed()
            self._wake()
        return Settled(done, stale)

    def _give_back_following(self, nacked: list[tuple[int, Cursor, int, bytes | None]]) -> None:
        """``requeue_following``: the later leased records of each nacked key
        go back too (at once: their key waits for the nacked one anyway)."""
        tokens = []
        for index, cursor, offset, key in nacked:
            for later, lease in cursor.leased.items():
                if later > offset and lease.record.key == key and lease.owner is not DEAD_LETTERING:
                    tokens.append((index, later, lease.attempt))
        if tokens:
            self.nack(tokens, delay_ms=0)

    def _backoff(self, backoff: Callable[[int], int], count: int) -> int:
        """The hook's delay; a hook that fails redelivers at once (a broken
        policy must not hold messages back forever)."""
        try:
            return max(0, int(backoff(count)))
        except Exception:
            log.exception("redelivery delay of %r failed; redelivered at once", self)
            return 0

    async def durable(self) -> None:
        """Wait until the progress made so far (acks above all) is on disk, so
        a crash cannot undo it. Without a store there is nothing to wait for."""
        if self.store is not None and not self.closed:
            await self.store.sync()

    def extend(self, items: Iterable[TokenLike], lease_ms: int) -> Settled:
        """Move the deadline of leases to ``lease_ms`` from now
        (modifyAckDeadline / ChangeMessageVisibility); 0 gives them back now."""
        deadline = self.clock.monotonic() + max(0, lease_ms) / 1000
        done = 0
        stale: list[TokenLike] = []
        for item in items:
            found = self._lease_for(item)
            if found is None:
                stale.append(item)
                continue
            index, _cursor, offset, lease = found
            lease.deadline = deadline
            heapq.heappush(self._lease_heap, (deadline, lease.attempt, index, offset))
            done += 1
        if done:
            if lease_ms <= 0:
                self.expire_leases()
            else:
                self._alarm.arm(deadline)
        return Settled(done, stale)

    def release(self, owner: object) -> int:
        """Requeue everything ``owner`` holds (its channel or connection
        closed), at once: the consumer went away, the records did not fail."""
        return int(self.nack(self.leases_of(owner), requeue=True, delay_ms=0))

    def expire_leases(self) -> int:
        """Requeue leases past their deadline (after the config's
        ``redelivery_delay``, if any); returns how many."""
        now = self.clock.monotonic()
        heap = self._lease_heap
        expired = []
        cursors = self.cursors
        while heap and heap[0][0] <= now:
            deadline, attempt, index, offset = heapq.heappop(heap)
            lease = cursors[index].leased.get(offset)
            if lease is not None and lease.attempt == attempt and lease.deadline == deadline:
                expired.append(DeliveryToken(index, offset, attempt))
        return int(self.nack(expired, requeue=True)) if expired else 0

    def next_lease_deadline(self) -> float | None:
        return self._lease_heap[0][0] if self._lease_heap else None

    def purge(self) -> int:
        """Settle every record that is not leased; returns how many."""
        self.sync_partitions()
        count = 0
        for index, cursor in enumerate(self.cursors):
            partition = self.topic.partitions[index]
            end = partition.high_watermark
            offsets = [
                o
                for o in range(cursor.floor, end)
                if o not in cursor.settled and o not in cursor.leased
            ]
            cursor.settled.update(offsets)
            for offset in offsets:
                cursor.counts.pop(offset, None)
            for record in cursor.delayed_records.values():
                self._finish_group(record)
            cursor.ready.clear()
            cursor.requeued.clear()
            cursor.delayed.clear()
            cursor.delayed_records.clear()
            cursor.parked.clear()
            cursor.parked_records.clear()
            cursor.buffer.clear()
            cursor.position = max(cursor.position, end)
            cursor.advance_floor()
            if offsets and self.store is not None:
                self.store.settled(self, index, offsets)
            count += len(offsets)
        self._heads_changed()
        return count

    def drop_head(self, count: int, reason: str = "maxlen") -> int:
        """Dead-letter (or drop) the ``count`` oldest ready records: overflow of a length limit."""
        dropped = 0
        for index, cursor in enumerate(self.cursors):
            while dropped < count:
                item = self._take_next(index, cursor)
                if item is None:
                    break
                self._dead_letter(index, cursor, item[0], item[1], reason)
                dropped += 1
        if dropped:
            self._heads_changed()
        return dropped

    def expire_head(self) -> int:
        """Dead-letter records at the head of each partition whose TTL has
        passed, even with no consumer pulling (RabbitMQ expires at the head).
        Runs by itself on the subscription's timer; callable for tests."""
        now_ms = self.clock.wall_ms()
        expired = 0
        for index, cursor in enumerate(self.cursors):
            n, due = self._expire_head(index, cursor, now_ms)
            expired += n
            self._head_due[index] = due
            if due != _EMPTY and due != NEVER:
                self._alarm.arm(self._monotonic_of(due))
        return expired

    def _expire_head(self, index: int, cursor: Cursor, now_ms: int) -> tuple[int, float]:
        """Dead-letter the expired head records of one partition; returns how
        many and the wall ms the new head expires (NEVER, or _EMPTY)."""
        expired = 0
        while True:
            record = self._peek(index, cursor)
            if record is None:
                return expired, _EMPTY
            due = self._expiry(record)
            if due is None:
                return expired, NEVER
            if due > now_ms:
                return expired, due
            offset, record = self._take_next(index, cursor)  # type: ignore[misc]
            self._dead_letter(index, cursor, offset, record, EXPIRED)
            expired += 1

    def _requeue(self, cursor: Cursor, offset: int, record: Record) -> None:
        heapq.heappush(cursor.ready, offset)
        cursor.requeued[offset] = record

    def _park(self, cursor: Cursor, offset: int, record: Record) -> None:
        """Its group has a record in flight: wait aside, off the ready heap
        (so a long blocked group is not scanned again on every pull)."""
        heap = cursor.parked.get(record.key)
        if heap is None:
            cursor.parked[record.key] = [offset]
        else:
            heapq.heappush(heap, offset)
        cursor.parked_records[offset] = record

    def _finish_group(self, record: Record) -> None:
        """The group's record in flight is done: its next record may go."""
        if not self._grouped(record):
            return
        groups = self._groups_in_flight
        left = groups.get(record.key, 0) - 1
        if left > 0:
            groups[record.key] = left
            return
        groups.pop(record.key, None)
        self._release_parked(record.key)

    def _grouped(self, record: Record) -> bool:
        """Whether ``record`` waits for its key's record in flight."""
        config = self.config
        return config.ordered and (config.order_unkeyed or record.key is not None)

    def _release_all_parked(self, key: bytes | None) -> None:
        """Put every parked record of group ``key`` back on its ready heap."""
        for cursor in self.cursors:
            heap = cursor.parked.pop(key, None)
            if heap:
                for offset in heap:
                    self._requeue(cursor, offset, cursor.parked_records.pop(offset))

    def _release_parked(self, key: bytes | None) -> None:
        """Put the lowest parked record of group ``key`` back on its ready heap."""
        for cursor in self.cursors:
            heap = cursor.parked.get(key)
            if heap:
                offset = heapq.heappop(heap)
                if not heap:
                    del cursor.parked[key]
                self._requeue(cursor, offset, cursor.parked_records.pop(offset))

    def _dead_letter(
        self, index: int, cursor: Cursor, offset: int, record: Record, reason: str
    ) -> None:
        """Hand a record to the dead-letter handler and settle it once the
        handler has stored it elsewhere (so a crash in between redelivers
        rather than loses it); without a handler, just settle it."""
        if self._grouped(record) and record.key not in self._groups_in_flight:
            self._release_parked(record.key)  # it will not be delivered: the next one may
        if self.on_dead_letter is None:
            self._settle_many(index, cursor, [offset])
            return
        cursor.leased[offset] = Lease(DEAD_LETTERING, NEVER, record)
        handler = self.on_dead_letter

        async def move() -> None:
            try:
                await handler(record, reason)
            except DeadLetterDeferred as deferred:
                lease = cursor.leased.get(offset)
                if lease is not None and lease.owner is DEAD_LETTERING and not self.closed:
                    del cursor.leased[offset]
                    self._delay(cursor, offset, record, self.clock.wall_ms() + deferred.retry_ms)
                return
            except Exception:
                log.exception(
                    "dead-lettering %s-%d of %r failed; dropped", self.topic.name, index, self
                )
            lease = cursor.leased.get(offset)
            if lease is not None and lease.owner is DEAD_LETTERING:
                del cursor.leased[offset]
                self._settle_many(index, cursor, [offset])

        task = asyncio.get_running_loop().create_task(move())
        self._dead_letter_tasks.add(task)
        task.add_done_callback(self._dead_letter_tasks.discard)

    def _settle_many(self, index: int, cursor: Cursor, offsets: list[int]) -> None:
        cursor.settled.update(offsets)
        for offset in offsets:
            cursor.counts.pop(offset, None)
        cursor.advance_floor()
        if self.store is not None and not self.closed:
            self.store.settled(self, index, offsets)

    # --- seeking ----------------------------------------------------------------

    def seek(self, positions: Mapping[int, int] | int) -> None:
        """Move to ``positions`` (an offset for every partition, or a map
        partition -> offset): records before it are settled, records from it
        on are deliverable again. Leases end; their tokens go stale."""
        self.sync_partitions()
        if isinstance(positions, int):
            positions = dict.fromkeys(range(len(self.cursors)), positions)
        for index, offset in positions.items():
            if not 0 <= index < len(self.cursors):
                raise UnknownPartition(f"{self.topic.name} has no partition {index}")
            partition = self.topic.partitions[index]
            offset = min(max(offset, partition.log_start_offset), partition.high_watermark)
            self.cursors[index].reset(offset)
        self._after_seek()

    def seek_to_time(self, timestamp_ms: int, *, keep_settled: bool = False) -> None:
        """Move to the first record stamped at or after ``timestamp_ms`` in
        every partition (records published before it count as settled).
        ``keep_settled``: records settled now stay settled (a Pub/Sub
        subscription that does not retain acked messages replays none)."""
        self.sync_partitions()
        positions = {}
        for index, partition in enumerate(self.topic.partitions[: len(self.cursors)]):
            found = partition.offset_for_timestamp(timestamp_ms)
            positions[index] = partition.high_watermark if found is None else found.offset
        if not keep_settled:
            self.seek(positions)
            return
        for index, offset in positions.items():
            partition = self.topic.partitions[index]
            offset = min(max(offset, partition.log_start_offset), partition.high_watermark)
            cursor = self.cursors[index]
            cursor.reset(max(offset, cursor.floor), set(cursor.settled))
        self._after_seek()

    def snapshot(self, name: str) -> None:
        """Save this subscription's progress as ``name``: what is unsettled
        now (leased or not) is unsettled again after ``seek_to_snapshot``."""
        from dovecote.core.substate import SavedCursor, SavedSnapshot

        self.sync_partitions()
        snapshot = SavedSnapshot(
            self.id,
            self.topic.name,
            self.clock.wall_ms(),
            {i: SavedCursor(c.floor, set(c.settled)) for i, c in enumerate(self.cursors)},
        )
        if self.store is not None:
            self.store.save_snapshot(name, snapshot)
        else:
            self._local_snapshots[name] = snapshot

    def seek_to_snapshot(self, name: str) -> None:
        """Restore the progress saved by ``snapshot(name)`` (of this or another
        subscription of the same topic)."""
        snapshot = (
            self.store.snapshots.get(name)
            if self.store is not None
            else self._local_snapshots.get(name)
        )
        if snapshot is None or snapshot.topic != self.topic.name:  # type: ignore[attr-defined]
            raise UnknownSnapshot(f"no snapshot {name!r} of topic {self.topic.name!r}")
        self.sync_partitions()
        for index, cursor in enumerate(self.cursors):
            saved = snapshot.cursors.get(index)  # type: ignore[attr-defined]
            partition = self.topic.partitions[index]
            floor = partition.log_start_offset if saved is None else saved.floor
            floor = min(max(floor, partition.log_start_offset), partition.high_watermark)
            cursor.reset(floor, () if saved is None else saved.settled)
        self._after_seek()

    def _after_seek(self) -> None:
        for callback in list(self._owner_watchers.values()):
            callback(None)
        self._groups_in_flight.clear()
        self._lease_heap.clear()
        if self.store is not None and not self.closed:
            from dovecote.core.substate import SavedCursor

            self.store.reset(
                self,
                {
                    i: SavedCursor(c.floor, set(c.settled), dict(c.counts))
                    for i, c in enumerate(self.cursors)
                },
            )
        self._heads_changed()
        self._wake()

    # --- timers -----------------------------------------------------------------

    def _heads_changed(self, indexes: Iterable[int] | None = None) -> None:
        """The head of these partitions (default: all) may have changed: look
        again this loop turn."""
        head_due = self._head_due
        for index in range(len(head_due)) if indexes is None else indexes:
            head_due[index] = None
        if self._head_check_scheduled or self.closed:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # made outside a loop: timers start at the first pull or wait
        self._timers_started = True
        self._head_check_scheduled = True
        loop.call_soon(self._check_heads)

    def _check_heads(self) -> None:
        """Expire due heads and arm the alarm for the next head expiry."""
        self._head_check_scheduled = False
        if self.closed:
            return
        self.sync_partitions()
        now_ms = self.clock.wall_ms()
        for index, cursor in enumerate(self.cursors):
            due = self._head_due[index]
            if due is None:
                _, due = self._expire_head(index, cursor, now_ms)
                self._head_due[index] = due
            if due == _EMPTY:
                self._watch(index)
            elif due != NEVER:
                self._alarm.arm(self._monotonic_of(due))

    def _watch(self, index: int) -> None:
        """Learn of the next append to partition ``index``: its head was empty.
        (A partition with a head needs no watcher: appends go behind it.)"""
        if index in self._append_watchers:
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        future.add_done_callback(lambda f, i=index: self._on_append(i, f))
        self._append_watchers[index] = future
        self.topic.partitions[index].watch(future)

    def _on_append(self, index: int, future: asyncio.Future[None]) -> None:
        if self._append_watchers.get(index) is future:
            del self._append_watchers[index]
        if self.closed or future.cancelled():
            return
        if self._head_due[index] == _EMPTY:
            self._head_due[index] = None
            if not self._head_check_scheduled:
                self._head_check_scheduled = True
                asyncio.get_running_loop().call_soon(self._check_heads)

    def _on_alarm(self) -> None:
        """Something is due: leases, delays or a head's TTL. Re-arm for the next."""
        if self.closed:
            return
        self.expire_leases()
        now_ms = self.clock.wall_ms()
        released = False
        for cursor in self.cursors:
            if cursor.delayed and cursor.delayed[0][0] <= now_ms:
                released = self._release_due_delays(cursor, now_ms) or released
        if released:
            self._heads_changed()
            self._wake()
        for index, due in enumerate(self._head_due):
            if due is not None and due != _EMPTY and due <= now_ms:
                self._head_due[index] = None
        self._check_heads()
        self._rearm()

    def _rearm(self) -> None:
        heap = self._lease_heap
        cursors = self.cursors
        while heap:
            deadline, attempt, index, offset = heap[0]
            lease = cursors[index].leased.get(offset)
            if lease is not None and lease.attempt == attempt and lease.deadline == deadline:
                self._alarm.arm(deadline)
                break
            heapq.heappop(heap)
        due = self.next_due_ms()
        if due is not None:
            self._alarm.arm(self._monotonic_of(due))

    def config_changed(self) -> None:
        """``config`` was replaced: heads and waiters look again under it."""
        self._heads_changed()
        self._wake()

    # --- waiting ----------------------------------------------------------------

    def _wake(self) -> None:
        for future in self._waiters:
            if not future.done():
                future.set_result(None)
        self._waiters.clear()

    async def wait(self, timeout: float) -> bool:
        """Sleep until records may be deliverable (new data, requeues, ended
        delays, expired leases) or ``timeout`` seconds pass on the clock.
        Returns False on timeout."""
        loop = asyncio.get_running_loop()
        if not self._timers_started:
            self._heads_changed()
        future: asyncio.Future[object] = loop.create_future()
        self._waiters.add(future)
        partitions: list[Partition] = list(self.topic.partitions)
        for partition in partitions:
            partition.watch(future)

        def timed_out() -> None:
            if not future.done():
                future.set_result(_TIMED_OUT)

        timer = self.clock.call_at(self.clock.monotonic() + timeout, timed_out)
        try:
            return (await future) is not _TIMED_OUT
        finally:
            timer.cancel()
            if not future.done():
                future.cancel()
            self._waiters.discard(future)
            for partition in partitions:
                partition.unwatch(future)

    def on_close(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call ``callback`` when the subscription closes (its queue was deleted):
        how a consumer that is not waiting for data learns it is gone. Returns
        a function that unregisters it."""
        self._close_callbacks.append(callback)

        def remove() -> None:
            with contextlib.suppress(ValueError):
                self._close_callbacks.remove(callback)

        return remove

    def close(self) -> None:
        """Stop delivering; progress made after this is not saved (a queue
        deleted while consumers still held leases must not leave state behind
        for a new queue of the same name)."""
        self.closed = True
        self._alarm.cancel()
        for index, future in self._append_watchers.items():
            if index < len(self.topic.partitions):
                self.topic.partitions[index].unwatch(future)
            future.cancel()
        self._append_watchers.clear()
        self._wake()
        callbacks, self._close_callbacks = self._close_callbacks, []
        for callback in callbacks:
            try:
                callback()
            except Exception:
                log.exception("close callback of %r failed", self)

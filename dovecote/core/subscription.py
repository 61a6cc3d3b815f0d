"""Queue semantics on a log: competing consumers with per-record leases.

A subscription is a cursor over every partition of a topic. Records below a
partition's *floor* are settled (acknowledged, dead-lettered or expired);
between the floor and the *read position* each record is either settled out
of order, leased to a consumer, or ready to be delivered again. Records at and
after the read position are read from the log in chunks and delivered in
order. So a queue is never copied: it is a topic plus this bookkeeping, and
the same topic can still be read as a stream.

- ``pull`` leases up to N ready records to an owner (a channel, an SQS
  receiver), redeliveries first in offset order (requeued messages keep their
  place, as RabbitMQ does), then fresh records; priority subscriptions take
  from the highest partition first.
- ``ack`` settles; ``nack`` requeues, delays or dead-letters; a lease that
  passes its deadline is requeued by ``expire_leases``; ``release`` requeues
  everything an owner held (its connection went away).
- Delivery counts decide the redelivered flag and the delivery limit; TTL and
  the delivery limit send records to the dead-letter callback with a reason.
- With ``ordered`` only one record per key is in flight at a time (SQS FIFO
  message groups, Pub/Sub ordering keys).

Progress is made durable by :class:`~dovecote.core.substate.SubscriptionStore`:
every change is logged as ranges of delivered and settled offsets, coalesced
per loop turn, so the cost is per burst, not per record.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from dovecote.core.topic import Partition, Topic
from dovecote.storage.batch import Record
from dovecote.storage.log import OffsetOutOfRange

if TYPE_CHECKING:
    from dovecote.core.substate import SubscriptionStore

log = logging.getLogger(__name__)

# Record headers the core itself interprets (adapters write them at publish).
EXPIRES_AT = "dovecote.expires-at"  # absolute ms: drop or dead-letter after this
DELIVER_AT = "dovecote.deliver-at"  # absolute ms: not deliverable before this

READ_CHUNK = 256 * 1024
NEVER = float("inf")
DEAD_LETTERING = object()  # lease owner while a record is moved to its dead-letter target

DeadLetterHandler = Callable[[Record, str], Awaitable[None]]


def header_int(record: Record, name: str) -> int | None:
    for key, value in record.headers:
        if key == name and value is not None:
            try:
                return int(value)
            except ValueError:
                return None
    return None


@dataclass(slots=True)
class SubscriptionConfig:
    lease_ms: int | None = None  # default lease; None = held until acked or released
    max_deliveries: int | None = None  # dead-letter instead of delivering more often
    message_ttl_ms: int | None = None  # per-subscription TTL from the record timestamp
    ordered: bool = False  # one in flight per record key
    priority: bool = False  # partitions are priority levels, highest index first


@dataclass(slots=True)
class Lease:
    owner: object
    deadline: float  # monotonic seconds; inf = until released
    record: Record


@dataclass(slots=True)
class Delivery:
    partition: int
    offset: int
    record: Record
    count: int  # 1 on first delivery

    @property
    def redelivered(self) -> bool:
        return self.count > 1


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

    def advance_floor(self) -> None:
        settled = self.settled
        floor = self.floor
        while floor in settled:
            settled.discard(floor)
            floor += 1
        self.floor = floor


class Subscription:
    def __init__(
        self,
        sub_id: str,
        topic: Topic,
        config: SubscriptionConfig | None = None,
        store: SubscriptionStore | None = None,
        on_dead_letter: DeadLetterHandler | None = None,
    ) -> None:
        self.id = sub_id
        self.topic = topic
        self.config = config or SubscriptionConfig()
        self.store = store
        self.on_dead_letter = on_dead_letter
        self.cursors: list[Cursor] = []
        self._lease_heap: list[
            tuple[float, int, int, int]
        ] = []  # deadline, serial, partition, offset
        self._serial = itertools.count()
        self._waiters: set[asyncio.Future[None]] = set()
        self._groups_in_flight: set[bytes | None] = set()
        self._rr = 0
        self._dead_letter_tasks: set[asyncio.Task[None]] = set()
        self._close_callbacks: list[Callable[[], None]] = []
        self.closed = False
        self.sync_partitions()
        if store is not None:
            store.restore(self)

    def __repr__(self) -> str:
        return f"<Subscription {self.id} on {self.topic.name}>"

    def sync_partitions(self) -> None:
        """Track partitions added to the topic since the subscription was made."""
        while len(self.cursors) < len(self.topic.partitions):
            start = self.topic.partitions[len(self.cursors)].log_start_offset
            self.cursors.append(Cursor(floor=start, position=start))

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

    def leases_of(self, owner: object) -> list[tuple[int, int]]:
        return [
            (index, offset)
            for index, cursor in enumerate(self.cursors)
            for offset, lease in cursor.leased.items()
            if lease.owner is owner
        ]

    # --- delivering ------------------------------------------------------------

    def pull(self, max_records: int, owner: object, lease_ms: int | None = None) -> list[Delivery]:
        """Lease up to ``max_records`` ready records to ``owner``."""
        if self.closed or max_records <= 0:
            return []
        self.sync_partitions()
        if self._lease_heap:
            self.expire_leases()
        lease_ms = self.config.lease_ms if lease_ms is None else lease_ms
        deadline = NEVER if lease_ms is None else time.monotonic() + lease_ms / 1000
        now_ms = int(time.time() * 1000)
        out: list[Delivery] = []
        order = self._partition_order()
        for index in order:
            if len(out) >= max_records:
                break
            self._pull_partition(index, max_records - len(out), owner, deadline, now_ms, out)
        if out and self.store is not None:
            self.store.delivered(self, out)
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
    ) -> None:
        cursor = self.cursors[index]
        self._release_due_delays(cursor, now_ms)
        skipped: list[tuple[int, Record]] = []  # blocked by their group; put back after
        taken = 0
        while taken < limit:
            item = self._take_next(index, cursor)
            if item is None:
                break
            offset, record = item
            verdict = self._check(record, now_ms)
            if verdict is not None:
                if verdict == "delayed":
                    due = header_int(record, DELIVER_AT) or now_ms
                    heapq.heappush(cursor.delayed, (due, offset))
                    cursor.delayed_records[offset] = record
                else:
                    self._dead_letter(index, cursor, offset, record, verdict)
                continue
            count = cursor.counts.get(offset, 0) + 1
            limit_ = self.config.max_deliveries
            if limit_ is not None and count > limit_:
                self._dead_letter(index, cursor, offset, record, "delivery_limit")
                continue
            if self.config.ordered:
                group = record.key
                if group in self._groups_in_flight:
                    skipped.append((offset, record))
                    continue
                self._groups_in_flight.add(group)
            cursor.counts[offset] = count
            cursor.leased[offset] = Lease(owner, deadline, record)
            if deadline != NEVER:
                heapq.heappush(self._lease_heap, (deadline, next(self._serial), index, offset))
            out.append(Delivery(index, offset, record, count))
            taken += 1
        for offset, record in skipped:
            self._requeue(cursor, offset, record)

    def _take_next(self, index: int, cursor: Cursor) -> tuple[int, Record] | None:
        """The lowest requeued record, else the next fresh one from the log."""
        if cursor.ready:
            offset = heapq.heappop(cursor.ready)
            return offset, cursor.requeued.pop(offset)
        record = self._next_fresh(index, cursor)
        return None if record is None else (record.offset, record)

    def _next_fresh(self, index: int, cursor: Cursor) -> Record | None:
        if not cursor.buffer:
            partition = self.topic.partitions[index]
            if cursor.position < partition.log_start_offset:
                self._skip_to(cursor, partition.log_start_offset)
            if cursor.position >= partition.high_watermark:
                return None
            try:
                records = partition.read_records(cursor.position, READ_CHUNK)
            except OffsetOutOfRange:
                self._skip_to(cursor, partition.log_start_offset)
                return None
            expected = cursor.position
            for record in records:
                # Offsets with no record (control batches, compaction) settle themselves.
                for gap in range(expected, record.offset):
                    cursor.settled.add(gap)
                expected = record.offset + 1
            if records:
                cursor.buffer.extend(records)
                cursor.position = expected
                cursor.advance_floor()
            else:
                return None
        while cursor.buffer:
            record = cursor.buffer.popleft()
            if record.offset not in cursor.settled:
                return record
        return None

    def _skip_to(self, cursor: Cursor, offset: int) -> None:
        """Records below ``offset`` are gone from the log (retention)."""
        if offset > cursor.floor:
            for stale in [o for o in cursor.leased if o < offset]:
                del cursor.leased[stale]
            cursor.settled = {o for o in cursor.settled if o >= offset}
            cursor.counts = {o: c for o, c in cursor.counts.items() if o >= offset}
            cursor.floor = offset
        cursor.position = max(cursor.position, offset)
        cursor.buffer.clear()

    def _check(self, record: Record, now_ms: int) -> str | None:
        """'expired', 'delayed' or None (deliverable)."""
        ttl = self.config.message_ttl_ms
        if ttl is not None and record.timestamp + ttl <= now_ms:
            return "expired"
        if record.headers:
            expires = header_int(record, EXPIRES_AT)
            if expires is not None and expires <= now_ms:
                return "expired"
            due = header_int(record, DELIVER_AT)
            if due is not None and due > now_ms:
                return "delayed"
        return None

    def _release_due_delays(self, cursor: Cursor, now_ms: int) -> None:
        while cursor.delayed and cursor.delayed[0][0] <= now_ms:
            _, offset = heapq.heappop(cursor.delayed)
            record = cursor.delayed_records.pop(offset)
            # Strip the delay so it is not taken for delayed again.
            record.headers = [(k, v) for k, v in record.headers if k != DELIVER_AT]
            self._requeue(cursor, offset, record)

    def next_due_ms(self) -> float | None:
        """Wall-clock ms when the next delayed record becomes deliverable."""
        dues = [c.delayed[0][0] for c in self.cursors if c.delayed]
        return min(dues) if dues else None

    # --- settling ---------------------------------------------------------------

    def ack(self, items: Iterable[tuple[int, int]]) -> int:
        """Settle leased records; returns how many were leased."""
        done = 0
        touched: dict[int, list[int]] = {}
        for index, offset in items:
            cursor = self.cursors[index]
            lease = cursor.leased.pop(offset, None)
            if lease is None:
                continue
            self._finish_group(lease.record)
            cursor.settled.add(offset)
            cursor.counts.pop(offset, None)
            touched.setdefault(index, []).append(offset)
            done += 1
        for index, offsets in touched.items():
            self.cursors[index].advance_floor()
            if self.store is not None and not self.closed:
                self.store.settled(self, index, offsets)
        if done and self.config.ordered:
            self._wake()
        return done

    def nack(
        self, items: Iterable[tuple[int, int]], *, requeue: bool = True, delay_ms: int = 0
    ) -> int:
        """Give records back: requeue (optionally after ``delay_ms``) or, with
        ``requeue=False``, dead-letter them with reason 'rejected'."""
        done = 0
        now_ms = int(time.time() * 1000)
        for index, offset in items:
            cursor = self.cursors[index]
            lease = cursor.leased.pop(offset, None)
            if lease is None:
                continue
            self._finish_group(lease.record)
            done += 1
            if not requeue:
                self._dead_letter(index, cursor, offset, lease.record, "rejected")
            elif delay_ms > 0:
                heapq.heappush(cursor.delayed, (now_ms + delay_ms, offset))
                cursor.delayed_records[offset] = lease.record
            else:
                self._requeue(cursor, offset, lease.record)
        if done:
            self._wake()
        return done

    def extend(self, items: Iterable[tuple[int, int]], lease_ms: int) -> int:
        """Move the deadline of leases (modifyAckDeadline / ChangeMessageVisibility)."""
        deadline = time.monotonic() + lease_ms / 1000
        done = 0
        for index, offset in items:
            lease = self.cursors[index].leased.get(offset)
            if lease is None:
                continue
            lease.deadline = deadline
            heapq.heappush(self._lease_heap, (deadline, next(self._serial), index, offset))
            done += 1
        return done

    def release(self, owner: object) -> int:
        """Requeue everything ``owner`` holds (its channel or connection closed)."""
        items = self.leases_of(owner)
        return self.nack(items, requeue=True)

    def expire_leases(self) -> int:
        """Requeue leases past their deadline; returns how many."""
        now = time.monotonic()
        heap = self._lease_heap
        expired = []
        while heap and heap[0][0] <= now:
            deadline, _, index, offset = heapq.heappop(heap)
            lease = self.cursors[index].leased.get(offset)
            if lease is not None and lease.deadline == deadline:
                expired.append((index, offset))
        return self.nack(expired, requeue=True) if expired else 0

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
            cursor.ready.clear()
            cursor.requeued.clear()
            cursor.delayed.clear()
            cursor.delayed_records.clear()
            cursor.buffer.clear()
            cursor.position = max(cursor.position, end)
            cursor.advance_floor()
            if offsets and self.store is not None:
                self.store.settled(self, index, offsets)
            count += len(offsets)
        return count

    def drop_head(self, count: int, reason: str = "maxlen") -> int:
        """Dead-letter (or drop) the ``count`` oldest ready records: max-length overflow."""
        dropped = 0
        for index, cursor in enumerate(self.cursors):
            while dropped < count:
                item = self._take_next(index, cursor)
                if item is None:
                    break
                self._dead_letter(index, cursor, item[0], item[1], reason)
                dropped += 1
        return dropped

    def expire_head(self) -> int:
        """Dead-letter records at the head of each partition whose TTL has
        passed, even with no consumer pulling (RabbitMQ expires at the head)."""
        now_ms = int(time.time() * 1000)
        expired = 0
        for index, cursor in enumerate(self.cursors):
            while True:
                from_ready = bool(cursor.ready)
                item = self._take_next(index, cursor)
                if item is None:
                    break
                offset, record = item
                if self._check(record, now_ms) == "expired":
                    self._dead_letter(index, cursor, offset, record, "expired")
                    expired += 1
                    continue
                # Not expired: put it back where it was taken from.
                if from_ready:
                    self._requeue(cursor, offset, record)
                else:
                    cursor.buffer.appendleft(record)
                break
        return expired

    def _requeue(self, cursor: Cursor, offset: int, record: Record) -> None:
        heapq.heappush(cursor.ready, offset)
        cursor.requeued[offset] = record

    def _finish_group(self, record: Record) -> None:
        if self.config.ordered:
            self._groups_in_flight.discard(record.key)

    def _dead_letter(
        self, index: int, cursor: Cursor, offset: int, record: Record, reason: str
    ) -> None:
        """Hand a record to the dead-letter handler and settle it once the
        handler has stored it elsewhere (so a crash in between redelivers
        rather than loses it); without a handler, just settle it."""
        if self.on_dead_letter is None:
            self._settle(index, cursor, offset)
            return
        cursor.leased[offset] = Lease(DEAD_LETTERING, NEVER, record)
        handler = self.on_dead_letter

        async def move() -> None:
            try:
                await handler(record, reason)
            except Exception:
                log.exception(
                    "dead-lettering %s-%d of %r failed; dropped", self.topic.name, index, self
                )
            if (
                cursor.leased.get(offset) is not None
                and cursor.leased[offset].owner is DEAD_LETTERING
            ):
                del cursor.leased[offset]
                self._settle(index, cursor, offset)

        task = asyncio.get_running_loop().create_task(move())
        self._dead_letter_tasks.add(task)
        task.add_done_callback(self._dead_letter_tasks.discard)

    def _settle(self, index: int, cursor: Cursor, offset: int) -> None:
        cursor.settled.add(offset)
        cursor.counts.pop(offset, None)
        cursor.advance_floor()
        if self.store is not None and not self.closed:
            self.store.settled(self, index, [offset])

    # --- waiting ----------------------------------------------------------------

    def _wake(self) -> None:
        for future in self._waiters:
            if not future.done():
                future.set_result(None)
        self._waiters.clear()

    async def wait(self, timeout: float) -> bool:
        """Sleep until records may be deliverable (new data, requeues, due
        delays, expired leases) or ``timeout`` seconds pass."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        self._waiters.add(future)
        partitions: list[Partition] = list(self.topic.partitions)
        for partition in partitions:
            partition._watchers.add(future)
        wake_at = [timeout]
        due = self.next_due_ms()
        if due is not None:
            wake_at.append(max(0.0, (due - time.time() * 1000) / 1000))
        deadline = self.next_lease_deadline()
        if deadline is not None:
            wake_at.append(max(0.0, deadline - time.monotonic()))
        try:
            done, _ = await asyncio.wait({future}, timeout=min(wake_at))
            if not done:
                self.expire_leases()
            return bool(done)
        finally:
            if not future.done():
                future.cancel()
            self._waiters.discard(future)
            for partition in partitions:
                partition._watchers.discard(future)

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
        self._wake()
        callbacks, self._close_callbacks = self._close_callbacks, []
        for callback in callbacks:
            try:
                callback()
            except Exception:
                log.exception("close callback of %r failed", self)

"""A reader of a topic with no leases: how a consumer reads a stream queue.

A stream queue keeps its records after they are consumed (its topic has no
``retention.acked``), so each of its consumers is a private position in the
log rather than a share of a subscription's leases. :class:`StreamCursor`
gives the push :class:`~dovecote.core.delivery.Dispatcher` the same face as a
:class:`~dovecote.core.subscription.Subscription` (``pull``, ``ack``,
``wait``, ``on_close``): settling does nothing but return credit, and it
closes with the queue's subscription.

Where to start is neutral: :data:`FIRST`, :data:`LAST` (the last record
stored), :data:`NEXT` (only what arrives from now), an offset, or a
timestamp (:class:`AtTime`, milliseconds).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from dovecote.core.subscription import Subscription
from dovecote.core.subscription_state import Delivery
from dovecote.core.topic import Partition
from dovecote.storage.batch import Record
from dovecote.storage.log import OffsetOutOfRange

READ_CHUNK = 256 * 1024

FIRST = "first"
LAST = "last"
NEXT = "next"


@dataclass(frozen=True, slots=True)
class AtTime:
    """Start at the first record stored at or after ``ms`` (epoch milliseconds)."""

    ms: int


StartAt = str | int | AtTime  # FIRST / LAST / NEXT, an offset, or AtTime


def resolve_start(partition: Partition, start: StartAt) -> int:
    """The offset a cursor starting at ``start`` reads first, within the
    visible log (from its start to the high watermark)."""
    low, high = partition.log_start_offset, partition.high_watermark
    if start == FIRST:
        return low
    if start == NEXT:
        return high
    if start == LAST:
        return max(low, high - 1)
    if isinstance(start, AtTime):
        found = partition.offset_for_timestamp(start.ms)
        return high if found is None else max(found.offset, low)
    if isinstance(start, int) and not isinstance(start, bool):
        return min(max(start, low), high)
    raise ValueError(f"unknown start position {start!r}")


class StreamCursor:
    """One consumer's position in a single-partition stream queue."""

    __slots__ = ("_buffer", "parent", "partition", "position")

    def __init__(self, parent: Subscription, start: StartAt) -> None:
        self.parent = parent
        self.partition = parent.topic.partitions[0]
        self.position = resolve_start(self.partition, start)
        self._buffer: list[Record] = []

    def __repr__(self) -> str:
        return f"<StreamCursor {self.parent.topic.name}@{self.position}>"

    @property
    def closed(self) -> bool:
        return self.parent.closed

    def pull(self, max_records: int, owner: object = None) -> list[Delivery]:
        """The next ``max_records`` records (or fewer); nothing is leased."""
        if self.closed or max_records <= 0:
            return []
        partition = self.partition
        if not self._buffer:
            if self.position < partition.log_start_offset:
                self.position = partition.log_start_offset  # retention went past us
            if self.position >= partition.high_watermark:
                return []
            try:
                records = partition.read_records(self.position, READ_CHUNK)
            except OffsetOutOfRange:
                self.position = partition.log_start_offset
                return []
            if not records:
                return []
            self._buffer = records
        taken, self._buffer = self._buffer[:max_records], self._buffer[max_records:]
        self.position = taken[-1].offset + 1
        return [Delivery(0, r.offset, r, 1) for r in taken]

    def ack(self, items: Iterable[tuple[int, int]]) -> int:
        """Nothing to settle: a stream keeps its records."""
        return 0

    def nack(self, items: Iterable[tuple[int, int]], *, requeue: bool = True) -> int:
        """Nothing to give back: the cursor has moved on (a stream does not rewind)."""
        return 0

    async def wait(self, timeout: float) -> bool:
        """Sleep until the partition grows, the queue goes, or ``timeout`` passes."""
        if self.closed:
            return False
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def closed() -> None:
            if not future.done():
                future.set_result(None)

        unwatch = self.parent.on_close(closed)
        partition = self.partition
        partition.watch(future)  # as Subscription.wait: woken by a high-watermark move
        try:
            done, _ = await asyncio.wait({future}, timeout=timeout)
            return bool(done)
        finally:
            unwatch()
            partition.unwatch(future)
            if not future.done():
                future.cancel()

    def on_close(self, callback: Callable[[], None]) -> Callable[[], None]:
        return self.parent.on_close(callback)

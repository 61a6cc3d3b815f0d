"""Topics and partitions: the core's view of the logs.

A partition validates what is appended, writes it to its log and, per the
topic's flush policy, waits for the group commit before reporting success.
Readers long-poll on partitions without busy loops: a waiter registers one
future with every partition it cares about and is woken when any high
watermark moves.

Everything outside the core reads a partition through its read API (reads
with an isolation level, sizes, offset lookups by time, deleting records
before an offset) and never through its log: how the partition stores its
records is the partition's business.
"""

from __future__ import annotations

import asyncio
import enum
import itertools
import logging
import time
from collections.abc import Iterable, Iterator
from typing import NamedTuple

from dovecote.core.clock import Clock
from dovecote.core.config import FLUSH_ACK, BrokerConfig
from dovecote.core.errors import CorruptMessage, InvalidRecord, MessageTooLarge, OutOfOrderSequence
from dovecote.core.producers import ProducerStates
from dovecote.core.ratelog import RateLimitedLog
from dovecote.storage.batch import BatchInfo, CorruptBatch, Record, build_batch, scan_batches
from dovecote.storage.errors import StorageError
from dovecote.storage.flush import Flusher
from dovecote.storage.log import AppendResult, Log
from dovecote.storage.segment import FileSlice, Segment

logger = logging.getLogger(__name__)
storage_warnings = RateLimitedLog(logger)


class Isolation(enum.Enum):
    """What a reader may see: everything below the high watermark, or only
    what is below the last stable offset (transactions decided)."""

    READ_UNCOMMITTED = "read_uncommitted"
    READ_COMMITTED = "read_committed"


READ_UNCOMMITTED = Isolation.READ_UNCOMMITTED
READ_COMMITTED = Isolation.READ_COMMITTED

# Special timestamps of an offset lookup (the values Kafka's ListOffsets uses).
LATEST = -1  # the end of what the reader may see
EARLIEST = -2  # the log start
MAX_TIMESTAMP = -3  # the record with the largest timestamp


class OffsetAtTime(NamedTuple):
    """An offset lookup's answer; ``timestamp`` is -1 for a position (latest,
    earliest) rather than a record."""

    offset: int
    timestamp: int


def validate_batches(data: bytes | memoryview, max_batch_bytes: int) -> list[BatchInfo]:
    """Check what a producer sent: framing, magic, CRC, size, record counts."""
    if not len(data):
        raise InvalidRecord("no record batches")
    try:
        infos = scan_batches(data, check_crc=True)
    except CorruptBatch as err:
        raise CorruptMessage(str(err)) from None
    for info in infos:
        if info.size > max_batch_bytes:
            raise MessageTooLarge(
                f"record batch of {info.size} bytes exceeds max.message.bytes {max_batch_bytes}"
            )
        if info.count <= 0 or info.last_offset_delta != info.count - 1:
            raise InvalidRecord("record count disagrees with the last offset delta")
        if info.is_control:
            raise InvalidRecord("clients may not write control batches")
    return infos


class Partition:
    def __init__(self, topic: Topic, index: int, log: Log) -> None:
        self.topic = topic
        self.index = index
        self.log = log
        self._watchers: set[asyncio.Future[None]] = set()
        self.producers: ProducerStates | None = None  # idempotent producer state, if any
        log.on_high_watermark = self._wake
        log.on_durable = self._durable
        log.on_truncate = self._forget_producers

    def __repr__(self) -> str:
        return f"<Partition {self.topic.name}-{self.index}>"

    @property
    def high_watermark(self) -> int:
        return self.log.high_watermark

    @property
    def log_start_offset(self) -> int:
        return self.log.log_start_offset

    @property
    def log_end_offset(self) -> int:
        return self.log.log_end_offset

    # --- appends ------------------------------------------------------------

    async def append(self, data: bytes | memoryview, *, durable: bool = True) -> AppendResult:
        """Validate and append producer batches.

        With flush.policy=ack the log is always flushed by the next group
        commit (readers only see durable data); ``durable`` says whether to
        wait for it before returning.
        """
        infos = validate_batches(data, self.topic.max_message_bytes)
        if infos[0].producer_id < 0:
            return await self._append(data, infos, durable)
        duplicate = self._check_sequences(infos)
        if duplicate is not None:
            # A retry of a batch already written: answer with its offsets. If
            # the original is still waiting for its fsync, so does the retry.
            if durable and duplicate.last_offset >= self.log.high_watermark:
                await self.topic.flusher.flush(self.log)
            return duplicate
        return await self._append(data, infos, durable, record_producers=True)

    async def append_records(self, records: list[Record], *, durable: bool = True) -> AppendResult:
        """Append records from a non-Kafka producer as one batch."""
        result, wait = self._append_records(records, durable)
        if wait is not None:
            await wait
        return result

    def append_records_now(
        self, records: list[Record], *, durable: bool = True
    ) -> asyncio.Future[None] | None:
        """Append ``records`` as one batch now, without awaiting anything.

        The data is written at once (appends made this way keep their call
        order); under flush.policy=ack the returned future completes after
        the group commit when ``durable``, else the flush is only scheduled
        and None is returned."""
        return self._append_records(records, durable)[1]

    def _append_records(
        self, records: list[Record], durable: bool
    ) -> tuple[AppendResult, asyncio.Future[None] | None]:
        data = build_batch(records)
        infos = scan_batches(data, check_crc=False)
        if infos[0].size > self.topic.max_message_bytes:
            raise MessageTooLarge(
                f"message of {infos[0].size} bytes exceeds max.message.bytes {self.topic.max_message_bytes}"
            )
        result = self._write(data, infos)
        return result, self._after_write(durable)

    def _check_sequences(self, infos: list[BatchInfo]) -> AppendResult | None:
        if self.producers is None:
            self.producers = ProducerStates.rebuild(self.log)
        duplicate_of = self.producers.check(infos[0])
        if duplicate_of is not None:
            if len(infos) > 1:
                raise OutOfOrderSequence("a duplicate batch may not be sent with others")
            return AppendResult(duplicate_of, duplicate_of + infos[0].last_offset_delta, -1)
        for previous, info in itertools.pairwise(infos):
            if (info.producer_id, info.producer_epoch) != (
                previous.producer_id,
                previous.producer_epoch,
            ):
                raise InvalidRecord("batches of one request must come from one producer")
            if info.base_sequence != previous.base_sequence + previous.last_offset_delta + 1:
                raise OutOfOrderSequence("batches of one request are not in sequence")
        return None

    async def _append(
        self,
        data: bytes | memoryview,
        infos: list[BatchInfo],
        durable: bool,
        record_producers: bool = False,
    ) -> AppendResult:
        result = self._write(data, infos)
        if record_producers and self.producers is not None:
            offset = result.base_offset
            for info in infos:
                self.producers.record(info, offset)
                offset += info.last_offset_delta + 1
        wait = self._after_write(durable)
        if wait is not None:
            await wait
        return result

    def _write(self, data: bytes | memoryview, infos: list[BatchInfo]) -> AppendResult:
        try:
            return self.log.append(data, infos, int(time.time() * 1000))
        except OSError as err:
            # Nothing was written (a partial write is cut at once): the
            # producer gets a storage error, readers keep reading.
            storage_warnings.log(
                logging.ERROR, f"{self!r}:{err.errno}", "appending to %r failed: %s", self, err
            )
            if isinstance(err, StorageError):
                raise
            raise StorageError(err.errno, f"append failed: {err.strerror or err}") from err

    def sync(self) -> asyncio.Future[None]:
        """Everything written so far, fsynced: the next group commit of this
        log, whatever the flush policy (for writers that must know a
        particular write is durable on a topic that is not flushed per ack)."""
        return self.topic.flusher.flush(self.log)

    def _after_write(self, durable: bool) -> asyncio.Future[None] | None:
        """Per the flush policy: the group commit to wait for, or schedule it,
        or make the write visible at once."""
        if self.topic.flush_policy == FLUSH_ACK:
            if durable:
                return self.topic.flusher.flush(self.log)
            self.topic.flusher.schedule(self.log)
        else:
            self._advance(*self.log.written_point())
        return None

    # --- the high watermark ------------------------------------------------------

    def _durable(self, segment: Segment, position: int, offset: int) -> None:
        """Storage made the log durable up to ``offset``. The partition
        decides what becomes visible: on one broker, what is durable
        (replication will also wait for followers here)."""
        self._advance(segment, position, offset)

    def _advance(self, segment: Segment, position: int, offset: int) -> None:
        self.log.advance_high_watermark(segment, position, offset)

    def pending_appends(self) -> bool:
        """Whether appended records are not yet visible (awaiting their fsync)."""
        return self.log.log_end_offset > self.log.high_watermark

    def settle(self) -> asyncio.Future[None] | None:
        """A future done once everything appended so far is visible, or None
        when it already is (or the partition is closed)."""
        if not self.pending_appends() or self.log.closed:
            return None
        return self.topic.flusher.flush(self.log)

    def _forget_producers(self) -> None:
        """Unacknowledged appends were cut: rebuild producer state from the log."""
        self.producers = None

    # --- reads --------------------------------------------------------------

    @property
    def last_stable_offset(self) -> int:
        """End of what read_committed readers see. No transactions yet, so it
        is the high watermark; it falls behind once open transactions exist."""
        return self.high_watermark

    def visible_end(self, isolation: Isolation = READ_UNCOMMITTED) -> int:
        """One past the last offset a reader with ``isolation`` may see."""
        if isolation is READ_COMMITTED:
            return self.last_stable_offset
        return self.high_watermark

    def read(
        self, offset: int, max_bytes: int, isolation: Isolation = READ_UNCOMMITTED
    ) -> FileSlice | None:
        """Stored batches from ``offset`` (whole batches, the first one even if
        larger than ``max_bytes``), up to the end ``isolation`` allows."""
        return self.log.read(offset, max_bytes, self.visible_end(isolation))

    def read_records(
        self, offset: int, max_bytes: int = 1 << 20, isolation: Isolation = READ_UNCOMMITTED
    ) -> list[Record]:
        """The records of :meth:`read`, decoded, from ``offset`` on."""
        return self.log.read_records(offset, max_bytes, self.visible_end(isolation))

    def all_records(self, chunk: int = 1 << 20) -> Iterator[Record]:
        """Every visible record from the log start: how internal topics are replayed."""
        offset = self.log_start_offset
        while offset < self.high_watermark:
            records = self.read_records(offset, chunk)
            if not records:
                return
            yield from records
            offset = records[-1].offset + 1

    def offset_for_timestamp(
        self, timestamp: int, isolation: Isolation = READ_UNCOMMITTED
    ) -> OffsetAtTime | None:
        """The first record with a timestamp at or after ``timestamp``, or one
        of the special timestamps (:data:`LATEST`, :data:`EARLIEST`,
        :data:`MAX_TIMESTAMP`). Only what ``isolation`` lets a reader see is
        searched, so the answer is never past the high watermark (an offset
        not yet durable is never handed out). None: no such record."""
        end = self.visible_end(isolation)
        if timestamp == LATEST:
            return OffsetAtTime(end, -1)
        if timestamp == EARLIEST:
            return OffsetAtTime(self.log_start_offset, -1)
        if timestamp == MAX_TIMESTAMP:
            found = self.log.max_timestamp(end)
        else:
            found = self.log.offset_for_timestamp(timestamp)
        if found is None or found[0] >= end:
            # The first match is not visible yet, so no visible record matches.
            return None
        return OffsetAtTime(*found)

    @property
    def size_bytes(self) -> int:
        """Bytes the partition takes on disk."""
        return self.log.size_bytes

    @property
    def segment_count(self) -> int:
        """Files the partition's records are kept in (for operators)."""
        return len(self.log.segments)

    def delete_records_before(self, offset: int) -> int:
        """Move the log start up to ``offset`` (at most the high watermark;
        OffsetOutOfRange beyond it); returns the new log start."""
        return self.log.delete_records_before(offset)

    def watch(self, future: asyncio.Future[None]) -> None:
        """Complete ``future`` at the next high-watermark move (new visible data)."""
        self._watchers.add(future)

    def unwatch(self, future: asyncio.Future[None]) -> None:
        self._watchers.discard(future)

    def _wake(self) -> None:
        if self._watchers:
            for future in self._watchers:
                if not future.done():
                    future.set_result(None)
            self._watchers.clear()


async def wait_for_appends(partitions: Iterable[Partition], timeout: float, clock: Clock) -> bool:
    """Sleep until any of ``partitions`` gets new visible data or ``timeout``
    seconds of ``clock`` pass. Returns True when woken by data."""
    future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    watched = list(partitions)
    for partition in watched:
        partition.watch(future)
    timed_out = False

    def time_up() -> None:
        nonlocal timed_out
        if not future.done():
            timed_out = True
            future.set_result(None)

    timer = clock.call_at(clock.monotonic() + timeout, time_up)
    try:
        await future
        return not timed_out
    finally:
        timer.cancel()
        if not future.done():
            future.cancel()
        for partition in watched:
            partition.unwatch(future)


class Topic:
    def __init__(
        self,
        name: str,
        topic_id: str,
        configs: dict[str, str],
        broker_config: BrokerConfig,
        flusher: Flusher,
        internal: bool = False,
    ) -> None:
        self.name = name
        self.id = topic_id
        self.configs = configs  # only what was set explicitly
        self.broker_config = broker_config
        self.flusher = flusher
        self.internal = internal
        self.partitions: list[Partition] = []
        self.refresh_configs()

    def __repr__(self) -> str:
        return f"<Topic {self.name} x{len(self.partitions)}>"

    def config(self, name: str):
        return self.broker_config.effective(self.configs, name)

    @property
    def size_bytes(self) -> int:
        return sum(partition.size_bytes for partition in self.partitions)

    def refresh_configs(self) -> None:
        """Re-read the settings used on every append (after an alter)."""
        self.flush_policy: str = self.config("flush.policy")
        self.flush_ms: int = self.config("flush.ms")
        self.max_message_bytes: int = self.config("max.message.bytes")
        log_config = self.broker_config.log_config(self.configs)
        for partition in self.partitions:
            partition.log.config = log_config

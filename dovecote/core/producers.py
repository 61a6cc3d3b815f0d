"""Idempotent producer state of one partition (Kafka's KIP-98 sequence rules).

For every producer id the partition remembers the epoch and the last five
batches (first/last sequence and offsets). A retried batch that matches one of
them is a duplicate: it is acknowledged with its original offset and not
written again. A gap is an OUT_OF_ORDER_SEQUENCE_NUMBER; an older epoch is
fenced. The state is rebuilt from batch headers in the log when a partition
first sees an idempotent produce after a start, so it survives restarts.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from dovecote.core.errors import InvalidProducerEpoch, OutOfOrderSequence
from dovecote.storage.batch import BatchInfo
from dovecote.storage.log import Log

CACHED_BATCHES = 5  # Kafka keeps the last five: max.in.flight.requests.per.connection <= 5
INT32_MAX = 2**31 - 1


@dataclass(slots=True)
class CachedBatch:
    first_seq: int
    last_seq: int
    base_offset: int
    last_offset: int


@dataclass(slots=True)
class ProducerEntry:
    epoch: int
    batches: deque[CachedBatch] = field(default_factory=lambda: deque(maxlen=CACHED_BATCHES))

    @property
    def last_seq(self) -> int:
        return self.batches[-1].last_seq if self.batches else -1


def _last_seq(info: BatchInfo) -> int:
    return (info.base_sequence + info.last_offset_delta) % (INT32_MAX + 1)


def _follows(first_seq: int, last_seq: int) -> bool:
    return first_seq == (0 if last_seq == INT32_MAX else last_seq + 1)


class ProducerStates:
    def __init__(self) -> None:
        self.entries: dict[int, ProducerEntry] = {}

    @classmethod
    def rebuild(cls, log: Log) -> ProducerStates:
        """Replay the producer fields of every batch header still in the log."""
        states = cls()
        for info in log.iter_batch_infos(log.log_start_offset):
            if (
                info.producer_id >= 0
                and info.base_sequence >= 0
                and info.base_offset < log.log_end_offset
            ):
                states.record(info, info.base_offset)
        return states

    def check(self, info: BatchInfo) -> int | None:
        """Validate one batch; returns the original base offset if it is a
        duplicate of a recent batch, None if it is new and in order."""
        pid = info.producer_id
        if pid < 0 or info.base_sequence < 0:
            return None
        entry = self.entries.get(pid)
        first, last = info.base_sequence, _last_seq(info)
        if entry is None:
            if first != 0:
                raise OutOfOrderSequence(
                    f"producer {pid}: first sequence {first} from an unknown producer"
                )
            return None
        if info.producer_epoch < entry.epoch:
            raise InvalidProducerEpoch(
                f"producer {pid}: epoch {info.producer_epoch} < {entry.epoch}"
            )
        if info.producer_epoch > entry.epoch:
            if first != 0:
                raise OutOfOrderSequence(f"producer {pid}: a new epoch must start at sequence 0")
            return None
        for cached in entry.batches:
            if cached.first_seq == first and cached.last_seq == last:
                return cached.base_offset
        if not _follows(first, entry.last_seq):
            raise OutOfOrderSequence(
                f"producer {pid}: sequence {first} does not follow {entry.last_seq}"
            )
        return None

    def record(self, info: BatchInfo, base_offset: int) -> None:
        pid = info.producer_id
        if pid < 0 or info.base_sequence < 0:
            return
        entry = self.entries.get(pid)
        if entry is None or info.producer_epoch > entry.epoch:
            entry = self.entries[pid] = ProducerEntry(info.producer_epoch)
        entry.batches.append(
            CachedBatch(
                info.base_sequence,
                _last_seq(info),
                base_offset,
                base_offset + info.last_offset_delta,
            )
        )

"""The log of one partition: an ordered list of segments with offsets.

Appends validate nothing themselves (the caller passes headers it scanned),
assign offsets by rewriting each batch's first 8 bytes, and write every batch
of a request with one ``pwritev``. Reads return file slices bounded by the high
watermark: the offset up to which data is durable (flush policy ``ack``) or
written (other policies).
"""

from __future__ import annotations

import bisect
import errno
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from dovecote.storage.batch import (
    INT64,
    BatchInfo,
    Record,
    decode_batch,
    scan_prefix,
    stamp_log_append_time,
)
from dovecote.storage.errors import StorageError
from dovecote.storage.fsutil import atomic_write
from dovecote.storage.segment import FileSlice, Segment, close_segment, delete_segment

log = logging.getLogger(__name__)

LOG_START_FILE = "log-start-offset"


class OffsetOutOfRange(LookupError):
    def __init__(self, offset: int, start: int, end: int) -> None:
        super().__init__(f"offset {offset} is outside [{start}, {end}]")
        self.offset, self.start, self.end = offset, start, end


@dataclass(slots=True)
class LogConfig:
    segment_bytes: int = 1 << 30
    segment_ms: int = 7 * 24 * 3600 * 1000
    retention_ms: int = 7 * 24 * 3600 * 1000  # -1: keep forever
    retention_bytes: int = -1
    index_interval_bytes: int = 4096
    log_append_time: bool = False  # message.timestamp.type=LogAppendTime


@dataclass(slots=True)
class AppendResult:
    base_offset: int
    last_offset: int
    log_append_time: int  # -1 unless the log stamps LogAppendTime


@dataclass(slots=True)
class RecoveryReport:
    directory: Path
    bytes_cut: int = 0
    reason: str | None = None
    rebuilt_indexes: list[int] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.bytes_cut or self.rebuilt_indexes)


class Log:
    def __init__(self, directory: Path, config: LogConfig) -> None:
        self.directory = directory
        self.config = config
        self.device = os.stat(directory).st_dev  # file system, for the flusher's syncfs
        self.segments: list[Segment] = []
        self._bases: list[int] = []
        self.log_start_offset = 0
        # Offsets below the high watermark are visible to readers.
        self.high_watermark = 0
        self._hw_segment: Segment | None = None
        self._hw_position = 0
        self.unsynced: list[Segment] = []  # rolled segments still to be fsynced
        self.dir_dirty = False  # a segment file was created since the last flush
        self.closed = False
        self.compacted_end = -1  # closed segments up to here were compacted
        # Called whenever the high watermark moves (wakes long-polling readers).
        self.on_high_watermark: Callable[[], None] | None = None
        # Called by mark_durable instead of moving the high watermark itself.
        self.on_durable: Callable[[Segment, int, int], None] | None = None
        # Called after unacknowledged appends were cut (a failed fsync).
        self.on_truncate: Callable[[], None] | None = None
        self.failed: str | None = None  # set when the log can no longer be written

    # --- opening and recovery -----------------------------------------------

    @classmethod
    def open(cls, directory: Path, config: LogConfig, *, clean: bool) -> tuple[Log, RecoveryReport]:
        """Open (creating if needed) the log in ``directory``.

        After an unclean shutdown the last segment is CRC-checked end to end
        and a torn or corrupt tail is cut; missing or implausible index files
        are rebuilt by scanning.
        """
        directory.mkdir(parents=True, exist_ok=True)
        self = cls(directory, config)
        report = RecoveryReport(directory)
        bases = sorted(int(p.stem) for p in directory.glob("*.log") if p.stem.isdigit())
        for path in directory.glob("*.log"):
            if not path.stem.isdigit():
                log.warning("ignoring stray file %s", path)
        start_file = directory / LOG_START_FILE
        if start_file.exists():
            try:
                self.log_start_offset = int(start_file.read_text().strip() or 0)
            except ValueError:
                log.warning("unreadable %s; using the first segment's offset", start_file)
        for i, base in enumerate(bases):
            segment = Segment(directory, base, config.index_interval_bytes)
            last = i == len(bases) - 1
            if last and not clean:
                # Only appends write the last segment (compaction never
                # touches it), so its offsets must follow one another.
                cut, reason = segment.recover(check_crc=True, contiguous=True)
                if cut:
                    report.bytes_cut += cut
                    report.reason = reason
                    log.warning(
                        "%s: cut %d bytes from the tail of %s (%s)",
                        directory,
                        cut,
                        segment.log_path.name,
                        reason,
                    )
                report.rebuilt_indexes.append(base)
            elif not segment.load_indexes():
                cut, reason = segment.recover(check_crc=not clean)
                report.rebuilt_indexes.append(base)
                if cut:
                    report.bytes_cut += cut
                    report.reason = reason
                    log.warning(
                        "%s: cut %d bytes from %s (%s)",
                        directory,
                        cut,
                        segment.log_path.name,
                        reason,
                    )
            self.segments.append(segment)
        if not self.segments:
            self._new_segment(self.log_start_offset)
        self._bases = [s.base_offset for s in self.segments]
        self.log_start_offset = max(self.log_start_offset, self.segments[0].base_offset)
        # Whatever survived recovery is on disk: all of it is visible.
        self._set_high_watermark(self.segments[-1], self.segments[-1].size, self.log_end_offset)
        return self, report

    def _new_segment(self, base_offset: int) -> Segment:
        segment = Segment(self.directory, base_offset, self.config.index_interval_bytes)
        segment.next_offset = base_offset
        self.segments.append(segment)
        self._bases.append(base_offset)
        self.dir_dirty = True
        return segment

    # --- properties ------------------------------------------------------------

    @property
    def active(self) -> Segment:
        return self.segments[-1]

    @property
    def log_end_offset(self) -> int:
        return self.segments[-1].next_offset

    @property
    def size_bytes(self) -> int:
        return sum(s.size for s in self.segments)

    # --- writing ------------------------------------------------------------

    def append(
        self,
        data: bytes | bytearray | memoryview,
        infos: list[BatchInfo],
        now_ms: int | None = None,
    ) -> AppendResult:
        """Append validated batches (``infos`` from scanning ``data`` from 0).

        Offsets are assigned from the log end; the CRC does not cover them, so
        the batch bodies are written as they came.
        """
        if self.failed is not None:
            raise StorageError(errno.EIO, self.failed)
        if now_ms is None:
            now_ms = int(time.time() * 1000)
        append_time = -1
        if self.config.log_append_time:
            data = bytearray(data)
            append_time = now_ms
            for info in infos:
                stamp_log_append_time(data, info, now_ms)
            infos = [info._replace(max_timestamp=now_ms) for info in infos]
        view = memoryview(data)
        size = len(view)
        segment = self._segment_for_append(size, now_ms)
        base = next_offset = self.log_end_offset
        pieces: list[bytes | memoryview] = []
        offsets: list[int] = []
        pack = INT64.pack
        for info in infos:
            position = info.position
            pieces.append(pack(next_offset))
            pieces.append(view[position + 8 : position + info.size])
            offsets.append(next_offset)
            next_offset += info.last_offset_delta + 1
        segment.append(pieces, size, infos, offsets, now_ms)
        return AppendResult(base, next_offset - 1, append_time)

    def _segment_for_append(self, size: int, now_ms: int) -> Segment:
        segment = self.segments[-1]
        if segment.size == 0:
            return segment
        too_big = segment.size + size > self.config.segment_bytes
        too_old = (
            segment.created_ms is not None and now_ms - segment.created_ms >= self.config.segment_ms
        )
        if too_big or too_old:
            return self.roll()
        return segment

    def roll(self) -> Segment:
        """Start a new active segment; the old one is fsynced by the next flush."""
        old = self.segments[-1]
        if old.size == 0:
            return old
        old.write_indexes()
        self.unsynced.append(old)
        return self._new_segment(old.next_offset)

    def mark_written(self) -> None:
        """Expose everything appended so far (flush policies other than ``ack``)."""
        active = self.segments[-1]
        self._set_high_watermark(active, active.size, active.next_offset)

    def mark_durable(self, segment: Segment, position: int, offset: int) -> None:
        """Called after an fsync covering ``segment`` up to ``position``. The
        owner (``on_durable``: the partition) decides whether the high
        watermark moves; a log without one makes what is durable visible."""
        if self.on_durable is not None:
            self.on_durable(segment, position, offset)
        else:
            self.advance_high_watermark(segment, position, offset)

    def advance_high_watermark(self, segment: Segment, position: int, offset: int) -> None:
        """Make records up to ``offset`` (ending at ``position`` of ``segment``) visible."""
        if offset > self.high_watermark:
            self._set_high_watermark(segment, position, offset)

    def written_point(self) -> tuple[Segment, int, int]:
        """Where everything appended so far ends: (active segment, size, log end)."""
        active = self.segments[-1]
        return active, active.size, active.next_offset

    def _set_high_watermark(self, segment: Segment, position: int, offset: int) -> None:
        self.high_watermark = offset
        self._hw_segment = segment
        self._hw_position = position
        if self.on_high_watermark is not None:
            self.on_high_watermark()

    def flush_point(self) -> tuple[list[Segment], Segment, int, int]:
        """What an fsync started now would make durable: the rolled segments
        still unsynced, the active segment, its size and the log end offset."""
        rolled, self.unsynced = self.unsynced, []
        active = self.segments[-1]
        return rolled, active, active.size, active.next_offset

    # --- reading ------------------------------------------------------------

    def read(self, offset: int, max_bytes: int, max_offset: int | None = None) -> FileSlice | None:
        """Up to ``max_bytes`` of whole and possibly one partial batch from
        ``offset``; the first batch is returned whole even if larger. None when
        nothing is visible there yet."""
        limit = self.high_watermark if max_offset is None else min(max_offset, self.high_watermark)
        if offset < self.log_start_offset or offset > self.log_end_offset:
            raise OffsetOutOfRange(offset, self.log_start_offset, self.log_end_offset)
        if offset >= limit:
            return None
        i = max(0, bisect.bisect_right(self._bases, offset) - 1)
        while i < len(self.segments):
            segment = self.segments[i]
            end = self._hw_position if segment is self._hw_segment else segment.size
            if max_offset is not None and max_offset < self.high_watermark:
                end = min(end, self._position_of(segment, max_offset, end))
            found = segment.find(offset)
            if found is not None and found[0] < end:
                position, info = found
                size = min(end - position, max(max_bytes, info.size))
                return FileSlice(segment, position, size)
            if segment is self._hw_segment:
                return None
            i += 1
        return None

    def _position_of(self, segment: Segment, offset: int, end: int) -> int:
        found = segment.find(offset)
        return end if found is None else min(found[0], end)

    def read_records(
        self, offset: int, max_bytes: int, max_offset: int | None = None
    ) -> list[Record]:
        """Decode the records of the batches :meth:`read` returns, from ``offset`` on."""
        chunk = self.read(offset, max_bytes, max_offset)
        if chunk is None:
            return []
        data = chunk.read()
        infos, _partial_tail = scan_prefix(data, check_crc=False)
        records: list[Record] = []
        for info in infos:
            if info.is_control or info.base_offset + info.last_offset_delta < offset:
                continue
            records.extend(r for r in decode_batch(data, info) if r.offset >= offset)
        return records

    def offset_for_timestamp(self, timestamp: int) -> tuple[int, int] | None:
        """(offset, timestamp) of the first record with timestamp >= ``timestamp``."""
        start = self.log_start_offset
        for segment in self.segments:
            if segment.max_timestamp < timestamp or segment.next_offset <= start:
                continue
            found = segment.find_timestamp(timestamp)
            if found is None:
                continue
            # The first batch that qualifies may lie below the log start
            # (DeleteRecords): go on from there within the segment.
            for position, info in segment.iter_headers(found[0]):
                if (
                    info.max_timestamp < timestamp
                    or info.base_offset + info.last_offset_delta < start
                ):
                    continue
                data = segment.read_at(position, info.size)
                for record in decode_batch(data, info._replace(position=0)):
                    if record.timestamp >= timestamp and record.offset >= start:
                        return record.offset, record.timestamp
        return None

    def max_timestamp(self, max_offset: int | None = None) -> tuple[int, int] | None:
        """(offset, timestamp) of the first record with the largest timestamp
        below ``max_offset`` (at most the high watermark)."""
        limit = self.high_watermark if max_offset is None else min(max_offset, self.high_watermark)
        best = -1
        for segment in self.segments:
            if segment.base_offset >= limit:
                break
            if segment.next_offset <= limit:
                best = max(best, segment.max_timestamp)
                continue
            # Partly visible (appends awaiting their fsync): headers up to the limit.
            found = segment.find(limit)
            end = segment.size if found is None else found[0]
            for _pos, info in segment.iter_headers(0, end):
                if not info.is_control and info.base_offset < limit:
                    best = max(best, info.max_timestamp)
        if best < 0:
            return None
        found_record = self.offset_for_timestamp(best)
        if found_record is None or found_record[0] >= limit:
            return None
        return found_record

    def iter_batch_infos(self, from_offset: int = 0):
        """Batch headers from ``from_offset`` on (for rebuilding producer state)."""
        i = max(0, bisect.bisect_right(self._bases, from_offset) - 1)
        for segment in self.segments[i:]:
            for _pos, info in segment.iter_headers(0):
                if info.base_offset + info.last_offset_delta >= from_offset:
                    yield info

    # --- deleting -----------------------------------------------------------

    def delete_records_before(self, offset: int) -> int:
        """Advance the log start offset (DeleteRecords); returns the new start."""
        if offset > self.high_watermark:
            raise OffsetOutOfRange(offset, self.log_start_offset, self.high_watermark)
        if offset <= self.log_start_offset:
            return self.log_start_offset
        self.log_start_offset = offset
        self._write_log_start()
        self._delete_segments_below(offset)
        return self.log_start_offset

    def _write_log_start(self) -> None:
        atomic_write(self.directory / LOG_START_FILE, str(self.log_start_offset).encode())

    def _delete_segments_below(self, offset: int) -> int:
        deleted = 0
        while len(self.segments) > 1 and self.segments[1].base_offset <= offset:
            self._delete_oldest()
            deleted += 1
        if self.segments[0].next_offset <= offset and self.segments[0].size:
            # Everything left is below the start: roll so the old file can go.
            self.roll()
            self._delete_oldest()
            deleted += 1
        return deleted

    def _delete_oldest(self) -> None:
        segment = self.segments.pop(0)
        self._bases.pop(0)
        if segment in self.unsynced:
            self.unsynced.remove(segment)
        delete_segment(segment)
        self.log_start_offset = max(self.log_start_offset, self.segments[0].base_offset)

    def apply_retention(self, now_ms: int | None = None) -> int:
        """Delete whole segments past retention.ms or beyond retention.bytes.
        Returns how many were deleted."""
        if now_ms is None:
            now_ms = int(time.time() * 1000)
        deleted = 0
        retention_ms = self.config.retention_ms
        if retention_ms >= 0:
            while self.segments[0].size and self._expired(self.segments[0], now_ms - retention_ms):
                if len(self.segments) == 1:
                    if self.high_watermark < self.log_end_offset:
                        break  # never drop what is not yet durable
                    self.roll()
                self._delete_oldest()
                deleted += 1
        retention_bytes = self.config.retention_bytes
        if retention_bytes >= 0:
            total = self.size_bytes
            while len(self.segments) > 1 and total - self.segments[0].size >= retention_bytes:
                total -= self.segments[0].size
                self._delete_oldest()
                deleted += 1
        if deleted:
            self._write_log_start()
        return deleted

    @staticmethod
    def _expired(segment: Segment, cutoff_ms: int) -> bool:
        stamp = segment.max_timestamp
        if stamp < 0:
            stamp = int(os.stat(segment.log_path).st_mtime * 1000)
        return stamp < cutoff_ms

    def truncate_to(self, offset: int) -> None:
        """Drop every batch at or after ``offset`` (which must be a batch boundary)."""
        while len(self.segments) > 1 and self.segments[-1].base_offset >= offset:
            segment = self.segments.pop()
            self._bases.pop()
            delete_segment(segment)
        segment = self.segments[-1]
        found = segment.find(offset)
        if found is not None:
            segment.truncate(found[0])
        if self.high_watermark > self.log_end_offset:
            self._set_high_watermark(segment, segment.size, segment.next_offset)

    def discard_unsynced(self) -> None:
        """Cut everything past the high watermark after a failed fsync.

        Only under flush.policy=ack is the high watermark the durable end, and
        only then does the flusher wait; what is cut was never acknowledged.
        If the cut itself fails, the log takes no more appends (restart the
        broker: recovery checks the tail)."""
        try:
            self.truncate_to(self.high_watermark)
        except OSError as err:
            self.failed = (
                f"{self.directory}: cutting unsynced data after a failed fsync failed: {err}"
            )
            log.critical("%s", self.failed)
        self.unsynced = [s for s in self.unsynced if s in self.segments[:-1]]
        self.dir_dirty = True
        if self.on_truncate is not None:
            self.on_truncate()

    def delete(self) -> None:
        """Remove the log and its directory (topic deletion)."""
        for segment in self.segments:
            delete_segment(segment)
        for path in self.directory.iterdir():
            path.unlink()
        self.directory.rmdir()
        self.closed = True

    def close(self) -> None:
        """Clean close: fsync, write the indexes so the next start is fast."""
        if self.closed:
            return
        for segment in self.segments:
            if not segment.closed:
                os.fdatasync(segment.fd)
            try:
                close_segment(segment, write_indexes=True)
            except OSError as err:  # disk full: the data is safe, the indexes get rebuilt
                log.warning(
                    "%s: index of %s not written: %s", self.directory, segment.log_path.name, err
                )
                close_segment(segment, write_indexes=False)
        self.closed = True

"""One segment of a partition log: a ``.log`` file of record batches and its
sparse offset and time indexes.

The indexes live in memory while the segment is open and are written to
``.index`` / ``.timeindex`` when the segment is rolled or closed cleanly; after
a crash they are rebuilt by scanning, which is what recovery does anyway.
"""

from __future__ import annotations

import bisect
import errno
import os
import struct
from array import array
from dataclasses import dataclass
from pathlib import Path

from dovecote.storage.batch import (
    HEADER,
    HEADER_SIZE,
    LOG_OVERHEAD,
    BatchInfo,
    CorruptBatch,
    TruncatedBatch,
    scan_prefix,
)

INDEX_ENTRY = struct.Struct(">ii")  # relative offset, position
TIME_ENTRY = struct.Struct(">qi")  # timestamp, relative offset
MAX_RELATIVE_OFFSET = (1 << 31) - 1  # index entries store offsets relative to the base
SCAN_CHUNK = 8 * 1024
RECOVERY_CHUNK = 1 << 20
IOV_MAX = 1024


def segment_name(base_offset: int) -> str:
    return f"{base_offset:020d}"


@dataclass(slots=True)
class FileSlice:
    """A byte range of a segment file: what a read returns, to be sent without decoding."""

    segment: Segment
    position: int
    size: int

    def read(self) -> bytes:
        return os.pread(self.segment.fd, self.size, self.position)


class Segment:
    def __init__(self, directory: Path, base_offset: int, index_interval: int) -> None:
        self.directory = directory
        self.base_offset = base_offset
        self.index_interval = index_interval
        stem = directory / segment_name(base_offset)
        self.log_path = stem.with_suffix(".log")
        self.index_path = stem.with_suffix(".index")
        self.time_index_path = stem.with_suffix(".timeindex")
        self.fd = os.open(self.log_path, os.O_RDWR | os.O_CREAT, 0o644)
        self.size = os.fstat(self.fd).st_size
        self.next_offset = base_offset  # one past the last offset stored here
        self.max_timestamp = -1
        self._max_timestamp_offset = base_offset
        self.created_ms: int | None = None  # time of the first append, for segment.ms
        self.synced_size = 0  # bytes known to be on disk
        self._idx_offsets = array("q")
        self._idx_positions = array("q")
        self._time_stamps = array("q")
        self._time_offsets = array("q")
        self._bytes_since_index = 0
        self.closed = False

    # --- writing ------------------------------------------------------------

    def append(
        self,
        pieces: list[bytes | memoryview],
        total: int,
        infos: list[BatchInfo],
        offsets: list[int],
        now_ms: int,
    ) -> int:
        """Write ``total`` bytes of pre-assembled batches. ``infos`` give each
        batch's position relative to the start of ``pieces`` and ``offsets``
        its assigned base offset. Returns the end position."""
        start = self.size
        written = 0
        try:
            for i in range(0, len(pieces), IOV_MAX):
                written += os.pwritev(self.fd, pieces[i : i + IOV_MAX], start + written)
            if written != total:
                _rewrite_after_short_write(self.fd, pieces, start)
        except OSError:
            # A partial write (disk full) leaves a tail recovery would cut; cut it now.
            os.ftruncate(self.fd, start)
            raise
        if self.created_ms is None:
            self.created_ms = now_ms
        for info, base_offset in zip(infos, offsets, strict=True):
            self._note_batch(info, start + info.position, base_offset)
        self.size = start + total
        return self.size

    def _note_batch(self, info: BatchInfo, position: int, base_offset: int) -> None:
        """Update indexes and bookkeeping for a batch now stored at ``position``.

        Every ``index_interval`` bytes the batch gets an offset-index entry and
        the time index records the largest timestamp seen so far (Kafka's scheme:
        time index entries only ever grow)."""
        if self._bytes_since_index >= self.index_interval or not self._idx_offsets:
            self._idx_offsets.append(base_offset)
            self._idx_positions.append(position)
            self._bytes_since_index = 0
            self._index_max_timestamp()
        self._bytes_since_index += info.size
        if info.max_timestamp > self.max_timestamp:
            self.max_timestamp = info.max_timestamp
            self._max_timestamp_offset = base_offset
        self.next_offset = base_offset + info.last_offset_delta + 1

    def _index_max_timestamp(self) -> None:
        last = self._time_stamps[-1] if self._time_stamps else -1
        if self.max_timestamp > last:
            self._time_stamps.append(self.max_timestamp)
            self._time_offsets.append(self._max_timestamp_offset)

    def sync(self) -> None:
        """fdatasync up to the current size (called from the flusher's thread).

        A segment deleted by retention while its flush was queued is simply skipped."""
        size = self.size
        if self.closed:
            return
        try:
            os.fdatasync(self.fd)
        except OSError:
            if self.closed:
                return
            raise
        self.mark_synced(size)

    def mark_synced(self, size: int) -> None:
        """Bytes up to ``size`` are on disk (after an fdatasync or a syncfs)."""
        if size > self.synced_size:
            self.synced_size = size

    def truncate(self, position: int) -> None:
        os.ftruncate(self.fd, position)
        self.size = position
        self.synced_size = min(self.synced_size, position)
        self._rebuild_from_scan(check_crc=False)

    # --- reading ------------------------------------------------------------

    def read_at(self, position: int, size: int) -> bytes:
        return os.pread(self.fd, size, position)

    def find(self, offset: int) -> tuple[int, BatchInfo] | None:
        """Position and header of the batch that holds ``offset`` (or the first
        batch after it, across a gap), or None past the end."""
        i = bisect.bisect_right(self._idx_offsets, offset) - 1
        position = self._idx_positions[i] if i >= 0 else 0
        for pos, info in self.iter_headers(position):
            if info.base_offset + info.last_offset_delta >= offset:
                return pos, info
        return None

    def find_timestamp(self, timestamp: int) -> tuple[int, BatchInfo] | None:
        """First batch whose max timestamp is >= ``timestamp``."""
        i = bisect.bisect_left(self._time_stamps, timestamp) - 1
        start_offset = self._time_offsets[i] if i >= 0 else self.base_offset
        found = self.find(start_offset)
        if found is None:
            return None
        for pos, info in self.iter_headers(found[0]):
            if info.max_timestamp >= timestamp:
                return pos, info
        return None

    def iter_headers(self, position: int = 0, end: int | None = None, chunk: int = SCAN_CHUNK):
        """Yield (position, BatchInfo) for each batch from ``position``, parsing
        headers only (no CRC). Reads ``chunk`` bytes at a time and jumps over
        batch bodies, so finding an offset from an index point costs one read."""
        end = self.size if end is None else end
        unpack = HEADER.unpack_from
        while position + HEADER_SIZE <= end:
            data = os.pread(self.fd, min(chunk, end - position), position)
            pos = 0
            while pos + HEADER_SIZE <= len(data):
                fields = unpack(data, pos)
                if fields[1] < HEADER_SIZE - LOG_OVERHEAD:
                    raise CorruptBatch("batch length too small", position + pos)
                size = fields[1] + LOG_OVERHEAD
                yield position + pos, BatchInfo(position + pos, size, fields[0], *fields[5:13])
                pos += size
            if pos == 0:
                return
            position += pos

    # --- index persistence and recovery ---------------------------------------

    def write_indexes(self) -> None:
        """Write both index files; if that fails (disk full) neither is left
        behind, and the next start rebuilds them by scanning."""
        base = self.base_offset
        self._index_max_timestamp()
        try:
            with open(self.index_path, "wb") as f:
                f.write(
                    b"".join(
                        INDEX_ENTRY.pack(o - base, p)
                        for o, p in zip(self._idx_offsets, self._idx_positions, strict=True)
                    )
                )
            with open(self.time_index_path, "wb") as f:
                f.write(
                    b"".join(
                        TIME_ENTRY.pack(t, o - base)
                        for t, o in zip(self._time_stamps, self._time_offsets, strict=True)
                    )
                )
        except OSError:
            self.index_path.unlink(missing_ok=True)
            self.time_index_path.unlink(missing_ok=True)
            raise

    def load_indexes(self) -> bool:
        """Load index files written at a clean close; False if absent or implausible."""
        try:
            raw = self.index_path.read_bytes()
            traw = self.time_index_path.read_bytes()
        except FileNotFoundError:
            return False
        if len(raw) % INDEX_ENTRY.size or len(traw) % TIME_ENTRY.size:
            return False
        if self.size and not raw:
            return False
        base = self.base_offset
        offsets, positions = array("q"), array("q")
        for rel, pos in INDEX_ENTRY.iter_unpack(raw):
            if pos >= self.size or (positions and pos <= positions[-1]):
                return False
            offsets.append(base + rel)
            positions.append(pos)
        stamps, toffsets = array("q"), array("q")
        for ts, rel in TIME_ENTRY.iter_unpack(traw):
            stamps.append(ts)
            toffsets.append(base + rel)
        # The last batch tells where the segment ends; read from the last index point.
        last = None
        if positions:
            try:
                for _pos, info in self.iter_headers(positions[-1]):
                    last = info
            except CorruptBatch:
                return False
            if last is None or last.position + last.size != self.size:
                return False
        self._idx_offsets, self._idx_positions = offsets, positions
        self._time_stamps, self._time_offsets = stamps, toffsets
        self._bytes_since_index = (self.size - positions[-1]) if positions else 0
        if last is not None:
            self.next_offset = last.base_offset + last.last_offset_delta + 1
        if stamps:
            self.max_timestamp = stamps[-1]
            self._max_timestamp_offset = toffsets[-1]
        self.synced_size = self.size
        return True

    def recover(self, check_crc: bool, contiguous: bool = False) -> tuple[int, str | None]:
        """Validate the whole file, cut a torn or corrupt tail and rebuild the
        indexes. ``contiguous``: each batch must start where the previous one
        ended (true of a segment only appends wrote, i.e. never compacted).
        Returns (bytes cut, reason or None)."""
        valid_end, reason = self._rebuild_from_scan(check_crc, contiguous)
        cut = self.size - valid_end
        if cut:
            os.ftruncate(self.fd, valid_end)
            os.fsync(self.fd)
            self.size = valid_end
        self.synced_size = self.size
        return cut, reason

    def _rebuild_from_scan(
        self, check_crc: bool, contiguous: bool = False
    ) -> tuple[int, str | None]:
        """Re-read every batch header (and CRC when asked); returns the end of
        the valid data and why the scan stopped early, if it did."""
        self._idx_offsets, self._idx_positions = array("q"), array("q")
        self._time_stamps, self._time_offsets = array("q"), array("q")
        self._bytes_since_index = 0
        self.next_offset = self.base_offset
        self.max_timestamp = -1
        self._max_timestamp_offset = self.base_offset
        position = 0
        chunk_size = RECOVERY_CHUNK
        while position < self.size:
            chunk = os.pread(self.fd, min(chunk_size, self.size - position), position)
            infos, error = scan_prefix(chunk, check_crc=check_crc)
            for info in infos:
                problem = self._offset_problem(info, contiguous)
                if problem is not None:
                    return position + info.position, problem
                self._note_batch(info, position + info.position, info.base_offset)
            if error is None:
                position += len(chunk)
                continue
            position += error.position
            crosses_chunk_end = position + len(chunk) - error.position < self.size
            if not (isinstance(error, TruncatedBatch) and crosses_chunk_end):
                return position, error.reason
            if error.position == 0:
                # One batch larger than the chunk: read it whole next time, if
                # its declared size is plausible for what is left of the file.
                needed = _declared_size(chunk) or HEADER_SIZE
                if position + needed > self.size:
                    return position, "batch extends past the end of the file"
                chunk_size = max(chunk_size, needed)
        return position, None

    def _offset_problem(self, info: BatchInfo, contiguous: bool) -> str | None:
        """Why ``info`` cannot come next in this segment, if it cannot.

        The CRC does not cover baseOffset (it is rewritten on append), so a
        damaged one is caught here or served at offsets the records never
        had. Offsets only grow; compaction leaves gaps between batches, appends
        never do."""
        expected = self.next_offset
        if info.base_offset < expected or (contiguous and info.base_offset != expected):
            return f"batch offset {info.base_offset} where {expected} was expected"
        if info.base_offset + info.last_offset_delta - self.base_offset > MAX_RELATIVE_OFFSET:
            return f"batch offset {info.base_offset} beyond the segment's range"
        return None


def _rewrite_after_short_write(fd: int, pieces: list[bytes | memoryview], start: int) -> None:
    """A short write (the disk filled up mid-write) says nothing of why; write
    the rest again so the kernel reports the real error (ENOSPC, EDQUOT, EIO)."""
    data = b"".join(pieces)
    position = 0
    while position < len(data):
        count = os.pwrite(fd, data[position:], start + position)
        if count == 0:
            raise OSError(errno.EIO, f"short write: {position} of {len(data)} bytes")
        position += count


def _declared_size(chunk: bytes) -> int | None:
    if len(chunk) < HEADER_SIZE:
        return None
    return HEADER.unpack_from(chunk, 0)[1] + LOG_OVERHEAD


def close_segment(segment: Segment, *, write_indexes: bool) -> None:
    if segment.closed:
        return
    if write_indexes:
        segment.write_indexes()
    segment.closed = True
    fd, segment.fd = segment.fd, -1  # a late read or write fails (EBADF) instead of
    os.close(fd)  # reaching whatever file reuses the number


def delete_segment(segment: Segment) -> None:
    close_segment(segment, write_indexes=False)
    for path in (segment.log_path, segment.index_path, segment.time_index_path):
        path.unlink(missing_ok=True)

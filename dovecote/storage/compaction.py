"""Log compaction (cleanup.policy=compact): keep the latest record per key.

As Kafka's cleaner does: the whole visible log is scanned to learn each key's
latest offset; every closed segment is then rewritten without records that a
later one with the same key supersedes. Offsets never change (batches are
rebuilt with their original offsets, gaps and all), so consumers positioned
anywhere keep working. Tombstones (null values) are kept for
``delete.retention.ms`` after their segment was last written, so consumers
that are behind still see the delete, then dropped. The active segment is
never rewritten, and segments newer than ``min.compaction.lag.ms`` are left
alone.

Scanning and rewriting read and write files only, so they run in a worker
thread; swapping the rewritten file in is a rename done on the event loop.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from dovecote.storage.batch import build_batch, decode_batch, scan_prefix
from dovecote.storage.log import Log
from dovecote.storage.segment import Segment, close_segment

log = logging.getLogger(__name__)

CLEANED_SUFFIX = ".cleaned"


@dataclass(slots=True)
class CompactionPlan:
    """What one compaction pass reads: closed segments to rewrite (base
    offset, file, size) and every visible segment to learn keys from."""

    rewrite: list[tuple[int, Path, int]]
    scan: list[tuple[Path, int]]
    end_offset: int


@dataclass(slots=True)
class CompactionResult:
    segments_rewritten: int = 0
    records_removed: int = 0
    bytes_before: int = 0
    bytes_after: int = 0


def plan(log_: Log, now_ms: int, min_lag_ms: int) -> CompactionPlan | None:
    """Snapshot what compaction will read (called on the event loop); None
    when no closed segment arrived since the last pass."""
    closed = log_.segments[:-1]
    if not closed or closed[-1].next_offset <= log_.compacted_end:
        return None
    eligible = [s for s in closed if s.max_timestamp <= now_ms - min_lag_ms and s.size]
    if not eligible:
        return None
    log_.compacted_end = closed[-1].next_offset
    # Keys are learnt from everything visible, the active segment included.
    scan = [(s.log_path, s.size) for s in log_.segments]
    if log_.high_watermark < log_.segments[-1].next_offset:
        scan[-1] = (scan[-1][0], log_._hw_position if log_._hw_segment is log_.segments[-1] else 0)
    return CompactionPlan(
        rewrite=[(s.base_offset, s.log_path, s.size) for s in eligible],
        scan=scan,
        end_offset=log_.high_watermark,
    )


def _read_records(path: Path, size: int):
    data = path.read_bytes()[:size]
    infos, _ = scan_prefix(data, check_crc=False)
    for info in infos:
        yield info, (decode_batch(data, info) if not info.is_control else [])


def rewrite(
    work: CompactionPlan, now_ms: int, delete_retention_ms: int
) -> list[tuple[int, Path, int, int]]:
    """Worker-thread part: learn latest offsets, write ``.cleaned`` files.
    Returns (base offset, cleaned file, records removed, bytes before) for
    each segment worth replacing."""
    latest: dict[bytes, int] = {}
    for path, size in work.scan:
        for _info, records in _read_records(path, size):
            for record in records:
                if record.key is not None and record.offset < work.end_offset:
                    latest[record.key] = record.offset
    out = []
    for base, path, size in work.rewrite:
        removed = 0
        pieces = []
        tombstones_expire = os.stat(path).st_mtime * 1000 + delete_retention_ms <= now_ms
        for info, records in _read_records(path, size):
            if info.is_control:
                continue
            kept = []
            for record in records:
                superseded = record.key is not None and latest.get(record.key, -1) > record.offset
                dead_tombstone = record.value is None and tombstones_expire
                if superseded or dead_tombstone:
                    removed += 1
                else:
                    kept.append(record)
            if not kept:
                continue
            if len(kept) == len(records):
                with open(path, "rb") as f:
                    f.seek(info.position)
                    pieces.append(f.read(info.size))
                continue
            pieces.append(
                build_batch(
                    kept,
                    base_offset=info.base_offset,
                    compression_type=info.compression,
                    producer_id=info.producer_id,
                    producer_epoch=info.producer_epoch,
                    base_sequence=info.base_sequence,
                    attributes=info.attributes,
                    last_offset_delta=info.last_offset_delta,
                )
            )
        if not removed:
            continue
        cleaned = path.with_name(path.name + CLEANED_SUFFIX)
        with open(cleaned, "wb") as f:
            f.write(b"".join(pieces))
            f.flush()
            os.fsync(f.fileno())
        out.append((base, cleaned, removed, size))
    return out


def swap(log_: Log, rewritten: list[tuple[int, Path, int, int]]) -> CompactionResult:
    """Event-loop part: replace segments by their cleaned files."""
    result = CompactionResult()
    for base, cleaned, removed, size_before in rewritten:
        index = next((i for i, s in enumerate(log_.segments[:-1]) if s.base_offset == base), None)
        if index is None:
            cleaned.unlink(missing_ok=True)  # deleted by retention meanwhile
            continue
        old = log_.segments[index]
        if old.size != size_before:
            cleaned.unlink(missing_ok=True)
            continue
        next_offset = old.next_offset
        os.replace(cleaned, old.log_path)
        close_segment(old, write_indexes=False)
        fresh = Segment(log_.directory, base, log_.config.index_interval_bytes)
        fresh.recover(check_crc=False)
        fresh.next_offset = max(fresh.next_offset, next_offset)
        fresh.write_indexes()
        log_.segments[index] = fresh
        if log_._hw_segment is old:
            log_._hw_segment = fresh
        result.segments_rewritten += 1
        result.records_removed += removed
        result.bytes_before += size_before
        result.bytes_after += fresh.size
    return result

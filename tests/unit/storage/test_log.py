"""Contract tests of one partition log: offsets, reads, indexes, rolling,
retention, delete-records, recovery."""

from __future__ import annotations

import os

import pytest

from dovecote.storage.batch import iter_records, scan_batches
from dovecote.storage.log import Log, LogConfig, OffsetOutOfRange

from .conftest import append, flush, make_batch


def values(log: Log, offset: int = 0, max_bytes: int = 1 << 30) -> list[bytes]:
    return [r.value for r in log.read_records(offset, max_bytes)]


def test_offsets_are_assigned_contiguously(open_log):
    log = open_log()
    first = append(log, make_batch(3))
    second = append(log, make_batch(2))
    assert (first.base_offset, first.last_offset) == (0, 2)
    assert (second.base_offset, second.last_offset) == (3, 4)
    assert log.log_end_offset == 5
    assert [r.offset for r in log.read_records(0, 1 << 20)] == [0, 1, 2, 3, 4]


def test_a_producer_base_offset_is_overwritten_and_crc_still_holds(open_log):
    log = open_log()
    data = bytearray(make_batch(2))
    data[0:8] = (12345).to_bytes(8, "big")  # producers send 0; any value is replaced
    append(log, bytes(data))
    chunk = log.read(0, 1 << 20)
    [info] = scan_batches(chunk.read(), check_crc=True)
    assert info.base_offset == 0


def test_read_from_the_middle_of_a_batch_returns_the_whole_batch(open_log):
    log = open_log()
    append(log, make_batch(10))
    chunk = log.read(5, 1)
    [info] = scan_batches(chunk.read())
    assert info.base_offset == 0 and info.count == 10
    assert values(log, 5) == [b"v5", b"v6", b"v7", b"v8", b"v9"]


def test_max_bytes_cuts_the_tail_but_never_the_first_batch(open_log):
    log = open_log()
    sizes = [len(make_batch(5, size=100)) for _ in range(3)]
    for _ in range(3):
        append(log, make_batch(5, size=100))
    chunk = log.read(0, sizes[0] + 10)
    assert chunk.size == sizes[0] + 10  # a partial second batch is allowed
    assert len(scan_batches(chunk.read()[: sizes[0]])) == 1
    assert log.read(0, 1).size == sizes[0]


def test_out_of_range_and_end_of_log(open_log):
    log = open_log()
    append(log, make_batch(2))
    assert log.read(2, 100) is None  # at the end: nothing yet
    with pytest.raises(OffsetOutOfRange):
        log.read(3, 100)
    with pytest.raises(OffsetOutOfRange):
        log.read(-1, 100)


def test_segments_roll_by_size_and_reads_cross_them(open_log):
    log = open_log(LogConfig(segment_bytes=2048, index_interval_bytes=128))
    for i in range(50):
        append(log, make_batch(2, prefix=f"b{i}-"))
    assert len(log.segments) >= 3
    assert len(log._bases) == len(log.segments)
    collected = []
    offset = 0
    while offset < log.log_end_offset:
        chunk = log.read(offset, 1 << 20)
        infos = scan_batches(chunk.read())
        records = iter_records(chunk.read())
        collected += [r.value for r in records if r.offset >= offset]
        offset = infos[-1].last_offset + 1
    assert collected == [f"b{i}-{j}".encode() for i in range(50) for j in range(2)]


def test_segment_roll_by_age(open_log):
    log = open_log(LogConfig(segment_ms=1000))
    append(log, make_batch(1), now_ms=10_000)
    append(log, make_batch(1), now_ms=10_500)
    assert len(log.segments) == 1
    append(log, make_batch(1), now_ms=11_100)
    assert len(log.segments) == 2


def test_lookup_by_timestamp(open_log):
    log = open_log(LogConfig(segment_bytes=4096, index_interval_bytes=64))
    for i in range(100):
        append(log, make_batch(2, ts=1_000_000 + i * 10))
    assert log.offset_for_timestamp(0) == (0, 1_000_000)
    assert log.offset_for_timestamp(1_000_000 + 505) == (102, 1_000_510)
    assert log.offset_for_timestamp(1_000_000 + 990) == (198, 1_000_990)
    assert log.offset_for_timestamp(2_000_000) is None


def test_log_append_time_is_stamped_and_crc_recomputed(open_log):
    log = open_log(LogConfig(log_append_time=True))
    append(log, make_batch(3, ts=5), now_ms=123_456)
    data = log.read(0, 1 << 20).read()
    [info] = scan_batches(data, check_crc=True)
    assert info.log_append_time
    assert [r.timestamp for r in iter_records(data)] == [123_456] * 3


def test_delete_records_moves_the_start_and_survives_reopen(open_log, tmp_path):
    log = open_log(LogConfig(segment_bytes=2048))
    for _ in range(40):
        append(log, make_batch(2, size=200))
    segments_before = len(log.segments)
    assert log.delete_records_before(37) == 37
    assert len(log.segments) < segments_before
    with pytest.raises(OffsetOutOfRange):
        log.read(36, 100)
    assert values(log, 37)[0] == b"v1" + b"x" * 200
    log.close()
    reopened, _ = Log.open(tmp_path / "p0", LogConfig(segment_bytes=2048), clean=True)
    assert reopened.log_start_offset == 37
    assert reopened.log_end_offset == 80
    reopened.close()


def test_retention_by_size_keeps_the_newest(open_log):
    log = open_log(LogConfig(segment_bytes=2048, retention_bytes=4096))
    for _ in range(60):
        append(log, make_batch(2, size=200))
    log.apply_retention()
    assert log.size_bytes <= 4096 + 2048
    assert log.log_start_offset == log.segments[0].base_offset > 0
    assert log.log_end_offset == 120


def test_retention_by_time_deletes_old_segments_including_the_active_one(open_log):
    log = open_log(LogConfig(segment_bytes=2048, retention_ms=1000))
    for i in range(30):
        append(log, make_batch(2, ts=1_000 + i))
    assert log.apply_retention(now_ms=1_000_000) > 0
    assert log.log_start_offset == log.log_end_offset == 60
    assert log.read(60, 100) is None
    append(log, make_batch(1))
    assert values(log, 60) == [b"v0"]


def test_reopen_after_clean_close_uses_index_files(open_log, tmp_path):
    log = open_log(LogConfig(segment_bytes=4096, index_interval_bytes=256))
    for i in range(100):
        append(log, make_batch(3, prefix=f"{i}-"))
    log.close()
    assert all(os.path.exists(s.index_path) for s in log.segments)
    reopened, report = Log.open(tmp_path / "p0", LogConfig(segment_bytes=4096), clean=True)
    assert not report
    assert reopened.log_end_offset == 300
    assert [r.value for r in reopened.read_records(150, 100)][:1] == [b"50-0"]
    reopened.close()


def test_missing_or_damaged_index_is_rebuilt(open_log, tmp_path):
    log = open_log(LogConfig(segment_bytes=4096, index_interval_bytes=256))
    for i in range(100):
        append(log, make_batch(3, prefix=f"{i}-"))
    log.close()
    log.segments[0].index_path.unlink()
    log.segments[1].index_path.write_bytes(b"\xff" * 16)
    reopened, report = Log.open(tmp_path / "p0", LogConfig(segment_bytes=4096), clean=True)
    assert set(report.rebuilt_indexes) >= {log.segments[0].base_offset, log.segments[1].base_offset}
    assert reopened.log_end_offset == 300
    assert [r.value for r in reopened.read_records(0, 100)][:1] == [b"0-0"]
    reopened.close()


@pytest.mark.parametrize("damage", ["truncate", "flip", "garbage"])
def test_unclean_start_cuts_a_damaged_tail(open_log, tmp_path, damage):
    log = open_log()
    ends = []
    for i in range(10):
        append(log, make_batch(4, prefix=f"{i}-", size=50))
        ends.append(log.active.size)
    flush(log)
    path = log.active.log_path
    log.close()
    raw = bytearray(path.read_bytes())
    if damage == "truncate":
        raw = raw[: ends[7] + 30]
    elif damage == "flip":
        raw[ends[7] + 80] ^= 0xFF
    else:
        raw += os.urandom(100)
    path.write_bytes(bytes(raw))
    reopened, report = Log.open(tmp_path / "p0", LogConfig(), clean=False)
    expected_end = ends[-1] if damage == "garbage" else ends[7]
    assert reopened.active.size == expected_end
    assert report.bytes_cut == len(raw) - expected_end
    assert report.reason
    assert reopened.log_end_offset == (40 if damage == "garbage" else 32)
    assert [r.value for r in reopened.read_records(0, 1 << 20)][-1] == (
        b"9-3" + b"x" * 50 if damage == "garbage" else b"7-3" + b"x" * 50
    )
    # Appends continue at the cut point.
    assert append(reopened, make_batch(1)).base_offset == reopened.log_end_offset - 1
    reopened.close()


def test_truncate_to_drops_the_tail(open_log):
    log = open_log()
    for _ in range(5):
        append(log, make_batch(2))
    log.truncate_to(6)
    assert log.log_end_offset == 6
    assert append(log, make_batch(1)).base_offset == 6


def test_high_watermark_hides_unflushed_data(tmp_path):
    log, _ = Log.open(tmp_path / "p", LogConfig(), clean=True)
    append(log, make_batch(2), visible=False)
    assert log.high_watermark == 0
    assert log.read(0, 100) is None
    flush(log)
    assert log.high_watermark == 2
    assert log.read(0, 100) is not None
    log.close()

"""Recovery against any damage to the last segment: truncation, flipped
bytes, garbage after the end, lost index files. The log that opens keeps
exactly the batches before the first damaged one, cuts the rest and says
how much it cut, and appends continue from there.

Bytes 12-15 of a batch (partitionLeaderEpoch) are covered by no check in the
format (Kafka rewrites them without touching the CRC), so a flip there
leaves a batch whose records are intact; every other byte is checked by the
CRC, the framing, or the offset sequence of the active segment."""

from __future__ import annotations

import os
from dataclasses import dataclass

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dovecote.storage.batch import scan_batches
from dovecote.storage.log import Log, LogConfig
from dovecote.storage.segment import close_segment

from .conftest import append, make_batch

UNCHECKED = range(12, 16)  # partitionLeaderEpoch
CONFIG = LogConfig(segment_bytes=4096, index_interval_bytes=256)


@dataclass(frozen=True)
class Damage:
    kind: str  # "truncate" | "flip" | "flip-header" | "garbage"
    where: float  # 0..1 of the file (or of the batches), or bytes from the end when near_end
    near_end: bool
    header_byte: int  # flip-header: which byte of the chosen batch's 61-byte header
    mask: int
    garbage: bytes


damages = st.builds(
    Damage,
    st.sampled_from(["truncate", "flip", "flip-header", "garbage"]),
    st.floats(0, 1, exclude_max=True),
    st.booleans(),
    st.integers(0, 60),
    st.integers(1, 255),
    st.binary(min_size=1, max_size=200),
)


def write_log(directory, batches: list[tuple[int, int]], clean: bool) -> None:
    log, _ = Log.open(directory, CONFIG, clean=True)
    for i, (count, size) in enumerate(batches):
        append(log, make_batch(count, prefix=f"b{i}-", size=size))
    if clean:
        log.close()
    else:
        # A crash: data on disk, the active segment's indexes never written.
        for segment in log.segments:
            close_segment(segment, write_indexes=False)


def apply(path, damage: Damage) -> tuple[bytes, set[int]]:
    """Damage the file; returns its new content and the damaged positions."""
    raw = bytearray(path.read_bytes())
    size = len(raw)
    if damage.kind == "flip-header" and size:
        infos = scan_batches(bytes(raw))
        position = infos[int(damage.where * len(infos))].position + damage.header_byte
        raw[position] ^= damage.mask
        path.write_bytes(bytes(raw))
        return bytes(raw), {position}
    if damage.near_end:
        position = max(0, size - 1 - int(damage.where * min(size, 300)))
    else:
        position = int(damage.where * size)
    touched: set[int] = set()
    if damage.kind == "truncate":
        del raw[position:]
        touched = set(range(position, size))
    elif damage.kind == "flip" and size:
        raw[position] ^= damage.mask
        touched = {position}
    elif damage.kind == "garbage":
        raw += damage.garbage
        touched = set(range(size, size + len(damage.garbage)))
    path.write_bytes(bytes(raw))
    return bytes(raw), touched


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    batches=st.lists(st.tuples(st.integers(1, 4), st.integers(0, 400)), min_size=1, max_size=25),
    damage=damages,
    clean=st.booleans(),
    drop_indexes=st.booleans(),
)
def test_recovery_keeps_exactly_the_intact_prefix(
    tmp_path_factory, batches, damage, clean, drop_indexes
):
    directory = tmp_path_factory.mktemp("log") / "p0"
    write_log(directory, batches, clean)
    last = sorted(directory.glob("*.log"))[-1]
    before = scan_batches(last.read_bytes())
    data, touched = apply(last, damage)
    if drop_indexes:
        for path in directory.glob("*index"):
            path.unlink()

    kept = []
    for info in before:
        span = set(range(info.position, info.position + info.size))
        harmful = {p for p in span & touched if p - info.position not in UNCHECKED}
        if harmful or info.position + info.size > len(data):
            break
        kept.append(info)
    kept_end = kept[-1].position + kept[-1].size if kept else 0
    expected_end = kept[-1].last_offset + 1 if kept else int(last.stem)

    log, report = Log.open(directory, CONFIG, clean=False)
    try:
        assert log.log_end_offset == expected_end
        assert os.path.getsize(last) == kept_end
        assert report.bytes_cut == len(data) - kept_end
        assert (report.reason is not None) == (len(data) > kept_end)
        records = log.read_records(int(last.stem), 1 << 30)
        assert [r.offset for r in records] == list(range(int(last.stem), expected_end))
        result = append(log, make_batch(1, prefix="after-"))
        assert result.base_offset == expected_end
    finally:
        log.close()


def test_a_flipped_base_offset_is_cut_not_served(tmp_path):
    """baseOffset is outside the CRC: without the offset check a flipped bit
    would move records to offsets they never had."""
    directory = tmp_path / "p0"
    write_log(directory, [(2, 10), (2, 10), (2, 10)], clean=False)
    [path] = directory.glob("*.log")
    raw = bytearray(path.read_bytes())
    third = scan_batches(bytes(raw))[2]
    raw[third.position + 3] ^= 0x40  # offset 4 becomes 2**38 + 4
    path.write_bytes(bytes(raw))
    log, report = Log.open(directory, CONFIG, clean=False)
    try:
        assert log.log_end_offset == 4
        assert report.bytes_cut == third.size
        assert "offset" in (report.reason or "")
    finally:
        log.close()

"""Record batch v2: our encoder and decoder against each other and against
kafka-python's independent implementation."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from kafka.record.default_records import DefaultRecordBatch, DefaultRecordBatchBuilder

from dovecote.storage import compression
from dovecote.storage.batch import (
    HEADER_SIZE,
    CorruptBatch,
    Record,
    TruncatedBatch,
    build_batch,
    decode_batch,
    iter_records,
    scan_batches,
    scan_prefix,
)

header_names = st.text(min_size=0, max_size=20)
opt_bytes = st.one_of(st.none(), st.binary(max_size=300))
records_st = st.lists(
    st.builds(
        Record,
        value=opt_bytes,
        key=opt_bytes,
        headers=st.lists(st.tuples(header_names, opt_bytes), max_size=4),
        timestamp=st.integers(min_value=0, max_value=2**41),
    ),
    min_size=1,
    max_size=30,
)


@given(records_st, st.sampled_from(list(compression.NAMES)))
def test_build_then_decode_round_trips(records, codec):
    data = build_batch(records, base_offset=100, compression_type=codec)
    [info] = scan_batches(data)
    assert info.count == len(records)
    assert info.compression == codec
    decoded = decode_batch(data, info)
    assert [(r.key, r.value, r.headers, r.timestamp) for r in decoded] == [
        (r.key, r.value, r.headers, r.timestamp) for r in records
    ]
    assert [r.offset for r in decoded] == list(range(100, 100 + len(records)))


@given(records_st)
def test_kafka_python_reads_our_batches(records):
    data = build_batch(records, base_offset=7)
    batch = DefaultRecordBatch(data)
    assert batch.validate_crc()
    theirs = list(batch)
    assert [(r.offset, r.key, r.value, r.timestamp) for r in theirs] == [
        (7 + i, r.key, r.value, r.timestamp) for i, r in enumerate(records)
    ]
    assert [list(r.headers) for r in theirs] == [list(r.headers) for r in records]


@pytest.mark.parametrize("codec", [0, 1])  # kafka-python has gzip built in
def test_we_read_kafka_python_batches(codec):
    builder = DefaultRecordBatchBuilder(2, codec, False, -1, -1, -1, 1 << 20)
    for i in range(50):
        builder.append(i, 1_700_000_000_000 + i, f"k{i}".encode(), f"v{i}".encode(), [("h", b"x")])
    data = bytes(builder.build())
    [info] = scan_batches(data)
    decoded = decode_batch(data, info)
    assert [(r.offset, r.key, r.value) for r in decoded] == [
        (i, f"k{i}".encode(), f"v{i}".encode()) for i in range(50)
    ]
    assert decoded[3].headers == [("h", b"x")]
    assert decoded[3].timestamp == 1_700_000_000_003


def test_scan_rejects_flipped_bit_and_reports_position():
    first = build_batch([Record(b"a")])
    second = bytearray(build_batch([Record(b"b" * 100)]))
    second[HEADER_SIZE + 10] ^= 0x01
    infos, error = scan_prefix(first + bytes(second))
    assert len(infos) == 1
    assert isinstance(error, CorruptBatch) and error.reason == "CRC mismatch"
    assert error.position == len(first)
    with pytest.raises(CorruptBatch):
        scan_batches(first + bytes(second))


def test_scan_reports_truncation():
    data = build_batch([Record(b"x" * 50)])
    for cut in (1, HEADER_SIZE - 1, HEADER_SIZE, len(data) - 1):
        with pytest.raises(TruncatedBatch):
            scan_batches(data[:cut])


def test_scan_rejects_bad_magic_and_lengths():
    data = bytearray(build_batch([Record(b"x")]))
    data[16] = 1
    with pytest.raises(CorruptBatch, match="magic"):
        scan_batches(bytes(data))
    data = bytearray(build_batch([Record(b"x")]))
    data[8:12] = (3).to_bytes(4, "big")
    with pytest.raises(CorruptBatch, match="too small"):
        scan_batches(bytes(data))


def test_iter_records_over_many_batches():
    data = b"".join(build_batch([Record(f"{i}".encode())], base_offset=i) for i in range(5))
    assert [r.value for r in iter_records(data)] == [b"0", b"1", b"2", b"3", b"4"]


@pytest.mark.parametrize("codec", list(compression.NAMES))
def test_compression_round_trip(codec):
    payload = b"hello dovecote " * 1000
    assert compression.decompress(codec, compression.compress(codec, payload)) == payload


def test_xerial_snappy_framing_is_read():
    import cramjam

    chunk = bytes(cramjam.snappy.compress_raw(b"abc" * 100))
    framed = b"\x82SNAPPY\x00" + (1).to_bytes(4, "big") + (1).to_bytes(4, "big")
    framed += len(chunk).to_bytes(4, "big") + chunk
    assert compression.decompress(compression.SNAPPY, framed) == b"abc" * 100

"""FrameReader: every split of the stream gives the same frames, bad sizes fail at once."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dovecote.kafka.codec import FrameReader, FrameTooLarge, MalformedFrame, frame

PAYLOADS = [b"abc", b"", b"x" * 300, bytes(range(256)), b"\x00\x00\x00\x05", b"z"]
STREAM = b"".join(frame(p) for p in PAYLOADS)


def feed_all(reader: FrameReader, chunks: list[bytes]) -> list[bytes]:
    return [bytes(f) for chunk in chunks for f in reader.feed(chunk)]


def test_one_chunk_gives_every_frame_as_a_view_of_the_chunk():
    frames = FrameReader(1024).feed(STREAM)
    assert [bytes(f) for f in frames] == PAYLOADS
    assert all(isinstance(f, memoryview) and f.obj is STREAM for f in frames)


def test_split_at_every_byte_boundary():
    for cut in range(len(STREAM) + 1):
        reader = FrameReader(1024)
        assert feed_all(reader, [STREAM[:cut], STREAM[cut:]]) == PAYLOADS, cut
        assert reader.buffered == 0


def test_split_at_every_pair_of_boundaries_around_the_big_frame():
    start = len(frame(b"abc")) + len(frame(b""))
    stop = start + len(frame(b"x" * 300))
    for a in range(start - 5, stop + 5, 7):
        for b in range(a, stop + 9, 5):
            chunks = [STREAM[:a], STREAM[a:b], STREAM[b:]]
            assert feed_all(FrameReader(1024), chunks) == PAYLOADS, (a, b)


def test_byte_at_a_time():
    reader = FrameReader(1024)
    chunks = [STREAM[i : i + 1] for i in range(len(STREAM))]
    assert feed_all(reader, chunks) == PAYLOADS


@settings(max_examples=200, deadline=None)
@given(
    payloads=st.lists(st.binary(max_size=600), max_size=8),
    cuts=st.lists(st.integers(min_value=0, max_value=5000), max_size=10),
)
def test_any_split_of_any_stream(payloads, cuts):
    stream = b"".join(frame(p) for p in payloads)
    points = sorted({min(c, len(stream)) for c in cuts})
    chunks = [stream[a:b] for a, b in zip([0, *points], [*points, len(stream)], strict=True)]
    reader = FrameReader(600)
    assert feed_all(reader, chunks) == payloads
    assert reader.buffered == 0


def test_frame_spread_over_chunks_is_joined_once_into_bytes():
    payload = bytes(range(256)) * 64
    data = frame(payload)
    reader = FrameReader(1 << 20)
    out = []
    for i in range(0, len(data), 1000):
        out += reader.feed(data[i : i + 1000])
    assert len(out) == 1 and type(out[0]) is bytes and out[0] == payload


def test_frame_whose_body_arrives_in_one_later_chunk_is_not_copied():
    payload = b"p" * 100
    reader = FrameReader(1024)
    assert reader.feed(struct.pack(">i", 100)) == []
    chunk = payload + frame(b"next")
    frames = reader.feed(chunk)
    assert [bytes(f) for f in frames] == [payload, b"next"]
    assert isinstance(frames[0], memoryview) and frames[0].obj is chunk


def test_size_prefix_split_across_chunks():
    reader = FrameReader(1024)
    data = frame(b"hello")
    assert reader.feed(data[:1]) == []
    assert reader.feed(data[1:3]) == []
    assert [bytes(f) for f in reader.feed(data[3:])] == [b"hello"]


def test_zero_length_frame_after_split_prefix():
    reader = FrameReader(16)
    assert reader.feed(b"\x00\x00") == []
    assert [bytes(f) for f in reader.feed(b"\x00\x00" + frame(b"a"))] == [b"", b"a"]


def test_frame_of_exactly_the_limit_is_accepted():
    assert [bytes(f) for f in FrameReader(5).feed(frame(b"12345"))] == [b"12345"]


def test_oversized_frame_fails_as_soon_as_its_prefix_is_in():
    reader = FrameReader(100)
    with pytest.raises(FrameTooLarge) as info:
        reader.feed(frame(b"ok") + struct.pack(">i", 101) + b"only a little")
    assert info.value.size == 101
    assert [bytes(f) for f in info.value.frames] == [b"ok"]


def test_oversized_prefix_split_across_chunks():
    reader = FrameReader(100)
    reader.feed(b"\x7f\xff")
    with pytest.raises(FrameTooLarge):
        reader.feed(b"\xff\xff")


@pytest.mark.parametrize("size", [-1, -(2**31), -100])
def test_negative_size_is_malformed(size):
    with pytest.raises(MalformedFrame) as info:
        FrameReader(100).feed(struct.pack(">i", size))
    assert info.value.size == size


def test_reader_stays_dead_after_an_error():
    reader = FrameReader(10)
    with pytest.raises(FrameTooLarge):
        reader.feed(struct.pack(">i", 11))
    with pytest.raises(FrameTooLarge):
        reader.feed(frame(b"fine"))


def test_mutable_input_is_copied_so_later_writes_do_not_change_frames():
    buf = bytearray(frame(b"abcd"))
    frames = FrameReader(10).feed(buf)
    buf[4:8] = b"XXXX"
    assert bytes(frames[0]) == b"abcd"


def test_partial_memoryview_input_is_copied_too():
    backing = bytearray(frame(b"abcdef"))
    reader = FrameReader(10)
    assert reader.feed(memoryview(backing)[:6]) == []
    backing[4:6] = b"XX"
    assert [bytes(f) for f in reader.feed(bytes(backing[6:]))] == [b"abcdef"]


def test_negative_limit_is_rejected():
    with pytest.raises(ValueError):
        FrameReader(-1)

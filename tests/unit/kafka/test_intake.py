"""Request intake: frames are reserved from the budget when their size
prefix arrives, the connection is told to wait when it is used up, and
everything reserved comes back."""

from __future__ import annotations

import struct

import pytest

from dovecote.core.memory import MemoryBudget
from dovecote.kafka.codec import FrameError
from dovecote.kafka.intake import WAIT, FrameIntake


def framed(body: bytes) -> bytes:
    return struct.pack(">i", len(body)) + body


def test_frames_come_out_whole_with_their_reservation():
    budget = MemoryBudget(1000)
    intake = FrameIntake(budget, 1 << 20)
    data = framed(b"a" * 10) + framed(b"b" * 20)
    intake.feed(data[:7])
    assert intake.take(lambda: None) is None
    assert intake.partial and budget.used == 10  # reserved before the body arrived
    intake.feed(data[7:])
    frame, reserved = intake.take(lambda: None)
    assert (bytes(frame), reserved) == (b"a" * 10, 10)
    frame, reserved = intake.take(lambda: None)
    assert (bytes(frame), reserved) == (b"b" * 20, 20)
    assert intake.take(lambda: None) is None
    assert budget.used == 30


def test_waits_for_budget_and_resumes():
    budget = MemoryBudget(100)
    budget.try_reserve(100)
    intake = FrameIntake(budget, 1 << 20)
    intake.feed(framed(b"x" * 50))
    resumed: list[bool] = []
    assert intake.take(lambda: resumed.append(True)) == WAIT
    assert intake.take(lambda: resumed.append(True)) == WAIT  # still waiting
    budget.release(100)
    assert resumed == [True]
    frame, reserved = intake.take(lambda: None)
    assert (bytes(frame), reserved) == (b"x" * 50, 50)


def test_closing_gives_back_the_partial_frame_and_the_place_in_line():
    budget = MemoryBudget(100)
    first = FrameIntake(budget, 1 << 20)
    first.feed(framed(b"y" * 200)[:10])
    assert first.take(lambda: None) is None and budget.used == 200
    second = FrameIntake(budget, 1 << 20)
    second.feed(framed(b"z"))
    assert second.take(lambda: None) == WAIT
    second.close()
    first.close()
    assert budget.used == 0 and budget.waiting == 0


def test_oversized_and_negative_sizes_are_refused_before_anything_is_reserved():
    budget = MemoryBudget(100)
    for size in (-1, 1 << 21):
        intake = FrameIntake(budget, 1 << 20)
        intake.feed(struct.pack(">i", size))
        with pytest.raises(FrameError):
            intake.take(lambda: None)
    assert budget.used == 0


def test_frames_inside_one_chunk_are_views_and_split_frames_are_joined_once():
    intake = FrameIntake(MemoryBudget(0), 1 << 20)
    chunk = framed(b"one") + framed(b"two")[:5]
    intake.feed(chunk)
    first, _ = intake.take(lambda: None)
    assert isinstance(first, memoryview) and bytes(first) == b"one"
    assert intake.take(lambda: None) is None
    intake.feed(b"wo")
    second, _ = intake.take(lambda: None)
    assert second == b"two"
    intake.feed(framed(b""))
    empty, reserved = intake.take(lambda: None)
    assert bytes(empty) == b"" and reserved == 1

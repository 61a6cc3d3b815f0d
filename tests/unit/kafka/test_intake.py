"""Request intake: frames are reserved from the budget when their size
prefix arrives, the connection is told to wait when it is used up, and
everything reserved comes back."""

from __future__ import annotations

import struct

import pytest

from dovecote.core.clock import FakeClock
from dovecote.core.flow import Flow
from dovecote.core.memory import MemoryBudget
from dovecote.kafka.codec import FrameError
from dovecote.kafka.intake import WAIT, FrameIntake


class Owner:
    """Stands in for the connection: counts budget grants."""

    def __init__(self) -> None:
        self.granted = 0

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def budget_granted(self) -> None:
        self.granted += 1

    def stalled(self, idle: float) -> None:
        raise AssertionError("no watchdog runs here")


def intake_for(
    budget: MemoryBudget, max_frame_size: int, owner: Owner | None = None
) -> FrameIntake:
    flow = Flow(owner or Owner(), budget, FakeClock(), stall_timeout=30.0)
    return FrameIntake(flow, max_frame_size)


def framed(body: bytes) -> bytes:
    return struct.pack(">i", len(body)) + body


def test_frames_come_out_whole_with_their_reservation():
    budget = MemoryBudget(1000)
    intake = intake_for(budget, 1 << 20)
    data = framed(b"a" * 10) + framed(b"b" * 20)
    intake.feed(data[:7])
    assert intake.take() is None
    assert intake.partial and budget.used == 10  # reserved before the body arrived
    intake.feed(data[7:])
    frame, reserved = intake.take()
    assert (bytes(frame), reserved) == (b"a" * 10, 10)
    frame, reserved = intake.take()
    assert (bytes(frame), reserved) == (b"b" * 20, 20)
    assert intake.take() is None
    assert budget.used == 30


def test_waits_for_budget_and_resumes():
    budget = MemoryBudget(100)
    budget.try_reserve(100)
    owner = Owner()
    intake = intake_for(budget, 1 << 20, owner)
    intake.feed(framed(b"x" * 50))
    assert intake.take() == WAIT
    assert intake.take() == WAIT  # still waiting
    assert intake.flow.paused
    budget.release(100)
    assert owner.granted == 1 and not intake.flow.paused
    frame, reserved = intake.take()
    assert (bytes(frame), reserved) == (b"x" * 50, 50)


def test_closing_gives_back_the_partial_frame_and_the_place_in_line():
    budget = MemoryBudget(100)
    first = intake_for(budget, 1 << 20)
    first.feed(framed(b"y" * 200)[:10])
    assert first.take() is None and budget.used == 200
    second = intake_for(budget, 1 << 20)
    second.feed(framed(b"z"))
    assert second.take() == WAIT
    second.close()
    first.close()
    assert budget.used == 0 and budget.waiting == 0


def test_oversized_and_negative_sizes_are_refused_before_anything_is_reserved():
    budget = MemoryBudget(100)
    for size in (-1, 1 << 21):
        intake = intake_for(budget, 1 << 20)
        intake.feed(struct.pack(">i", size))
        with pytest.raises(FrameError):
            intake.take()
    assert budget.used == 0


def test_small_frames_come_from_the_scratch_and_large_ones_are_read_in_place():
    intake = intake_for(MemoryBudget(0), 1 << 24)
    intake.feed(framed(b"one") + framed(b"two")[:5])
    first, _ = intake.take()
    assert first == b"one"
    assert intake.take() is None
    intake.feed(b"wo")
    second, _ = intake.take()
    assert second == b"two"
    intake.feed(framed(b""))
    empty, reserved = intake.take()
    assert bytes(empty) == b"" and reserved == 1

    big = bytes(range(256)) * 4096  # 1 MiB
    stream = framed(big) + framed(b"after")
    intake.feed(stream[:1000])
    assert intake.take() is None  # reserved; the rest goes into its own buffer
    into = intake.get_buffer(-1)
    assert len(into) == len(big) - 996  # exactly the rest of the body, nothing beyond
    into[:] = stream[1000 : 4 + len(big)]
    intake.buffer_updated(len(into))
    frame, reserved = intake.take()
    assert isinstance(frame, memoryview) and frame == big and reserved == len(big)
    assert frame.readonly
    # After a large frame the next read peeks: the next large body is not read into the scratch.
    assert len(intake.get_buffer(-1)) <= 4096
    intake.feed(stream[4 + len(big) :])
    after, _ = intake.take()
    assert after == b"after" and intake.buffered == 0


def test_a_frame_whose_body_arrived_is_not_read_into_again():
    intake = intake_for(MemoryBudget(0), 1 << 24)
    body = b"x" * 100_000
    intake.feed(framed(body)[:10])
    assert intake.take() is None
    intake.feed(framed(body)[10:] + framed(b"next"))  # body complete, next frame behind it
    frame, _ = intake.take()
    assert frame == body
    nxt, _ = intake.take()
    assert nxt == b"next"


def test_many_small_frames_in_any_chunking_come_out_in_order():
    intake = intake_for(MemoryBudget(0), 1 << 24)
    bodies = [bytes([i % 251]) * (i * 37 % 5000) for i in range(400)]
    stream = b"".join(framed(b) for b in bodies)
    out = []
    for i in range(0, len(stream), 7919):
        intake.feed(stream[i : i + 7919])
        while (taken := intake.take()) is not None:
            out.append(bytes(taken[0]))
    assert out == bodies

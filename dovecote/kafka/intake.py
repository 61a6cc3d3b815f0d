"""Request intake for one Kafka connection: the codec's framing (int32 size +
body, zero-copy views of the received chunks, one join for a frame split
across chunks) with admission control in front of every body.

Each frame's size is reserved from the broker's memory budget as soon as its
size prefix has arrived, before its body is taken in. When the budget
refuses, :meth:`FrameIntake.take` answers ``WAIT``; the connection stops
reading, and the budget calls back once the bytes are reserved. A frame let
in can always be completed (its memory is reserved), so connections waiting
for budget never hold up those that got it. What a waiting connection holds
beyond its reservations is the rest of the chunk it last read.

(The codec's :class:`~dovecote.kafka.codec.FrameReader` takes in every body
as it comes, which is what an admission gate must not do; hence this.)
"""

from __future__ import annotations

import collections
import struct
from collections.abc import Callable
from typing import Final

from dovecote.core.memory import MemoryBudget, Waiter
from dovecote.kafka.codec import FrameTooLarge, MalformedFrame

SIZE = struct.Struct(">i")
WAIT: Final = "wait"

Frame = bytes | memoryview


class FrameIntake:
    def __init__(self, budget: MemoryBudget, max_frame_size: int) -> None:
        self.budget = budget
        self.max_frame_size = max_frame_size
        self._chunks: collections.deque[memoryview] = collections.deque()
        self._available = 0  # bytes in _chunks
        self._size = -1  # body size of the frame whose prefix was read; -1: none
        self.reserved = 0  # bytes reserved for that frame
        self.waiter: Waiter | None = None

    def feed(self, data: bytes) -> None:
        """Take a chunk as the socket delivered it (bytes: never written to again)."""
        if data:
            self._chunks.append(memoryview(data))
            self._available += len(data)

    @property
    def partial(self) -> bool:
        """A frame's size is reserved and its body is still arriving."""
        return self.reserved > 0

    @property
    def buffered(self) -> int:
        return self._available

    def take(self, on_reserved: Callable[[], None]) -> tuple[Frame, int] | str | None:
        """The next whole frame (size prefix removed) and the bytes reserved
        for it, to be released once it is answered; None when more data is
        needed; WAIT when the budget is used up (``on_reserved`` is called
        once it has made room). Raises the codec's FrameError on an
        impossible size prefix."""
        if self.waiter is not None:
            return WAIT
        if self._size < 0:
            if self._available < 4:
                return None
            (size,) = SIZE.unpack(self._consume(4))
            if size < 0:
                raise MalformedFrame(f"negative frame size {size}", size)
            if size > self.max_frame_size:
                raise FrameTooLarge(
                    f"frame of {size} bytes exceeds the limit of {self.max_frame_size}", size
                )
            self._size = size
        if not self.reserved and not self._reserve(max(self._size, 1), on_reserved):
            return WAIT
        if self._available < self._size:
            return None
        body = self._consume(self._size) if self._size else b""
        reserved, self.reserved, self._size = self.reserved, 0, -1
        return body, reserved

    def _reserve(self, charge: int, on_reserved: Callable[[], None]) -> bool:
        if self.budget.try_reserve(charge):
            self.reserved = charge
            return True
        granted = False

        def reserved() -> None:
            nonlocal granted
            granted = True
            self.reserved = charge
            if self.waiter is not None:  # we answered WAIT: say it is over
                self.waiter = None
                on_reserved()

        waiter = self.budget.wait(charge, reserved)
        if granted:  # room was made while queueing
            return True
        self.waiter = waiter
        return False

    def _consume(self, count: int) -> Frame:
        """The next ``count`` bytes: a view of one chunk, or one join of several."""
        self._available -= count
        chunks = self._chunks
        first = chunks[0]
        if len(first) > count:
            chunks[0] = first[count:]
            return first[:count]
        if len(first) == count:
            chunks.popleft()
            return first
        parts = []
        while count:
            chunk = chunks[0]
            if len(chunk) <= count:
                parts.append(chunks.popleft())
                count -= len(chunk)
            else:
                parts.append(chunk[:count])
                chunks[0] = chunk[count:]
                count = 0
        return b"".join(parts)

    def close(self) -> None:
        """Give back what this connection holds (it is gone)."""
        if self.waiter is not None:
            self.budget.cancel(self.waiter)
            self.waiter = None
        if self.reserved:
            self.budget.release(self.reserved)
            self.reserved = 0
        self._chunks.clear()
        self._available = 0

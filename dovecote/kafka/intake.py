"""Request intake for one Kafka connection: the codec's framing (int32 size +
body) with admission control in front of every body, reading straight into
the memory a frame will live in.

Each frame's size is reserved from the broker's memory budget, through the
connection's :class:`~dovecote.core.flow.Flow`, as soon as its size prefix
has arrived, before its body is taken in. When the budget refuses,
:meth:`FrameIntake.take` answers ``WAIT``; the flow stops reading, and calls
the connection back once the bytes are reserved. A frame let
in can always be completed (its memory is reserved), so connections waiting
for budget never hold up those that got it.

The socket reads into buffers this class hands out (asyncio's
BufferedProtocol): a scratch buffer for size prefixes and small frames, and,
once a frame's size is known and reserved and its body has not all arrived,
the frame's own buffer. A large produce request is thus received in place:
no copy into the event loop's read buffer, none to join its chunks. What a
waiting connection holds beyond its reservations is the scratch buffer.

(The codec's :class:`~dovecote.kafka.codec.FrameReader` takes in every body
as it comes, which is what an admission gate must not do; hence this.)
"""

from __future__ import annotations

import mmap
import struct
from typing import Final

from dovecote.core.flow import Flow
from dovecote.kafka.codec import FrameTooLarge, MalformedFrame

SIZE = struct.Struct(">i")
WAIT: Final = "wait"

Frame = bytes | memoryview


# The scratch buffer starts small (idle connections are many) and doubles,
# up to SCRATCH_MAX, while reads fill all the room it offers.
SCRATCH_START = 16 * 1024
SCRATCH_MAX = 256 * 1024
LAZY_BUFFER_BYTES = 256 * 1024  # frame bodies this large get a lazily backed buffer
MIN_FREE = 4 * 1024
PEEK_BYTES = (
    4 * 1024
)  # what is read into the scratch after a frame received in place  # below this much room at its end, the scratch is compacted


def _frame_buffer(size: int) -> bytearray | mmap.mmap:
    """A writable buffer for a frame body. A large one is an anonymous mapping,
    whose pages are only backed by memory as the body arrives: a client that
    announces a large request and sends nothing costs budget, not RSS."""
    if size >= LAZY_BUFFER_BYTES:
        return mmap.mmap(-1, size)
    return bytearray(size)


class FrameIntake:
    def __init__(self, flow: Flow, max_frame_size: int) -> None:
        self.max_frame_size = max_frame_size
        self._scratch = bytearray(SCRATCH_START)
        self._view = memoryview(self._scratch)
        self._offered = 0  # room the last get_buffer offered in the scratch
        self._into_body = False  # the last get_buffer offered the frame's own buffer
        self._large_frames = False  # the last frame was received in place
        self._start = 0  # unparsed bytes are _scratch[_start:_end]
        self._end = 0
        self._body: bytearray | mmap.mmap | None = None  # the frame received in place
        self._filled = 0  # bytes of _body received
        self._size = -1  # body size of the frame whose prefix was read; -1: none
        self.flow = flow  # what is reserved for that frame is the flow's

    # --- what the socket reads into ------------------------------------------------

    def get_buffer(self, sizehint: int = -1) -> memoryview:
        """Where the next read goes: the rest of the frame being received in
        place, else the free end of the scratch buffer."""
        self._into_body = self._body is not None and self._filled < len(self._body)
        if self._into_body:
            return memoryview(self._body)[self._filled :]  # type: ignore[arg-type]
        if self._start == self._end:
            self._start = self._end = 0
        elif len(self._scratch) - self._end < MIN_FREE:
            kept = self._end - self._start
            if kept + MIN_FREE > len(self._scratch):
                self._grow(kept)  # a prefix and the start of a body waiting for budget
            else:
                self._scratch[:kept] = self._scratch[self._start : self._end]
            self._start, self._end = 0, kept
        if self._start == self._end == 0 and self._large_frames:
            # Large frames come one after another: read little beyond the next
            # size prefix, so the body goes into its own buffer, not the scratch.
            self._offered = -1  # a short read says nothing about the scratch's size
            return self._view[:PEEK_BYTES]
        self._offered = len(self._scratch) - self._end
        return self._view[self._end :]

    def _grow(self, kept: int) -> None:
        grown = bytearray(2 * len(self._scratch))
        grown[:kept] = self._view[self._start : self._start + kept]
        self._scratch, self._view = grown, memoryview(grown)

    def buffer_updated(self, count: int) -> None:
        """``count`` bytes were read into the buffer :meth:`get_buffer` gave."""
        if self._into_body:
            self._filled += count
            return
        self._end += count
        if count == self._offered and len(self._scratch) < SCRATCH_MAX:
            # More was waiting: a larger scratch takes it in fewer reads.
            kept = self._end - self._start
            self._grow(kept)
            self._start, self._end = 0, kept

    def feed(self, data: bytes) -> None:
        """Take bytes that were read elsewhere (tests, other transports)."""
        view = memoryview(data)
        while view:
            buffer = self.get_buffer(len(view))
            count = min(len(buffer), len(view))
            buffer[:count] = view[:count]
            self.buffer_updated(count)
            view = view[count:]

    @property
    def partial(self) -> bool:
        """A frame's size is reserved and its body is still arriving."""
        return self.flow.reserved > 0

    @property
    def waiting(self) -> bool:
        """Queued for budget: reading should stay paused."""
        return self.flow.waiting

    @property
    def buffered(self) -> int:
        return self._end - self._start + self._filled

    # --- frames out ------------------------------------------------------------------

    def take(self) -> tuple[Frame, int] | str | None:
        """The next whole frame (size prefix removed) and the bytes reserved
        for it, to be released once it is answered; None when more data is
        needed; WAIT when the budget is used up (the flow calls its owner
        back once it has made room). Raises the codec's FrameError on an
        impossible size prefix."""
        flow = self.flow
        if flow.waiting:
            return WAIT
        if self._body is not None:
            if self._filled < len(self._body):
                return None
            frame: Frame = memoryview(self._body).toreadonly()  # the codec reads only
            self._body, self._filled = None, 0
            self._large_frames = True
            return frame, self._done()
        if self._size < 0:
            if self._end - self._start < 4:
                return None
            (size,) = SIZE.unpack_from(self._scratch, self._start)
            if size < 0:
                raise MalformedFrame(f"negative frame size {size}", size)
            if size > self.max_frame_size:
                raise FrameTooLarge(
                    f"frame of {size} bytes exceeds the limit of {self.max_frame_size}", size
                )
            self._start += 4
            self._size = size
        if not flow.reserved and not flow.reserve(max(self._size, 1)):
            return WAIT
        available = self._end - self._start
        if available >= self._size:
            frame = bytes(self._view[self._start : self._start + self._size])
            self._start += self._size
            self._large_frames = False
            return frame, self._done()
        # The rest of the body is read straight into the frame's own buffer.
        body = _frame_buffer(self._size)
        body[:available] = self._view[self._start : self._end]
        self._start = self._end = 0
        self._body, self._filled = body, available
        return None

    def _done(self) -> int:
        self._size = -1
        return self.flow.hand_over()

    def close(self) -> None:
        """Give back what this connection holds (it is gone)."""
        self.flow.close()
        self._body = None
        self._start = self._end = self._filled = 0

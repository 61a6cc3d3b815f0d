"""Kafka's framing: every request and response is ``int32 size`` + ``size`` bytes.

:class:`FrameReader` turns the chunks a socket delivers into whole frames
without a growing buffer: frames that lie inside one chunk come back as
zero-copy ``memoryview`` slices of it, and a frame spread over several chunks
is kept as a list of slices and joined once when its last byte arrives (one
copy, and memory grows only with bytes actually received -- a peer announcing a
huge frame and then stalling costs nothing up front).
"""

from __future__ import annotations

import struct

from dovecote.kafka.codec.errors import FrameError, FrameTooLarge, MalformedFrame

SIZE = struct.Struct(">i")
SIZE_PREFIX = SIZE.size  # 4

Frame = bytes | memoryview


class FrameReader:
    """Splits a byte stream into request (or response) frames, sans I/O.

    ``feed(data)`` returns the frames completed by ``data``, size prefix
    removed, in order. They stay valid forever: the reader never writes into a
    buffer it has handed out. ``data`` should be ``bytes`` (what
    ``Protocol.data_received`` gets); other buffers are copied first, because a
    caller may reuse them.

    A negative size raises :class:`MalformedFrame`, one above
    ``max_frame_size`` :class:`FrameTooLarge`, as soon as the 4 prefix bytes
    are in. The reader is then dead: every later ``feed`` raises the same error.
    """

    __slots__ = ("_error", "_head", "_need", "_parts", "max_frame_size")

    def __init__(self, max_frame_size: int) -> None:
        if max_frame_size < 0:
            raise ValueError("max_frame_size must be >= 0")
        self.max_frame_size = max_frame_size
        self._head = b""  # 0-3 bytes of a size prefix split across chunks
        self._parts: list[Frame] = []  # received pieces of the current frame's body
        self._need = 0  # body bytes still missing; 0 = no frame body in progress
        self._error: FrameError | None = None

    @property
    def buffered(self) -> int:
        """Bytes received but not yet returned in a frame."""
        return len(self._head) + sum(len(p) for p in self._parts) + (4 if self._need else 0)

    def feed(self, data: bytes | bytearray | memoryview) -> list[Frame]:
        if self._error is not None:
            raise self._error
        if type(data) is not bytes:
            data = bytes(data)
        frames: list[Frame] = []
        end = len(data)
        view = memoryview(data)
        pos = 0
        if self._need or self._head:
            pos = self._resume(view, frames)
            if pos < 0:
                return frames
        unpack_from = SIZE.unpack_from
        limit = self.max_frame_size
        while end - pos >= 4:
            (size,) = unpack_from(data, pos)
            if size < 0 or size > limit:
                self._fail(size, frames)
            start = pos + 4
            stop = start + size
            if stop > end:
                self._need = size - (end - start)
                if end > start:
                    self._parts.append(view[start:end])
                return frames
            frames.append(view[start:stop])
            pos = stop
        if pos < end:
            self._head = data[pos:end]
        return frames

    def _resume(self, view: memoryview, frames: list[Frame]) -> int:
        """Continue the frame left unfinished by the previous chunk.

        Returns where the rest of ``view`` starts, or -1 when all of ``view``
        went into a frame that is still incomplete.
        """
        pos = 0
        end = len(view)
        if self._head:
            missing = 4 - len(self._head)
            if end < missing:
                self._head += bytes(view)
                return -1
            (size,) = SIZE.unpack(self._head + bytes(view[:missing]))
            self._head = b""
            pos = missing
            if size < 0 or size > self.max_frame_size:
                self._fail(size, frames)
            if size == 0:
                frames.append(b"")
                return pos
            self._need = size
        need = self._need
        if end - pos < need:
            if end > pos:
                self._parts.append(view[pos:])
                self._need = need - (end - pos)
            return -1
        parts = self._parts
        parts.append(view[pos : pos + need])
        frames.append(parts[0] if len(parts) == 1 else b"".join(parts))
        self._parts = []
        self._need = 0
        return pos + need

    def _fail(self, size: int, frames: list[Frame]) -> None:
        if size < 0:
            error: FrameError = MalformedFrame(f"negative frame size {size}", size)
        else:
            error = FrameTooLarge(
                f"frame of {size} bytes exceeds the limit of {self.max_frame_size}", size
            )
        error.frames = frames
        self._error = error
        raise error


def frame(payload: bytes) -> bytes:
    """``payload`` with its size prefix (for tests and small messages)."""
    return SIZE.pack(len(payload)) + payload

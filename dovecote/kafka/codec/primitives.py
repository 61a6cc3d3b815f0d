"""The few Kafka primitive types this package reads and writes by hand.

kio handles message bodies; the request header, the Fetch response fast path
and the Produce request fast path need unsigned varints, tagged-field
sections and compact lengths, with bounds checks that raise
:class:`~dovecote.kafka.codec.errors.MalformedRequest` rather than ``IndexError``.
"""

from __future__ import annotations

import struct

from dovecote.kafka.codec.errors import MalformedRequest

INT16 = struct.Struct(">h")
INT32 = struct.Struct(">i")
INT64 = struct.Struct(">q")
UVARINT_MAX_BYTES = 5  # Kafka's unsigned varint is 32-bit

EMPTY_TAGGED_FIELDS = b"\x00"

Buffer = bytes | bytearray | memoryview


def read_uvarint(buf: Buffer, pos: int) -> tuple[int, int]:
    """(value, next position) of the unsigned varint at ``pos``."""
    try:
        byte = buf[pos]
        if byte < 0x80:
            return byte, pos + 1
        result = byte & 0x7F
        shift = 7
        while True:
            pos += 1
            byte = buf[pos]
            result |= (byte & 0x7F) << shift
            if byte < 0x80:
                return result, pos + 1
            shift += 7
            if shift >= 7 * UVARINT_MAX_BYTES:
                raise MalformedRequest("unsigned varint longer than 5 bytes")
    except IndexError:
        raise MalformedRequest("truncated unsigned varint") from None


def uvarint(value: int) -> bytes:
    """The unsigned varint encoding of ``value`` (>= 0)."""
    if value < 0x80:
        return bytes((value,))
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def read_tagged_fields(buf: Buffer, pos: int, end: int) -> tuple[dict[int, bytes], int]:
    """Read a tagged-field section: ({tag: raw value}, next position)."""
    count, pos = read_uvarint(buf, pos)
    fields: dict[int, bytes] = {}
    for _ in range(count):
        tag, pos = read_uvarint(buf, pos)
        size, pos = read_uvarint(buf, pos)
        if pos + size > end:
            raise MalformedRequest("tagged field runs past the end of the frame")
        fields[tag] = bytes(buf[pos : pos + size])
        pos += size
    return fields, pos


def skip_tagged_fields(buf: Buffer, pos: int, end: int) -> int:
    """Position after a tagged-field section whose contents nobody needs."""
    count, pos = read_uvarint(buf, pos)
    if count == 0:
        return pos
    for _ in range(count):
        _tag, pos = read_uvarint(buf, pos)
        size, pos = read_uvarint(buf, pos)
        pos += size
        if pos > end:
            raise MalformedRequest("tagged field runs past the end of the frame")
    return pos


def encode_tagged_fields(fields: dict[int, bytes]) -> bytes:
    """A tagged-field section with the tags in ascending order, as the spec requires."""
    if not fields:
        return EMPTY_TAGGED_FIELDS
    out = bytearray(uvarint(len(fields)))
    for tag in sorted(fields):
        value = fields[tag]
        out += uvarint(tag)
        out += uvarint(len(value))
        out += value
    return bytes(out)

"""Kafka record batch v2: the unit Dovecote stores on disk and sends on the wire.

Only the 61-byte batch header is touched on the hot path (validation, offset
assignment); records inside a batch are decoded only when a non-Kafka consumer
needs them, and built only when a non-Kafka producer publishes.

Layout (big endian)::

    baseOffset int64 | batchLength int32 | partitionLeaderEpoch int32 | magic int8 |
    crc uint32 | attributes int16 | lastOffsetDelta int32 | baseTimestamp int64 |
    maxTimestamp int64 | producerId int64 | producerEpoch int16 | baseSequence int32 |
    recordsCount int32 | records...

The CRC32C covers everything from ``attributes`` to the end of the batch, so
``baseOffset`` and ``partitionLeaderEpoch`` can be rewritten without touching it.
"""

from __future__ import annotations

import struct
import time
from dataclasses import dataclass, field
from typing import NamedTuple

from crc32c import crc32c

from dovecote.storage import compression

HEADER = struct.Struct(">qiibIhiqqqhii")
HEADER_SIZE = HEADER.size  # 61
LOG_OVERHEAD = 12  # baseOffset + batchLength: bytes not counted in batchLength
CRC_START = 21  # first byte covered by the CRC (attributes)
MAGIC_OFFSET = 16
ATTRIBUTES = struct.Struct(">h")
# build_batch's header in two parts: before the CRC and from the attributes on.
_LEAD_HEADER = struct.Struct(">qiibI")
_TAIL_HEADER = struct.Struct(">hiqqqhii")
INT64 = struct.Struct(">q")
INT32 = struct.Struct(">i")
LENGTH_MAGIC = struct.Struct(">ixxxxb")  # batchLength, then magic after the leader epoch

COMPRESSION_MASK = 0x07
TIMESTAMP_TYPE_BIT = 0x08  # 1 = LogAppendTime
TRANSACTIONAL_BIT = 0x10
CONTROL_BIT = 0x20

NO_PRODUCER_ID = -1
NO_SEQUENCE = -1


class CorruptBatch(ValueError):
    """The bytes are not a well-formed v2 record batch; ``position`` says where."""

    def __init__(self, reason: str, position: int) -> None:
        super().__init__(f"{reason} at byte {position}")
        self.reason = reason
        self.position = position


class TruncatedBatch(CorruptBatch):
    """The buffer ends inside a batch (a torn write, or a partial fetch tail)."""


class BatchInfo(NamedTuple):
    """Header fields of one batch plus where it lies in the scanned buffer."""

    position: int
    size: int  # whole batch including the 12-byte log overhead
    base_offset: int
    attributes: int
    last_offset_delta: int
    base_timestamp: int
    max_timestamp: int
    producer_id: int
    producer_epoch: int
    base_sequence: int
    count: int

    @property
    def last_offset(self) -> int:
        return self.base_offset + self.last_offset_delta

    @property
    def compression(self) -> int:
        return self.attributes & COMPRESSION_MASK

    @property
    def is_transactional(self) -> bool:
        return bool(self.attributes & TRANSACTIONAL_BIT)

    @property
    def is_control(self) -> bool:
        return bool(self.attributes & CONTROL_BIT)

    @property
    def log_append_time(self) -> bool:
        return bool(self.attributes & TIMESTAMP_TYPE_BIT)


def scan_batches(
    buf: bytes | bytearray | memoryview,
    start: int = 0,
    end: int | None = None,
    *,
    check_crc: bool = True,
    max_batch_size: int | None = None,
) -> list[BatchInfo]:
    """Walk consecutive batches in ``buf[start:end]`` and validate each header.

    Raises :class:`TruncatedBatch` when the buffer ends inside a batch and
    :class:`CorruptBatch` on a bad length, magic or CRC.
    """
    infos, error = scan_prefix(buf, start, end, check_crc=check_crc, max_batch_size=max_batch_size)
    if error is not None:
        raise error
    return infos


def scan_prefix(
    buf: bytes | bytearray | memoryview,
    start: int = 0,
    end: int | None = None,
    *,
    check_crc: bool = True,
    max_batch_size: int | None = None,
) -> tuple[list[BatchInfo], CorruptBatch | None]:
    """Like :func:`scan_batches`, but return the valid batches before the first
    error together with that error, so that recovery can cut there."""
    view = memoryview(buf)
    if end is None:
        end = len(view)
    infos: list[BatchInfo] = []
    pos = start
    unpack_header = HEADER.unpack_from
    new_info = tuple.__new__  # skips NamedTuple.__new__'s argument handling
    while pos < end:
        if end - pos < HEADER_SIZE:
            return infos, TruncatedBatch("incomplete batch header", pos)
        h = unpack_header(view, pos)
        # h: base_offset, length, epoch, magic, crc, attributes, last_offset_delta,
        #    base_timestamp, max_timestamp, producer_id, producer_epoch, base_sequence, count
        size = h[1] + LOG_OVERHEAD
        if h[1] < HEADER_SIZE - LOG_OVERHEAD:
            return infos, CorruptBatch(f"batch length {h[1]} too small", pos)
        if h[3] != 2:
            return infos, CorruptBatch(f"unsupported magic {h[3]}", pos)
        if max_batch_size is not None and size > max_batch_size:
            return infos, CorruptBatch(
                f"batch of {size} bytes exceeds the limit {max_batch_size}", pos
            )
        if pos + size > end:
            return infos, TruncatedBatch("batch extends past the end of the data", pos)
        if h[12] < 0 or h[6] < 0:
            return infos, CorruptBatch("negative record count or offset delta", pos)
        if check_crc and crc32c(view[pos + CRC_START : pos + size]) != h[4]:
            return infos, CorruptBatch("CRC mismatch", pos)
        infos.append(new_info(BatchInfo, (pos, size, h[0], *h[5:])))
        pos += size
    return infos, None


# --- varints ---------------------------------------------------------------


def _encode_uvarint(value: int, out: bytearray) -> None:
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)


def encode_varint(value: int, out: bytearray) -> None:
    """Append a zigzag-encoded signed varint (Kafka's ``varint``/``varlong``)."""
    _encode_uvarint((value << 1) ^ (value >> 63), out)


def decode_varint(buf: bytes | memoryview, pos: int) -> tuple[int, int]:
    """Return (value, next position) for a zigzag varint at ``pos``."""
    shift = 0
    result = 0
    while True:
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            break
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")
    return (result >> 1) ^ -(result & 1), pos


# --- records ---------------------------------------------------------------

Header = tuple[str, bytes | None]


@dataclass(slots=True)
class Record:
    """One record as every protocol sees it: AMQP properties, SQS and Pub/Sub
    attributes all travel as headers."""

    value: bytes | None
    key: bytes | None = None
    headers: list[Header] = field(default_factory=list)
    timestamp: int = -1  # ms since epoch; -1 = broker assigns
    offset: int = -1


def _zigzag_bytes(value: int) -> bytes:
    out = bytearray()
    encode_varint(value, out)
    return bytes(out)


# Zigzag varints of the small values most records are made of (offset and
# timestamp deltas, lengths), looked up instead of encoded.
_SMALL = 1 << 12  # ~140 KB of small bytes objects
_VARINTS = [_zigzag_bytes(n) for n in range(_SMALL)]


def _append_record(record: Record, offset_delta: int, timestamp_delta: int, out: bytearray) -> None:
    """Append one length-prefixed record to ``out``, copying its value once (the
    length prefix is worked out from the parts before the value is written)."""
    small = _VARINTS
    head = bytearray(b"\x00")  # attributes
    head += (
        small[timestamp_delta] if 0 <= timestamp_delta < _SMALL else _zigzag_bytes(timestamp_delta)
    )
    head += small[offset_delta] if 0 <= offset_delta < _SMALL else _zigzag_bytes(offset_delta)
    key = record.key
    if key is None:
        head.append(1)  # zigzag(-1)
    else:
        n = len(key)
        head += small[n] if n < _SMALL else _zigzag_bytes(n)
        head += key
    value = record.value
    if value is None:
        head.append(1)
        size = len(head)
    else:
        n = len(value)
        head += small[n] if n < _SMALL else _zigzag_bytes(n)
        size = len(head) + n
    headers = record.headers
    if headers:
        count = len(headers)
        tail = bytearray(small[count] if count < _SMALL else _zigzag_bytes(count))
        for name, hvalue in headers:
            raw = name.encode()
            n = len(raw)
            tail += small[n] if n < _SMALL else _zigzag_bytes(n)
            tail += raw
            if hvalue is None:
                tail.append(1)
            else:
                n = len(hvalue)
                tail += small[n] if n < _SMALL else _zigzag_bytes(n)
                tail += hvalue
        size += len(tail)
    else:
        tail = b"\x00"  # no headers
        size += 1
    out += small[size] if size < _SMALL else _zigzag_bytes(size)
    out += head
    if value is not None:
        out += value
    out += tail


def build_batch(
    records: list[Record],
    *,
    base_offset: int = 0,
    timestamp: int | None = None,
    compression_type: int = compression.NONE,
    producer_id: int = NO_PRODUCER_ID,
    producer_epoch: int = -1,
    base_sequence: int = NO_SEQUENCE,
    attributes: int = 0,
    last_offset_delta: int | None = None,
) -> bytes:
    """Encode ``records`` as one v2 batch (CreateTime unless attributes say otherwise).

    Records whose timestamp is -1 get ``timestamp`` (default: now). With
    ``last_offset_delta`` given, records keep their own offsets relative to
    ``base_offset`` (compaction rewrites batches with gaps this way);
    otherwise they are numbered from 0.

    The batch is written into one buffer, header space first, so the records
    are copied once (an SQS SendMessageBatch of ten 1 KiB bodies was a fifth
    of its storage cost in joins and copies).
    """
    if not records:
        raise ValueError("a batch holds at least one record")
    if timestamp is None:
        timestamp = int(time.time() * 1000)
    stamps = [r.timestamp if r.timestamp >= 0 else timestamp for r in records]
    base_ts = min(stamps)
    max_ts = max(stamps)
    if last_offset_delta is None:
        deltas: list[int] = list(range(len(records)))
        last_offset_delta = len(records) - 1
    else:
        deltas = [r.offset - base_offset for r in records]
    # One buffer: the 61-byte header is filled in once the records are in it.
    out = bytearray(HEADER_SIZE)
    body = out if compression_type == compression.NONE else bytearray()
    for r, delta, ts in zip(records, deltas, stamps, strict=True):
        _append_record(r, delta, ts - base_ts, body)
    if compression_type != compression.NONE:
        out += compression.compress(compression_type, bytes(body))
    attributes = (attributes & ~COMPRESSION_MASK) | compression_type
    _TAIL_HEADER.pack_into(
        out,
        CRC_START,
        attributes,
        last_offset_delta,
        base_ts,
        max_ts,
        producer_id,
        producer_epoch,
        base_sequence,
        len(records),
    )
    crc = crc32c(memoryview(out)[CRC_START:])
    batch_length = len(out) - LOG_OVERHEAD
    _LEAD_HEADER.pack_into(out, 0, base_offset, batch_length, -1, 2, crc)
    return bytes(out)


def batch_records_bytes(batch: bytes | memoryview, info: BatchInfo | None = None) -> bytes:
    """The (decompressed) records section of one batch."""
    view = memoryview(batch)
    if info is None:
        info = scan_batches(view, check_crc=False)[0]
    raw = view[info.position + HEADER_SIZE : info.position + info.size]
    if info.compression == compression.NONE:
        return bytes(raw)
    return compression.decompress(info.compression, raw)


def decode_batch(batch: bytes | memoryview, info: BatchInfo | None = None) -> list[Record]:
    """Decode every record of one batch, resolving absolute offsets and timestamps."""
    view = memoryview(batch)
    if info is None:
        info = scan_batches(view, check_crc=False)[0]
    data = batch_records_bytes(view, info)
    records: list[Record] = []
    pos = 0
    base_offset = info.base_offset
    base_ts = info.base_timestamp
    append_time = info.max_timestamp if info.log_append_time else None
    new_record = Record
    # One-byte varints (lengths < 64, small deltas) are decoded inline, and
    # two-byte ones for the lengths of the record and its value (64 B..8 KiB).
    for _ in range(info.count):
        byte = data[pos]
        if byte < 0x80:
            length = (byte >> 1) ^ -(byte & 1)
            pos += 1
        elif data[pos + 1] < 0x80:
            z = (byte & 0x7F) | (data[pos + 1] << 7)
            length = (z >> 1) ^ -(z & 1)
            pos += 2
        else:
            length, pos = decode_varint(data, pos)
        end = pos + length
        pos += 1  # record attributes, unused in v2
        byte = data[pos]
        if byte < 0x80:
            ts_delta = (byte >> 1) ^ -(byte & 1)
            pos += 1
        else:
            ts_delta, pos = decode_varint(data, pos)
        byte = data[pos]
        if byte < 0x80:
            off_delta = (byte >> 1) ^ -(byte & 1)
            pos += 1
        else:
            off_delta, pos = decode_varint(data, pos)
        byte = data[pos]
        if byte < 0x80:
            klen = (byte >> 1) ^ -(byte & 1)
            pos += 1
        else:
            klen, pos = decode_varint(data, pos)
        if klen < 0:
            key = None
        else:
            key = data[pos : pos + klen]
            pos += klen
        byte = data[pos]
        if byte < 0x80:
            vlen = (byte >> 1) ^ -(byte & 1)
            pos += 1
        elif data[pos + 1] < 0x80:
            z = (byte & 0x7F) | (data[pos + 1] << 7)
            vlen = (z >> 1) ^ -(z & 1)
            pos += 2
        else:
            vlen, pos = decode_varint(data, pos)
        if vlen < 0:
            value = None
        else:
            value = data[pos : pos + vlen]
            pos += vlen
        byte = data[pos]
        if byte < 0x80:
            nheaders = (byte >> 1) ^ -(byte & 1)
            pos += 1
        else:
            nheaders, pos = decode_varint(data, pos)
        headers: list[Header] = []
        for _h in range(nheaders):
            byte = data[pos]
            if byte < 0x80:
                hklen = (byte >> 1) ^ -(byte & 1)
                pos += 1
            else:
                hklen, pos = decode_varint(data, pos)
            hkey = data[pos : pos + hklen].decode("utf-8", "replace")
            pos += hklen
            byte = data[pos]
            if byte < 0x80:
                hvlen = (byte >> 1) ^ -(byte & 1)
                pos += 1
            else:
                hvlen, pos = decode_varint(data, pos)
            if hvlen < 0:
                hval = None
            else:
                hval = data[pos : pos + hvlen]
                pos += hvlen
            headers.append((hkey, hval))
        if pos != end:
            raise CorruptBatch("record length disagrees with its fields", info.position)
        records.append(
            new_record(
                value,
                key,
                headers,
                append_time if append_time is not None else base_ts + ts_delta,
                base_offset + off_delta,
            )
        )
    return records


def iter_records(data: bytes | memoryview) -> list[Record]:
    """Decode every record of every batch in ``data`` (control batches skipped)."""
    view = memoryview(data)
    out: list[Record] = []
    for info in scan_batches(view, check_crc=False):
        if info.is_control:
            continue
        out.extend(decode_batch(view, info))
    return out


def set_base_offset(batch: bytearray, position: int, base_offset: int) -> None:
    INT64.pack_into(batch, position, base_offset)


def stamp_log_append_time(batch: bytearray, info: BatchInfo, now_ms: int) -> None:
    """Turn a batch into LogAppendTime: set the attribute bit and maxTimestamp, re-CRC."""
    pos = info.position
    ATTRIBUTES.pack_into(batch, pos + CRC_START, info.attributes | TIMESTAMP_TYPE_BIT)
    INT64.pack_into(batch, pos + 35, now_ms)
    crc = crc32c(memoryview(batch)[pos + CRC_START : pos + info.size])
    struct.pack_into(">I", batch, pos + 17, crc)

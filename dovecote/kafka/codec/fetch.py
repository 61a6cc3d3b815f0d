"""Fetch responses as a list of buffers, record data passed through uncopied.

A Fetch response is a few dozen bytes of fields per partition around record
sets that may be megabytes read straight from segment files. kio would copy
every record set into its output stream (and build entity objects first);
:func:`encode_fetch_response` packs only the small fields and returns
``[fields, records, fields, records, ..., fields]`` for
``transport.writelines()`` (uvloop sends such a list with one scatter write).
The bytes are identical to kio's ``entity_writer`` output for the same
response (the tests check every version with hypothesis).

Per version (kio has v4-v18): v5 adds ``log_start_offset``, v7 the top-level
``error_code`` and ``session_id``, v11 ``preferred_read_replica``, v12 compact
types and tagged fields, v13 topic ids instead of names. Fields a version does
not have are ignored. Tagged fields (``diverging_epoch``, ``current_leader``,
``snapshot_id``, ``node_endpoints``) are always written empty; a response that
needs them can be built as a kio entity and sent with ``encode_response``.
"""

from __future__ import annotations

import struct
import uuid
from collections.abc import Iterable, Sequence
from functools import cache
from typing import NamedTuple

from dovecote.kafka.codec.framing import SIZE
from dovecote.kafka.codec.header import HasCorrelation
from dovecote.kafka.codec.primitives import INT16, INT32, uvarint
from dovecote.kafka.codec.schemas import KIO_VERSIONS

FETCH = 1
ZERO_UUID_BYTES = bytes(16)
NULL_INT32 = INT32.pack(-1)

Buffer = bytes | bytearray | memoryview
RecordsArg = Buffer | Sequence[Buffer] | None
"""One buffer, several buffers sent back to back, or None (a null record set)."""
AbortedArg = Iterable[tuple[int, int]] | None
"""(producer_id, first_offset) pairs, or None."""
PartitionArg = tuple[int, int, int, int, int, AbortedArg, int, RecordsArg]
"""(partition_index, error_code, high_watermark, last_stable_offset,
log_start_offset, aborted_transactions, preferred_read_replica, records)."""
TopicArg = tuple[str | uuid.UUID | bytes, Sequence[PartitionArg]]
"""(topic name (v4-v12) or topic id (v13+: ``uuid.UUID``, 16 bytes or None), partitions)."""


class _Layout(NamedTuple):
    flexible: bool
    by_id: bool
    top: struct.Struct
    partition: struct.Struct  # index, error, high watermark, last stable, [log start]
    plain: (
        struct.Struct
    )  # the same + null aborted list + [preferred replica] (+ legacy records size)
    has_log_start: bool
    has_preferred_replica: bool


@cache
def _layout(version: int) -> _Layout:
    low, high = KIO_VERSIONS[FETCH]
    if not low <= version <= high:
        raise ValueError(f"fetch v{version} is outside the supported v{low}-v{high}")
    partition = ">ihqqq" if version >= 5 else ">ihqq"
    if version >= 12:
        plain = partition + "Bi"  # compact null array is 0; records size is a varint
    else:
        plain = partition + "i" + ("i" if version >= 11 else "") + "i"
    return _Layout(
        flexible=version >= 12,
        by_id=version >= 13,
        top=struct.Struct(">ihi" if version >= 7 else ">i"),
        partition=struct.Struct(partition),
        plain=struct.Struct(plain),
        has_log_start=version >= 5,
        has_preferred_replica=version >= 11,
    )


def _length(n: int, flexible: bool) -> bytes:
    """Array or bytes length prefix (n = -1 for null)."""
    return uvarint(n + 1) if flexible else INT32.pack(n)


_SMALL_COMPACT_SIZES = [bytes((n + 1,)) for n in range(-1, 126)]


def _compact_size(n: int) -> bytes:
    """Compact length prefix of ``n`` bytes (-1 = null)."""
    return _SMALL_COMPACT_SIZES[n + 1] if n < 126 else uvarint(n + 1)


def encode_fetch_response(
    header: HasCorrelation | int,
    version: int,
    throttle_ms: int,
    error_code: int,
    session_id: int,
    topics: Sequence[TopicArg],
) -> list[bytes | memoryview]:
    """Size prefix + response header + Fetch response body, as a list of buffers.

    ``header`` is the request (or its header, or just the correlation id).
    Record buffers appear in the result as the very objects passed in; the
    other elements are new ``bytes``. ``error_code``/``session_id`` are
    ignored below v7. Pass ``b""``, not None, for "no records": that is what
    Kafka sends, and librdkafka fails to parse the whole response when a
    record set is null ("invalid MessageSetSize -1").
    """
    if isinstance(header, int):
        correlation_id = header
    else:
        correlation_id = header.correlation_id
        if header.api_key != FETCH or header.api_version != version:
            raise ValueError(
                f"request is api key {header.api_key} v{header.api_version}, not fetch v{version}"
            )
    layout = _layout(version)
    flexible = layout.flexible
    by_id = layout.by_id
    pack_partition = layout.partition.pack
    pack_plain = layout.plain.pack
    has_log_start = layout.has_log_start
    has_preferred = layout.has_preferred_replica
    tags = b"\x00" if flexible else b""

    out: list[bytes | memoryview] = []
    buf = bytearray(SIZE.pack(0) + INT32.pack(correlation_id) + tags)
    if version >= 7:
        buf += layout.top.pack(throttle_ms, error_code, session_id)
    else:
        buf += layout.top.pack(throttle_ms)
    buf += _length(len(topics), flexible)
    first: bytearray | None = None
    for topic, partitions in topics:
        if by_id:
            buf += _topic_id(topic)
        else:
            raw = topic.encode() if isinstance(topic, str) else bytes(topic)
            buf += uvarint(len(raw) + 1) if flexible else INT16.pack(len(raw))
            buf += raw
        buf += _length(len(partitions), flexible)
        for (
            index,
            code,
            high_watermark,
            last_stable,
            log_start,
            aborted,
            preferred,
            records,
        ) in partitions:
            if records is None:
                pieces: Sequence[Buffer] = ()
                size = -1
            elif isinstance(records, list | tuple):
                pieces = records
                size = sum(len(piece) for piece in pieces)
            else:
                pieces = (records,)
                size = len(records)
            if aborted is None:  # the usual case: one pack up to the records size
                if flexible:
                    buf += pack_plain(
                        index, code, high_watermark, last_stable, log_start, 0, preferred
                    )
                    buf += _compact_size(size)
                elif has_preferred:
                    buf += pack_plain(
                        index, code, high_watermark, last_stable, log_start, -1, preferred, size
                    )
                elif has_log_start:
                    buf += pack_plain(index, code, high_watermark, last_stable, log_start, -1, size)
                else:
                    buf += pack_plain(index, code, high_watermark, last_stable, -1, size)
            else:
                if has_log_start:
                    buf += pack_partition(index, code, high_watermark, last_stable, log_start)
                else:
                    buf += pack_partition(index, code, high_watermark, last_stable)
                aborted = list(aborted)
                buf += _length(len(aborted), flexible)
                for producer_id, first_offset in aborted:
                    buf += _ABORTED(producer_id, first_offset)
                    buf += tags
                if has_preferred:
                    buf += INT32.pack(preferred)
                buf += _length(size, flexible)
            if size > 0:
                if first is None:
                    first = buf
                    out.append(b"")  # replaced by the patched first chunk below
                else:
                    out.append(bytes(buf))
                buf = bytearray()
                for piece in pieces:
                    if len(piece):
                        out.append(piece)
            buf += tags
        buf += tags
    buf += tags
    if first is None:
        first = buf
        out.append(b"")
    else:
        out.append(bytes(buf))
    total = sum(len(piece) for piece in out) + len(first) - 4
    SIZE.pack_into(first, 0, total)
    out[0] = bytes(first)
    return out


_ABORTED = struct.Struct(">qq").pack


def _topic_id(topic: object) -> bytes:
    if topic is None:
        return ZERO_UUID_BYTES
    if isinstance(topic, uuid.UUID):
        return topic.bytes
    if isinstance(topic, bytes | bytearray | memoryview) and len(topic) == 16:
        return bytes(topic)
    raise TypeError(f"fetch v13+ identifies topics by uuid, got {topic!r}")

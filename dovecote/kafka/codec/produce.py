"""Zero-copy decoding of large Produce requests.

kio's reader copies every partition's record set into a new ``bytes``: about
30 µs per MiB in a hot loop, and milliseconds once allocations that large
start to page-fault (4 x 1 MiB: ~3.6 ms here), while the rest of a Produce
request is a few dozen bytes. This decoder builds the very same kio entities
but with ``records`` as read-only ``memoryview`` slices of the frame, so its
cost depends on the number of partitions (~1 µs each), not on their size.
kio's native reader is faster for small requests, so
:func:`~dovecote.kafka.codec.requests.decode_request` uses this module only
for frames of :data:`ZERO_COPY_MIN_FRAME` bytes or more.

Layout (v3-v13; compact types and tagged fields from v9, topic ids from v13)::

    transactional_id nullable string | acks int16 | timeout_ms int32 |
    [topic: name string (v3-12) or topic_id uuid (v13+) |
            [partition: index int32 | records nullable bytes | tags] | tags] | tags
"""

from __future__ import annotations

import importlib
import struct
import uuid
from collections.abc import Callable
from dataclasses import fields
from datetime import timedelta
from functools import cache
from typing import Any

from dovecote.kafka.codec.errors import MalformedRequest
from dovecote.kafka.codec.primitives import INT16, INT32, read_uvarint, skip_tagged_fields
from dovecote.kafka.codec.schemas import request_class

PRODUCE = 0
FIRST_FLEXIBLE = 9
FIRST_TOPIC_ID = 13
ZERO_COPY_MIN_FRAME = 256 * 1024
"""Produce frames from this size on are decoded here. Measured (µs, kio incl. the
bounds walk vs this module): 1 x 128 KiB 6.8 vs 6.5, 8 x 16 KiB 15 vs 19,
1 x 256 KiB 17 vs 13, 8 x 32 KiB 22 vs 16, 1 x 1 MiB 39 vs 10."""

ACKS_TIMEOUT = struct.Struct(">hi")
ZERO_UUID = uuid.UUID(int=0)


@cache
def _entity_classes(version: int) -> tuple[type, type, type]:
    request = request_class(PRODUCE, version)
    module = importlib.import_module(request.__module__)
    return request, module.TopicProduceData, module.PartitionProduceData


def _maker(cls: type) -> Callable[..., Any]:
    """A positional constructor for kio entity ``cls`` that fills its slots directly.

    kio's own native reader builds entities this way too (allocate, set the
    slots, skip ``__init__``): the generated dataclasses are frozen and slotted
    with no ``__post_init__``, and a frozen dataclass ``__init__`` costs about a
    microsecond per object, more than the rest of this decoder per partition.
    """
    setters = tuple(getattr(cls, f.name).__set__ for f in fields(cls))
    new = object.__new__

    def make(*values: Any) -> Any:
        entity = new(cls)
        for setter, value in zip(setters, values, strict=True):
            setter(entity, value)
        return entity

    return make


@cache
def _makers(version: int) -> tuple[Callable[..., Any], Callable[..., Any], Callable[..., Any]]:
    """Constructors for (request, topic, partition); field order as in the schema:
    request (transactional_id, acks, timeout, topic_data), topic (name or
    topic_id, partition_data), partition (index, records)."""
    classes = _entity_classes(version)
    expected = (
        ("transactional_id", "acks", "timeout", "topic_data"),
        ("topic_id" if version >= FIRST_TOPIC_ID else "name", "partition_data"),
        ("index", "records"),
    )
    for cls, names in zip(classes, expected, strict=True):
        if tuple(f.name for f in fields(cls)) != names:  # pragma: no cover - kio changed
            raise TypeError(f"unexpected fields in kio's {cls.__qualname__} v{version}")
    return _maker(classes[0]), _maker(classes[1]), _partition_maker(classes[2])


def _partition_maker(cls: type) -> Callable[[int, memoryview | None], Any]:
    """:func:`_maker` unrolled for the two fields of a partition: it runs once
    per partition, the others once per topic or request."""
    set_index = cls.index.__set__
    set_records = cls.records.__set__
    new = object.__new__

    def make(index: int, records: memoryview | None) -> Any:
        entity = new(cls)
        set_index(entity, index)
        set_records(entity, records)
        return entity

    return make


_timeouts: dict[int, timedelta] = {}


def _timeout(ms: int) -> timedelta:
    """kio types the timeout as a timedelta; clients repeat the same few values."""
    value = _timeouts.get(ms)
    if value is None:
        value = timedelta(milliseconds=ms)
        if len(_timeouts) < 256:
            _timeouts[ms] = value
    return value


def decode_produce_request(frame: bytes | memoryview, pos: int, version: int) -> tuple[Any, int]:
    """Decode a Produce body starting at ``frame[pos]``: (kio ``ProduceRequest``, end).

    Equal to what kio's reader returns, except that each ``records`` is a
    ``memoryview`` into ``frame`` (which stays alive as long as the views do).
    Raises :class:`MalformedRequest` for anything that does not parse.
    """
    try:
        return _decode(memoryview(frame), pos, version)
    except MalformedRequest:
        raise
    except (IndexError, struct.error, UnicodeDecodeError, ValueError) as exc:
        raise MalformedRequest(f"cannot decode produce v{version}: {exc}") from exc


def _decode(view: memoryview, pos: int, version: int) -> tuple[Any, int]:
    make_request, make_topic, new_partition = _makers(version)
    end = len(view)
    flexible = version >= FIRST_FLEXIBLE
    by_id = version >= FIRST_TOPIC_ID

    transactional_id, pos = _string(view, pos, end, flexible, nullable=True)
    acks, timeout_ms = ACKS_TIMEOUT.unpack_from(view, pos)
    pos += 6
    topic_count, pos = _array_length(view, pos, flexible)
    topics = []
    for _ in range(topic_count):
        if by_id:
            if pos + 16 > end:
                raise MalformedRequest("truncated topic id")
            topic: uuid.UUID | str | None = uuid.UUID(bytes=bytes(view[pos : pos + 16]))
            if topic == ZERO_UUID:
                topic = None  # kio reads the all-zero uuid as None
            pos += 16
        else:
            topic, pos = _string(view, pos, end, flexible, nullable=False)
        partition_count, pos = _array_length(view, pos, flexible)
        partitions, pos = _partitions(view, pos, partition_count, flexible, new_partition)
        if flexible:
            pos = skip_tagged_fields(view, pos, end)
        topics.append(make_topic(topic, tuple(partitions)))
    if flexible:
        pos = skip_tagged_fields(view, pos, end)
    request = make_request(transactional_id, acks, _timeout(timeout_ms), tuple(topics))
    return request, pos


def _partitions(
    view: memoryview, pos: int, count: int, flexible: bool, make: Callable[..., Any]
) -> tuple[list[Any], int]:
    """``count`` partitions (index int32, records nullable bytes, tags in v9+)."""
    end = len(view)
    unpack_int32 = INT32.unpack_from
    partitions = []
    for _ in range(count):
        (index,) = unpack_int32(view, pos)
        pos += 4
        if flexible:
            size = view[pos]
            if size < 0x80:
                pos += 1
            else:
                size, pos = read_uvarint(view, pos)
            size -= 1
        else:
            (size,) = unpack_int32(view, pos)
            pos += 4
        if size < 0:
            if size != -1:
                raise MalformedRequest(f"records length {size}")
            records = None
        else:
            if pos + size > end:
                raise MalformedRequest("records run past the end of the frame")
            records = view[pos : pos + size]
            pos += size
        if flexible:
            if view[pos] == 0:  # no tagged fields: the usual case
                pos += 1
            else:
                pos = skip_tagged_fields(view, pos, end)
        partitions.append(make(index, records))
    return partitions, pos


def _array_length(view: memoryview, pos: int, flexible: bool) -> tuple[int, int]:
    """Length of a non-nullable array at ``pos`` (both Produce arrays are)."""
    if flexible:
        count, pos = read_uvarint(view, pos)
        count -= 1
    else:
        (count,) = INT32.unpack_from(view, pos)
        pos += 4
    if count < 0:
        raise MalformedRequest(f"array length {count} in a non-nullable field")
    return count, pos


def _string(
    view: memoryview, pos: int, end: int, flexible: bool, *, nullable: bool
) -> tuple[str | None, int]:
    if flexible:
        size, pos = read_uvarint(view, pos)
        size -= 1
    else:
        (size,) = INT16.unpack_from(view, pos)
        pos += 2
    if size < 0:
        if size != -1 or not nullable:
            raise MalformedRequest(f"string length {size}")
        return None, pos
    if pos + size > end:
        raise MalformedRequest("string runs past the end of the frame")
    return str(view[pos : pos + size], "utf-8"), pos + size

"""Request and response headers.

Request header v1: ``api_key int16 | api_version int16 | correlation_id int32 |
client_id nullable int16-length string``; v2 (flexible APIs) adds a tagged-field
section. ``client_id`` stays a *legacy* string even in v2 so that any broker
can read it. Response header v0 is ``correlation_id``; v1 adds tagged fields.
Which version applies is decided by :mod:`~dovecote.kafka.codec.schemas`.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Protocol

from dovecote.kafka.codec.errors import MalformedRequest
from dovecote.kafka.codec.primitives import (
    EMPTY_TAGGED_FIELDS,
    INT16,
    INT32,
    encode_tagged_fields,
    read_tagged_fields,
)

FIXED = struct.Struct(">hhi")  # api_key, api_version, correlation_id
NO_TAGS: Mapping[int, bytes] = MappingProxyType({})


def no_tags() -> Mapping[int, bytes]:
    return NO_TAGS


class HasCorrelation(Protocol):
    """Anything that identifies the request a response answers."""

    @property
    def api_key(self) -> int: ...
    @property
    def api_version(self) -> int: ...
    @property
    def correlation_id(self) -> int: ...


@dataclass(frozen=True, slots=True)
class RequestHeader:
    """A decoded request header.

    ``tagged_fields`` maps tag -> raw bytes; Kafka defines no header tags yet,
    so it is normally empty.
    """

    api_key: int
    api_version: int
    correlation_id: int
    client_id: str | None
    tagged_fields: Mapping[int, bytes] = field(default_factory=no_tags, hash=False)


def peek_header(frame: bytes | memoryview) -> tuple[int, int, int]:
    """(api_key, api_version, correlation_id): the part every header version shares."""
    if len(frame) < FIXED.size:
        raise MalformedRequest(f"request of {len(frame)} bytes is shorter than a header")
    return FIXED.unpack_from(frame, 0)


def decode_request_header(frame: bytes | memoryview, flexible: bool) -> tuple[RequestHeader, int]:
    """Parse a v1 (``flexible=False``) or v2 header; returns it and where the body starts.

    A client id that is not valid UTF-8 is decoded with replacement characters,
    as Kafka does, rather than rejected.
    """
    api_key, api_version, correlation_id = ids = peek_header(frame)
    client_id, tags, pos = read_client_id_and_tags(frame, flexible, ids)
    return RequestHeader(api_key, api_version, correlation_id, client_id, tags), pos


def read_client_id_and_tags(
    frame: bytes | memoryview, flexible: bool, ids: tuple[int, int, int]
) -> tuple[str | None, Mapping[int, bytes], int]:
    """The header after the fixed 8 bytes: (client_id, tagged fields, body offset).

    ``ids`` (api key, version, correlation id) go into any error raised.
    """
    end = len(frame)
    try:
        if end < 10:
            raise MalformedRequest("truncated client id length")
        (length,) = INT16.unpack_from(frame, 8)
        pos = 10
        client_id = None
        if length >= 0:
            if pos + length > end:
                raise MalformedRequest("client id runs past the end of the frame")
            client_id = str(frame[pos : pos + length], "utf-8", "replace")
            pos += length
        elif length != -1:
            raise MalformedRequest(f"client id length {length}")
        tags = NO_TAGS
        if flexible:
            if pos < end and frame[pos] == 0:  # the usual empty tag section
                pos += 1
            else:
                tags, pos = read_tagged_fields(frame, pos, end)
                tags = tags or NO_TAGS
    except MalformedRequest as exc:
        raise MalformedRequest(str(exc), *ids) from None
    return client_id, tags, pos


def encode_request_header(header: RequestHeader, flexible: bool) -> bytes:
    """The bytes of ``header`` as v2 (``flexible``) or v1: what a client sends."""
    out = bytearray(FIXED.pack(header.api_key, header.api_version, header.correlation_id))
    if header.client_id is None:
        out += INT16.pack(-1)
    else:
        raw = header.client_id.encode()
        out += INT16.pack(len(raw))
        out += raw
    if flexible:
        out += encode_tagged_fields(dict(header.tagged_fields))
    return bytes(out)


def encode_response_header(correlation_id: int, header_version: int) -> bytes:
    """Response header v0 (``correlation_id``) or v1 (plus empty tagged fields)."""
    if header_version == 0:
        return INT32.pack(correlation_id)
    return INT32.pack(correlation_id) + EMPTY_TAGGED_FIELDS

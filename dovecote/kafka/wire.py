"""Kafka wire framing and request/response headers, sans I/O.

Bodies are kio entities (types generated from Kafka's message schemas);
this module finds the right class for (api key, version), parses the header
around it and writes responses with their size prefix. Which header version
applies follows from whether the API version is flexible.
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass
from functools import cache
from typing import Any

from kio.index import load_request_schema, load_response_schema
from kio.schema.index import api_key_map, schema_name_map
from kio.serial import entity_reader, entity_writer

SIZE = struct.Struct(">i")
HEADER_FIXED = struct.Struct(">hhi")
API_VERSIONS = 18


class FrameTooLarge(ValueError):
    pass


class MalformedRequest(ValueError):
    """The bytes cannot be a request; the connection should be closed."""


class UnsupportedVersion(Exception):
    def __init__(self, api_key: int, api_version: int, correlation_id: int) -> None:
        super().__init__(f"api {api_key} version {api_version} is not supported")
        self.api_key = api_key
        self.api_version = api_version
        self.correlation_id = correlation_id


class FrameReader:
    """Splits a byte stream into size-prefixed frames."""

    def __init__(self, max_frame_size: int) -> None:
        self.max_frame_size = max_frame_size
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        buffer = self._buffer
        buffer += data
        frames = []
        pos = 0
        end = len(buffer)
        while end - pos >= 4:
            (size,) = SIZE.unpack_from(buffer, pos)
            if size < 0 or size > self.max_frame_size:
                raise FrameTooLarge(f"frame of {size} bytes (limit {self.max_frame_size})")
            if end - pos - 4 < size:
                break
            frames.append(bytes(buffer[pos + 4 : pos + 4 + size]))
            pos += 4 + size
        if pos:
            del buffer[:pos]
        return frames


@dataclass(slots=True)
class Request:
    api_key: int
    api_version: int
    correlation_id: int
    client_id: str | None
    body: Any
    flexible: bool


@cache
def available_versions(api_key: int) -> tuple[int, int] | None:
    """The version range kio can encode and decode for ``api_key``."""
    name = api_key_map.get(api_key)
    if name is None:
        return None
    versions = sorted(schema_name_map[name])
    return versions[0], versions[-1]


@cache
def _request_codec(api_key: int, version: int):
    cls = load_request_schema(api_key, version)
    return cls, entity_reader(cls), bool(cls.__flexible__)


@cache
def response_class(api_key: int, version: int) -> type:
    return load_response_schema(api_key, version)


@cache
def _response_writer(cls: type):
    return entity_writer(cls)


def _skip_tagged_fields(frame: bytes, pos: int) -> int:
    count, pos = _uvarint(frame, pos)
    for _ in range(count):
        _tag, pos = _uvarint(frame, pos)
        size, pos = _uvarint(frame, pos)
        pos += size
    if pos > len(frame):
        raise MalformedRequest("tagged fields run past the end of the request")
    return pos


def _uvarint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(data):
            raise MalformedRequest("truncated varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 35:
            raise MalformedRequest("varint too long")


def peek_header(frame: bytes) -> tuple[int, int, int]:
    """(api key, version, correlation id) of a request frame."""
    if len(frame) < HEADER_FIXED.size:
        raise MalformedRequest("request shorter than its header")
    return HEADER_FIXED.unpack_from(frame, 0)


def decode_request(frame: bytes, supported: dict[int, tuple[int, int]]) -> Request:
    """Parse one request frame. Raises UnsupportedVersion (answerable) or
    MalformedRequest (close the connection)."""
    api_key, version, correlation_id = peek_header(frame)
    window = supported.get(api_key)
    if window is None or not window[0] <= version <= window[1]:
        raise UnsupportedVersion(api_key, version, correlation_id)
    _cls, reader, flexible = _request_codec(api_key, version)
    pos = HEADER_FIXED.size
    if len(frame) < pos + 2:
        raise MalformedRequest("truncated client id")
    (length,) = struct.unpack_from(">h", frame, pos)
    pos += 2
    client_id = None
    if length >= 0:
        if pos + length > len(frame):
            raise MalformedRequest("truncated client id")
        client_id = frame[pos : pos + length].decode("utf-8", "replace")
        pos += length
    if flexible:
        pos = _skip_tagged_fields(frame, pos)
    try:
        body, _size = reader(memoryview(frame)[pos:], 0)
    except Exception as err:  # kio raises its own errors, and IndexError/ValueError on garbage
        raise MalformedRequest(f"cannot decode api {api_key} v{version}: {err}") from None
    return Request(api_key, version, correlation_id, client_id, body, flexible)


def encode_response(request: Request, body: Any) -> bytes:
    """Size prefix + response header + body for ``request``."""
    flexible_header = request.flexible and request.api_key != API_VERSIONS
    return encode_body(request.correlation_id, flexible_header, body)


def encode_body(correlation_id: int, flexible_header: bool, body: Any) -> bytes:
    out = io.BytesIO()
    out.write(b"\x00\x00\x00\x00")
    out.write(SIZE.pack(correlation_id))
    if flexible_header:
        out.write(b"\x00")
    _response_writer(type(body))(out, body)
    data = out.getbuffer()
    SIZE.pack_into(data, 0, len(data) - 4)
    result = bytes(data)
    del data
    return result

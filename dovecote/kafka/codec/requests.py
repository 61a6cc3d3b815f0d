"""One request frame in, one typed :class:`Request` (or a codec error) out.

The order of checks follows what the server can still do with the answer:
the first 8 bytes give api key, version and correlation id; an unknown key or
a version outside ``supported`` (and kio's range) fails before anything else
is parsed, so an ApiVersions request from a newer client can still be
answered. Then the header (v1 or v2, by the version's flexibility) and the
body. Produce requests of :data:`ZERO_COPY_MIN_FRAME` bytes or more go to the
zero-copy decoder (:mod:`~dovecote.kafka.codec.produce`). Other bodies get a
walk over their lengths first (:mod:`~dovecote.kafka.codec.bounds`, which
keeps kio from aborting on absurd array sizes), then kio's reader, or the
tolerant reader if the client sent tagged fields kio does not know. Any
decoder failure is :class:`MalformedRequest` (trailing bytes are ignored, as Kafka does).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from dovecote.kafka.codec.bounds import bounds_checker
from dovecote.kafka.codec.errors import MalformedRequest, UnknownApiKey, UnsupportedVersion
from dovecote.kafka.codec.header import (
    RequestHeader,
    no_tags,
    peek_header,
    read_client_id_and_tags,
)
from dovecote.kafka.codec.produce import PRODUCE, ZERO_COPY_MIN_FRAME, decode_produce_request
from dovecote.kafka.codec.schemas import (
    KIO_VERSIONS,
    VersionRanges,
    body_reader,
    is_flexible,
    request_class,
)
from dovecote.kafka.codec.tolerant import is_unknown_tag_error, tolerant_reader


@dataclass(slots=True)
class Request:
    """A decoded request: header fields plus the kio body entity (treat as read-only;
    not frozen because a frozen dataclass costs a microsecond more per request).

    ``body`` is an instance of kio's class for (api_key, api_version), e.g.
    ``kio.schema.metadata.v12.request.MetadataRequest``. In Produce requests of
    at least :data:`ZERO_COPY_MIN_FRAME` bytes each partition's ``records`` is a
    read-only ``memoryview`` of the frame instead of ``bytes``.
    """

    api_key: int
    api_version: int
    correlation_id: int
    client_id: str | None
    body: Any
    tagged_fields: Mapping[int, bytes] = field(default_factory=no_tags)

    @property
    def flexible(self) -> bool:
        return is_flexible(self.api_key, self.api_version)

    @property
    def header(self) -> RequestHeader:
        return RequestHeader(
            self.api_key, self.api_version, self.correlation_id, self.client_id, self.tagged_fields
        )


def check_version(
    api_key: int, api_version: int, correlation_id: int, supported: VersionRanges
) -> None:
    """Raise :class:`UnknownApiKey` / :class:`UnsupportedVersion` unless both the
    server (``supported``) and kio handle this API version."""
    window = supported.get(api_key)
    known = KIO_VERSIONS.get(api_key)
    if window is None or known is None:
        raise UnknownApiKey(api_key, api_version, correlation_id)
    if not (window[0] <= api_version <= window[1] and known[0] <= api_version <= known[1]):
        raise UnsupportedVersion(api_key, api_version, correlation_id)


def decode_request(frame: bytes | memoryview, supported: VersionRanges) -> Request:
    """Decode one request frame (size prefix already removed, as FrameReader returns it).

    ``supported`` maps api key -> (min, max) version the server enables; it is
    intersected with what kio has. Raises :class:`UnknownApiKey`,
    :class:`UnsupportedVersion` or :class:`MalformedRequest`, nothing else.
    """
    api_key, api_version, correlation_id = ids = peek_header(frame)
    check_version(api_key, api_version, correlation_id, supported)
    client_id, tags, pos = read_client_id_and_tags(frame, is_flexible(api_key, api_version), ids)
    body = decode_body(frame, pos, api_key, api_version, correlation_id)
    return Request(api_key, api_version, correlation_id, client_id, body, tags)


def decode_body(
    frame: bytes | memoryview, pos: int, api_key: int, api_version: int, correlation_id: int = -1
) -> Any:
    """The kio entity of the request body at ``frame[pos:]`` (trailing bytes ignored)."""
    end = len(frame)
    try:
        if api_key == PRODUCE and end >= ZERO_COPY_MIN_FRAME:
            body, _stop = decode_produce_request(frame, pos, api_version)
            return body
        # Walk the lengths first: kio aborts the process on absurd array lengths.
        # Bytes after the body are ignored, as Kafka's own parser does:
        # librdkafka's Metadata v13, for one, carries a field the schema dropped.
        checked_end = bounds_checker(request_class(api_key, api_version))(frame, pos, end)
        try:
            body, size = body_reader(api_key, api_version)(frame, pos)
        except KeyError as exc:
            if not is_unknown_tag_error(exc):
                raise
            body, size = tolerant_reader(request_class(api_key, api_version))(frame, pos)
        stop = pos + size
    except MalformedRequest as exc:
        raise MalformedRequest(str(exc), api_key, api_version, correlation_id) from exc.__cause__
    except Exception as exc:  # kio raises its own errors, ValueError, KeyError, ...
        raise MalformedRequest(
            f"cannot decode api key {api_key} v{api_version}: {type(exc).__name__}: {exc}",
            api_key,
            api_version,
            correlation_id,
        ) from exc
    except BaseException as exc:
        # A Rust panic inside kio surfaces as pyo3's PanicException, a
        # BaseException that would stop an asyncio loop: contain it too.
        if type(exc).__name__ != "PanicException":
            raise
        raise MalformedRequest(
            f"kio panicked decoding api key {api_key} v{api_version}: {exc}",
            api_key,
            api_version,
            correlation_id,
        ) from exc
    if stop != checked_end:  # pragma: no cover - the bounds walk and kio disagree: a bug
        raise MalformedRequest(
            f"api key {api_key} v{api_version} body ends at {stop}, not {checked_end}",
            api_key,
            api_version,
            correlation_id,
        )
    return body

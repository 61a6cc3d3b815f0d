"""Kafka wire protocol codec: sans-I/O, no sockets, no asyncio -- bytes in, typed requests out.

Message bodies are kio entities (frozen dataclasses generated from Apache
Kafka's JSON schemas, ``kio.schema.<api>.v<N>.request/response``; versions
follow Kafka 4.x, e.g. Produce v3-13, Fetch v4-18). This package adds
framing, headers, version checks, strict errors and the fast paths kio lacks:
zero-copy Produce decoding, Fetch responses that hand record buffers to
``transport.writelines()`` uncopied, and a compiled writer 2-5x faster than
kio's. It also guards kio: its native reader aborts the whole process on a
huge array length, so every body's lengths are walked before kio reads it.

Reading (client -> server)
--------------------------
``FrameReader(max_frame_size)``
    ``.feed(data) -> list[bytes | memoryview]``: complete frames, size prefix
    removed. Frames inside one chunk are zero-copy views of it; a frame spread
    over chunks is joined once. ``.buffered`` = bytes held.
``decode_request(frame, supported) -> Request``
    ``supported`` = ``{api_key: (min_version, max_version)}`` the server
    enables, intersected with kio's versions (``KIO_VERSIONS``).
``Request(api_key, api_version, correlation_id, client_id, body, tagged_fields)``
    ``body`` is kio's request entity for that API version; ``.header`` ->
    ``RequestHeader``; ``.flexible``. In Produce frames of at least
    ``ZERO_COPY_MIN_FRAME`` (256 KiB) bytes, ``records`` are read-only
    memoryviews into the frame, else ``bytes``: treat them as buffers.
    Tagged fields kio does not know are skipped (KIP-482); a null array in a
    non-nullable field is malformed (kio alone would hand on None).
``RequestHeader(api_key, api_version, correlation_id, client_id, tagged_fields={})``,
``peek_header(frame) -> (api_key, api_version, correlation_id)``,
``decode_request_header(frame, flexible) -> (RequestHeader, body_offset)``,
``encode_request_header(header, flexible) -> bytes`` (client side, tests).
``decode_produce_request(frame, offset, version) -> (ProduceRequest, end)``:
    the zero-copy Produce decoder on its own.

Errors (all ``KafkaCodecError``; nothing else escapes, whatever the bytes)
    ``FrameError`` (``.size``, ``.frames`` = frames completed before it):
    ``FrameTooLarge``, ``MalformedFrame`` (negative size). Close the connection.
    ``RequestError`` (``.api_key``, ``.api_version``, ``.correlation_id``; None
    only for frames under 8 bytes): ``UnknownApiKey`` (not in kio or not
    enabled), ``UnsupportedVersion``, ``MalformedRequest`` (truncated, trailing
    bytes, bad lengths or UTF-8; ``__cause__`` = decoder error). For
    ``UnsupportedVersion`` of ApiVersions (key 18) reply
    ``unsupported_api_versions_response(exc.correlation_id, supported)``;
    for anything else close the connection, as Kafka does.

Writing (server -> client)
--------------------------
``encode_response(request, body) -> bytes``
    Size prefix + response header (v1 for flexible versions, v0 otherwise and
    always for ApiVersions) + body; ``request`` is a ``Request`` or
    ``RequestHeader``, ``body`` kio's response entity of the same API and
    version (``ValueError`` otherwise). ``encode_response_body(correlation_id,
    body)`` skips that check; ``encode_entity(entity) -> bytes`` is the
    compiled writer alone (kio's bytes, for any kio entity).
``encode_fetch_response(header, version, throttle_ms, error_code, session_id, topics)
-> list[bytes | memoryview]``
    ``header``: the Request, its RequestHeader or the correlation id.
    ``topics = [(name (v4-12) or topic_id (v13+), [(partition_index,
    error_code, high_watermark, last_stable_offset, log_start_offset,
    aborted_transactions: [(producer_id, first_offset)] | None,
    preferred_read_replica, records)])]``; ``records`` is a buffer, a list of
    buffers (sent back to back) or None (null: librdkafka rejects it, so send
    ``b""`` for "no data", as Kafka does).
    Byte-identical to kio for v4-v18; record buffers come back as the same
    objects. Tagged fields (current_leader, ...) are written empty: build a
    kio entity and use ``encode_response`` when you need them.
``api_versions_response(supported, error_code=0, throttle_ms=0, version=4, **fields)``
    -> kio ``ApiVersionsResponse`` listing ``negotiate(supported)``; send it
    with ``encode_response``.
``unsupported_api_versions_response(correlation_id, supported) -> bytes``
    The KIP-511 answer: v0 body, header v0, UNSUPPORTED_VERSION (35), our ranges.
``frame(payload) -> bytes`` adds a size prefix.

Schemas (derived from kio, nothing hand-maintained)
    ``KIO_VERSIONS``, ``negotiate(supported)``, ``api_name(api_key)``,
    ``is_flexible(api_key, version)``, ``request_header_version``,
    ``response_header_version``, ``request_class``, ``response_class``,
    ``response_module(api_key, version)`` (for nested classes, e.g.
    ``response_module(3, 12).MetadataResponseBroker``), ``API_VERSIONS`` (18).

Error codes
    ``ErrorCode`` (kio's complete IntEnum, with ``.retriable``) and
    ``error_codes``, the same members under Kafka's upper-case names
    (``error_codes.NOT_COORDINATOR``). kio entities need members, not ints.

Sketch of a connection loop::

    reader = FrameReader(max_frame_size=100 * 1024 * 1024)
    for frame in reader.feed(data):                   # FrameError: close
        try:
            request = decode_request(frame, SUPPORTED)
        except UnsupportedVersion as exc:
            if exc.api_key != API_VERSIONS:
                raise                                 # close, like Kafka
            transport.write(unsupported_api_versions_response(exc.correlation_id, SUPPORTED))
            continue
        if request.api_key == 1:                      # Fetch
            transport.writelines(encode_fetch_response(request, request.api_version, ...))
        else:
            transport.write(encode_response(request, handle(request)))
"""

from kio.schema.errors import ErrorCode

from dovecote.kafka.codec import error_codes
from dovecote.kafka.codec.errors import (
    FrameError,
    FrameTooLarge,
    KafkaCodecError,
    MalformedFrame,
    MalformedRequest,
    RequestError,
    UnknownApiKey,
    UnsupportedVersion,
)
from dovecote.kafka.codec.fetch import encode_fetch_response
from dovecote.kafka.codec.framing import FrameReader, frame
from dovecote.kafka.codec.header import (
    RequestHeader,
    decode_request_header,
    encode_request_header,
    peek_header,
)
from dovecote.kafka.codec.produce import ZERO_COPY_MIN_FRAME, decode_produce_request
from dovecote.kafka.codec.requests import Request, decode_request
from dovecote.kafka.codec.responses import (
    api_versions_response,
    encode_response,
    encode_response_body,
    response_module,
    unsupported_api_versions_response,
)
from dovecote.kafka.codec.schemas import (
    API_VERSIONS,
    KIO_VERSIONS,
    api_name,
    is_flexible,
    negotiate,
    request_class,
    request_header_version,
    response_class,
    response_header_version,
)
from dovecote.kafka.codec.writer import encode_entity

__all__ = [
    "API_VERSIONS",
    "KIO_VERSIONS",
    "ZERO_COPY_MIN_FRAME",
    "ErrorCode",
    "FrameError",
    "FrameReader",
    "FrameTooLarge",
    "KafkaCodecError",
    "MalformedFrame",
    "MalformedRequest",
    "Request",
    "RequestError",
    "RequestHeader",
    "UnknownApiKey",
    "UnsupportedVersion",
    "api_name",
    "api_versions_response",
    "decode_produce_request",
    "decode_request",
    "decode_request_header",
    "encode_entity",
    "encode_fetch_response",
    "encode_request_header",
    "encode_response",
    "encode_response_body",
    "error_codes",
    "frame",
    "is_flexible",
    "negotiate",
    "peek_header",
    "request_class",
    "request_header_version",
    "response_class",
    "response_header_version",
    "response_module",
    "unsupported_api_versions_response",
]

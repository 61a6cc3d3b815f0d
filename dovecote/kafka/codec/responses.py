"""Response frames: size prefix + response header + body, and ApiVersions helpers.

Bodies are kio entities, written by :mod:`~dovecote.kafka.codec.writer`
(kio's bytes, several times faster than kio's own writer).

The response header is v1 (tagged fields) for flexible versions and v0
otherwise -- except ApiVersions, always v0 (the client reads it before it knows
what the broker speaks). An ApiVersions request at a version the broker does
not know is answered the way Kafka does (KIP-511): a *v0* body with
UNSUPPORTED_VERSION and the version ranges, so the client retries with the
highest version both sides know.
"""

from __future__ import annotations

import importlib
from datetime import timedelta
from typing import Any

from kio.schema.errors import ErrorCode

from dovecote.kafka.codec.framing import SIZE
from dovecote.kafka.codec.header import HasCorrelation, encode_response_header
from dovecote.kafka.codec.schemas import (
    API_VERSIONS,
    KIO_VERSIONS,
    VersionRanges,
    negotiate,
    response_class,
    response_header_version,
)
from dovecote.kafka.codec.writer import entity_encoder

PLACEHOLDER = bytes(4)


def encode_response(request: HasCorrelation, body: Any) -> bytes:
    """The complete frame answering ``request`` (a Request or RequestHeader).

    ``body`` must be kio's response entity of the request's API and version;
    a mismatch is a server bug and raises ``ValueError``.
    """
    if body.__api_key__ != request.api_key or body.__version__ != request.api_version:
        raise ValueError(
            f"{type(body).__name__} v{body.__version__} does not answer "
            f"api key {request.api_key} v{request.api_version}"
        )
    return encode_response_body(request.correlation_id, body)


def encode_response_body(correlation_id: int, body: Any) -> bytes:
    """Frame any kio response entity for ``correlation_id``, with the header
    version its own API and version call for."""
    out = bytearray(PLACEHOLDER)
    out += encode_response_header(
        correlation_id, response_header_version(body.__api_key__, body.__version__)
    )
    entity_encoder(type(body))(out, body)
    SIZE.pack_into(out, 0, len(out) - 4)
    return bytes(out)


def response_module(api_key: int, version: int) -> Any:
    """The kio module holding a response class and its nested entity classes,
    e.g. ``response_module(3, 12).MetadataResponseBroker``."""
    return importlib.import_module(response_class(api_key, version).__module__)


def api_versions_response(
    supported: VersionRanges,
    error_code: int = ErrorCode.none,
    throttle_ms: int = 0,
    version: int = KIO_VERSIONS[API_VERSIONS][1],
    **fields: Any,
) -> Any:
    """kio's ApiVersionsResponse body at ``version`` listing ``supported``
    intersected with what kio can decode (see :func:`negotiate`).

    ``fields`` go to the entity unchanged (v3+ feature fields). Note that
    kafka-python decodes any ApiVersions response with a non-zero error code
    as v0, as Kafka only sends errors in v0 bodies.
    """
    cls = response_class(API_VERSIONS, version)
    entry = response_module(API_VERSIONS, version).ApiVersion
    keys = tuple(
        entry(api_key=api_key, min_version=low, max_version=high)
        for api_key, (low, high) in sorted(negotiate(supported).items())
    )
    if version >= 1:
        fields["throttle_time"] = timedelta(milliseconds=throttle_ms)
    return cls(error_code=ErrorCode(error_code), api_keys=keys, **fields)


def unsupported_api_versions_response(correlation_id: int, supported: VersionRanges) -> bytes:
    """The frame answering an ApiVersions request whose version we do not know:
    a v0 body, header v0, error UNSUPPORTED_VERSION, and our version ranges
    (Kafka lists only ApiVersions' own range; a full list is a superset clients
    accept)."""
    body = api_versions_response(supported, ErrorCode.unsupported_version, version=0)
    return encode_response_body(correlation_id, body)

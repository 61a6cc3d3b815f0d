"""Kafka wire protocol codec: sans-I/O, no sockets, no asyncio -- bytes in, typed requests out."""

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

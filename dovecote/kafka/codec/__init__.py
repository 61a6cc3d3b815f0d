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
from dovecote.kafka.codec.framing import FrameReader, frame

__all__ = [
    "ErrorCode",
    "FrameError",
    "FrameReader",
    "FrameTooLarge",
    "KafkaCodecError",
    "MalformedFrame",
    "MalformedRequest",
    "RequestError",
    "UnknownApiKey",
    "UnsupportedVersion",
    "error_codes",
    "frame",
]

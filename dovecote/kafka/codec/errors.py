"""Errors the Kafka codec raises for bad peer input, and what the server does with each.

Whatever a client sends, the codec fails only with a subclass of
:class:`KafkaCodecError` -- never ``IndexError``, ``struct.error`` or a kio
exception -- so the connection adapter needs one ``except`` clause:

* :class:`FrameError` (:class:`FrameTooLarge`, :class:`MalformedFrame`): the
  size prefix is impossible, the byte stream cannot be resynchronised; close
  this connection (Kafka does the same: ``InvalidReceiveException``).
* :class:`UnsupportedVersion` of ApiVersions (``exc.api_key == 18``): answer
  with :func:`~dovecote.kafka.codec.responses.unsupported_api_versions_response`
  so that the client retries with a version we know (KIP-511).
* Any other :class:`RequestError` (:class:`UnsupportedVersion`,
  :class:`UnknownApiKey`, :class:`MalformedRequest`): Kafka closes the
  connection (``InvalidRequestException``); ``correlation_id`` is there for
  logging.
"""

from __future__ import annotations

from typing import Any


class KafkaCodecError(Exception):
    """Base of every error raised because of what a peer sent."""


class FrameError(KafkaCodecError):
    """The 4-byte size prefix cannot start a frame; close the connection.

    ``size`` is the announced size; ``frames`` holds the complete frames the
    same ``feed()`` call found before the bad prefix, so nothing is lost.
    """

    def __init__(self, message: str, size: int) -> None:
        super().__init__(message)
        self.size = size
        self.frames: list[Any] = []


class FrameTooLarge(FrameError):
    """The announced size exceeds ``max_frame_size`` (Kafka's ``socket.request.max.bytes``)."""


class MalformedFrame(FrameError):
    """The announced size is negative."""


class RequestError(KafkaCodecError):
    """One request frame cannot be served.

    ``api_key``, ``api_version`` and ``correlation_id`` are ``None`` only when
    the frame is too short to hold them (fewer than 8 bytes).
    """

    def __init__(
        self,
        message: str,
        api_key: int | None = None,
        api_version: int | None = None,
        correlation_id: int | None = None,
    ) -> None:
        super().__init__(message)
        self.api_key = api_key
        self.api_version = api_version
        self.correlation_id = correlation_id


class UnknownApiKey(RequestError):
    """The API key is neither known to kio nor enabled by the server."""

    def __init__(self, api_key: int, api_version: int, correlation_id: int) -> None:
        super().__init__(
            f"unknown or disabled api key {api_key}", api_key, api_version, correlation_id
        )


class UnsupportedVersion(RequestError):
    """The API is enabled but not at this version (or kio lacks the version).

    For ApiVersions (key 18) the server must still answer, see the module docstring.
    """

    def __init__(self, api_key: int, api_version: int, correlation_id: int) -> None:
        super().__init__(
            f"api key {api_key} version {api_version} is not supported",
            api_key,
            api_version,
            correlation_id,
        )


class MalformedRequest(RequestError):
    """The bytes do not decode as the request they claim to be (truncated,
    trailing garbage, bad varint, invalid UTF-8, ...). ``__cause__`` holds the
    underlying decoder error, if any."""

"""Publish's request limits over the wire, with Google's INVALID_ARGUMENT texts.

The request is sent as raw bytes on a plain channel (the client library
checks some limits itself): the listener measures a request by the bytes it
came in, so the size limit is checked here on a real request.
"""

from __future__ import annotations

import grpc
import pytest
from google.pubsub_v1.types import PublishRequest, PublishResponse, PubsubMessage

PUBLISH = "/google.pubsub.v1.Publisher/Publish"


def send(host: str, request: object) -> grpc.RpcError | bytes:
    body = PublishRequest.pb()(**request).SerializeToString()  # type: ignore[arg-type]
    with grpc.insecure_channel(host, options=[("grpc.max_send_message_length", -1)]) as channel:
        try:
            return channel.unary_unary(PUBLISH)(body, timeout=30)
        except grpc.RpcError as err:
            return err


def message(**fields: object) -> object:
    return PubsubMessage.pb()(**fields)  # type: ignore[arg-type]


def test_a_request_over_10_mb_is_refused_with_its_size(emulator_host: str, topic: str) -> None:
    messages = [message(data=b"x" * 1_000_000) for _ in range(11)]
    size = PublishRequest.pb()(topic=topic, messages=messages).ByteSize()
    err = send(emulator_host, {"topic": topic, "messages": messages})
    assert isinstance(err, grpc.RpcError)
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.details() == (
        f"The value for request_size is too large. You passed {size} in the request, "
        "but the maximum value is 10000000."
    )


@pytest.mark.parametrize(
    ("fields", "text"),
    [
        (
            {},
            "Some messages in the publish request are empty. Each message must contain "
            "a non-empty data field, or at least one attribute.",
        ),
        (
            {"data": b"d", "ordering_key": "k" * 1025},
            "The value for ordering_key_size is too large. You passed 1025 in the request, "
            "but the maximum value is 1024.",
        ),
        (
            {"data": b"d", "ordering_key": "\u00e9" * 513},  # 2 bytes each in UTF-8
            "The value for ordering_key_size is too large. You passed 1026 in the request, "
            "but the maximum value is 1024.",
        ),
        (
            {"attributes": {"googx": "v"}},
            "The attribute key 'googx' must not start with 'goog'.",
        ),
    ],
)
def test_bad_messages_are_refused(
    emulator_host: str, topic: str, fields: dict[str, object], text: str
) -> None:
    err = send(emulator_host, {"topic": topic, "messages": [message(**fields)]})
    assert isinstance(err, grpc.RpcError)
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.details() == text


def test_an_ordering_key_at_the_limit_and_plain_messages_are_stored(
    emulator_host: str, topic: str
) -> None:
    messages = [message(data=b"a"), message(data=b"b", ordering_key="\u00e9" * 512)]
    reply = send(emulator_host, {"topic": topic, "messages": messages})
    assert isinstance(reply, bytes)
    ids = list(PublishResponse.pb().FromString(reply).message_ids)
    assert len(ids) == 2 and int(ids[1]) == int(ids[0]) + 1

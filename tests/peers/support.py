"""Small helpers the comparison tests share: an RPC's error as (code, text),
and a pull that waits for messages (the emulator answers an empty pull at once)."""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from typing import Any

from google.api_core import exceptions as gexc
from google.cloud import pubsub_v1
from google.pubsub_v1 import types


def error_of(call: Callable[[], Any]) -> tuple[str, str]:
    """The status code name and message an RPC fails with (fails the test if it succeeds)."""
    try:
        answer = call()
    except gexc.GoogleAPICallError as err:
        assert err.grpc_status_code is not None, err
        return err.grpc_status_code.name, err.message
    raise AssertionError(f"expected an error, got {answer!r}")


def pull(
    subscriber: pubsub_v1.SubscriberClient,
    subscription: str,
    count: int,
    timeout: float = 15.0,
) -> list[types.ReceivedMessage]:
    """Pull until ``count`` messages have arrived (or ``timeout`` passes)."""
    got: list[types.ReceivedMessage] = []
    deadline = time.monotonic() + timeout
    while len(got) < count and time.monotonic() < deadline:
        # Dovecote holds an empty pull open 5 s, the emulator answers at once.
        reply = subscriber.pull(
            subscription=subscription, max_messages=count - len(got), timeout=10
        )
        got.extend(reply.received_messages)
        if not reply.received_messages:
            time.sleep(0.1)
    return got


def pull_nothing(
    subscriber: pubsub_v1.SubscriberClient, subscription: str, wait: float = 1.0
) -> list[types.ReceivedMessage]:
    """Whatever arrives within ``wait`` seconds (the test expects none)."""
    got: list[types.ReceivedMessage] = []
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # return_immediately
            reply = subscriber.pull(
                subscription=subscription, max_messages=10, return_immediately=True, timeout=10
            )
        got.extend(reply.received_messages)
        time.sleep(0.1)
    return got


def publish(
    publisher: pubsub_v1.PublisherClient, topic: str, *datas: bytes, **attributes: str
) -> list[str]:
    """Publish through the Publish RPC directly (one request, no client batching)."""
    messages = [types.PubsubMessage(data=d, attributes=attributes) for d in datas]
    return list(publish_raw(publisher, topic, messages).message_ids)


def publish_raw(
    publisher: pubsub_v1.PublisherClient, topic: str, messages: list[types.PubsubMessage]
) -> types.PublishResponse:
    """One Publish RPC as given (the client's ``publish`` batches and checks first)."""
    with warnings.catch_warnings():
        # ``api`` is the plain RPC stub; the client calls it deprecated, not gone.
        warnings.simplefilter("ignore", DeprecationWarning)
        return publisher.api.publish(topic=topic, messages=messages)

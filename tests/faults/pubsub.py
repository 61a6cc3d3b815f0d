"""What the Pub/Sub fault scenarios share: google-cloud-pubsub clients on a
channel that comes back quickly after the broker does, what a broker going
away looks like to them, and reading a subscription to its end.

The channel matters. With the client's defaults a streaming subscriber is
deaf for about 10 s after every broker death: its stream reopens at once,
fails at once against the refused port, five times within milliseconds, and
``google.api_core.bidi``'s reopen throttle (5 per 10 s) then holds it until
the window has passed. The same client pointed at Google's service never
meets a refused port. ``waitForReady`` on StreamingPull makes a reopen wait
for the broker instead, and short reconnect backoffs (grpc's default starts
at 1 s and grows to 120 s) keep publishers from waiting on a broker that is
already back.
"""

from __future__ import annotations

import json
import time
import warnings
from typing import Any

import grpc
from google.api_core import exceptions
from google.cloud import pubsub_v1
from google.pubsub_v1.services.publisher import PublisherClient as GapicPublisher
from google.pubsub_v1.services.publisher.transports import PublisherGrpcTransport
from google.pubsub_v1.services.subscriber.transports import SubscriberGrpcTransport

PROJECT = "faults"

# What a broker going away (or not yet back) looks like to a gRPC call.
GONE = (exceptions.ServiceUnavailable, exceptions.DeadlineExceeded, exceptions.Cancelled)

_WAIT_FOR_STREAMS = json.dumps(
    {
        "methodConfig": [
            {
                "name": [{"service": "google.pubsub.v1.Subscriber", "method": "StreamingPull"}],
                "waitForReady": True,
            }
        ]
    }
)


def channel(address: str) -> grpc.Channel:
    """An insecure channel to ``address`` that reconnects within 250 ms of
    the broker's return; a StreamingPull waits for the broker."""
    return grpc.insecure_channel(
        address,
        options=[
            ("grpc.service_config", _WAIT_FOR_STREAMS),
            ("grpc.initial_reconnect_backoff_ms", 50),
            ("grpc.max_reconnect_backoff_ms", 250),
        ],
    )


def publisher_client(address: str) -> pubsub_v1.PublisherClient:
    return pubsub_v1.PublisherClient(transport=PublisherGrpcTransport(channel=channel(address)))


def subscriber_client(address: str) -> pubsub_v1.SubscriberClient:
    return pubsub_v1.SubscriberClient(transport=SubscriberGrpcTransport(channel=channel(address)))


def never_sent(exc: exceptions.GoogleAPICallError) -> bool:
    """The call failed before a connection was made: the broker saw nothing."""
    return "failed to connect" in str(exc).lower()


def publish_batch(client: pubsub_v1.PublisherClient, topic: str, messages: list) -> list[str]:
    """One Publish RPC with exactly these messages, no retries: the caller
    knows whether this batch was answered (the client's ``publish`` batches
    and retries behind its back). Returns the message ids."""
    answer = GapicPublisher.publish(client, topic=topic, messages=messages, retry=None, timeout=5)
    return list(answer.message_ids)


def drain(subscriber: pubsub_v1.SubscriberClient, subscription: str, timeout: float = 60) -> list:
    """Every message left in the subscription, pulled and acked in batches
    (an ordered subscription gives one message per key until it is acked),
    in pull order; done after two empty pulls in a row."""
    messages: list[Any] = []
    empty = 0
    deadline = time.monotonic() + timeout
    while empty < 2:
        if time.monotonic() > deadline:
            raise TimeoutError(f"drained {len(messages)} of {subscription} in {timeout}s")
        with warnings.catch_warnings():  # deprecated, and what a drain wants
            warnings.simplefilter("ignore", DeprecationWarning)
            got = subscriber.pull(
                subscription=subscription, max_messages=1000, return_immediately=True, timeout=30
            ).received_messages
        if not got:
            empty += 1
            time.sleep(0.1)
            continue
        empty = 0
        messages += [r.message for r in got]
        subscriber.acknowledge(subscription=subscription, ack_ids=[r.ack_id for r in got])
    return messages

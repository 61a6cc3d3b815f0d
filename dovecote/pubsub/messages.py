"""Core deliveries as ``ReceivedMessage`` protobufs."""

from __future__ import annotations

from typing import Any

from google.pubsub_v1 import types

from dovecote.core.subscription_state import Delivery
from dovecote.pubsub.records import headers_to_attributes, message_id_of, ordering_key_of

ReceivedMessage: Any = types.ReceivedMessage.pb()


def received_message(delivery: Delivery, with_attempt: bool) -> Any:
    """``delivery_attempt`` is only set on subscriptions with a dead-letter
    policy, as Google does."""
    record = delivery.record
    out = ReceivedMessage(ack_id=str(delivery.token))
    message = out.message
    if record.value:
        message.data = record.value
    message.message_id = message_id_of(record, delivery.partition, delivery.offset)
    message.publish_time.FromMilliseconds(max(record.timestamp, 0))
    attributes = headers_to_attributes(record.headers)
    if attributes:
        message.attributes.update(attributes)
    key = ordering_key_of(record)
    if key:
        message.ordering_key = key
    if with_attempt:
        out.delivery_attempt = delivery.count
    return out


def set_subscription_properties(response: Any, subscription: Any) -> None:
    """What a StreamingPull response tells the client of its subscription: the
    client library turns on its exactly-once handling (acks with responses,
    receipt modacks) and ordered dispatch from these."""
    properties = response.subscription_properties
    properties.exactly_once_delivery_enabled = subscription.enable_exactly_once_delivery
    properties.message_ordering_enabled = subscription.enable_message_ordering

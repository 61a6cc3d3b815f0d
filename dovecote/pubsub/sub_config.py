"""A Pub/Sub ``Subscription`` as the core's :class:`SubscriptionConfig`, and
Google's checks of its settings.

- ``ack_deadline_seconds`` (10 to 600, default 10) is the lease.
- ``enable_message_ordering``: a key's messages in order; a Pull answer
  carries a key's consecutive messages and the key then waits until all are
  settled (as Google's emulator does); messages without a key are not ordered.
- ``dead_letter_policy.max_delivery_attempts`` (5 to 100) is the delivery
  limit; the dead-letter callback publishes to the dead-letter topic.
- ``retry_policy`` (``backoff.py``) is the core's ``redelivery_delay``: a
  nacked or expired message waits an exponential backoff before redelivery.
- ``filter`` (``pubsub/filter.py``) is the core's filter hook: messages it
  rejects are acknowledged unseen, as Google does.
- ``message_retention_duration`` is the core's message TTL: unacked messages
  older than it are dropped (``sub_settings.py``).
"""

from __future__ import annotations

from typing import Any

import grpc

from dovecote.core.subscription_state import SubscriptionConfig
from dovecote.pubsub.backoff import normalise_retry_policy, redelivery_delay
from dovecote.pubsub.rpc import PubsubError, invalid
from dovecote.pubsub.sub_settings import retention_ms

DEFAULT_ACK_DEADLINE_S = 10
MIN_ACK_DEADLINE_S = 10
MAX_ACK_DEADLINE_S = 600
MIN_DELIVERY_ATTEMPTS = 5
MAX_DELIVERY_ATTEMPTS = 100


def ack_deadline_s(pb: Any) -> int:
    return pb.ack_deadline_seconds or DEFAULT_ACK_DEADLINE_S


def normalise(pb: Any) -> None:
    """Fill in what Google fills in on create (and check the ranges)."""
    if pb.ack_deadline_seconds == 0:
        pb.ack_deadline_seconds = DEFAULT_ACK_DEADLINE_S
    if not MIN_ACK_DEADLINE_S <= pb.ack_deadline_seconds <= MAX_ACK_DEADLINE_S:
        raise invalid(
            "Invalid ack_deadline_seconds: must be between 10 and 600 seconds "
            f"(got {pb.ack_deadline_seconds})."
        )
    if pb.HasField("dead_letter_policy"):
        policy = pb.dead_letter_policy
        if policy.max_delivery_attempts == 0:
            policy.max_delivery_attempts = MIN_DELIVERY_ATTEMPTS
        attempts = policy.max_delivery_attempts
        if attempts < MIN_DELIVERY_ATTEMPTS:
            raise PubsubError(
                grpc.StatusCode.OUT_OF_RANGE,
                "The value for max_delivery_attempts is too small. You passed "
                f"{attempts} in the request, but the minimum value is {MIN_DELIVERY_ATTEMPTS}.",
            )
        if attempts > MAX_DELIVERY_ATTEMPTS:
            raise PubsubError(
                grpc.StatusCode.OUT_OF_RANGE,
                "The value for max_delivery_attempts is too large. You passed "
                f"{attempts} in the request, but the maximum value is {MAX_DELIVERY_ATTEMPTS}.",
            )
    normalise_retry_policy(pb)


def core_config(pb: Any, record_filter: Any = None) -> SubscriptionConfig:
    max_deliveries = None
    if pb.HasField("dead_letter_policy") and pb.dead_letter_policy.dead_letter_topic:
        max_deliveries = pb.dead_letter_policy.max_delivery_attempts
    return SubscriptionConfig(
        lease_ms=ack_deadline_s(pb) * 1000,
        max_deliveries=max_deliveries,
        ordered=pb.enable_message_ordering,
        order_unkeyed=False,  # messages without an ordering key are not ordered
        requeue_following=True,  # a nack gives back the key's later messages too
        filter=record_filter,
        message_ttl_ms=retention_ms(pb),
        redelivery_delay=redelivery_delay(pb),
    )

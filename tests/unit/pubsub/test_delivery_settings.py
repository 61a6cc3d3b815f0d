"""Pub/Sub delivery settings as core config: the retry backoff, the
exactly-once error status, the dead-letter attributes' time format."""

from __future__ import annotations

import grpc
import pytest
from google.rpc import code_pb2, error_details_pb2

from dovecote.pubsub.backoff import exponential, redelivery_delay
from dovecote.pubsub.dead_letters import publish_time_text
from dovecote.pubsub.exactly_once import ack_failures, parse_each
from dovecote.pubsub.methods import SUBSCRIBER_METHODS
from dovecote.pubsub.rpc import PubsubError
from dovecote.pubsub.sub_config import core_config, normalise

SubscriptionPb = SUBSCRIBER_METHODS["GetSubscription"].response


def test_backoff_doubles_from_the_minimum_up_to_the_maximum():
    delay = exponential(10_000, 600_000)
    assert [delay(n) for n in (1, 2, 3, 4, 6, 7, 100)] == [
        10_000,
        20_000,
        40_000,
        80_000,
        320_000,
        600_000,
        600_000,
    ]
    assert exponential(0, 5_000)(3) == 0


def test_retry_policy_defaults_and_checks():
    pb = SubscriptionPb(name="projects/p/subscriptions/s", topic="projects/p/topics/t")
    assert redelivery_delay(pb) is None
    pb.retry_policy.SetInParent()
    normalise(pb)
    assert pb.retry_policy.minimum_backoff.seconds == 10
    assert pb.retry_policy.maximum_backoff.seconds == 600
    assert core_config(pb).redelivery_delay(2) == 20_000
    pb.retry_policy.maximum_backoff.FromSeconds(700)
    with pytest.raises(PubsubError) as caught:
        normalise(pb)
    assert caught.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert caught.value.message == (  # Google's emulator's text
        "The value for maximum_backoff is out of bounds. You passed 700s in the request, "
        "but the value must be between 0s and 600s."
    )
    pb.retry_policy.minimum_backoff.FromSeconds(20)
    pb.retry_policy.maximum_backoff.FromSeconds(10)
    with pytest.raises(PubsubError, match=r"maximum_backoff is too small\. You passed 10s"):
        normalise(pb)


def test_pubsub_ordering_leaves_unkeyed_messages_unordered():
    pb = SubscriptionPb(enable_message_ordering=True)
    config = core_config(pb)
    assert config.ordered and not config.order_unkeyed


def test_exactly_once_status_names_each_failed_id():
    assert ack_failures([]) is None
    error = ack_failures(["a", "b"])
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details.code == code_pb2.INVALID_ARGUMENT
    assert error.details.message == error.message
    info = error_details_pb2.ErrorInfo()
    assert error.details.details[0].Unpack(info)
    assert info.reason == "EXACTLY_ONCE_ACKID_FAILURE"
    assert dict(info.metadata) == {
        "a": "PERMANENT_FAILURE_INVALID_ACK_ID",
        "b": "PERMANENT_FAILURE_INVALID_ACK_ID",
    }


def test_parse_each_keeps_the_text_sent_and_the_malformed_ids():
    tokens, malformed = parse_each(["0.5.a", "junk", "1.2.3"])
    assert list(tokens.values()) == ["0.5.a", "1.2.3"]
    assert [tuple(t) for t in tokens] == [(0, 5, 10), (1, 2, 3)]
    assert malformed == ["junk"]


def test_dead_letter_publish_time_text():
    assert publish_time_text(1_701_462_600_000) == "2023-12-01T20:30:00.000Z"
    assert publish_time_text(1_701_462_600_123) == "2023-12-01T20:30:00.123Z"

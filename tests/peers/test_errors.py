"""Error answers: the same bad request sent to Dovecote and to Google's emulator.

Where the two texts are one string, Dovecote copies the emulator (which copies
Google's service). Where a case lists two texts, the status code is the same
but the texts differ on purpose: Dovecote sends the texts Google's service
sends (from Google's docs and client issues), the emulator its own shorter
ones; the comment on the case names the difference.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from google.protobuf import field_mask_pb2
from google.pubsub_v1 import types

from tests.peers.conftest import PROJECT, Target
from tests.peers.support import error_of, publish, publish_raw, pull


@dataclass(frozen=True)
class Case:
    call: Callable[[Target, str, str], Any]  # (target, topic, subscription)
    code: str
    emulator: str
    dovecote: str | None = None  # None: the same text as the emulator's

    def text(self, target: str) -> str:
        return self.emulator if target == "emulator" or self.dovecote is None else self.dovecote


def _missing_topic(t: Target) -> str:
    return t.topic_path("missing-topic")


def _missing_sub(t: Target) -> str:
    return t.subscription_path("missing-sub")


def _msg(**kw: Any) -> types.PubsubMessage:
    return types.PubsubMessage(data=b"x", **kw)


def _mask(*paths: str) -> field_mask_pb2.FieldMask:
    return field_mask_pb2.FieldMask(paths=list(paths))


def _new_sub(t: Target, topic: str, **fields: Any) -> Any:
    request = {"name": t.subscription_path("fresh-" + topic.rsplit("-", 1)[-1]), "topic": topic}
    return t.subscriber.create_subscription(request={**request, **fields})


# Dovecote's NOT_FOUND text is the one Google's service sends (resource named);
# the emulator says which kind of resource is missing instead.
NOT_FOUND = "Resource not found (resource={}).".format

CASES: dict[str, Case] = {
    "get missing topic": Case(
        lambda t, _, __: t.publisher.get_topic(topic=_missing_topic(t)),
        "NOT_FOUND",
        "Topic not found",
        NOT_FOUND("missing-topic"),
    ),
    "publish to missing topic": Case(
        lambda t, _, __: publish(t.publisher, _missing_topic(t), b"x"),
        "NOT_FOUND",
        "Topic not found",
        NOT_FOUND("missing-topic"),
    ),
    "delete missing topic": Case(
        lambda t, _, __: t.publisher.delete_topic(topic=_missing_topic(t)),
        "NOT_FOUND",
        "Topic not found",
        NOT_FOUND("missing-topic"),
    ),
    "get missing subscription": Case(
        lambda t, _, __: t.subscriber.get_subscription(subscription=_missing_sub(t)),
        "NOT_FOUND",
        "Subscription does not exist",
        NOT_FOUND("missing-sub"),
    ),
    "pull from missing subscription": Case(
        lambda t, _, __: t.subscriber.pull(subscription=_missing_sub(t), max_messages=1),
        "NOT_FOUND",
        "Subscription does not exist",
        NOT_FOUND("missing-sub"),
    ),
    "subscribe to missing topic": Case(
        lambda t, topic, _: _new_sub(t, _missing_topic(t)),
        "NOT_FOUND",
        "Subscription topic does not exist",
        NOT_FOUND("missing-topic"),
    ),
    "dead-letter topic missing": Case(
        lambda t, topic, _: _new_sub(
            t,
            topic,
            dead_letter_policy={"dead_letter_topic": _missing_topic(t), "max_delivery_attempts": 5},
        ),
        "NOT_FOUND",
        "Dead letter topic not found",
    ),
    # ALREADY_EXISTS: Dovecote names the resource as Google's service does.
    "topic exists": Case(
        lambda t, topic, _: t.publisher.create_topic(name=topic),
        "ALREADY_EXISTS",
        "Topic already exists",
        "Resource already exists in the project (resource=projects/{p}/topics/{t}).",
    ),
    "subscription exists": Case(
        lambda t, topic, sub: t.subscriber.create_subscription(name=sub, topic=topic),
        "ALREADY_EXISTS",
        "Subscription already exists",
        "Resource already exists in the project (resource=projects/{p}/subscriptions/{s}).",
    ),
    "topic name too short": Case(
        lambda t, _, __: t.publisher.create_topic(name=t.topic_path("ab")),
        "INVALID_ARGUMENT",
        "Invalid [topics] name: (name=projects/{p}/topics/ab)",
    ),
    "topic name starts with goog": Case(
        lambda t, _, __: t.publisher.create_topic(name=t.topic_path("goog-x")),
        "INVALID_ARGUMENT",
        "Invalid [topics] name: (name=projects/{p}/topics/goog-x)",
    ),
    "topic name with a space": Case(
        lambda t, _, __: t.publisher.create_topic(name=t.topic_path("a b c")),
        "INVALID_ARGUMENT",
        "Invalid [topics] name: (name=projects/{p}/topics/a b c)",
    ),
    "topic name starts with a digit": Case(
        lambda t, _, __: t.publisher.create_topic(name=t.topic_path("1abc")),
        "INVALID_ARGUMENT",
        "Invalid [topics] name: (name=projects/{p}/topics/1abc)",
    ),
    "topic path malformed": Case(
        lambda t, _, __: t.publisher.create_topic(name="projects/x/topicz/abc"),
        "INVALID_ARGUMENT",
        "Invalid [topics] name: (name=projects/x/topicz/abc)",
    ),
    "subscription name too short": Case(
        lambda t, topic, _: t.subscriber.create_subscription(
            name=t.subscription_path("ab"), topic=topic
        ),
        "INVALID_ARGUMENT",
        "Invalid [subscriptions] name: (name=projects/{p}/subscriptions/ab)",
    ),
    # Publish: Dovecote sends Google's service texts, the emulator shorter ones.
    "publish an empty message": Case(
        lambda t, topic, _: publish_raw(t.publisher, topic, [types.PubsubMessage()]),
        "INVALID_ARGUMENT",
        "Some messages are empty",
        "Some messages in the publish request are empty. Each message must contain a "
        "non-empty data field, or at least one attribute.",
    ),
    "publish no messages": Case(
        lambda t, topic, _: publish_raw(t.publisher, topic, []),
        "INVALID_ARGUMENT",
        "No messages to publish",
        "The request must contain at least one message.",
    ),
    "publish 1001 messages": Case(
        lambda t, topic, _: publish_raw(t.publisher, topic, [_msg()] * 1001),
        "INVALID_ARGUMENT",
        "Too many messages to publish",
        "The value for message_count is too large. You passed 1001 in the request, "
        "but the maximum value is 1000.",
    ),
    "acknowledge no ids": Case(
        lambda t, _, sub: t.subscriber.acknowledge(subscription=sub, ack_ids=[]),
        "INVALID_ARGUMENT",
        "No ack ids specified.",
    ),
    "acknowledge an unknown ack id": Case(
        lambda t, _, sub: t.subscriber.acknowledge(subscription=sub, ack_ids=["x"]),
        "INVALID_ARGUMENT",
        "Invalid ack id (ack_id=x)",
        "You have passed an invalid ack ID to the service (ack_id=x).",
    ),
    # The emulator checks the ack ids before the deadline: with an unknown id
    # it answers about the id. Dovecote checks the deadline first (a request
    # that is wrong as a whole is refused whatever its ids); see the deadline
    # cases with a real ack id in test_modack_deadline_out_of_range.
    "modack 601 with an unknown ack id": Case(
        lambda t, _, sub: t.subscriber.modify_ack_deadline(
            subscription=sub, ack_ids=["x"], ack_deadline_seconds=601
        ),
        "INVALID_ARGUMENT",
        "Invalid ack id (ack_id=x)",
        "Invalid ack deadline given (ack_deadline=601). The ack deadline must be between "
        "0 and 600 seconds.",
    ),
    "pull max_messages 0": Case(
        lambda t, _, sub: t.subscriber.pull(subscription=sub, max_messages=0),
        "INVALID_ARGUMENT",
        "No max_messages specified",
        "max_messages must be positive.",
    ),
    "create with ack deadline 601": Case(
        lambda t, topic, _: _new_sub(t, topic, ack_deadline_seconds=601),
        "INVALID_ARGUMENT",
        "ack_deadline_secs out of bounds",
        "Invalid ack_deadline_seconds: must be between 10 and 600 seconds (got 601).",
    ),
    "create with retention 5 minutes": Case(
        lambda t, topic, _: _new_sub(t, topic, message_retention_duration={"seconds": 300}),
        "INVALID_ARGUMENT",
        "message_retention_duration out of bounds",
        "Invalid message_retention_duration: must be between 10 minutes and 31 days (got 300s).",
    ),
    "push endpoint not http": Case(
        lambda t, topic, _: _new_sub(t, topic, push_config={"push_endpoint": "ftp://x"}),
        "INVALID_ARGUMENT",
        "Unsupported push_endpoint",
    ),
    "update subscription with an empty mask": Case(
        lambda t, topic, sub: t.subscriber.update_subscription(
            subscription=types.Subscription(name=sub, ack_deadline_seconds=20),
            update_mask=_mask(),
        ),
        "INVALID_ARGUMENT",
        "The update_mask in the UpdateSubscriptionRequest must be set, and must contain a "
        "non-empty paths list.",
    ),
    "update subscription topic": Case(
        lambda t, topic, sub: t.subscriber.update_subscription(
            subscription=types.Subscription(name=sub, topic=_missing_topic(t)),
            update_mask=_mask("topic"),
        ),
        "INVALID_ARGUMENT",
        "Invalid update_mask provided in the UpdateSubscriptionRequest: the topic field in "
        "the Subscription is not mutable.",
    ),
    "update subscription ordering": Case(
        lambda t, topic, sub: t.subscriber.update_subscription(
            subscription=types.Subscription(name=sub, enable_message_ordering=True),
            update_mask=_mask("enable_message_ordering"),
        ),
        "INVALID_ARGUMENT",
        "Invalid update_mask provided in the UpdateSubscriptionRequest: the "
        "enable_message_ordering field in the Subscription is not mutable.",
    ),
    "update subscription unknown field": Case(
        lambda t, topic, sub: t.subscriber.update_subscription(
            subscription=types.Subscription(name=sub), update_mask=_mask("nonsense")
        ),
        "INVALID_ARGUMENT",
        "Invalid update_mask provided in the UpdateSubscriptionRequest: nonsense is not a "
        "known Subscription field. Note that field paths must be of the form 'push_config' "
        "rather than 'pushConfig'.",
    ),
    "update topic with an empty mask": Case(
        lambda t, topic, _: t.publisher.update_topic(
            topic=types.Topic(name=topic, labels={"a": "b"}), update_mask=_mask()
        ),
        "INVALID_ARGUMENT",
        "The update_mask in the UpdateTopicRequest must be set, and must contain a "
        "non-empty paths list.",
    ),
    "seek without a target": Case(
        lambda t, _, sub: t.subscriber.seek(request={"subscription": sub}),
        "INVALID_ARGUMENT",
        "No target was specified in the SeekRequest. Must specify either a time or a snapshot",
    ),
    "dead letter max attempts 4": Case(
        lambda t, topic, _: _new_sub(
            t, topic, dead_letter_policy={"dead_letter_topic": topic, "max_delivery_attempts": 4}
        ),
        "OUT_OF_RANGE",
        "The value for max_delivery_attempts is too small. You passed 4 in the request, "
        "but the minimum value is 5.",
    ),
    "dead letter max attempts 101": Case(
        lambda t, topic, _: _new_sub(
            t, topic, dead_letter_policy={"dead_letter_topic": topic, "max_delivery_attempts": 101}
        ),
        "OUT_OF_RANGE",
        "The value for max_delivery_attempts is too large. You passed 101 in the request, "
        "but the maximum value is 100.",
    ),
    "retry maximum below minimum": Case(
        lambda t, topic, _: _new_sub(
            t,
            topic,
            retry_policy={"minimum_backoff": {"seconds": 100}, "maximum_backoff": {"seconds": 50}},
        ),
        "INVALID_ARGUMENT",
        "The value for maximum_backoff is too small. You passed 50s in the request, but the "
        "minimum value is 100s.",
    ),
    "retry maximum 601s": Case(
        lambda t, topic, _: _new_sub(
            t,
            topic,
            retry_policy={"minimum_backoff": {"seconds": 10}, "maximum_backoff": {"seconds": 601}},
        ),
        "INVALID_ARGUMENT",
        "The value for maximum_backoff is out of bounds. You passed 601s in the request, but "
        "the value must be between 0s and 600s.",
    ),
    "retry minimum -1s": Case(
        lambda t, topic, _: _new_sub(
            t,
            topic,
            retry_policy={"minimum_backoff": {"seconds": -1}, "maximum_backoff": {"seconds": 60}},
        ),
        "INVALID_ARGUMENT",
        "The value for minimum_backoff is out of bounds. You passed -1s in the request, but "
        "the value must be between 0s and 600s.",
    ),
}


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_error(target: Target, topic: str, subscription: str, case: str) -> None:
    spec = CASES[case]
    code, text = error_of(lambda: spec.call(target, topic, subscription))
    expected = spec.text(target.name).format(
        p=PROJECT, t=topic.rsplit("/", 1)[-1], s=subscription.rsplit("/", 1)[-1]
    )
    assert (code, text) == (spec.code, expected)


def _modack_with_real_id(target: Target, topic: str, subscription: str, seconds: int) -> Any:
    publish(target.publisher, topic, b"m")
    [received] = pull(target.subscriber, subscription, 1)
    return target.subscriber.modify_ack_deadline(
        subscription=subscription, ack_ids=[received.ack_id], ack_deadline_seconds=seconds
    )


def test_modack_negative_deadline(target: Target, topic: str, subscription: str) -> None:
    """Same code; Dovecote sends Google's text, the emulator its own."""
    code, text = error_of(lambda: _modack_with_real_id(target, topic, subscription, -1))
    assert code == "INVALID_ARGUMENT"
    assert text == (
        "Ack deadline cannot be negative"
        if target.name == "emulator"
        else "Invalid ack deadline given (ack_deadline=-1). The ack deadline must be between "
        "0 and 600 seconds."
    )


def test_modack_deadline_over_600(target: Target, topic: str, subscription: str) -> None:
    """A difference: Google documents 600 s as the maximum and Dovecote refuses
    601; the emulator accepts any deadline above 600 without a word."""
    if target.name == "emulator":
        assert _modack_with_real_id(target, topic, subscription, 601) is None
        return
    code, text = error_of(lambda: _modack_with_real_id(target, topic, subscription, 601))
    assert (code, text) == (
        "INVALID_ARGUMENT",
        "Invalid ack deadline given (ack_deadline=601). The ack deadline must be between "
        "0 and 600 seconds.",
    )


def test_dead_letter_max_attempts_zero_means_five(target: Target, topic: str) -> None:
    """Unset (0) max_delivery_attempts reads back as 5 on both."""
    made = _new_sub(target, topic, dead_letter_policy={"dead_letter_topic": topic})
    assert made.dead_letter_policy.max_delivery_attempts == 5


def test_retry_policy_defaults(target: Target, topic: str) -> None:
    """An empty retry policy reads back as 10s to 600s on both."""
    made = _new_sub(target, topic, retry_policy={})
    assert made.retry_policy.minimum_backoff.total_seconds() == 10
    assert made.retry_policy.maximum_backoff.total_seconds() == 600

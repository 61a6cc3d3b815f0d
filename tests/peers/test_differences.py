"""Where Dovecote goes beyond Google's emulator on purpose (issue 14): each
body asserts Dovecote's own answer and the emulator's, and says which one
Google's service gives. See docs/pubsub-differences.md."""

from __future__ import annotations

import json

import pytest
from google.api_core import exceptions as gexc
from google.protobuf import field_mask_pb2
from google.pubsub_v1 import types

from tests.peers.conftest import Target
from tests.peers.support import error_of, publish, publish_raw, pull, pull_nothing

AVRO = types.Schema.Type.AVRO
ORDER = json.dumps(
    {
        "type": "record",
        "name": "Order",
        "fields": [{"name": "id", "type": "string"}, {"name": "qty", "type": "int"}],
    }
)


def _mask(*paths: str) -> field_mask_pb2.FieldMask:
    return field_mask_pb2.FieldMask(paths=list(paths))


def test_filters_are_applied(target: Target, topic: str, name: str) -> None:
    """Google applies a subscription's filter; the emulator stores it and
    delivers everything; Dovecote applies it."""
    filtered = target.subscription_path(name + "-f")
    target.subscriber.create_subscription(
        request={"name": filtered, "topic": topic, "filter": 'attributes.kind = "a"'}
    )
    assert target.subscriber.get_subscription(subscription=filtered).filter == (
        'attributes.kind = "a"'
    )
    publish(target.publisher, topic, b"one", kind="a")
    publish(target.publisher, topic, b"two", kind="b")
    expected = [b"one", b"two"] if target.name == "emulator" else [b"one"]
    got = pull(target.subscriber, filtered, len(expected))
    got += pull_nothing(target.subscriber, filtered)
    assert sorted(r.message.data for r in got) == expected


def test_a_bad_filter(target: Target, topic: str, name: str) -> None:
    """Google refuses a filter it cannot parse; the emulator accepts anything."""
    request = {"name": target.subscription_path(name + "-f"), "topic": topic}
    request["filter"] = "attributes.kind ="
    if target.name == "emulator":
        assert target.subscriber.create_subscription(request=request).filter == request["filter"]
        return
    assert error_of(lambda: target.subscriber.create_subscription(request=request)) == (
        "INVALID_ARGUMENT",
        "Invalid filter: the value must be a string literal, found the end of the filter at "
        "offset 17.",
    )


def test_exactly_once_refuses_a_stale_ack_id(target: Target, topic: str, name: str) -> None:
    """With exactly-once delivery an ack whose lease is gone fails, with an
    ErrorInfo mapping the ack id to PERMANENT_FAILURE_INVALID_ACK_ID. The
    issue lists exactly-once as something the emulator lacks; emulator
    0.8.20 does refuse a stale ack id the same way (compared here)."""
    path = target.subscription_path(name + "-eo")
    target.subscriber.create_subscription(
        request={"name": path, "topic": topic, "enable_exactly_once_delivery": True}
    )
    publish(target.publisher, topic, b"once")
    [first] = pull(target.subscriber, path, 1)
    target.subscriber.modify_ack_deadline(
        subscription=path, ack_ids=[first.ack_id], ack_deadline_seconds=0
    )
    [second] = pull(target.subscriber, path, 1)
    with pytest.raises(gexc.InvalidArgument) as failed:
        target.subscriber.acknowledge(subscription=path, ack_ids=[first.ack_id])
    # Texts differ: the emulator sends none, Dovecote the text Google's service sends.
    assert failed.value.message == (
        ""
        if target.name == "emulator"
        else "Some acknowledgement ids in the request were invalid. This could be because the "
        "acknowledgement ids have expired or the acknowledgement ids were malformed."
    )
    assert failed.value.reason == "EXACTLY_ONCE_ACKID_FAILURE"
    assert failed.value.domain == "pubsub.googleapis.com"
    assert dict(failed.value.metadata) == {first.ack_id: "PERMANENT_FAILURE_INVALID_ACK_ID"}
    target.subscriber.acknowledge(subscription=path, ack_ids=[second.ack_id])
    assert pull_nothing(target.subscriber, path) == []


def test_detach_subscription(target: Target, topic: str, subscription: str) -> None:
    """Google and Dovecote detach; the emulator does not implement the RPC."""
    detach = lambda: target.publisher.detach_subscription(  # noqa: E731
        request={"subscription": subscription}
    )
    if target.name == "emulator":
        assert error_of(detach) == (
            "UNIMPLEMENTED",
            "Method google.pubsub.v1.Publisher/DetachSubscription is unimplemented",
        )
        return
    detach()
    assert target.subscriber.get_subscription(subscription=subscription).detached


def test_update_snapshot(target: Target, topic: str, subscription: str, name: str) -> None:
    """Google and Dovecote update a snapshot's labels; the emulator has no UpdateSnapshot."""
    snapshot = f"projects/{topic.split('/')[1]}/snapshots/{name}"
    target.subscriber.create_snapshot(name=snapshot, subscription=subscription)
    update = lambda: target.subscriber.update_snapshot(  # noqa: E731
        request={
            "snapshot": {"name": snapshot, "labels": {"a": "b"}},
            "update_mask": _mask("labels"),
        }
    )
    if target.name == "emulator":
        assert error_of(update) == (
            "UNIMPLEMENTED",
            "Method google.pubsub.v1.Subscriber/UpdateSnapshot is unimplemented",
        )
        return
    assert dict(update().labels) == {"a": "b"}


def test_iam_policies(target: Target, topic: str) -> None:
    """Google and Dovecote store IAM policies; the emulator has no IAMPolicy service."""
    policy = {"bindings": [{"role": "roles/pubsub.viewer", "members": ["allUsers"]}]}
    set_policy = lambda: target.publisher.set_iam_policy(  # noqa: E731
        request={"resource": topic, "policy": policy}
    )
    if target.name == "emulator":
        assert error_of(set_policy) == ("UNIMPLEMENTED", "")
        return
    set_policy()
    stored = target.publisher.get_iam_policy(request={"resource": topic})
    assert [(b.role, list(b.members)) for b in stored.bindings] == [
        ("roles/pubsub.viewer", ["allUsers"])
    ]


def test_label_updates(target: Target, topic: str, subscription: str) -> None:
    """Google and Dovecote update labels; the emulator does not know the field."""
    update_topic = lambda: target.publisher.update_topic(  # noqa: E731
        topic=types.Topic(name=topic, labels={"a": "b"}), update_mask=_mask("labels")
    )
    update_sub = lambda: target.subscriber.update_subscription(  # noqa: E731
        subscription=types.Subscription(name=subscription, labels={"a": "b"}),
        update_mask=_mask("labels"),
    )
    if target.name == "emulator":
        assert error_of(update_topic) == (
            "INVALID_ARGUMENT",
            "Invalid update_mask provided in the UpdateTopicRequest: labels is not a known Topic "
            "field. Note that field paths must be of the form 'schema_settings' rather than "
            "'schemaSetings'.",
        )
        assert error_of(update_sub) == (
            "INVALID_ARGUMENT",
            "Invalid update_mask provided in the UpdateSubscriptionRequest: labels is not a "
            "known Subscription field. Note that field paths must be of the form 'push_config' "
            "rather than 'pushConfig'.",
        )
        return
    assert dict(update_topic().labels) == {"a": "b"}
    assert dict(update_sub().labels) == {"a": "b"}


ATTRIBUTE_LIMITS = {
    "101 attributes": (
        {f"k{i}": "v" for i in range(101)},
        "",
        "The value for attribute_count is too large. You passed 101 in the request, but the "
        "maximum value is 100.",
    ),
    "key of 257 bytes": (
        {"k" * 257: "v"},
        "",
        "The value for attribute_key_size is too large. You passed 257 in the request, but the "
        "maximum value is 256.",
    ),
    "value of 1025 bytes": (
        {"k": "v" * 1025},
        "",
        "The value for attribute_value_size is too large. You passed 1025 in the request, but "
        "the maximum value is 1024.",
    ),
    "key starting goog": (
        {"googfoo": "v"},
        "",
        "The attribute key 'googfoo' must not start with 'goog'.",
    ),
    "empty key": ({"": "v"}, "", "The attribute key must not be empty."),
    "ordering key of 1025 bytes": (
        {},
        "k" * 1025,
        "The value for ordering_key_size is too large. You passed 1025 in the request, but the "
        "maximum value is 1024.",
    ),
}


def test_attribute_and_ordering_key_limits(target: Target, topic: str) -> None:
    """Google documents these limits and refuses past them; the emulator
    publishes anything; Dovecote refuses with Google's texts."""
    for label, (attributes, key, text) in ATTRIBUTE_LIMITS.items():
        message = types.PubsubMessage(data=b"x", attributes=attributes, ordering_key=key)
        publish_one = lambda m=message: publish_raw(target.publisher, topic, [m])  # noqa: E731
        if target.name == "emulator":
            assert len(publish_one().message_ids) == 1, label
        else:
            assert error_of(publish_one) == ("INVALID_ARGUMENT", text), label


def test_ack_deadline_below_10_at_creation(target: Target, topic: str, name: str) -> None:
    """Google documents 10 s as the minimum ack deadline; the emulator keeps 5,
    Dovecote refuses it."""
    request = {"name": target.subscription_path(name + "-5"), "topic": topic}
    request["ack_deadline_seconds"] = 5
    if target.name == "emulator":
        assert target.subscriber.create_subscription(request=request).ack_deadline_seconds == 5
        return
    assert error_of(lambda: target.subscriber.create_subscription(request=request)) == (
        "INVALID_ARGUMENT",
        "Invalid ack_deadline_seconds: must be between 10 and 600 seconds (got 5).",
    )

"""Subscription filters are applied (Google's emulator stores them and
delivers everything), and IAM policies are stored per resource."""

from __future__ import annotations

import pytest
from google.api_core import exceptions
from google.iam.v1 import policy_pb2

from tests.compat.pubsub.conftest import PROJECT


def test_a_filter_delivers_only_matching_messages(publisher, subscriber, topic, name):
    path = subscriber.subscription_path(PROJECT, name + "-eu")
    subscriber.create_subscription(
        request={
            "name": path,
            "topic": topic,
            "filter": 'attributes.region = "eu" AND NOT attributes:test',
        }
    )
    sent = [
        (b"eu", {"region": "eu"}),
        (b"us", {"region": "us"}),
        (b"eu-test", {"region": "eu", "test": "1"}),
        (b"none", {}),
        (b"eu-2", {"region": "eu", "x": "y"}),
    ]
    for data, attributes in sent:
        publisher.publish(topic, data, **attributes).result(10)
    got = []
    while True:
        response = subscriber.pull(subscription=path, max_messages=10, timeout=5)
        if not response.received_messages:
            break
        got += [m.message.data for m in response.received_messages]
        subscriber.acknowledge(
            subscription=path, ack_ids=[m.ack_id for m in response.received_messages]
        )
        if len(got) >= 2:
            break
    assert got == [b"eu", b"eu-2"]
    # what the filter refused is settled: nothing is left behind
    rest = subscriber.pull(subscription=path, max_messages=10, return_immediately=True)
    assert list(rest.received_messages) == []


def test_an_invalid_filter_is_refused(subscriber, topic, name):
    with pytest.raises(exceptions.InvalidArgument, match="Invalid filter"):
        subscriber.create_subscription(
            request={
                "name": subscriber.subscription_path(PROJECT, name + "-bad"),
                "topic": topic,
                "filter": 'attributes.a = "1" AND attributes.b = "2" OR attributes.c = "3"',
            }
        )


def test_iam_policies_are_stored_and_checked_for_races(publisher, subscriber, topic, subscription):
    empty = publisher.get_iam_policy(request={"resource": topic})
    assert list(empty.bindings) == []
    policy = policy_pb2.Policy(
        bindings=[policy_pb2.Binding(role="roles/pubsub.publisher", members=["user:a@b.c"])],
        etag=empty.etag,
    )
    stored = publisher.set_iam_policy(request={"resource": topic, "policy": policy})
    assert [b.role for b in stored.bindings] == ["roles/pubsub.publisher"]
    assert stored.etag != empty.etag
    again = publisher.get_iam_policy(request={"resource": topic})
    assert again == stored
    with pytest.raises(exceptions.Aborted):  # an etag from before the last change
        publisher.set_iam_policy(request={"resource": topic, "policy": policy})
    granted = subscriber.test_iam_permissions(
        request={"resource": subscription, "permissions": ["pubsub.subscriptions.consume"]}
    )
    assert list(granted.permissions) == ["pubsub.subscriptions.consume"]
    with pytest.raises(exceptions.NotFound):
        publisher.get_iam_policy(request={"resource": publisher.topic_path(PROJECT, "nope")})

"""Snapshots and Seek with google-cloud-pubsub: the snapshot RPCs, Seek to a
snapshot and to a time (with and without retained acked messages)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
from google.api_core import exceptions
from google.iam.v1 import policy_pb2

from tests.compat.pubsub.conftest import PROJECT


def pull_all(subscriber, subscription: str, ack: bool = True) -> list[bytes]:
    """Everything deliverable now, in order (acked unless told not to)."""
    got: list[bytes] = []
    while True:
        response = subscriber.pull(
            subscription=subscription, max_messages=100, return_immediately=True
        )
        if not response.received_messages:
            return got
        got.extend(m.message.data for m in response.received_messages)
        if ack:
            subscriber.acknowledge(
                subscription=subscription, ack_ids=[m.ack_id for m in response.received_messages]
            )


def publish(publisher, topic: str, *data: bytes) -> None:
    for item in data:
        publisher.publish(topic, item).result()


def test_snapshot_lifecycle(publisher, subscriber, topic, subscription, name):
    path = subscriber.snapshot_path(PROJECT, name)
    publish(publisher, topic, b"m")
    before = datetime.now(UTC)
    created = subscriber.create_snapshot(
        request={"name": path, "subscription": subscription, "labels": {"k": "v"}}
    )
    assert created.name == path
    assert created.topic == topic
    assert dict(created.labels) == {"k": "v"}
    # Google: 7 days after the oldest unacked message was published.
    assert before - timedelta(seconds=10) < created.expire_time - timedelta(days=7) <= before
    assert subscriber.get_snapshot(snapshot=path) == created
    assert [s.name for s in subscriber.list_snapshots(project=f"projects/{PROJECT}")].count(
        path
    ) == 1
    assert list(publisher.list_topic_snapshots(topic=topic)) == [path]
    later = datetime.now(UTC) + timedelta(days=2)
    updated = subscriber.update_snapshot(
        request={
            "snapshot": {"name": path, "labels": {"k": "w"}, "expire_time": later},
            "update_mask": {"paths": ["labels", "expire_time"]},
        }
    )
    assert dict(updated.labels) == {"k": "w"}
    assert abs((updated.expire_time - later).total_seconds()) < 0.01
    subscriber.delete_snapshot(snapshot=path)
    with pytest.raises(exceptions.NotFound, match="Resource not found"):
        subscriber.get_snapshot(snapshot=path)
    with pytest.raises(exceptions.NotFound):
        subscriber.delete_snapshot(snapshot=path)
    assert list(publisher.list_topic_snapshots(topic=topic)) == []


def test_snapshot_errors(subscriber, subscription, name):
    path = subscriber.snapshot_path(PROJECT, name)
    with pytest.raises(exceptions.NotFound, match="Resource not found"):
        subscriber.create_snapshot(name=path, subscription=subscription + "-gone")
    with pytest.raises(exceptions.InvalidArgument, match=r"Invalid \[snapshots\] name"):
        subscriber.create_snapshot(name="projects/p/snapshots/x", subscription=subscription)
    subscriber.create_snapshot(name=path, subscription=subscription)
    with pytest.raises(exceptions.AlreadyExists):
        subscriber.create_snapshot(name=path, subscription=subscription)
    with pytest.raises(exceptions.InvalidArgument, match="non-empty paths list"):
        subscriber.update_snapshot(request={"snapshot": {"name": path}, "update_mask": {}})
    with pytest.raises(exceptions.InvalidArgument, match="topic field in the Snapshot is not"):
        subscriber.update_snapshot(
            request={"snapshot": {"name": path}, "update_mask": {"paths": ["topic"]}}
        )


def test_list_snapshots_pages(subscriber, subscription, name):
    project = f"projects/other-{name}"
    paths = [f"{project}/snapshots/{name}-{i}" for i in range(5)]
    for path in paths:
        subscriber.create_snapshot(name=path, subscription=subscription)
    first = subscriber.list_snapshots(request={"project": project, "page_size": 2})
    assert [s.name for s in first] == paths  # the client follows the pages
    pages = list(subscriber.list_snapshots(request={"project": project, "page_size": 2}).pages)
    assert [len(p.snapshots) for p in pages] == [2, 2, 1]


def test_seek_to_a_snapshot_replays_what_was_unacked(
    publisher, subscriber, topic, subscription, name
):
    publish(publisher, topic, b"a", b"b")
    assert pull_all(subscriber, subscription) == [b"a", b"b"]
    publish(publisher, topic, b"c", b"d")
    path = subscriber.snapshot_path(PROJECT, name)
    subscriber.create_snapshot(name=path, subscription=subscription)
    assert pull_all(subscriber, subscription) == [b"c", b"d"]
    publish(publisher, topic, b"e")
    assert pull_all(subscriber, subscription) == [b"e"]
    subscriber.seek(request={"subscription": subscription, "snapshot": path})
    # What the snapshot held unacked, and everything published since.
    assert pull_all(subscriber, subscription) == [b"c", b"d", b"e"]


def test_seek_to_a_snapshot_of_another_topic_fails(publisher, subscriber, subscription, name):
    other_topic = publisher.topic_path(PROJECT, name + "-other")
    publisher.create_topic(name=other_topic)
    other = subscriber.subscription_path(PROJECT, name + "-other")
    subscriber.create_subscription(name=other, topic=other_topic)
    path = subscriber.snapshot_path(PROJECT, name)
    subscriber.create_snapshot(name=path, subscription=other)
    with pytest.raises(exceptions.FailedPrecondition, match="they must match in order for Seek"):
        subscriber.seek(request={"subscription": subscription, "snapshot": path})
    with pytest.raises(exceptions.NotFound):
        subscriber.seek(request={"subscription": subscription, "snapshot": path + "-gone"})
    with pytest.raises(exceptions.NotFound):
        subscriber.seek(request={"subscription": subscription + "-gone", "snapshot": path})
    with pytest.raises(exceptions.InvalidArgument, match="No target was specified"):
        subscriber.seek(request={"subscription": subscription})


def moment() -> datetime:
    """A time strictly between what was published before and after it."""
    time.sleep(0.01)
    at = datetime.now(UTC)
    time.sleep(0.01)
    return at


def test_seek_to_a_time_replays_acked_messages_when_retained(publisher, subscriber, topic, name):
    path = subscriber.subscription_path(PROJECT, name + "-retain")
    subscriber.create_subscription(
        request={"name": path, "topic": topic, "retain_acked_messages": True}
    )
    publish(publisher, topic, b"old")
    at = moment()
    publish(publisher, topic, b"new1", b"new2")
    assert pull_all(subscriber, path) == [b"old", b"new1", b"new2"]
    subscriber.seek(request={"subscription": path, "time": at})
    assert pull_all(subscriber, path) == [b"new1", b"new2"]
    # Seeking forward acks what was published before the time.
    publish(publisher, topic, b"x")
    at = moment()
    publish(publisher, topic, b"y")
    subscriber.seek(request={"subscription": path, "time": at})
    assert pull_all(subscriber, path) == [b"y"]


def test_seek_to_a_time_without_retained_acks(publisher, subscriber, topic, subscription):
    publish(publisher, topic, b"a")
    at = moment()
    publish(publisher, topic, b"b", b"c")
    response = subscriber.pull(subscription=subscription, max_messages=2, timeout=10)
    assert [m.message.data for m in response.received_messages] == [b"a", b"b"]
    subscriber.acknowledge(
        subscription=subscription, ack_ids=[response.received_messages[1].ack_id]
    )
    subscriber.seek(request={"subscription": subscription, "time": at})
    # a (before the time) is acked now; b stays acked; c is delivered.
    assert pull_all(subscriber, subscription) == [b"c"]


def test_deleting_a_snapshot_deletes_its_policy(publisher, subscriber, subscription, name):
    path = subscriber.snapshot_path(PROJECT, name)
    subscriber.create_snapshot(name=path, subscription=subscription)
    policy = policy_pb2.Policy(
        bindings=[policy_pb2.Binding(role="roles/pubsub.viewer", members=["allUsers"])]
    )
    subscriber.set_iam_policy(request={"resource": path, "policy": policy})
    assert subscriber.get_iam_policy(request={"resource": path}).bindings
    subscriber.delete_snapshot(snapshot=path)
    subscriber.create_snapshot(name=path, subscription=subscription)
    assert not subscriber.get_iam_policy(request={"resource": path}).bindings


def test_topic_retention_lets_seek_replay_acked_messages(publisher, subscriber, name):
    topic = publisher.topic_path(PROJECT, name + "-kept")
    publisher.create_topic(
        request={"name": topic, "message_retention_duration": {"seconds": 24 * 3600}}
    )
    path = subscriber.subscription_path(PROJECT, name + "-kept")
    subscriber.create_subscription(name=path, topic=topic)
    at = moment()
    publish(publisher, topic, b"a", b"b")
    assert pull_all(subscriber, path) == [b"a", b"b"]
    subscriber.seek(request={"subscription": path, "time": at})
    assert pull_all(subscriber, path) == [b"a", b"b"]

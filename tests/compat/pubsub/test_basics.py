"""The first slice: topics, publish, pull, ack and a streaming subscriber."""

from __future__ import annotations

import threading

import pytest
from google.api_core import exceptions

from tests.compat.pubsub.conftest import PROJECT


def test_publish_pull_ack(publisher, subscriber, topic, subscription):
    ids = [publisher.publish(topic, f"m{i}".encode(), k=str(i)).result() for i in range(3)]
    assert len(set(ids)) == 3
    response = subscriber.pull(subscription=subscription, max_messages=10, timeout=10)
    got = [(m.message.data, dict(m.message.attributes)) for m in response.received_messages]
    assert got == [(b"m0", {"k": "0"}), (b"m1", {"k": "1"}), (b"m2", {"k": "2"})]
    assert [m.message.message_id for m in response.received_messages] == ids
    subscriber.acknowledge(
        subscription=subscription, ack_ids=[m.ack_id for m in response.received_messages]
    )
    again = subscriber.pull(subscription=subscription, max_messages=10, return_immediately=True)
    assert list(again.received_messages) == []


def test_a_new_subscription_sees_only_later_messages(publisher, subscriber, topic, name):
    publisher.publish(topic, b"before").result()
    path = subscriber.subscription_path(PROJECT, name + "-late")
    subscriber.create_subscription(name=path, topic=topic)
    publisher.publish(topic, b"after").result()
    response = subscriber.pull(subscription=path, max_messages=10, timeout=10)
    assert [m.message.data for m in response.received_messages] == [b"after"]


def test_streaming_subscriber_receives(publisher, subscriber, topic, subscription):
    got: list[bytes] = []
    done = threading.Event()

    def callback(message):
        got.append(message.data)
        message.ack()
        if len(got) == 5:
            done.set()

    future = subscriber.subscribe(subscription, callback)
    try:
        for i in range(5):
            publisher.publish(topic, f"s{i}".encode())
        assert done.wait(10)
    finally:
        future.cancel()
    assert sorted(got) == [f"s{i}".encode() for i in range(5)]


def test_missing_and_duplicate_resources(publisher, subscriber, topic):
    with pytest.raises(exceptions.NotFound, match="Resource not found"):
        publisher.get_topic(topic=publisher.topic_path(PROJECT, "no-such-topic"))
    with pytest.raises(exceptions.AlreadyExists):
        publisher.create_topic(name=topic)
    with pytest.raises(exceptions.InvalidArgument, match=r"Invalid \[topics\] name"):
        publisher.create_topic(name="projects/p/topics/9starts-with-digit")

"""Delivery semantics with the real google-cloud-pubsub clients: ordering
keys, nacks, dead letters, retry backoff, detached subscriptions, and what a
message keeps on its way through."""

from __future__ import annotations

import threading
import time

import pytest
from google.api_core import exceptions
from google.cloud import pubsub_v1
from google.cloud.pubsub_v1.publisher import exceptions as publish_errors
from google.cloud.pubsub_v1.types import PublisherOptions, StreamingPullRequest

from dovecote.pubsub.receiving import STREAM_CLOSE_LEASE_S
from tests.compat.pubsub.conftest import PROJECT


def pull(subscriber, path: str, n: int = 10, timeout: float = 10) -> list:
    response = subscriber.pull(subscription=path, max_messages=n, timeout=timeout)
    return list(response.received_messages)


def pull_now(subscriber, path: str, n: int = 10) -> list:
    """What is deliverable right now (return_immediately)."""
    with pytest.warns(DeprecationWarning):
        response = subscriber.pull(subscription=path, max_messages=n, return_immediately=True)
    return list(response.received_messages)


def data(received) -> list[bytes]:
    return [m.message.data for m in received]


def make_subscription(subscriber, topic: str, name: str, **settings) -> str:
    path = subscriber.subscription_path(PROJECT, name)
    subscriber.create_subscription(request={"name": path, "topic": topic, **settings})
    return path


@pytest.fixture
def ordered_publisher(emulator_host):
    client = pubsub_v1.PublisherClient(
        publisher_options=PublisherOptions(enable_message_ordering=True)
    )
    yield client
    client.stop()


def test_ordering_keys_with_a_nack_in_the_middle(ordered_publisher, subscriber, topic, name):
    path = make_subscription(subscriber, topic, name, enable_message_ordering=True)
    for key, values in (("a", [b"a1", b"a2", b"a3"]), ("b", [b"b1", b"b2"]), ("", [b"u1", b"u2"])):
        for value in values:
            ordered_publisher.publish(topic, value, ordering_key=key).result()
    first = pull(subscriber, path)
    # A key's messages come in order in one answer (as from Google's emulator:
    # tests/peers); messages without a key are not ordered.
    assert data(first) == [b"a1", b"a2", b"a3", b"b1", b"b2", b"u1", b"u2"]
    assert [m.message.ordering_key for m in first] == ["a"] * 3 + ["b"] * 2 + [""] * 2
    by_value = {m.message.data: m.ack_id for m in first}
    subscriber.modify_ack_deadline(
        subscription=path, ack_ids=[by_value[v] for v in (b"a2", b"a3")], ack_deadline_seconds=0
    )
    subscriber.acknowledge(subscription=path, ack_ids=[by_value[v] for v in (b"b1", b"u1", b"u2")])
    # Key a blocks while a1 is out (a2 and a3 wait behind it); b2 is still out.
    assert data(pull_now(subscriber, path)) == []
    subscriber.modify_ack_deadline(
        subscription=path, ack_ids=[by_value[b"a1"]], ack_deadline_seconds=0
    )
    subscriber.acknowledge(subscription=path, ack_ids=[by_value[b"b2"]])
    second = pull(subscriber, path)
    assert data(second) == [b"a1", b"a2", b"a3"]
    redelivered = second[0]
    subscriber.acknowledge(subscription=path, ack_ids=[m.ack_id for m in second])
    assert redelivered.ack_id != by_value[b"a1"]
    assert data(pull_now(subscriber, path)) == []


def test_resume_publish_after_a_failed_ordered_publish(ordered_publisher, topic, name):
    ordered_publisher.publish(topic, b"one", ordering_key="k").result()
    ordered_publisher.delete_topic(topic=topic)
    with pytest.raises(exceptions.NotFound):
        ordered_publisher.publish(topic, b"two", ordering_key="k").result(timeout=30)
    # The key is paused on the client until resume_publish.
    with pytest.raises(publish_errors.PublishToPausedOrderingKeyException):
        ordered_publisher.publish(topic, b"three", ordering_key="k").result(timeout=30)
    ordered_publisher.create_topic(name=topic)
    ordered_publisher.resume_publish(topic, "k")
    assert ordered_publisher.publish(topic, b"four", ordering_key="k").result(timeout=30)


def test_nack_is_redelivered_promptly(publisher, subscriber, topic, subscription):
    publisher.publish(topic, b"again").result()
    (message,) = pull(subscriber, subscription)
    started = time.monotonic()
    subscriber.modify_ack_deadline(
        subscription=subscription, ack_ids=[message.ack_id], ack_deadline_seconds=0
    )
    (again,) = pull(subscriber, subscription)
    assert time.monotonic() - started < 1.0
    assert again.message.message_id == message.message.message_id
    assert again.delivery_attempt == 0  # only set with a dead-letter policy


def test_acks_are_idempotent_and_stale_ones_change_nothing(
    publisher, subscriber, topic, subscription
):
    publisher.publish(topic, b"x").result()
    (message,) = pull(subscriber, subscription)
    for _ in range(3):
        subscriber.acknowledge(subscription=subscription, ack_ids=[message.ack_id])
    subscriber.modify_ack_deadline(
        subscription=subscription, ack_ids=[message.ack_id], ack_deadline_seconds=0
    )
    assert pull_now(subscriber, subscription) == []


def test_an_ack_id_from_a_stream_acks_through_unary_acknowledge(
    publisher, subscriber, topic, subscription
):
    """Acks of streamed messages travel as unary Acknowledge calls."""
    publisher.publish(topic, b"streamed").result()
    received = []

    def callback(message):
        received.append(message)  # held, not acked, while the stream runs

    future = subscriber.subscribe(subscription, callback)
    try:
        deadline = time.monotonic() + 10
        while not received and time.monotonic() < deadline:
            time.sleep(0.05)
        assert received
        subscriber.acknowledge(subscription=subscription, ack_ids=[received[0].ack_id])
    finally:
        future.cancel()
    assert pull_now(subscriber, subscription) == []


def test_dead_letter_after_max_delivery_attempts(publisher, subscriber, topic, name):
    dead_topic = publisher.topic_path(PROJECT, name + "-dead")
    publisher.create_topic(name=dead_topic)
    dead_sub = make_subscription(subscriber, dead_topic, name + "-dead")
    path = make_subscription(
        subscriber,
        topic,
        name,
        dead_letter_policy={"dead_letter_topic": dead_topic, "max_delivery_attempts": 5},
    )
    message_id = publisher.publish(topic, b"poison", kind="bad", ordering_key="").result()
    for attempt in range(1, 6):
        (message,) = pull(subscriber, path)
        assert message.delivery_attempt == attempt
        subscriber.modify_ack_deadline(
            subscription=path, ack_ids=[message.ack_id], ack_deadline_seconds=0
        )
    assert pull_now(subscriber, path) == []  # the sixth attempt goes to the dead-letter topic
    (dead,) = pull(subscriber, dead_sub)
    assert dead.message.data == b"poison"
    attributes = dict(dead.message.attributes)
    assert attributes.pop("kind") == "bad"
    published = message.message.publish_time
    assert attributes == {
        "CloudPubSubDeadLetterSourceDeliveryCount": "5",
        "CloudPubSubDeadLetterSourceSubscription": name,
        "CloudPubSubDeadLetterSourceSubscriptionProject": PROJECT,
        "CloudPubSubDeadLetterSourceTopicPublishTime": f"{published:%Y-%m-%dT%H:%M:%S}."
        f"{published.microsecond // 1000:03d}Z",
    }
    assert message.message.message_id == message_id
    assert dead.delivery_attempt == 0  # the dead-letter subscription has no policy
    assert pull_now(subscriber, path) == []


def test_dead_letters_wait_while_their_topic_is_gone(publisher, subscriber, topic, name):
    dead_topic = publisher.topic_path(PROJECT, name + "-gone")
    publisher.create_topic(name=dead_topic)
    path = make_subscription(
        subscriber,
        topic,
        name,
        dead_letter_policy={"dead_letter_topic": dead_topic, "max_delivery_attempts": 5},
    )
    publisher.delete_topic(topic=dead_topic)
    publisher.publish(topic, b"kept").result()
    for _ in range(5):
        (message,) = pull(subscriber, path)
        subscriber.modify_ack_deadline(
            subscription=path, ack_ids=[message.ack_id], ack_deadline_seconds=0
        )
    # Not forwarded (nowhere to go) and not dropped: not delivered either.
    assert pull_now(subscriber, path) == []
    response = subscriber.get_subscription(subscription=path)
    assert response.dead_letter_policy.dead_letter_topic == dead_topic


def test_retry_policy_backs_off_redeliveries(publisher, subscriber, topic, name):
    path = make_subscription(
        subscriber,
        topic,
        name,
        retry_policy={"minimum_backoff": {"seconds": 1}, "maximum_backoff": {"seconds": 2}},
    )
    stored = subscriber.get_subscription(subscription=path).retry_policy
    assert (stored.minimum_backoff.total_seconds(), stored.maximum_backoff.total_seconds()) == (
        1,
        2,
    )
    publisher.publish(topic, b"retry").result()
    waits = []
    (message,) = pull(subscriber, path)
    for _ in range(2):
        subscriber.modify_ack_deadline(
            subscription=path, ack_ids=[message.ack_id], ack_deadline_seconds=0
        )
        nacked = time.monotonic()
        assert pull_now(subscriber, path) == []
        (message,) = pull(subscriber, path)
        waits.append(time.monotonic() - nacked)
    assert 0.9 <= waits[0] < 1.9  # minimum_backoff after the first failure
    assert 1.9 <= waits[1] < 2.9  # doubled, up to maximum_backoff


def test_a_retry_policy_gets_googles_defaults(subscriber, topic, name):
    path = make_subscription(subscriber, topic, name, retry_policy={})
    stored = subscriber.get_subscription(subscription=path).retry_policy
    assert stored.minimum_backoff.total_seconds() == 10
    assert stored.maximum_backoff.total_seconds() == 600


def test_detached_subscription(publisher, subscriber, topic, subscription):
    publisher.publish(topic, b"dropped").result()
    publisher.detach_subscription(request={"subscription": subscription})
    assert subscriber.get_subscription(subscription=subscription).detached
    with pytest.raises(exceptions.FailedPrecondition, match="Subscription is detached"):
        subscriber.pull(subscription=subscription, max_messages=1, timeout=10)
    with pytest.raises(exceptions.NotFound):
        publisher.detach_subscription(
            request={"subscription": subscriber.subscription_path(PROJECT, "no-such-sub")}
        )


def test_a_message_keeps_attributes_ordering_key_and_publish_time(
    ordered_publisher, subscriber, topic, name
):
    path = make_subscription(subscriber, topic, name, enable_message_ordering=True)
    before = time.time()
    ordered_publisher.publish(
        topic, b"payload", ordering_key="key-1", colour="blue", **{"ordering-key": "attr"}
    ).result()
    (message,) = pull(subscriber, path)
    assert message.message.data == b"payload"
    assert message.message.ordering_key == "key-1"
    assert dict(message.message.attributes) == {"colour": "blue", "ordering-key": "attr"}
    published = message.message.publish_time.timestamp()
    assert before - 1 <= published <= time.time() + 1


def stream_one(subscriber, path: str) -> str:
    """Open a StreamingPull, take one message's ack id and close the stream."""
    stop = threading.Event()

    def requests():
        yield StreamingPullRequest(subscription=path, stream_ack_deadline_seconds=60)
        stop.wait(10)

    responses = subscriber.streaming_pull(requests=requests())
    try:
        first = next(iter(responses))
        (message,) = first.received_messages
        return message.ack_id
    finally:
        stop.set()
        responses.cancel()


def test_an_ack_id_stays_valid_after_its_stream_closed(publisher, subscriber, topic, subscription):
    publisher.publish(topic, b"across").result()
    ack_id = stream_one(subscriber, subscription)
    time.sleep(0.2)  # the server has seen the stream end
    subscriber.acknowledge(subscription=subscription, ack_ids=[ack_id])
    time.sleep(STREAM_CLOSE_LEASE_S + 0.5)
    assert pull_now(subscriber, subscription) == []


def test_a_closed_streams_messages_come_back_soon(publisher, subscriber, topic, subscription):
    publisher.publish(topic, b"left").result()
    stream_one(subscriber, subscription)
    closed = time.monotonic()
    (again,) = pull(subscriber, subscription)
    assert again.message.data == b"left"
    assert time.monotonic() - closed < 5


def test_an_expired_deadline_blocks_the_key_until_redelivery(
    ordered_publisher, subscriber, topic, name
):
    path = make_subscription(subscriber, topic, name, enable_message_ordering=True)
    for value in (b"k1", b"k2"):
        ordered_publisher.publish(topic, value, ordering_key="k").result()
    first = pull(subscriber, path)
    assert data(first) == [b"k1", b"k2"]  # a key's messages come in one answer
    subscriber.modify_ack_deadline(
        subscription=path, ack_ids=[m.ack_id for m in first], ack_deadline_seconds=1
    )
    assert pull_now(subscriber, path) == []  # the key waits while its leases live
    time.sleep(1.2)
    again = pull(subscriber, path)
    assert data(again) == [b"k1", b"k2"]
    subscriber.acknowledge(subscription=path, ack_ids=[m.ack_id for m in again])
    assert pull_now(subscriber, path) == []


def test_a_streaming_subscriber_sees_each_key_in_order_across_a_nack(
    ordered_publisher, subscriber, topic, name
):
    path = make_subscription(subscriber, topic, name, enable_message_ordering=True)
    acked: dict[str, list[bytes]] = {"a": [], "b": []}
    nacked: list[bytes] = []
    done = threading.Event()

    def callback(message):
        if message.data == b"a2" and not nacked:
            nacked.append(message.data)
            message.nack()
            return
        acked[message.ordering_key].append(message.data)
        message.ack()
        if sum(map(len, acked.values())) == 8:
            done.set()

    future = subscriber.subscribe(path, callback)
    try:
        for i in range(1, 5):
            for key in ("a", "b"):
                ordered_publisher.publish(topic, f"{key}{i}".encode(), ordering_key=key)
        assert done.wait(20)
    finally:
        future.cancel()
    assert nacked == [b"a2"]
    assert acked == {key: [f"{key}{i}".encode() for i in range(1, 5)] for key in ("a", "b")}


def test_dead_letter_policy_checks(publisher, subscriber, topic, name):
    """Google's emulator's answers."""
    missing = publisher.topic_path(PROJECT, name + "-missing")
    with pytest.raises(exceptions.NotFound, match="Dead letter topic not found"):
        make_subscription(
            subscriber, topic, name + "-a", dead_letter_policy={"dead_letter_topic": missing}
        )
    for attempts, text in ((3, "too small. You passed 3"), (101, "too large. You passed 101")):
        with pytest.raises(exceptions.OutOfRange, match=f"max_delivery_attempts is {text}"):
            make_subscription(
                subscriber,
                topic,
                f"{name}-{attempts}",
                dead_letter_policy={"dead_letter_topic": topic, "max_delivery_attempts": attempts},
            )


def test_a_nack_gives_back_the_keys_later_messages_too(ordered_publisher, subscriber, topic, name):
    """As Google documents for ordering keys: a message delivered again brings
    the key's later messages with it, so a subscriber never sees a3 before the
    a2 it nacked; an ack of a message given back that way does nothing."""
    path = make_subscription(subscriber, topic, name, enable_message_ordering=True)
    for value in (b"a1", b"a2", b"a3"):
        ordered_publisher.publish(topic, value, ordering_key="a").result()
    first = {m.message.data: m.ack_id for m in pull(subscriber, path)}
    assert list(first) == [b"a1", b"a2", b"a3"]
    subscriber.acknowledge(subscription=path, ack_ids=[first[b"a1"]])
    subscriber.modify_ack_deadline(
        subscription=path, ack_ids=[first[b"a2"]], ack_deadline_seconds=0
    )
    subscriber.acknowledge(subscription=path, ack_ids=[first[b"a3"]])  # given back: stale
    again = pull(subscriber, path)
    assert data(again) == [b"a2", b"a3"]
    subscriber.acknowledge(subscription=path, ack_ids=[m.ack_id for m in again])
    assert data(pull_now(subscriber, path)) == []

"""Delivery settings across a broker restart: a detached subscription stays
detached, dead lettering is wired again, and an exactly-once ack is never
undone."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from google.api_core import exceptions
from google.cloud import pubsub_v1

from dovecote.testing import BrokerThread
from tests.compat.pubsub.conftest import ONLY_PUBSUB, PROJECT
from tests.compat.pubsub.test_delivery import make_subscription, pull, pull_now


@pytest.fixture
def broker(tmp_path) -> Iterator[BrokerThread]:
    with BrokerThread(tmp_path / "data", **ONLY_PUBSUB) as running:
        yield running


def clients(
    broker: BrokerThread, monkeypatch
) -> tuple[pubsub_v1.PublisherClient, pubsub_v1.SubscriberClient]:
    """Fresh clients for the broker's current port (a restart may change it)."""
    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", broker.pubsub_host)
    return pubsub_v1.PublisherClient(), pubsub_v1.SubscriberClient()


def test_delivery_settings_survive_a_restart(broker, monkeypatch):
    publisher, subscriber = clients(broker, monkeypatch)
    topic = publisher.topic_path(PROJECT, "orders")
    dead_topic = publisher.topic_path(PROJECT, "orders-dead")
    publisher.create_topic(name=topic)
    publisher.create_topic(name=dead_topic)
    dead_sub = make_subscription(subscriber, dead_topic, "orders-dead")
    detached = make_subscription(subscriber, topic, "detached")
    with_dlq = make_subscription(
        subscriber,
        topic,
        "with-dlq",
        dead_letter_policy={"dead_letter_topic": dead_topic, "max_delivery_attempts": 5},
    )
    once = make_subscription(subscriber, topic, "once", enable_exactly_once_delivery=True)
    publisher.publish(topic, b"m").result()
    (message,) = pull(subscriber, once)
    subscriber.acknowledge(subscription=once, ack_ids=[message.ack_id])
    publisher.detach_subscription(request={"subscription": detached})
    publisher.stop()
    subscriber.close()

    broker.restart()
    publisher, subscriber = clients(broker, monkeypatch)
    try:
        assert subscriber.get_subscription(subscription=detached).detached
        with pytest.raises(exceptions.FailedPrecondition, match="Subscription is detached"):
            subscriber.pull(subscription=detached, max_messages=1, timeout=10)
        assert pull_now(subscriber, once) == []  # acked before the restart
        for attempt in range(1, 6):
            (received,) = pull(subscriber, with_dlq)
            assert received.delivery_attempt == attempt
            subscriber.modify_ack_deadline(
                subscription=with_dlq, ack_ids=[received.ack_id], ack_deadline_seconds=0
            )
        assert pull_now(subscriber, with_dlq) == []
        (dead,) = pull(subscriber, dead_sub)
        assert dead.message.data == b"m"
        assert dead.message.attributes["CloudPubSubDeadLetterSourceSubscription"] == "with-dlq"
    finally:
        publisher.stop()
        subscriber.close()

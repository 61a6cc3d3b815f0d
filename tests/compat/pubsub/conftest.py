"""Fixtures for the Pub/Sub compatibility tests: a real broker, the real
google-cloud-pubsub clients over gRPC.

One in-process broker (``BrokerThread``) with only the Pub/Sub listener
serves a test module. The clients find it through ``PUBSUB_EMULATOR_HOST``,
as users point them at Google's emulator; tests use fresh names.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
from google.cloud import pubsub_v1

from dovecote.testing import BrokerThread

ONLY_PUBSUB = {"kafka": "off", "amqp": "off", "http": "off", "aws": "off", "registry": "off"}
PROJECT = "test-project"


@pytest.fixture(scope="module")
def broker(tmp_path_factory) -> Iterator[BrokerThread]:
    with BrokerThread(tmp_path_factory.mktemp("pubsub") / "data", **ONLY_PUBSUB) as running:
        yield running


@pytest.fixture(scope="module")
def emulator_host(broker: BrokerThread) -> Iterator[str]:
    before = os.environ.get("PUBSUB_EMULATOR_HOST")
    os.environ["PUBSUB_EMULATOR_HOST"] = broker.pubsub_host
    yield broker.pubsub_host
    if before is None:
        os.environ.pop("PUBSUB_EMULATOR_HOST", None)
    else:
        os.environ["PUBSUB_EMULATOR_HOST"] = before


@pytest.fixture
def publisher(emulator_host: str) -> Iterator[pubsub_v1.PublisherClient]:
    client = pubsub_v1.PublisherClient()
    yield client
    client.stop()


@pytest.fixture
def subscriber(emulator_host: str) -> Iterator[pubsub_v1.SubscriberClient]:
    client = pubsub_v1.SubscriberClient()
    yield client
    client.close()


@pytest.fixture
def name() -> str:
    """A fresh id for this test's topics and subscriptions."""
    return f"t-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def topic(publisher: pubsub_v1.PublisherClient, name: str) -> str:
    path = publisher.topic_path(PROJECT, name)
    publisher.create_topic(name=path)
    return path


@pytest.fixture
def subscription(subscriber: pubsub_v1.SubscriberClient, topic: str, name: str) -> str:
    path = subscriber.subscription_path(PROJECT, name)
    subscriber.create_subscription(name=path, topic=topic)
    return path

"""Fixtures for the comparison suite: one test body, two servers.

Every test here runs twice, against ``dovecote`` (an in-process broker with
only the Pub/Sub listener) and against ``emulator`` (Google's Pub/Sub
emulator, started once per session with the benchmark's starter), through
the real google-cloud-pubsub clients. The point is to learn where Google's
docs are unclear what the reference implementation answers, and to keep
Dovecote answering the same. ``make compare`` runs it; ``make test`` does not
(the emulator cannot be installed on a fresh CI machine), so a missing
emulator is a failure here, never a skip.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from google.cloud import pubsub_v1

from bench.peers.pubsub_emulator import missing as emulator_missing
from bench.peers.pubsub_emulator import pubsub_emulator
from dovecote.testing import BrokerThread

ONLY_PUBSUB = {"kafka": "off", "amqp": "off", "http": "off", "aws": "off", "registry": "off"}
PROJECT = "compare-project"
TARGETS = ("dovecote", "emulator")


@pytest.fixture(scope="session")
def dovecote_host(tmp_path_factory) -> Iterator[str]:
    with BrokerThread(tmp_path_factory.mktemp("peers") / "data", **ONLY_PUBSUB) as running:
        yield running.pubsub_host


@pytest.fixture(scope="session")
def emulator_host() -> Iterator[str]:
    if why := emulator_missing():
        pytest.fail(f"make compare needs Google's Pub/Sub emulator: {why}", pytrace=False)
    with pubsub_emulator() as info:
        yield info.address


@dataclass
class Target:
    """One server under comparison and fresh clients bound to it."""

    name: str
    host: str
    publisher: pubsub_v1.PublisherClient
    subscriber: pubsub_v1.SubscriberClient
    schemas: pubsub_v1.SchemaServiceClient

    def topic_path(self, tid: str) -> str:
        return self.publisher.topic_path(PROJECT, tid)

    def subscription_path(self, sid: str) -> str:
        return self.subscriber.subscription_path(PROJECT, sid)

    def ordered_publisher(self) -> pubsub_v1.PublisherClient:
        """A publisher with message ordering on (clients read the host when made)."""
        options = pubsub_v1.types.PublisherOptions(enable_message_ordering=True)
        with _pointed_at(self.host):
            return pubsub_v1.PublisherClient(publisher_options=options)


class _pointed_at:
    """``PUBSUB_EMULATOR_HOST`` set while a client is created, then restored."""

    def __init__(self, host: str) -> None:
        self.host = host

    def __enter__(self) -> None:
        self.before = os.environ.get("PUBSUB_EMULATOR_HOST")
        os.environ["PUBSUB_EMULATOR_HOST"] = self.host

    def __exit__(self, *exc: object) -> None:
        if self.before is None:
            os.environ.pop("PUBSUB_EMULATOR_HOST", None)
        else:
            os.environ["PUBSUB_EMULATOR_HOST"] = self.before


@pytest.fixture(params=TARGETS)
def target(request) -> Iterator[Target]:
    host = request.getfixturevalue(f"{request.param}_host")
    with _pointed_at(host):
        made = Target(
            name=request.param,
            host=host,
            publisher=pubsub_v1.PublisherClient(),
            subscriber=pubsub_v1.SubscriberClient(),
            schemas=pubsub_v1.SchemaServiceClient(),
        )
    yield made
    made.publisher.stop()
    made.subscriber.close()
    made.schemas.transport.close()


@pytest.fixture
def name() -> str:
    """A fresh id for this test's topics and subscriptions."""
    return f"c-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def topic(target: Target, name: str) -> str:
    path = target.topic_path(name)
    target.publisher.create_topic(name=path)
    return path


@pytest.fixture
def subscription(target: Target, topic: str, name: str) -> str:
    path = target.subscription_path(name)
    target.subscriber.create_subscription(name=path, topic=topic)
    return path

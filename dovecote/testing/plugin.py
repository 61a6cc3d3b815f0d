"""pytest plugin (registered by the package): fixtures that give a test a
running broker on free loopback ports, in place of a Docker Kafka or RabbitMQ.

    def test_orders(dovecote_broker):
        producer = confluent_kafka.Producer({"bootstrap.servers": dovecote_broker.kafka_bootstrap})
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from dovecote.testing.thread import BrokerThread


@pytest.fixture
def dovecote_broker(tmp_path) -> Iterator[BrokerThread]:
    """A fresh broker per test, data in the test's tmp_path."""
    with BrokerThread(tmp_path / "dovecote-data") as broker:
        yield broker


@pytest.fixture(scope="session")
def dovecote_session_broker(tmp_path_factory) -> Iterator[BrokerThread]:
    """One broker shared by the whole test session (faster; tests share state)."""
    with BrokerThread(tmp_path_factory.mktemp("dovecote") / "data") as broker:
        yield broker

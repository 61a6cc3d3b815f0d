"""Fixtures for the AMQP compatibility tests: a real broker on a free port.

One in-process broker (``BrokerThread``) serves a whole test module; tests
use unique queue and exchange names so they do not see each other's data.
Tests that restart or kill a broker use their own ``BrokerProcess``.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pika
import pytest

from dovecote.testing import BrokerThread

ONLY_AMQP = {"kafka": "off", "http": "off", "aws": "off", "pubsub": "off", "registry": "off"}


def subprocess_env() -> dict[str, str]:
    """Environment for child processes (brokers, Celery workers) that imports
    this checkout of dovecote, whatever is installed in the venv."""
    root = str(Path(__file__).resolve().parents[3])
    path = os.environ.get("PYTHONPATH")
    return {**os.environ, "PYTHONPATH": root + (os.pathsep + path if path else "")}


@pytest.fixture(scope="module")
def broker(tmp_path_factory) -> Iterator[BrokerThread]:
    with BrokerThread(tmp_path_factory.mktemp("amqp") / "data", **ONLY_AMQP) as running:
        yield running


@pytest.fixture
def url(broker: BrokerThread) -> str:
    return broker.amqp_url


@pytest.fixture
def name() -> str:
    """A fresh name for this test's queues and exchanges."""
    return f"t-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def connection(url: str) -> Iterator[pika.BlockingConnection]:
    conn = pika.BlockingConnection(pika.URLParameters(url))
    yield conn
    if conn.is_open:
        conn.close()


@pytest.fixture
def channel(connection: pika.BlockingConnection):
    return connection.channel()

"""Fixtures for the SQS/SNS compatibility tests: a real broker, boto3 clients.

One in-process broker (``BrokerThread``) with only the AWS listener serves a
test module; tests use fresh queue and topic names. Any credentials are
accepted (the default), so the clients use dummy keys.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import boto3
import pytest
from botocore.config import Config

from dovecote.testing import BrokerThread

ONLY_AWS = {"kafka": "off", "amqp": "off", "http": "off", "pubsub": "off", "registry": "off"}
REGION = "us-east-1"


def client(service: str, endpoint: str, **config: object):
    """A boto3 client for ``service`` against ``endpoint``, no retries (a
    failure shows as it is)."""
    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id="AKIDEXAMPLE",
        aws_secret_access_key="secret",
        config=Config(retries={"total_max_attempts": 1}, **config),
    )


@pytest.fixture(scope="module")
def broker(tmp_path_factory) -> Iterator[BrokerThread]:
    with BrokerThread(tmp_path_factory.mktemp("aws") / "data", **ONLY_AWS) as running:
        yield running


@pytest.fixture
def endpoint(broker: BrokerThread) -> str:
    return broker.aws_endpoint


@pytest.fixture
def sqs(endpoint: str):
    return client("sqs", endpoint)


@pytest.fixture
def sns(endpoint: str):
    return client("sns", endpoint)


@pytest.fixture
def name() -> str:
    """A fresh name for this test's queues and topics."""
    return f"t-{uuid.uuid4().hex[:10]}"

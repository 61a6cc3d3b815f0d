"""What the SQS fault scenarios share: boto3 clients that fail fast (the
tests retry themselves, so they know what was sent twice), what a broker
going away looks like to botocore, and reading a queue to its end."""

from __future__ import annotations

import logging
import time
from typing import Any

import boto3
import botocore.exceptions
from botocore.config import Config

from tests.faults.harness import Broker

REGION = "us-east-1"

# botocore logs nothing we need about refused connections; the restarts are ours.
logging.getLogger("botocore").setLevel(logging.CRITICAL)
logging.getLogger("urllib3").setLevel(logging.CRITICAL)

# What a broker going away (or not yet back) looks like to botocore.
GONE = (botocore.exceptions.HTTPClientError, botocore.exceptions.ConnectionError, OSError)


def sqs_client(endpoint: str, *, read_timeout: float = 10, pool: int = 10) -> Any:
    """A boto3 SQS client with dummy credentials and no retries of its own
    (``total_max_attempts``: botocore's ``max_attempts`` counts retries, so
    ``max_attempts=1`` still sends a failed request twice)."""
    return boto3.client(
        "sqs",
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id="AKIDEXAMPLE",
        aws_secret_access_key="secret",
        config=Config(
            retries={"total_max_attempts": 1, "mode": "standard"},
            connect_timeout=2,
            read_timeout=read_timeout,
            max_pool_connections=pool,
        ),
    )


def create_queue(broker: Broker, name: str, **attributes: str) -> str:
    """The queue's URL; retried while the broker is (re)starting."""
    client = sqs_client(broker.aws_endpoint)
    deadline = time.monotonic() + 30
    while True:
        try:
            return client.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
        except GONE:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def drain(client: Any, url: str, timeout: float = 60) -> list[dict[str, Any]]:
    """Every message left in the queue, received and deleted in batches of
    ten (a FIFO group stays blocked until its batch is deleted), in receive
    order; done after two empty one-second long polls."""
    messages: list[dict[str, Any]] = []
    empty = 0
    deadline = time.monotonic() + timeout
    while empty < 2:
        if time.monotonic() > deadline:
            raise TimeoutError(f"drained {len(messages)} messages of {url} in {timeout}s")
        got = client.receive_message(
            QueueUrl=url,
            MaxNumberOfMessages=10,
            WaitTimeSeconds=1,
            VisibilityTimeout=60,
            MessageSystemAttributeNames=["All"],
        ).get("Messages", [])
        if not got:
            empty += 1
            continue
        empty = 0
        messages += got
        client.delete_message_batch(
            QueueUrl=url,
            Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(got)
            ],
        )
    return messages

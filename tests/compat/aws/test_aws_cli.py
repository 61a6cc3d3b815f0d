"""The AWS CLI (``aws sqs ...``, a test extra) against the broker: its own
botocore, argument parsing and JSON output, run as a user would."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.compat.aws.conftest import REGION


def _find_aws() -> str | None:
    """The ``aws`` of this interpreter's environment (the test extras), else on PATH."""
    beside = Path(sys.executable).with_name("aws")
    return str(beside) if beside.exists() else shutil.which("aws")


AWS = _find_aws()
pytestmark = pytest.mark.skipif(AWS is None, reason="awscli is in the test extras")


@pytest.fixture
def aws(endpoint: str, tmp_path: Path):
    """Run ``aws <args> --output json`` against the broker with dummy
    credentials and no config of the user's; returns a function giving
    (exit code, parsed stdout or None, stderr)."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("AWS_")
    }  # no profile, endpoint or keys from the machine
    env.update(
        AWS_ACCESS_KEY_ID="AKIDEXAMPLE",
        AWS_SECRET_ACCESS_KEY="secret",
        AWS_DEFAULT_REGION=REGION,
        AWS_CONFIG_FILE=str(tmp_path / "config"),
        AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "credentials"),
        AWS_MAX_ATTEMPTS="1",
    )

    def run(*args: str) -> tuple[int, Any, str]:
        assert AWS is not None
        done = subprocess.run(
            [AWS, "--endpoint-url", endpoint, "--output", "json", *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
            check=False,
        )
        out = json.loads(done.stdout) if done.stdout.strip() else None
        return done.returncode, out, done.stderr

    return run


def ok(result: tuple[int, Any, str]) -> Any:
    code, out, err = result
    assert code == 0, err
    return out


def test_queue_and_message_lifecycle(aws, name: str, endpoint: str) -> None:
    created = ok(
        aws("sqs", "create-queue", "--queue-name", name, "--attributes", "VisibilityTimeout=40")
    )
    url = created["QueueUrl"]
    assert url == f"{endpoint}/000000000000/{name}"
    assert ok(aws("sqs", "list-queues", "--queue-name-prefix", name)) == {"QueueUrls": [url]}

    sent = ok(
        aws(
            "sqs",
            "send-message",
            "--queue-url",
            url,
            "--message-body",
            "héllo from the cli",
            "--message-attributes",
            json.dumps(
                {
                    "kind": {"DataType": "String", "StringValue": "greeting"},
                    "n": {"DataType": "Number", "StringValue": "3"},
                }
            ),
        )
    )
    assert sent["MD5OfMessageBody"] == hashlib.md5("héllo from the cli".encode()).hexdigest()
    assert len(sent["MD5OfMessageAttributes"]) == 32
    attrs = ok(aws("sqs", "get-queue-attributes", "--queue-url", url, "--attribute-names", "All"))
    assert attrs["Attributes"]["ApproximateNumberOfMessages"] == "1"
    assert attrs["Attributes"]["VisibilityTimeout"] == "40"
    assert attrs["Attributes"]["QueueArn"] == f"arn:aws:sqs:{REGION}:000000000000:{name}"

    got = ok(
        aws(
            "sqs",
            "receive-message",
            "--queue-url",
            url,
            "--wait-time-seconds",
            "5",
            "--message-attribute-names",
            "All",
            "--attribute-names",
            "ApproximateReceiveCount",
        )
    )
    (message,) = got["Messages"]
    assert message["MessageId"] == sent["MessageId"]
    assert message["Body"] == "héllo from the cli"
    assert message["MD5OfBody"] == sent["MD5OfMessageBody"]
    assert message["MD5OfMessageAttributes"] == sent["MD5OfMessageAttributes"]
    assert message["Attributes"] == {"ApproximateReceiveCount": "1"}
    assert message["MessageAttributes"] == {
        "kind": {"DataType": "String", "StringValue": "greeting"},
        "n": {"DataType": "Number", "StringValue": "3"},
    }
    counts = ok(
        aws(
            "sqs",
            "get-queue-attributes",
            "--queue-url",
            url,
            "--attribute-names",
            "ApproximateNumberOfMessages",
            "ApproximateNumberOfMessagesNotVisible",
        )
    )["Attributes"]
    assert counts == {
        "ApproximateNumberOfMessages": "0",
        "ApproximateNumberOfMessagesNotVisible": "1",
    }

    deleted = aws(
        "sqs", "delete-message", "--queue-url", url, "--receipt-handle", message["ReceiptHandle"]
    )
    assert ok(deleted) is None  # prints nothing
    after = ok(aws("sqs", "get-queue-attributes", "--queue-url", url, "--attribute-names", "All"))
    assert after["Attributes"]["ApproximateNumberOfMessagesNotVisible"] == "0"
    assert ok(aws("sqs", "receive-message", "--queue-url", url)) is None  # nothing left


def test_errors_are_the_cli_s_errors(aws, name: str, endpoint: str) -> None:
    code, out, err = aws("sqs", "get-queue-url", "--queue-name", name)
    assert code != 0 and out is None
    assert "AWS.SimpleQueueService.NonExistentQueue" in err
    assert "The specified queue does not exist" in err
    url = ok(aws("sqs", "create-queue", "--queue-name", name))["QueueUrl"]
    code, _, err = aws("sqs", "delete-message", "--queue-url", url, "--receipt-handle", "nope")
    assert code != 0 and "ReceiptHandleIsInvalid" in err

"""SNS topics and SQS queues as the admin API and `dovecote topics/queues list`
show them, against a broker process with the AWS and HTTP listeners."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request

import pytest

from dovecote.testing import BrokerProcess
from tests.compat.aws.conftest import client


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    data = tmp_path_factory.mktemp("aws-admin") / "data"
    with BrokerProcess(data, listeners={"kafka": "off", "amqp": "off"}) as proc:
        yield proc


def cli(broker, *args: str) -> str:
    env = dict(os.environ, DOVECOTE_ADMIN_URL=f"http://{broker.addresses['http']}", COLUMNS="250")
    result = subprocess.run(
        [sys.executable, "-m", "dovecote", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_sns_topics_with_subscriptions_and_sqs_queues(broker):
    sqs = client("sqs", broker.aws_endpoint)
    sns = client("sns", broker.aws_endpoint)
    dlq = sqs.create_queue(QueueName="admin-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    url = sqs.create_queue(
        QueueName="admin-orders",
        Attributes={
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 1})
        },
    )["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    topic = sns.create_topic(Name="admin-events")["TopicArn"]
    sns.subscribe(
        TopicArn=topic,
        Protocol="sqs",
        Endpoint=arn,
        Attributes={"FilterPolicy": json.dumps({"kind": ["new"]})},
    )
    for kind in ("new", "new", "old"):
        sns.publish(
            TopicArn=topic,
            Message="m",
            MessageAttributes={"kind": {"DataType": "String", "StringValue": kind}},
        )
    sqs.receive_message(QueueUrl=url, VisibilityTimeout=300)
    sqs.send_message(QueueUrl=url, MessageBody="later", DelaySeconds=300)

    with urllib.request.urlopen(f"http://{broker.addresses['http']}/v1/sns/topics") as reply:
        topics = {t["name"]: t for t in json.load(reply)}
    listed = topics["admin-events"]
    assert listed["arn"] == topic and listed["subscriptions_confirmed"] == 1
    (sub,) = listed["subscriptions"]
    assert sub["protocol"] == "sqs" and sub["queue"] == "admin-orders"
    assert json.loads(sub["filter_policy"]) == {"kind": ["new"]}
    assert sub["messages_unacked"] == 1

    with urllib.request.urlopen(f"http://{broker.addresses['http']}/v1/queues") as reply:
        queues = {q["name"]: q for q in json.load(reply)}
    orders = queues["admin-orders"]
    assert orders["declared_by"] == "sqs"
    assert orders["messages_unacked"] == 1
    assert orders["dead_letter_depth"] == 0

    out = cli(broker, "topics", "list")
    assert "admin-events" in out and "kind" in out
    out = cli(broker, "queues", "list")
    assert "admin-orders" in out and "sqs" in out

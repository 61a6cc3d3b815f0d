"""While a resource alarm holds (here: the disk "fills" because the free-disk
limit is set above what the disk has), SendMessage and SNS Publish are
refused with a throttling error that SDKs retry; receiving goes on, so
consumers can drain the broker."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from dovecote.testing import BrokerThread
from tests.compat.aws.conftest import ONLY_AWS, client


def test_sends_are_throttled_while_the_disk_alarm_holds(tmp_path):
    with BrokerThread(tmp_path / "data", **ONLY_AWS) as broker:
        sqs = client("sqs", broker.aws_endpoint)
        sns = client("sns", broker.aws_endpoint)
        url = sqs.create_queue(QueueName="alarmed")["QueueUrl"]
        topic = sns.create_topic(Name="alarmed")["TopicArn"]
        sqs.send_message(QueueUrl=url, MessageBody="before")
        resources = broker.broker.core.resources
        resources.disk_free_limit = 1 << 62
        broker.call(_check(resources))
        with pytest.raises(ClientError) as info:
            sqs.send_message(QueueUrl=url, MessageBody="during")
        assert info.value.response["Error"]["Code"] == "RequestThrottled"
        with pytest.raises(ClientError) as info:
            sns.publish(TopicArn=topic, Message="during")
        assert info.value.response["Error"]["Code"] == "Throttled"
        got = sqs.receive_message(QueueUrl=url)["Messages"]
        assert [m["Body"] for m in got] == ["before"]
        resources.disk_free_limit = 0
        broker.call(_check(resources))
        sqs.send_message(QueueUrl=url, MessageBody="after")


async def _check(resources) -> None:
    resources.check()

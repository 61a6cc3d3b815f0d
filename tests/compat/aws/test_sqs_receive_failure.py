"""A ReceiveMessage that fails while building its answer hands nothing out."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from dovecote.aws.sqs_messages import SqsMessages


def test_failed_receive_gives_its_messages_back(sqs, name, monkeypatch):
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    sqs.send_message_batch(
        QueueUrl=url, Entries=[{"Id": str(i), "MessageBody": f"m{i}"} for i in range(3)]
    )
    real = SqsMessages._message
    failing = {"left": 1}

    def once(self, *args, **kwargs):
        if failing["left"]:
            failing["left"] -= 1
            raise RuntimeError("injected")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(SqsMessages, "_message", once)
    with pytest.raises(ClientError) as info:
        sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)
    assert info.value.response["Error"]["Code"] == "InternalFailure"
    # At once, not after the 30 s visibility timeout; the failed attempt counted.
    got = sqs.receive_message(
        QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["ApproximateReceiveCount"]
    )["Messages"]
    assert sorted(m["Body"] for m in got) == ["m0", "m1", "m2"]
    assert {m["Attributes"]["ApproximateReceiveCount"] for m in got} == {"2"}

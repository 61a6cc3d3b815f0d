"""SQS through boto3 (awsJson1_0) against a running broker: queues, messages, errors."""

from __future__ import annotations

import hashlib
import json
import threading
import time
import urllib.request
from urllib.parse import urlencode

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from dovecote.aws.digests import md5_of_message_attributes
from tests.compat.aws.conftest import client


def error_code(info: pytest.ExceptionInfo) -> str:
    return info.value.response["Error"]["Code"]


# --- queues ------------------------------------------------------------------------


def test_create_get_list_delete(sqs, name, endpoint):
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    assert url == f"{endpoint}/000000000000/{name}"
    assert sqs.create_queue(QueueName=name)["QueueUrl"] == url  # idempotent
    assert sqs.get_queue_url(QueueName=name)["QueueUrl"] == url
    assert url in sqs.list_queues(QueueNamePrefix=name)["QueueUrls"]
    sqs.delete_queue(QueueUrl=url)
    with pytest.raises(ClientError) as info:
        sqs.get_queue_url(QueueName=name)
    assert error_code(info) == "AWS.SimpleQueueService.NonExistentQueue"
    assert type(info.value).__name__ == "QueueDoesNotExist"


def test_create_with_other_attributes_is_refused(sqs, name):
    sqs.create_queue(QueueName=name, Attributes={"VisibilityTimeout": "10"})
    sqs.create_queue(QueueName=name, Attributes={"VisibilityTimeout": "10"})
    with pytest.raises(ClientError) as info:
        sqs.create_queue(QueueName=name, Attributes={"VisibilityTimeout": "11"})
    assert error_code(info) == "QueueAlreadyExists"


def test_list_queues_pagination(sqs, name):
    urls = [sqs.create_queue(QueueName=f"{name}-{i}")["QueueUrl"] for i in range(5)]
    first = sqs.list_queues(QueueNamePrefix=name, MaxResults=2)
    assert first["QueueUrls"] == urls[:2]
    second = sqs.list_queues(QueueNamePrefix=name, MaxResults=2, NextToken=first["NextToken"])
    assert second["QueueUrls"] == urls[2:4]
    third = sqs.list_queues(QueueNamePrefix=name, MaxResults=2, NextToken=second["NextToken"])
    assert third["QueueUrls"] == urls[4:]
    assert "NextToken" not in third


def test_queue_attributes(sqs, name):
    url = sqs.create_queue(QueueName=name, Attributes={"DelaySeconds": "2"})["QueueUrl"]
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert attrs["DelaySeconds"] == "2"
    assert attrs["VisibilityTimeout"] == "30"
    assert attrs["QueueArn"] == f"arn:aws:sqs:us-east-1:000000000000:{name}"
    assert attrs["ApproximateNumberOfMessages"] == "0"
    assert int(attrs["CreatedTimestamp"]) > 1_600_000_000
    sqs.set_queue_attributes(QueueUrl=url, Attributes={"VisibilityTimeout": "45"})
    got = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["VisibilityTimeout"])
    assert got["Attributes"] == {"VisibilityTimeout": "45"}
    with pytest.raises(ClientError) as info:
        sqs.set_queue_attributes(QueueUrl=url, Attributes={"VisibilityTimeout": "99999"})
    assert error_code(info) == "InvalidAttributeValue"
    with pytest.raises(ClientError) as info:
        sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["Nope"])
    assert error_code(info) == "InvalidAttributeName"


def test_tags(sqs, name):
    url = sqs.create_queue(QueueName=name, tags={"team": "a"})["QueueUrl"]
    sqs.tag_queue(QueueUrl=url, Tags={"env": "test"})
    assert sqs.list_queue_tags(QueueUrl=url)["Tags"] == {"team": "a", "env": "test"}
    sqs.untag_queue(QueueUrl=url, TagKeys=["team"])
    assert sqs.list_queue_tags(QueueUrl=url)["Tags"] == {"env": "test"}


def test_permissions_are_stored_in_the_policy(sqs, name):
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    sqs.add_permission(
        QueueUrl=url, Label="p1", AWSAccountIds=["111122223333"], Actions=["SendMessage"]
    )
    policy = json.loads(
        sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["Policy"])["Attributes"]["Policy"]
    )
    assert [s["Sid"] for s in policy["Statement"]] == ["p1"]
    with pytest.raises(ClientError):
        sqs.add_permission(
            QueueUrl=url, Label="p1", AWSAccountIds=["111122223333"], Actions=["SendMessage"]
        )
    sqs.remove_permission(QueueUrl=url, Label="p1")
    got = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["Policy"])
    assert "Policy" not in got.get("Attributes", {})


# --- messages ------------------------------------------------------------------------


def test_send_receive_delete(sqs, name):
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    attributes = {
        "colour": {"DataType": "String", "StringValue": "blue"},
        "size": {"DataType": "Number", "StringValue": "42"},
        "blob": {"DataType": "Binary", "BinaryValue": b"\x00\x01"},
        "label": {"DataType": "Number.float", "StringValue": "1.5"},
    }
    sent = sqs.send_message(QueueUrl=url, MessageBody="hello", MessageAttributes=attributes)
    assert sent["MD5OfMessageBody"] == hashlib.md5(b"hello").hexdigest()
    assert sent["MD5OfMessageAttributes"] == md5_of_message_attributes(attributes)
    got = sqs.receive_message(
        QueueUrl=url,
        MaxNumberOfMessages=10,
        MessageAttributeNames=["All"],
        MessageSystemAttributeNames=["All"],
    )["Messages"]
    assert len(got) == 1
    message = got[0]
    assert message["Body"] == "hello"
    assert message["MessageId"] == sent["MessageId"]
    assert message["MessageAttributes"] == attributes
    assert message["MD5OfMessageAttributes"] == sent["MD5OfMessageAttributes"]
    assert message["Attributes"]["ApproximateReceiveCount"] == "1"
    assert int(message["Attributes"]["SentTimestamp"]) > 1_600_000_000_000
    sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    assert "Messages" not in sqs.receive_message(QueueUrl=url, WaitTimeSeconds=0)


def test_no_attributes_digest_without_attributes(sqs, name):
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    sent = sqs.send_message(QueueUrl=url, MessageBody="plain")
    assert "MD5OfMessageAttributes" not in sent
    message = sqs.receive_message(QueueUrl=url, MessageAttributeNames=["All"])["Messages"][0]
    assert "MD5OfMessageAttributes" not in message
    assert "MessageAttributes" not in message


def test_batches_and_per_entry_failures(sqs, name):
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    result = sqs.send_message_batch(
        QueueUrl=url,
        Entries=[
            {"Id": "a", "MessageBody": "one"},
            {"Id": "b", "MessageBody": "two", "DelaySeconds": 901},
            {"Id": "c", "MessageBody": "three"},
        ],
    )
    assert sorted(e["Id"] for e in result["Successful"]) == ["a", "c"]
    assert [e["Id"] for e in result["Failed"]] == ["b"]
    assert result["Failed"][0]["SenderFault"] is True
    got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    assert sorted(m["Body"] for m in got) == ["one", "three"]
    deleted = sqs.delete_message_batch(
        QueueUrl=url,
        Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(got)]
        + [{"Id": "bad", "ReceiptHandle": "not-a-handle"}],
    )
    assert len(deleted["Successful"]) == 2
    assert deleted["Failed"][0]["Code"] == "ReceiptHandleIsInvalid"


@pytest.mark.parametrize(
    ("entries", "code"),
    [
        ([], "AWS.SimpleQueueService.EmptyBatchRequest"),
        (
            [{"Id": str(i), "MessageBody": "x"} for i in range(11)],
            "AWS.SimpleQueueService.TooManyEntriesInBatchRequest",
        ),
        (
            [{"Id": "a", "MessageBody": "x"}, {"Id": "a", "MessageBody": "y"}],
            "AWS.SimpleQueueService.BatchEntryIdsNotDistinct",
        ),
        ([{"Id": "bad id!", "MessageBody": "x"}], "AWS.SimpleQueueService.InvalidBatchEntryId"),
    ],
)
def test_batch_errors(sqs, name, entries, code):
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    with pytest.raises(ClientError) as info:
        sqs.send_message_batch(QueueUrl=url, Entries=entries)
    assert error_code(info) == code


def test_batch_too_long(sqs, name):
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    body = "x" * 200_000
    with pytest.raises(ClientError) as info:
        sqs.send_message_batch(
            QueueUrl=url, Entries=[{"Id": str(i), "MessageBody": body} for i in range(6)]
        )
    assert error_code(info) == "AWS.SimpleQueueService.BatchRequestTooLong"


def test_receive_limits(sqs, name):
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    with pytest.raises(ClientError) as info:
        sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=11)
    assert error_code(info) == "InvalidParameterValue"
    with pytest.raises(ClientError) as info:
        sqs.receive_message(QueueUrl=url, WaitTimeSeconds=21)
    assert error_code(info) == "InvalidParameterValue"


def test_invalid_receipt_handle(sqs, name):
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    with pytest.raises(ClientError) as info:
        sqs.delete_message(QueueUrl=url, ReceiptHandle="garbage")
    assert error_code(info) == "ReceiptHandleIsInvalid"


def test_visibility_timeout_and_redelivery(sqs, name):
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="again")
    first = sqs.receive_message(QueueUrl=url, VisibilityTimeout=1)["Messages"][0]
    assert "Messages" not in sqs.receive_message(QueueUrl=url)
    second = sqs.receive_message(
        QueueUrl=url, WaitTimeSeconds=5, MessageSystemAttributeNames=["ApproximateReceiveCount"]
    )["Messages"][0]
    assert second["MessageId"] == first["MessageId"]
    assert second["ReceiptHandle"] != first["ReceiptHandle"]
    assert second["Attributes"]["ApproximateReceiveCount"] == "2"
    # the stale handle deletes nothing and is not an error
    sqs.delete_message(QueueUrl=url, ReceiptHandle=first["ReceiptHandle"])
    with pytest.raises(ClientError):
        sqs.change_message_visibility(
            QueueUrl=url, ReceiptHandle=first["ReceiptHandle"], VisibilityTimeout=10
        )
    sqs.delete_message(QueueUrl=url, ReceiptHandle=second["ReceiptHandle"])


def test_change_visibility_to_zero_wakes_a_long_poll(sqs, name, endpoint):
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="back")
    held = sqs.receive_message(QueueUrl=url, VisibilityTimeout=300)["Messages"][0]
    got: list[float] = []

    def poll() -> None:
        other = client("sqs", endpoint)
        reply = other.receive_message(QueueUrl=url, WaitTimeSeconds=10)
        if "Messages" in reply:
            got.append(time.monotonic())

    thread = threading.Thread(target=poll)
    thread.start()
    time.sleep(0.3)  # let the poll start waiting (not a timing assertion)
    changed = time.monotonic()
    sqs.change_message_visibility(
        QueueUrl=url, ReceiptHandle=held["ReceiptHandle"], VisibilityTimeout=0
    )
    thread.join(15)
    assert got and got[0] - changed < 2.0


def test_long_poll_wakes_on_send(sqs, name, endpoint):
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    got: list[dict] = []

    def poll() -> None:
        got.append(client("sqs", endpoint).receive_message(QueueUrl=url, WaitTimeSeconds=20))

    thread = threading.Thread(target=poll)
    thread.start()
    time.sleep(0.3)
    started = time.monotonic()
    sqs.send_message(QueueUrl=url, MessageBody="wake")
    thread.join(25)
    assert got[0]["Messages"][0]["Body"] == "wake"
    assert time.monotonic() - started < 2.0


def test_delay_queue_and_per_message_delay(sqs, name):
    url = sqs.create_queue(QueueName=name, Attributes={"DelaySeconds": "1"})["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="delayed")
    sqs.send_message(QueueUrl=url, MessageBody="now", DelaySeconds=0)
    first = sqs.receive_message(QueueUrl=url)["Messages"]
    assert [m["Body"] for m in first] == ["now"]
    later = sqs.receive_message(QueueUrl=url, WaitTimeSeconds=5)["Messages"]
    assert [m["Body"] for m in later] == ["delayed"]


def test_purge(sqs, name):
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    sqs.send_message_batch(
        QueueUrl=url, Entries=[{"Id": str(i), "MessageBody": str(i)} for i in range(5)]
    )
    sqs.purge_queue(QueueUrl=url)
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])
    assert attrs["Attributes"]["ApproximateNumberOfMessages"] == "0"


def test_counts(sqs, name):
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    sqs.send_message_batch(
        QueueUrl=url, Entries=[{"Id": str(i), "MessageBody": str(i)} for i in range(3)]
    )
    sqs.send_message(QueueUrl=url, MessageBody="later", DelaySeconds=60)
    sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=1)
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert attrs["ApproximateNumberOfMessages"] == "2"
    assert attrs["ApproximateNumberOfMessagesNotVisible"] == "1"
    assert attrs["ApproximateNumberOfMessagesDelayed"] == "1"


# --- FIFO ------------------------------------------------------------------------------


def test_fifo_order_dedup_and_group_blocking(sqs, name):
    url = sqs.create_queue(
        QueueName=f"{name}.fifo",
        Attributes={"FifoQueue": "true", "ContentBasedDeduplication": "true"},
    )["QueueUrl"]
    sent = [
        sqs.send_message(QueueUrl=url, MessageBody=f"a{i}", MessageGroupId="A") for i in range(3)
    ]
    sqs.send_message(QueueUrl=url, MessageBody="b0", MessageGroupId="B")
    repeat = sqs.send_message(QueueUrl=url, MessageBody="a0", MessageGroupId="A")
    assert repeat["MessageId"] == sent[0]["MessageId"]  # deduplicated
    numbers = [int(s["SequenceNumber"]) for s in sent]
    assert numbers == sorted(numbers)
    got = sqs.receive_message(
        QueueUrl=url, MaxNumberOfMessages=10, MessageSystemAttributeNames=["All"]
    )["Messages"]
    assert [m["Body"] for m in got] == ["a0", "a1", "a2", "b0"]
    assert got[0]["Attributes"]["MessageGroupId"] == "A"
    assert got[0]["Attributes"]["SequenceNumber"] == sent[0]["SequenceNumber"]
    # group A is blocked while its messages are in flight
    sqs.send_message(QueueUrl=url, MessageBody="a3", MessageGroupId="A")
    assert "Messages" not in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)
    for message in got:
        sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    after = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    assert [m["Body"] for m in after] == ["a3"]


def test_fifo_needs_group_and_dedup(sqs, name):
    url = sqs.create_queue(QueueName=f"{name}.fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]
    with pytest.raises(ClientError) as info:
        sqs.send_message(QueueUrl=url, MessageBody="x", MessageDeduplicationId="d")
    assert error_code(info) == "MissingParameter"
    with pytest.raises(ClientError) as info:
        sqs.send_message(QueueUrl=url, MessageBody="x", MessageGroupId="g")
    assert error_code(info) == "InvalidParameterValue"
    sent = sqs.send_message(
        QueueUrl=url, MessageBody="x", MessageGroupId="g", MessageDeduplicationId="d"
    )
    again = sqs.send_message(
        QueueUrl=url, MessageBody="y", MessageGroupId="g", MessageDeduplicationId="d"
    )
    assert again["MessageId"] == sent["MessageId"]
    got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    assert [m["Body"] for m in got] == ["x"]


# --- dead letters and moves ----------------------------------------------------------


def test_redrive_to_dead_letter_queue_and_move_back(sqs, name):
    dlq = sqs.create_queue(QueueName=f"{name}-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    url = sqs.create_queue(
        QueueName=name,
        Attributes={
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 2})
        },
    )["QueueUrl"]
    source_arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    assert sqs.list_dead_letter_source_queues(QueueUrl=dlq)["queueUrls"] == [url]
    sent = sqs.send_message(QueueUrl=url, MessageBody="poison")
    for _ in range(2):
        got = sqs.receive_message(QueueUrl=url, VisibilityTimeout=0)["Messages"]
        assert got[0]["MessageId"] == sent["MessageId"]
    assert "Messages" not in sqs.receive_message(QueueUrl=url, WaitTimeSeconds=1)
    dead = sqs.receive_message(
        QueueUrl=dlq, WaitTimeSeconds=5, VisibilityTimeout=0, MessageSystemAttributeNames=["All"]
    )["Messages"][0]
    assert dead["MessageId"] == sent["MessageId"]
    assert dead["Attributes"]["DeadLetterQueueSourceArn"] == source_arn
    handle = sqs.start_message_move_task(SourceArn=dlq_arn)["TaskHandle"]
    assert handle
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        tasks = sqs.list_message_move_tasks(SourceArn=dlq_arn)["Results"]
        if tasks and tasks[0]["Status"] == "COMPLETED":
            break
        time.sleep(0.05)
    assert tasks[0]["Status"] == "COMPLETED"
    assert tasks[0]["ApproximateNumberOfMessagesMoved"] == 1
    back = sqs.receive_message(QueueUrl=url, WaitTimeSeconds=5)["Messages"][0]
    assert back["MessageId"] == sent["MessageId"]


def test_move_task_needs_a_dead_letter_queue(sqs, name):
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    with pytest.raises(ClientError):
        sqs.start_message_move_task(SourceArn=arn)


# --- identity --------------------------------------------------------------------------


def test_sts_get_caller_identity(endpoint):
    identity = client("sts", endpoint).get_caller_identity()
    assert identity["Account"] == "000000000000"


def test_query_protocol_client(endpoint, name):
    """An old-style query client: a signed form POST to the queue URL, XML back."""

    def call(url: str, form: dict[str, str]) -> str:
        body = urlencode({**form, "Version": "2012-11-05"})
        request = AWSRequest(
            "POST", url, data=body, headers={"Content-Type": "application/x-www-form-urlencoded"}
        )
        SigV4Auth(Credentials("AKID", "secret"), "sqs", "us-east-1").add_auth(request)
        prepared = urllib.request.Request(
            url, data=body.encode(), headers=dict(request.headers), method="POST"
        )
        with urllib.request.urlopen(prepared) as reply:
            return reply.read().decode()

    created = call(endpoint + "/", {"Action": "CreateQueue", "QueueName": name})
    assert "<QueueUrl>" in created
    queue_url = created.split("<QueueUrl>")[1].split("</QueueUrl>")[0]
    sent = call(queue_url, {"Action": "SendMessage", "MessageBody": "via form"})
    assert "<MD5OfMessageBody>" in sent
    received = call(queue_url, {"Action": "ReceiveMessage", "MaxNumberOfMessages": "1"})
    assert "<Body>via form</Body>" in received


def test_fifo_receive_retried_with_the_same_attempt_id_gets_the_same_messages(sqs, name):
    url = sqs.create_queue(
        QueueName=f"{name}.fifo",
        Attributes={"FifoQueue": "true", "ContentBasedDeduplication": "true"},
    )["QueueUrl"]
    for i in range(3):
        sqs.send_message(QueueUrl=url, MessageBody=f"m{i}", MessageGroupId="g")
    first = sqs.receive_message(
        QueueUrl=url, MaxNumberOfMessages=2, ReceiveRequestAttemptId="try-1"
    )["Messages"]
    again = sqs.receive_message(
        QueueUrl=url, MaxNumberOfMessages=2, ReceiveRequestAttemptId="try-1"
    )["Messages"]
    assert [m["ReceiptHandle"] for m in again] == [m["ReceiptHandle"] for m in first]
    assert [m["Body"] for m in first] == ["m0", "m1"]

"""SNS through boto3 against a running broker: topics, subscriptions, publishes
to SQS queues, HTTP endpoints and AMQP queues bound to the topic's exchange."""

from __future__ import annotations

import base64
import calendar
import hashlib
import json
import queue
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import pika
import pytest
from botocore.exceptions import ClientError
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from dovecote.testing import BrokerThread
from tests.compat.aws.conftest import client
from tests.compat.aws.sns_sink import HttpSink

ONLY_AWS_AMQP = {"kafka": "off", "http": "off", "pubsub": "off", "registry": "off"}
FAST_RETRIES = {"minDelayTarget": 1, "maxDelayTarget": 1, "numRetries": 3}


def error_of(info: pytest.ExceptionInfo) -> tuple[str, str]:
    error = info.value.response["Error"]
    return error["Code"], error["Message"]


def queue_arn(sqs: Any, url: str) -> str:
    return sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]


def new_queue(sqs: Any, name: str, **attributes: str) -> tuple[str, str]:
    url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
    return url, queue_arn(sqs, url)


def receive(sqs: Any, url: str, count: int, *, wait_s: float = 5) -> list[dict[str, Any]]:
    """Long-poll until ``count`` messages came (or ``wait_s`` passed), deleting them."""
    got: list[dict[str, Any]] = []
    deadline = time.monotonic() + wait_s
    while len(got) < count and time.monotonic() < deadline:
        answer = sqs.receive_message(
            QueueUrl=url,
            MaxNumberOfMessages=min(10, count - len(got)),
            WaitTimeSeconds=1,
            MessageAttributeNames=["All"],
            AttributeNames=["All"],
        )
        for message in answer.get("Messages", []):
            got.append(message)
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return got


def nothing_in(sqs: Any, url: str) -> bool:
    answer = sqs.receive_message(QueueUrl=url, WaitTimeSeconds=1)
    return not answer.get("Messages")


def verify_signature(envelope: dict[str, Any]) -> None:
    """Check the envelope as a subscriber's validator does: the signed fields, in
    AWS's documented order, against the certificate at SigningCertURL."""
    with urllib.request.urlopen(envelope["SigningCertURL"]) as answer:
        cert = x509.load_pem_x509_certificate(answer.read())
    if envelope["Type"] == "Notification":
        keys = ["Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"]
        keys = [k for k in keys if k != "Subject" or "Subject" in envelope]
    else:
        keys = ["Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"]
    text = "".join(f"{k}\n{envelope[k]}\n" for k in keys).encode()
    algorithm = hashes.SHA1() if envelope["SignatureVersion"] == "1" else hashes.SHA256()
    public_key = cert.public_key()
    public_key.verify(  # type: ignore[union-attr,call-arg]
        base64.b64decode(envelope["Signature"]), text, padding.PKCS1v15(), algorithm
    )


# --- topics ----------------------------------------------------------------------------


def test_topic_create_is_idempotent_and_listed(sns, name):
    arn = sns.create_topic(Name=name)["TopicArn"]
    assert arn == f"arn:aws:sns:us-east-1:000000000000:{name}"
    assert sns.create_topic(Name=name)["TopicArn"] == arn
    listed = [t["TopicArn"] for t in sns.get_paginator("list_topics").paginate().search("Topics")]
    assert arn in listed
    sns.delete_topic(TopicArn=arn)
    sns.delete_topic(TopicArn=arn)  # deleting a missing topic is fine
    with pytest.raises(ClientError) as info:
        sns.get_topic_attributes(TopicArn=arn)
    assert error_of(info) == ("NotFound", "Topic does not exist")
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404


def test_list_topics_pages_by_100(sns, name):
    arns = {sns.create_topic(Name=f"{name}-{i:03d}")["TopicArn"] for i in range(105)}
    first = sns.list_topics()
    assert len(first["Topics"]) == 100
    assert "NextToken" in first
    seen = {t["TopicArn"] for t in first["Topics"]}
    token = first["NextToken"]
    while token:
        page = sns.list_topics(NextToken=token)
        seen |= {t["TopicArn"] for t in page["Topics"]}
        token = page.get("NextToken")
    assert arns <= seen


def test_topic_attributes(sns, name):
    arn = sns.create_topic(Name=name, Attributes={"DisplayName": "first"})["TopicArn"]
    attrs = sns.get_topic_attributes(TopicArn=arn)["Attributes"]
    assert attrs["TopicArn"] == arn
    assert attrs["Owner"] == "000000000000"
    assert attrs["DisplayName"] == "first"
    assert attrs["SubscriptionsConfirmed"] == "0"
    assert attrs["SubscriptionsPending"] == "0"
    assert attrs["SubscriptionsDeleted"] == "0"
    assert json.loads(attrs["Policy"])["Statement"][0]["Resource"] == arn
    effective = json.loads(attrs["EffectiveDeliveryPolicy"])["http"]["defaultHealthyRetryPolicy"]
    assert effective["numRetries"] == 3 and effective["minDelayTarget"] == 20
    assert "FifoTopic" not in attrs
    sns.set_topic_attributes(TopicArn=arn, AttributeName="DisplayName", AttributeValue="second")
    sns.set_topic_attributes(TopicArn=arn, AttributeName="SignatureVersion", AttributeValue="2")
    attrs = sns.get_topic_attributes(TopicArn=arn)["Attributes"]
    assert attrs["DisplayName"] == "second"
    assert attrs["SignatureVersion"] == "2"
    with pytest.raises(ClientError) as info:
        sns.set_topic_attributes(TopicArn=arn, AttributeName="SignatureVersion", AttributeValue="3")
    assert error_of(info) == ("InvalidParameter", "Invalid parameter: SignatureVersion")
    with pytest.raises(ClientError) as info:
        sns.set_topic_attributes(TopicArn=arn, AttributeName="Bogus", AttributeValue="x")
    assert error_of(info) == ("InvalidParameter", "Invalid parameter: AttributeName")
    with pytest.raises(ClientError) as info:
        sns.create_topic(Name=name, Attributes={"DisplayName": "other"})
    assert error_of(info)[0] == "InvalidParameter"


def test_topic_name_rules(sns, name):
    for bad in ("has space", "x" * 257, f"{name}.fifo"):
        with pytest.raises(ClientError) as info:
            sns.create_topic(Name=bad)
        assert error_of(info) == ("InvalidParameter", "Invalid parameter: Topic Name")
    with pytest.raises(ClientError) as info:
        sns.create_topic(Name=name, Attributes={"FifoTopic": "true"})
    assert error_of(info)[1].startswith("Invalid parameter: Fifo Topic names must end with .fifo")
    arn = sns.create_topic(
        Name=f"{name}.fifo", Attributes={"FifoTopic": "true", "ContentBasedDeduplication": "true"}
    )["TopicArn"]
    attrs = sns.get_topic_attributes(TopicArn=arn)["Attributes"]
    assert attrs["FifoTopic"] == "true"
    assert attrs["ContentBasedDeduplication"] == "true"


def test_tags(sns, name):
    arn = sns.create_topic(Name=name, Tags=[{"Key": "team", "Value": "a"}])["TopicArn"]
    sns.tag_resource(ResourceArn=arn, Tags=[{"Key": "env", "Value": "dev"}])
    tags = {t["Key"]: t["Value"] for t in sns.list_tags_for_resource(ResourceArn=arn)["Tags"]}
    assert tags == {"team": "a", "env": "dev"}
    sns.untag_resource(ResourceArn=arn, TagKeys=["team"])
    assert sns.list_tags_for_resource(ResourceArn=arn)["Tags"] == [{"Key": "env", "Value": "dev"}]
    with pytest.raises(ClientError) as info:
        sns.tag_resource(ResourceArn=arn, Tags=[{"Key": f"k{i}", "Value": "v"} for i in range(50)])
    assert error_of(info)[0] == "TagLimitExceeded"
    with pytest.raises(ClientError) as info:
        sns.list_tags_for_resource(ResourceArn=arn + "-missing")
    assert error_of(info) == ("ResourceNotFound", "Resource does not exist")


def test_permissions_and_data_protection_policy(sns, name):
    arn = sns.create_topic(Name=name)["TopicArn"]
    sns.add_permission(
        TopicArn=arn, Label="pub", AWSAccountId=["111122223333"], ActionName=["Publish"]
    )
    policy = json.loads(sns.get_topic_attributes(TopicArn=arn)["Attributes"]["Policy"])
    [added] = [s for s in policy["Statement"] if s["Sid"] == "pub"]
    assert added["Principal"] == {"AWS": "arn:aws:iam::111122223333:root"}
    assert added["Action"] == "SNS:Publish" and added["Resource"] == arn
    with pytest.raises(ClientError) as info:
        sns.add_permission(TopicArn=arn, Label="pub", AWSAccountId=["1"], ActionName=["Publish"])
    assert error_of(info) == ("InvalidParameter", "Invalid parameter: Statement already exists")
    sns.remove_permission(TopicArn=arn, Label="pub")
    policy = json.loads(sns.get_topic_attributes(TopicArn=arn)["Attributes"]["Policy"])
    assert [s["Sid"] for s in policy["Statement"]] == ["__default_statement_ID"]
    assert sns.get_data_protection_policy(ResourceArn=arn)["DataProtectionPolicy"] == ""
    text = json.dumps({"Name": "p", "Version": "2021-06-01", "Statement": []})
    sns.put_data_protection_policy(ResourceArn=arn, DataProtectionPolicy=text)
    assert sns.get_data_protection_policy(ResourceArn=arn)["DataProtectionPolicy"] == text


# --- subscriptions ---------------------------------------------------------------------


def test_subscribe_sqs_is_idempotent_and_listed(sns, sqs, name):
    arn = sns.create_topic(Name=name)["TopicArn"]
    _, qarn = new_queue(sqs, name)
    sub = sns.subscribe(TopicArn=arn, Protocol="sqs", Endpoint=qarn)["SubscriptionArn"]
    assert sub.startswith(arn + ":")
    assert sns.subscribe(TopicArn=arn, Protocol="sqs", Endpoint=qarn)["SubscriptionArn"] == sub
    listed = sns.list_subscriptions_by_topic(TopicArn=arn)["Subscriptions"]
    assert listed == [
        {
            "SubscriptionArn": sub,
            "Owner": "000000000000",
            "Protocol": "sqs",
            "Endpoint": qarn,
            "TopicArn": arn,
        }
    ]
    assert sub in [s["SubscriptionArn"] for s in sns.list_subscriptions()["Subscriptions"]]
    attrs = sns.get_subscription_attributes(SubscriptionArn=sub)["Attributes"]
    assert attrs["PendingConfirmation"] == "false"
    assert attrs["RawMessageDelivery"] == "false"
    assert attrs["Protocol"] == "sqs" and attrs["Endpoint"] == qarn and attrs["TopicArn"] == arn
    assert sns.get_topic_attributes(TopicArn=arn)["Attributes"]["SubscriptionsConfirmed"] == "1"
    sns.unsubscribe(SubscriptionArn=sub)
    assert sns.list_subscriptions_by_topic(TopicArn=arn)["Subscriptions"] == []
    with pytest.raises(ClientError) as info:
        sns.get_subscription_attributes(SubscriptionArn=sub)
    assert error_of(info) == ("NotFound", "Subscription does not exist")


def test_subscribe_errors(sns, sqs, name):
    arn = sns.create_topic(Name=name)["TopicArn"]
    cases = [
        ("carrier-pigeon", "x", "Amazon SNS does not support this protocol string: carrier-pigeon"),
        ("sqs", "not-an-arn", "SQS endpoint ARN"),
        ("http", "https://example.com", "Endpoint must match the specified protocol"),
    ]
    for protocol, endpoint, why in cases:
        with pytest.raises(ClientError) as info:
            sns.subscribe(TopicArn=arn, Protocol=protocol, Endpoint=endpoint)
        assert error_of(info) == ("InvalidParameter", f"Invalid parameter: {why}")
    _, qarn = new_queue(sqs, name)
    with pytest.raises(ClientError) as info:
        sns.subscribe(
            TopicArn=arn,
            Protocol="sqs",
            Endpoint=qarn,
            Attributes={"FilterPolicy": '{"a": "not-a-list"}'},
        )
    assert error_of(info)[1].startswith("Invalid parameter: Attributes Reason: FilterPolicy: ")
    with pytest.raises(ClientError) as info:
        sns.subscribe(TopicArn=arn + "-missing", Protocol="sqs", Endpoint=qarn)
    assert error_of(info) == ("NotFound", "Topic does not exist")


def test_stored_only_protocols(sns, name):
    arn = sns.create_topic(Name=name)["TopicArn"]
    email = sns.subscribe(TopicArn=arn, Protocol="email", Endpoint="a@example.com")
    assert email["SubscriptionArn"] == "pending confirmation"
    lam = sns.subscribe(
        TopicArn=arn, Protocol="lambda", Endpoint="arn:aws:lambda:us-east-1:000000000000:function:f"
    )
    assert lam["SubscriptionArn"].startswith(arn)
    listed = {
        s["Protocol"]: s["SubscriptionArn"]
        for s in sns.list_subscriptions_by_topic(TopicArn=arn)["Subscriptions"]
    }
    assert listed == {"email": "PendingConfirmation", "lambda": lam["SubscriptionArn"]}
    sns.publish(TopicArn=arn, Message="delivered to nobody")
    attrs = sns.get_topic_attributes(TopicArn=arn)["Attributes"]
    assert (attrs["SubscriptionsConfirmed"], attrs["SubscriptionsPending"]) == ("1", "1")


# --- SNS -> SQS ------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["1", "2"])
def test_envelope_to_sqs(sns, sqs, name, endpoint, version):
    arn = sns.create_topic(Name=name, Attributes={"SignatureVersion": version})["TopicArn"]
    url, qarn = new_queue(sqs, name)
    sub = sns.subscribe(TopicArn=arn, Protocol="sqs", Endpoint=qarn)["SubscriptionArn"]
    before = time.time()
    published = sns.publish(
        TopicArn=arn,
        Message="hello world",
        Subject="greeting",
        MessageAttributes={
            "color": {"DataType": "String", "StringValue": "blue"},
            "size": {"DataType": "Number", "StringValue": "42"},
            "blob": {"DataType": "Binary", "BinaryValue": b"\x00\x01"},
        },
    )
    [message] = receive(sqs, url, 1)
    assert message["MessageId"] == published["MessageId"]
    assert "MessageAttributes" not in message  # attributes travel inside the envelope
    envelope = json.loads(message["Body"])
    assert list(envelope) == [
        "Type",
        "MessageId",
        "TopicArn",
        "Subject",
        "Message",
        "Timestamp",
        "SignatureVersion",
        "Signature",
        "SigningCertURL",
        "UnsubscribeURL",
        "MessageAttributes",
    ]
    assert envelope["Type"] == "Notification"
    assert envelope["MessageId"] == published["MessageId"]
    assert envelope["TopicArn"] == arn
    assert envelope["Subject"] == "greeting"
    assert envelope["Message"] == "hello world"
    stamp = calendar.timegm(time.strptime(envelope["Timestamp"][:19], "%Y-%m-%dT%H:%M:%S"))
    assert envelope["Timestamp"].endswith("Z") and len(envelope["Timestamp"]) == 24
    assert abs(stamp - before) < 5
    assert envelope["SignatureVersion"] == version
    assert envelope["SigningCertURL"] == f"{endpoint}/dovecote/sns/signing-cert.pem"
    assert envelope["UnsubscribeURL"].startswith(f"{endpoint}/?Action=Unsubscribe&SubscriptionArn=")
    assert envelope["MessageAttributes"] == {
        "color": {"Type": "String", "Value": "blue"},
        "size": {"Type": "Number", "Value": "42"},
        "blob": {"Type": "Binary", "Value": base64.b64encode(b"\x00\x01").decode()},
    }
    verify_signature(envelope)
    # The UnsubscribeURL works with a plain GET.
    with urllib.request.urlopen(envelope["UnsubscribeURL"]) as answer:
        assert answer.status == 200
    assert sns.list_subscriptions_by_topic(TopicArn=arn)["Subscriptions"] == []
    assert sub not in [s["SubscriptionArn"] for s in sns.list_subscriptions()["Subscriptions"]]


def test_raw_delivery_to_sqs(sns, sqs, name):
    arn = sns.create_topic(Name=name)["TopicArn"]
    url, qarn = new_queue(sqs, name)
    sub = sns.subscribe(
        TopicArn=arn, Protocol="sqs", Endpoint=qarn, Attributes={"RawMessageDelivery": "true"}
    )["SubscriptionArn"]
    assert (
        sns.get_subscription_attributes(SubscriptionArn=sub)["Attributes"]["RawMessageDelivery"]
        == "true"
    )
    published = sns.publish(
        TopicArn=arn,
        Message="raw body",
        MessageAttributes={
            "color": {"DataType": "String", "StringValue": "blue"},
            "size": {"DataType": "Number", "StringValue": "42"},
        },
    )
    [message] = receive(sqs, url, 1)
    assert message["Body"] == "raw body"
    assert message["MessageId"] == published["MessageId"]
    assert message["MD5OfBody"] == hashlib.md5(b"raw body").hexdigest()
    assert message["MessageAttributes"] == {
        "color": {"DataType": "String", "StringValue": "blue"},
        "size": {"DataType": "Number", "StringValue": "42"},
    }


def test_queue_delay_applies_to_sns_deliveries(sns, sqs, name):
    arn = sns.create_topic(Name=name)["TopicArn"]
    url, qarn = new_queue(sqs, name, DelaySeconds="2")
    sns.subscribe(
        TopicArn=arn, Protocol="sqs", Endpoint=qarn, Attributes={"RawMessageDelivery": "true"}
    )
    started = time.monotonic()
    sns.publish(TopicArn=arn, Message="later")
    assert nothing_in(sqs, url)  # a one-second long poll: still delayed
    assert [m["Body"] for m in receive(sqs, url, 1)] == ["later"]
    assert time.monotonic() - started >= 1.9


def test_message_structure_json(sns, sqs, name):
    arn = sns.create_topic(Name=name)["TopicArn"]
    raw_url, raw_arn = new_queue(sqs, name + "-raw")
    env_url, env_arn = new_queue(sqs, name + "-env")
    sns.subscribe(
        TopicArn=arn, Protocol="sqs", Endpoint=raw_arn, Attributes={"RawMessageDelivery": "true"}
    )
    sns.subscribe(TopicArn=arn, Protocol="sqs", Endpoint=env_arn)
    message = json.dumps({"default": "for everyone", "sqs": "for queues"})
    sns.publish(TopicArn=arn, Message=message, MessageStructure="json")
    assert receive(sqs, raw_url, 1)[0]["Body"] == "for queues"
    assert json.loads(receive(sqs, env_url, 1)[0]["Body"])["Message"] == "for queues"
    for bad, why in (
        ("not json", "JSON message body failed to parse"),
        ('{"sqs": "x"}', "No default entry in JSON message body"),
    ):
        with pytest.raises(ClientError) as info:
            sns.publish(TopicArn=arn, Message=bad, MessageStructure="json")
        assert error_of(info) == (
            "InvalidParameter",
            f"Invalid parameter: Message Structure - {why}",
        )


def test_filter_policies_decide_which_queue_receives(sns, sqs, name):
    arn = sns.create_topic(Name=name)["TopicArn"]
    blue_url, blue_arn = new_queue(sqs, name + "-blue")
    big_url, big_arn = new_queue(sqs, name + "-big")
    body_url, body_arn = new_queue(sqs, name + "-body")
    raw = {"RawMessageDelivery": "true"}
    sns.subscribe(
        TopicArn=arn,
        Protocol="sqs",
        Endpoint=blue_arn,
        Attributes={**raw, "FilterPolicy": json.dumps({"color": ["blue"]})},
    )
    big = sns.subscribe(
        TopicArn=arn,
        Protocol="sqs",
        Endpoint=big_arn,
        Attributes={**raw, "FilterPolicy": json.dumps({"size": [{"numeric": [">", 10]}]})},
    )["SubscriptionArn"]
    sns.subscribe(
        TopicArn=arn,
        Protocol="sqs",
        Endpoint=body_arn,
        Attributes={
            **raw,
            "FilterPolicy": json.dumps({"order": {"kind": ["book"]}}),
            "FilterPolicyScope": "MessageBody",
        },
    )

    def publish(body: str, **attrs: tuple[str, str]) -> None:
        sns.publish(
            TopicArn=arn,
            Message=body,
            MessageAttributes={k: {"DataType": t, "StringValue": v} for k, (t, v) in attrs.items()},
        )

    publish("blue small", color=("String", "blue"), size=("Number", "3"))
    publish("red big", color=("String", "red"), size=("Number", "30"))
    publish(json.dumps({"order": {"kind": "book"}}), color=("String", "green"))
    publish(json.dumps({"order": {"kind": "pen"}}))
    assert [m["Body"] for m in receive(sqs, blue_url, 1)] == ["blue small"]
    assert [m["Body"] for m in receive(sqs, big_url, 1)] == ["red big"]
    assert [json.loads(m["Body"]) for m in receive(sqs, body_url, 1)] == [
        {"order": {"kind": "book"}}
    ]
    for url in (blue_url, big_url, body_url):
        assert nothing_in(sqs, url)
    # A new policy takes effect at once; removing it lets everything through.
    sns.set_subscription_attributes(
        SubscriptionArn=big, AttributeName="FilterPolicy", AttributeValue='{"size": [3]}'
    )
    attrs = sns.get_subscription_attributes(SubscriptionArn=big)["Attributes"]
    assert attrs["FilterPolicy"] == '{"size": [3]}'
    assert attrs["FilterPolicyScope"] == "MessageAttributes"
    publish("three", size=("Number", "3"))
    publish("thirty", size=("Number", "30"))
    assert [m["Body"] for m in receive(sqs, big_url, 1)] == ["three"]
    sns.set_subscription_attributes(
        SubscriptionArn=big, AttributeName="FilterPolicy", AttributeValue=""
    )
    publish("anything")
    assert [m["Body"] for m in receive(sqs, big_url, 1)] == ["anything"]
    with pytest.raises(ClientError) as info:
        sns.set_subscription_attributes(
            SubscriptionArn=big, AttributeName="FilterPolicy", AttributeValue="[1]"
        )
    assert error_of(info)[1].startswith("Invalid parameter: FilterPolicy: ")


def test_fifo_topic_to_fifo_queue_keeps_group_order_and_dedups(sns, sqs, name):
    arn = sns.create_topic(Name=f"{name}.fifo", Attributes={"FifoTopic": "true"})["TopicArn"]
    url, qarn = new_queue(sqs, f"{name}.fifo", FifoQueue="true")
    sns.subscribe(
        TopicArn=arn, Protocol="sqs", Endpoint=qarn, Attributes={"RawMessageDelivery": "true"}
    )
    sequences = []
    for i in range(5):
        for group in ("a", "b"):
            answer = sns.publish(
                TopicArn=arn,
                Message=f"{group}{i}",
                MessageGroupId=group,
                MessageDeduplicationId=f"{group}-{i}",
            )
            sequences.append(int(answer["SequenceNumber"]))
    assert sequences == sorted(sequences) and len(set(sequences)) == len(sequences)
    sns.publish(TopicArn=arn, Message="a0 again", MessageGroupId="a", MessageDeduplicationId="a-0")
    batch = sns.publish_batch(
        TopicArn=arn,
        PublishBatchRequestEntries=[
            {"Id": "x", "Message": "a5", "MessageGroupId": "a", "MessageDeduplicationId": "a-5"},
            {"Id": "y", "Message": "b5", "MessageGroupId": "b", "MessageDeduplicationId": "b-5"},
        ],
    )
    assert [s["Id"] for s in batch["Successful"]] == ["x", "y"]
    assert all("SequenceNumber" in s for s in batch["Successful"])
    messages = receive(sqs, url, 12, wait_s=5)
    bodies = [m["Body"] for m in messages]
    assert sorted(bodies) == sorted([f"{g}{i}" for g in "ab" for i in range(6)])  # no repeat
    for group in "ab":
        mine = [m for m in messages if m["Attributes"]["MessageGroupId"] == group]
        assert [m["Body"] for m in mine] == [f"{group}{i}" for i in range(6)]
    assert nothing_in(sqs, url)


def test_fifo_dedup_follows_the_queues_scope(sns, sqs, name):
    arn = sns.create_topic(Name=f"{name}.fifo", Attributes={"FifoTopic": "true"})["TopicArn"]
    per_queue_url, per_queue_arn = new_queue(sqs, f"{name}-q.fifo", FifoQueue="true")
    per_group_url, per_group_arn = new_queue(
        sqs,
        f"{name}-g.fifo",
        FifoQueue="true",
        DeduplicationScope="messageGroup",
        FifoThroughputLimit="perMessageGroupId",
    )
    for qarn in (per_queue_arn, per_group_arn):
        sns.subscribe(
            TopicArn=arn, Protocol="sqs", Endpoint=qarn, Attributes={"RawMessageDelivery": "true"}
        )
    for group in ("a", "b"):
        sns.publish(
            TopicArn=arn, Message=group, MessageGroupId=group, MessageDeduplicationId="same"
        )
    assert [m["Body"] for m in receive(sqs, per_queue_url, 2, wait_s=2)] == ["a"]
    assert sorted(m["Body"] for m in receive(sqs, per_group_url, 2)) == ["a", "b"]


def test_fifo_envelope_carries_the_sequence_number_unsigned(sns, sqs, name):
    arn = sns.create_topic(
        Name=f"{name}.fifo", Attributes={"FifoTopic": "true", "ContentBasedDeduplication": "true"}
    )["TopicArn"]
    url, qarn = new_queue(sqs, f"{name}.fifo", FifoQueue="true")
    sns.subscribe(TopicArn=arn, Protocol="sqs", Endpoint=qarn)
    published = sns.publish(TopicArn=arn, Message="ordered", MessageGroupId="g")
    [message] = receive(sqs, url, 1)
    assert message["Attributes"]["MessageGroupId"] == "g"
    envelope = json.loads(message["Body"])
    assert list(envelope) == [
        "Type",
        "MessageId",
        "SequenceNumber",
        "TopicArn",
        "Message",
        "Timestamp",
        "UnsubscribeURL",
    ]
    assert envelope["SequenceNumber"] == published["SequenceNumber"]
    assert envelope["MessageId"] == published["MessageId"] == message["MessageId"]


def test_fifo_publish_errors(sns, name):
    arn = sns.create_topic(Name=f"{name}.fifo", Attributes={"FifoTopic": "true"})["TopicArn"]
    with pytest.raises(ClientError) as info:
        sns.publish(TopicArn=arn, Message="x")
    assert error_of(info) == (
        "InvalidParameter",
        "Invalid parameter: The MessageGroupId parameter is required for FIFO topics",
    )
    with pytest.raises(ClientError) as info:
        sns.publish(TopicArn=arn, Message="x", MessageGroupId="g")
    assert error_of(info) == (
        "InvalidParameter",
        "Invalid parameter: The topic should either have ContentBasedDeduplication enabled or "
        "MessageDeduplicationId provided explicitly",
    )
    sns.set_topic_attributes(
        TopicArn=arn, AttributeName="ContentBasedDeduplication", AttributeValue="true"
    )
    assert sns.publish(TopicArn=arn, Message="x", MessageGroupId="g")["SequenceNumber"]


def test_publish_errors(sns, name):
    arn = sns.create_topic(Name=name)["TopicArn"]
    cases: list[tuple[dict[str, Any], str, str]] = [
        ({"Message": ""}, "InvalidParameter", "Invalid parameter: Empty message"),
        (
            {"Message": "x" * (256 * 1024 + 1)},
            "InvalidParameter",
            "Invalid parameter: Message too long",
        ),
        ({"Message": "x", "Subject": "a\nb"}, "InvalidParameter", "Invalid parameter: Subject"),
        ({"Message": "x", "Subject": "s" * 100}, "InvalidParameter", "Invalid parameter: Subject"),
        (
            {"Message": "x", "MessageDeduplicationId": "d"},
            "InvalidParameter",
            "Invalid parameter: MessageDeduplicationId Reason: The request includes "
            "MessageDeduplicationId parameter that is not valid for this topic type",
        ),
        (
            {
                "Message": "x",
                "MessageAttributes": {"n": {"DataType": "Number", "StringValue": "abc"}},
            },
            "ParameterValueInvalid",
            "Could not cast message attribute 'n' value to number.",
        ),
        (
            {"Message": "x", "MessageAttributes": {"n": {"DataType": "Float", "StringValue": "1"}}},
            "ParameterValueInvalid",
            "The message attribute 'n' has an invalid message attribute type, the set of "
            "supported type prefixes is Binary, Number, and String.",
        ),
    ]
    for params, code, message in cases:
        with pytest.raises(ClientError) as info:
            sns.publish(TopicArn=arn, **params)
        assert error_of(info) == (code, message)
    # Attributes count toward the 256 KiB.
    with pytest.raises(ClientError) as info:
        sns.publish(
            TopicArn=arn,
            Message="x" * (256 * 1024 - 10),
            MessageAttributes={"a": {"DataType": "String", "StringValue": "y" * 10}},
        )
    assert error_of(info) == ("InvalidParameter", "Invalid parameter: Message too long")
    with pytest.raises(ClientError) as info:
        sns.publish(TopicArn=arn + "-missing", Message="x")
    assert error_of(info) == ("NotFound", "Topic does not exist")


def test_publish_batch(sns, sqs, name):
    arn = sns.create_topic(Name=name)["TopicArn"]
    url, qarn = new_queue(sqs, name)
    sns.subscribe(
        TopicArn=arn, Protocol="sqs", Endpoint=qarn, Attributes={"RawMessageDelivery": "true"}
    )
    answer = sns.publish_batch(
        TopicArn=arn,
        PublishBatchRequestEntries=[
            {"Id": "1", "Message": "one"},
            {"Id": "2", "Message": ""},
            {"Id": "3", "Message": "three", "Subject": "s"},
        ],
    )
    assert [s["Id"] for s in answer["Successful"]] == ["1", "3"]
    assert answer["Failed"] == [
        {
            "Id": "2",
            "Code": "InvalidParameter",
            "Message": "Invalid parameter: Empty message",
            "SenderFault": True,
        }
    ]
    assert sorted(m["Body"] for m in receive(sqs, url, 2)) == ["one", "three"]
    cases = [
        ([], "EmptyBatchRequest"),
        ([{"Id": str(i), "Message": "m"} for i in range(11)], "TooManyEntriesInBatchRequest"),
        ([{"Id": "a", "Message": "m"}, {"Id": "a", "Message": "n"}], "BatchEntryIdsNotDistinct"),
        ([{"Id": "bad id!", "Message": "m"}], "InvalidBatchEntryId"),
        (
            [{"Id": str(i), "Message": "x" * 100_000} for i in range(3)],
            "BatchRequestTooLong",
        ),
    ]
    for entries, code in cases:
        with pytest.raises(ClientError) as info:
            sns.publish_batch(TopicArn=arn, PublishBatchRequestEntries=entries)
        assert error_of(info)[0] == code
    with pytest.raises(ClientError) as info:
        sns.publish_batch(
            TopicArn=arn + "-missing", PublishBatchRequestEntries=[{"Id": "1", "Message": "m"}]
        )
    assert error_of(info) == ("NotFound", "Topic does not exist")


def test_deleting_the_topic_removes_its_subscriptions(sns, sqs, name):
    arn = sns.create_topic(Name=name)["TopicArn"]
    url, qarn = new_queue(sqs, name)
    sub = sns.subscribe(TopicArn=arn, Protocol="sqs", Endpoint=qarn)["SubscriptionArn"]
    sns.delete_topic(TopicArn=arn)
    assert sub not in [s["SubscriptionArn"] for s in sns.list_subscriptions()["Subscriptions"]]
    arn = sns.create_topic(Name=name)["TopicArn"]
    sns.publish(TopicArn=arn, Message="no one listens")
    assert nothing_in(sqs, url)


def test_queue_created_after_subscribe_receives(sns, sqs, name, endpoint):
    arn = sns.create_topic(Name=name)["TopicArn"]
    qarn = f"arn:aws:sqs:us-east-1:000000000000:{name}"
    sns.subscribe(
        TopicArn=arn, Protocol="sqs", Endpoint=qarn, Attributes={"RawMessageDelivery": "true"}
    )
    url, _ = new_queue(sqs, name)
    sns.publish(TopicArn=arn, Message="late queue")
    assert [m["Body"] for m in receive(sqs, url, 1)] == ["late queue"]
    sqs.delete_queue(QueueUrl=url)
    url, _ = new_queue(sqs, name)  # the same ARN again: still subscribed
    sns.publish(TopicArn=arn, Message="queue again")
    assert [m["Body"] for m in receive(sqs, url, 1)] == ["queue again"]


# --- SNS -> HTTP -----------------------------------------------------------------------


def subscribe_http(sns: Any, arn: str, sink: HttpSink, **attributes: str) -> str:
    """Subscribe ``sink`` and wait for its confirmation GET to go through."""
    answer = sns.subscribe(TopicArn=arn, Protocol="http", Endpoint=sink.url, Attributes=attributes)
    assert answer["SubscriptionArn"] == "pending confirmation"
    request = sink.next("SubscriptionConfirmation")
    assert request.headers["Content-Type"] == "text/plain; charset=UTF-8"
    assert request.headers["x-amz-sns-topic-arn"] == arn
    envelope = json.loads(request.body)
    assert list(envelope) == [
        "Type",
        "MessageId",
        "Token",
        "TopicArn",
        "Message",
        "SubscribeURL",
        "Timestamp",
        "SignatureVersion",
        "Signature",
        "SigningCertURL",
    ]
    assert envelope["Type"] == "SubscriptionConfirmation"
    assert envelope["TopicArn"] == arn
    assert request.headers["x-amz-sns-message-id"] == envelope["MessageId"]
    verify_signature(envelope)
    confirmed = sink.next("confirmed")
    assert confirmed.status == 200, confirmed.body
    subs = sns.list_subscriptions_by_topic(TopicArn=arn)["Subscriptions"]
    [sub] = [s["SubscriptionArn"] for s in subs if s["Endpoint"] == sink.url]
    assert sub.startswith(arn + ":")
    assert f"<SubscriptionArn>{sub}</SubscriptionArn>" in confirmed.body
    return sub


def test_http_confirmation_and_delivery(sns, name):
    arn = sns.create_topic(Name=name)["TopicArn"]
    with HttpSink() as sink:
        pending = HttpSink(confirm=False)
        with pending:
            sns.subscribe(TopicArn=arn, Protocol="http", Endpoint=pending.url)
            token = json.loads(pending.next("SubscriptionConfirmation").body)["Token"]
            sns.publish(TopicArn=arn, Message="before confirming")
            listed = sns.list_subscriptions_by_topic(TopicArn=arn)["Subscriptions"]
            assert [s["SubscriptionArn"] for s in listed] == ["PendingConfirmation"]
            with pytest.raises(ClientError) as info:
                sns.confirm_subscription(TopicArn=arn, Token="wrong")
            assert error_of(info) == ("InvalidParameter", "Invalid parameter: Token")
            sub_pending = sns.confirm_subscription(TopicArn=arn, Token=token)["SubscriptionArn"]
            assert sub_pending.startswith(arn + ":")
            sns.unsubscribe(SubscriptionArn=sub_pending)
            pending.next("UnsubscribeConfirmation")
            # nothing was delivered before confirmation
            assert [e.kind for e in pending.pending()] == []
        sub = subscribe_http(sns, arn, sink)
        attrs = sns.get_subscription_attributes(SubscriptionArn=sub)["Attributes"]
        assert attrs["PendingConfirmation"] == "false"
        assert json.loads(attrs["EffectiveDeliveryPolicy"])["healthyRetryPolicy"]["numRetries"] == 3
        published = sns.publish(TopicArn=arn, Message="to the web", Subject="hi")
        request = sink.next("Notification")
        assert request.headers["x-amz-sns-message-id"] == published["MessageId"]
        assert request.headers["x-amz-sns-topic-arn"] == arn
        assert request.headers["x-amz-sns-subscription-arn"] == sub
        assert request.headers["Content-Type"] == "text/plain; charset=UTF-8"
        assert "x-amz-sns-rawdelivery" not in request.headers
        envelope = json.loads(request.body)
        assert envelope["Message"] == "to the web" and envelope["Subject"] == "hi"
        assert envelope["MessageId"] == published["MessageId"]
        verify_signature(envelope)
        sns.set_subscription_attributes(
            SubscriptionArn=sub, AttributeName="RawMessageDelivery", AttributeValue="true"
        )
        sns.publish(TopicArn=arn, Message="raw to the web")
        request = sink.next("Notification")
        assert request.body == "raw to the web"
        assert request.headers["x-amz-sns-rawdelivery"] == "true"
        sns.unsubscribe(SubscriptionArn=sub)
        sns.publish(TopicArn=arn, Message="after unsubscribe")
        goodbye = sink.next("UnsubscribeConfirmation")
        assert goodbye.headers["x-amz-sns-subscription-arn"] == sub
        envelope = json.loads(goodbye.body)
        assert envelope["Type"] == "UnsubscribeConfirmation"
        assert envelope["Message"].startswith(f"You have chosen to deactivate subscription {sub}.")
        verify_signature(envelope)
        with pytest.raises(queue.Empty):
            sink.next("Notification", timeout=1)
        # Its SubscribeURL subscribes again (same ARN, same attributes).
        with urllib.request.urlopen(envelope["SubscribeURL"]) as answer:
            assert f"<SubscriptionArn>{sub}</SubscriptionArn>" in answer.read().decode()
        sns.publish(TopicArn=arn, Message="back again")
        assert sink.next("Notification").body == "back again"  # still raw
        sns.unsubscribe(SubscriptionArn=sub)


def test_http_retries_then_succeeds(sns, name):
    arn = sns.create_topic(Name=name)["TopicArn"]
    with HttpSink(fail_first=2) as sink:
        sub = subscribe_http(
            sns, arn, sink, DeliveryPolicy=json.dumps({"healthyRetryPolicy": FAST_RETRIES})
        )
        attrs = sns.get_subscription_attributes(SubscriptionArn=sub)["Attributes"]
        effective = json.loads(attrs["EffectiveDeliveryPolicy"])["healthyRetryPolicy"]
        assert effective["minDelayTarget"] == 1 and effective["numRetries"] == 3
        started = time.monotonic()
        sns.publish(TopicArn=arn, Message="persistent")
        attempts = [sink.next("Notification") for _ in range(3)]
        assert [a.status for a in attempts] == [500, 500, 200]
        assert {a.body for a in attempts} == {attempts[0].body}
        assert json.loads(attempts[0].body)["Message"] == "persistent"
        assert 1.5 <= time.monotonic() - started < 8  # two one-second waits
        with pytest.raises(queue.Empty):
            sink.next("Notification", timeout=1.5)  # acked: not sent again


def test_http_dead_letter_after_retries(sns, sqs, name):
    arn = sns.create_topic(Name=name)["TopicArn"]
    dlq_url, dlq_arn = new_queue(sqs, name + "-dlq")
    with HttpSink(fail_first=100) as sink:
        subscribe_http(
            sns,
            arn,
            sink,
            DeliveryPolicy=json.dumps(
                {"healthyRetryPolicy": {"minDelayTarget": 1, "maxDelayTarget": 1, "numRetries": 1}}
            ),
            RedrivePolicy=json.dumps({"deadLetterTargetArn": dlq_arn}),
        )
        published = sns.publish(TopicArn=arn, Message="undeliverable")
        attempts = [sink.next("Notification") for _ in range(2)]
        assert [a.status for a in attempts] == [500, 500]
        [dead] = receive(sqs, dlq_url, 1)
        assert dead["MessageId"] == published["MessageId"]
        assert json.loads(dead["Body"])["Message"] == "undeliverable"
        with pytest.raises(queue.Empty):
            sink.next("Notification", timeout=1.5)


# --- restart and AMQP ---------------------------------------------------------------


@pytest.fixture
def amqp_broker(tmp_path) -> Iterator[BrokerThread]:
    with BrokerThread(tmp_path / "data", **ONLY_AWS_AMQP) as running:
        yield running


def test_restart_keeps_topics_subscriptions_and_filters(amqp_broker, name):
    sns, sqs = client("sns", amqp_broker.aws_endpoint), client("sqs", amqp_broker.aws_endpoint)
    arn = sns.create_topic(Name=name, Tags=[{"Key": "k", "Value": "v"}])["TopicArn"]
    url, qarn = new_queue(sqs, name)
    keep = '{"keep": ["yes"]}'
    sub = sns.subscribe(
        TopicArn=arn,
        Protocol="sqs",
        Endpoint=qarn,
        Attributes={"RawMessageDelivery": "true", "FilterPolicy": keep},
    )["SubscriptionArn"]
    cert_url = "/dovecote/sns/signing-cert.pem"
    cert = urllib.request.urlopen(amqp_broker.aws_endpoint + cert_url).read()
    with HttpSink() as sink:
        web = subscribe_http(sns, arn, sink, FilterPolicy=keep)
        amqp_broker.restart()
        sns = client("sns", amqp_broker.aws_endpoint)
        sqs = client("sqs", amqp_broker.aws_endpoint)
        url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
        assert arn in [t["TopicArn"] for t in sns.list_topics()["Topics"]]
        assert sns.list_tags_for_resource(ResourceArn=arn)["Tags"] == [{"Key": "k", "Value": "v"}]
        assert (
            sns.get_subscription_attributes(SubscriptionArn=sub)["Attributes"]["FilterPolicy"]
            == keep
        )
        for value in ("no", "yes"):
            sns.publish(
                TopicArn=arn,
                Message=f"keep={value}",
                MessageAttributes={"keep": {"DataType": "String", "StringValue": value}},
            )
        assert [m["Body"] for m in receive(sqs, url, 1)] == ["keep=yes"]
        assert nothing_in(sqs, url)
        request = sink.next("Notification")  # the pusher runs again, with the filter
        assert request.headers["x-amz-sns-subscription-arn"] == web
        envelope = json.loads(request.body)
        assert envelope["Message"] == "keep=yes"
        verify_signature(envelope)
        with pytest.raises(queue.Empty):
            sink.next("Notification", timeout=1)
    again = urllib.request.urlopen(amqp_broker.aws_endpoint + cert_url).read()
    assert again == cert  # the signing key survives restarts


def test_amqp_queue_bound_to_the_topic_exchange(amqp_broker, name):
    sns = client("sns", amqp_broker.aws_endpoint)
    arn = sns.create_topic(Name=name)["TopicArn"]
    connection = pika.BlockingConnection(pika.URLParameters(amqp_broker.amqp_url))
    try:
        channel = connection.channel()
        channel.queue_declare(name)
        channel.queue_bind(name, exchange=name)  # the topic IS the exchange
        published = sns.publish(
            TopicArn=arn,
            Message="to amqp",
            MessageAttributes={
                "color": {"DataType": "String", "StringValue": "blue"},
                "size": {"DataType": "Number", "StringValue": "42"},
            },
        )
        method, properties, body = None, None, None
        deadline = time.monotonic() + 5
        while method is None and time.monotonic() < deadline:
            method, properties, body = channel.basic_get(name, auto_ack=True)
            if method is None:
                connection.process_data_events(time_limit=0.1)
        assert body == b"to amqp"
        assert properties.message_id == published["MessageId"]
        assert properties.headers["color"] == "blue"
        assert str(properties.headers["size"]) == "42"
        # And what AMQP publishes into the exchange reaches SQS subscribers, filtered.
        sqs = client("sqs", amqp_broker.aws_endpoint)
        url, qarn = new_queue(sqs, name + "-q")
        sns.subscribe(
            TopicArn=arn,
            Protocol="sqs",
            Endpoint=qarn,
            Attributes={
                "RawMessageDelivery": "true",
                "FilterPolicy": '{"n": [{"numeric": [">", 5]}]}',
            },
        )
        channel.basic_publish(name, "", b"small", pika.BasicProperties(headers={"n": 1}))
        channel.basic_publish(name, "", b"large", pika.BasicProperties(headers={"n": 9}))
        assert [m["Body"] for m in receive(sqs, url, 1)] == ["large"]
        assert nothing_in(sqs, url)
    finally:
        connection.close()

"""SNS envelopes: AWS's fields and order, signatures a subscriber verifies, MessageStructure."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from hypothesis import given, settings
from hypothesis import strategies as st

import dovecote.amqp.codec.records  # noqa: F401  (reserves amqp., as a running broker has)
from dovecote.aws.errors import AwsError
from dovecote.aws.records import attributes_to_headers
from dovecote.aws.sns_envelope import (
    check_message_structure,
    envelope_attributes,
    iso_timestamp,
    message_for_protocol,
    notification,
    subscription_confirmation,
    to_json,
    unsubscribe_confirmation,
)
from dovecote.aws.sns_signing import generate_signing_key
from dovecote.core import headers as H

KEY = generate_signing_key()
TOPIC = "arn:aws:sns:us-east-1:123456789012:MyTopic"
CERT_URL = "http://localhost:9911/SimpleNotificationService.pem"
UNSUB_URL = "http://localhost:9911/?Action=Unsubscribe&SubscriptionArn=" + TOPIC + ":s1"
TS = 1_796_403_600_123  # 2026-12-04T17:00:00.123Z


def _verifies(envelope: dict[str, Any]) -> bool:
    """A subscriber's check, written from AWS's docs: signed keys in byte order,
    each key and value on its own line, RSA over SHA1 (v1) or SHA256 (v2)."""
    public_key = KEY.certificate.public_key()
    assert isinstance(public_key, rsa.RSAPublicKey)
    if envelope["Type"] == "Notification":
        keys = ["Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"]
    else:
        keys = ["Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"]
    data = "".join(f"{k}\n{envelope[k]}\n" for k in keys if k in envelope).encode()
    algorithm = {"1": hashes.SHA1(), "2": hashes.SHA256()}[envelope["SignatureVersion"]]
    cert = x509.load_pem_x509_certificate(KEY.certificate_pem())
    assert cert.public_key() == public_key
    try:
        public_key.verify(
            base64.b64decode(envelope["Signature"]), data, padding.PKCS1v15(), algorithm
        )
    except InvalidSignature:
        return False
    return True


def _notification(**kw: Any) -> dict[str, Any]:
    args: dict[str, Any] = {
        "message_id": "22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324",
        "topic_arn": TOPIC,
        "message": "Hello world!",
        "timestamp_ms": TS,
        "unsubscribe_url": UNSUB_URL,
        "signing_cert_url": CERT_URL,
        "key": KEY,
    }
    return notification(**{**args, **kw})


def test_timestamp_format() -> None:
    assert iso_timestamp(TS) == "2026-12-04T17:00:00.123Z"
    assert iso_timestamp(0) == "1970-01-01T00:00:00.000Z"
    assert iso_timestamp(1_335_920_046_655) == "2012-05-02T00:54:06.655Z"  # AWS's doc example
    assert iso_timestamp(7) == "1970-01-01T00:00:00.007Z"


def test_notification_fields_in_aws_order() -> None:
    envelope = _notification(subject="Hi")
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
    ]
    assert envelope["Type"] == "Notification"
    assert envelope["Timestamp"] == "2026-12-04T17:00:00.123Z"
    assert envelope["SigningCertURL"] == CERT_URL
    assert envelope["UnsubscribeURL"] == UNSUB_URL


def test_subject_and_attributes_only_when_given() -> None:
    envelope = _notification()
    assert "Subject" not in envelope and "MessageAttributes" not in envelope
    assert "MessageAttributes" not in _notification(attributes={})


def test_attributes_in_envelope_shape() -> None:
    envelope = _notification(
        attributes={
            "s": {"DataType": "String", "StringValue": "v"},
            "n": {"DataType": "Number", "StringValue": "12"},
            "b": {"DataType": "Binary", "BinaryValue": b"\x00\xff"},
            "arr": {"DataType": "String.Array", "StringValue": '["a","b"]'},
        }
    )
    assert list(envelope)[-1] == "MessageAttributes"
    assert envelope["MessageAttributes"] == {
        "s": {"Type": "String", "Value": "v"},
        "n": {"Type": "Number", "Value": "12"},
        "b": {"Type": "Binary", "Value": "AP8="},
        "arr": {"Type": "String.Array", "Value": '["a","b"]'},
    }
    assert _verifies(envelope)


def test_fifo_notification_has_sequence_number_and_no_signature() -> None:
    envelope = _notification(topic_arn=TOPIC + ".fifo", sequence_number="10000000000000003000")
    assert list(envelope) == [
        "Type",
        "MessageId",
        "SequenceNumber",
        "TopicArn",
        "Message",
        "Timestamp",
        "UnsubscribeURL",
    ]


@pytest.mark.parametrize("version", ["1", "2"])
@pytest.mark.parametrize("subject", [None, "Subject line"])
def test_notification_verifies(version: str, subject: str | None) -> None:
    envelope = _notification(subject=subject, signature_version=version)
    assert envelope["SignatureVersion"] == version
    assert _verifies(envelope)
    assert not _verifies({**envelope, "Message": "tampered"})
    # after a JSON round trip too: what a subscriber actually parses
    assert _verifies(json.loads(to_json(envelope)))


@pytest.mark.parametrize("version", ["1", "2"])
def test_subscription_confirmation(version: str) -> None:
    envelope = subscription_confirmation(
        message_id="165545c9-2a5c-472c-8df2-7ff2be2b3b1b",
        topic_arn=TOPIC,
        token="2336412f37fb",
        subscribe_url="http://localhost:9911/?Action=ConfirmSubscription&Token=2336412f37fb",
        timestamp_ms=TS,
        signing_cert_url=CERT_URL,
        key=KEY,
        signature_version=version,
    )
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
    assert envelope["Message"] == (
        f"You have chosen to subscribe to the topic {TOPIC}.\n"
        "To confirm the subscription, visit the SubscribeURL included in this message."
    )
    assert _verifies(envelope)
    assert not _verifies({**envelope, "Token": "other"})


def test_unsubscribe_confirmation() -> None:
    envelope = unsubscribe_confirmation(
        subscription_arn=TOPIC + ":s1",
        message_id="m",
        topic_arn=TOPIC,
        token="t",
        subscribe_url="http://localhost/?Action=ConfirmSubscription",
        timestamp_ms=TS,
        signing_cert_url=CERT_URL,
        key=KEY,
        signature_version="2",
    )
    assert envelope["Type"] == "UnsubscribeConfirmation"
    assert envelope["Message"].startswith(
        f"You have chosen to deactivate subscription {TOPIC}:s1.\n"
    )
    assert _verifies(envelope)
    with pytest.raises(ValueError):
        subscription_confirmation(
            message_id="m",
            topic_arn=TOPIC,
            token="t",
            subscribe_url="u",
            timestamp_ms=TS,
            signing_cert_url=CERT_URL,
            key=KEY,
            type_="UnsubscribeConfirmation",
        )


def test_to_json_layout() -> None:
    envelope = _notification(
        message='héllo "there"\n',
        attributes={"a": {"DataType": "String", "StringValue": "x"}},
    )
    text = to_json(envelope).decode("utf-8")
    lines = text.split("\n")
    assert lines[0] == "{" and lines[-1] == "}"
    assert lines[1] == '  "Type" : "Notification",'
    assert '  "Message" : "héllo \\"there\\"\\n",' in lines
    assert '    "a" : {"Type":"String","Value":"x"}' in lines
    assert json.loads(text) == envelope


def test_envelope_attributes_from_other_protocols() -> None:
    headers = [
        (H.MESSAGE_ID, b"id"),
        ("amqp.properties", b"\x00\x00"),
        ("content-type", b"text/plain"),
        ("n", b"5"),
        ("raw", b"\xff"),
        H.types_header({"n": "int32"}),
    ]
    assert envelope_attributes(headers) == {
        "content-type": {"Type": "String", "Value": "text/plain"},
        "n": {"Type": "Number", "Value": "5"},
        "raw": {"Type": "Binary", "Value": "/w=="},
    }
    sns_attrs = {"l": {"DataType": "String.Array", "StringValue": "[1,2]"}}
    assert envelope_attributes(attributes_to_headers(sns_attrs)) == {
        "l": {"Type": "String.Array", "Value": "[1,2]"}
    }
    assert envelope_attributes([]) == {}


# --- MessageStructure=json ----------------------------------------------------------


def test_message_for_protocol() -> None:
    message = json.dumps({"default": "fallback", "sqs": "for queues", "http": 5})
    assert message_for_protocol(message, "json", "sqs") == "for queues"
    assert message_for_protocol(message, "json", "https") == "fallback"
    assert message_for_protocol(message, "json", "http") == "fallback"  # non-string: ignored
    assert message_for_protocol(message, None, "sqs") == message
    assert message_for_protocol("not json", None, "sqs") == "not json"
    assert message_for_protocol(json.dumps({"default": "d", "sqs": ""}), "json", "sqs") == ""


@pytest.mark.parametrize(
    ("message", "why"),
    [
        ("not json", "JSON message body failed to parse"),
        ("[1, 2]", "JSON message body failed to parse"),
        ('"text"', "JSON message body failed to parse"),
        ("null", "JSON message body failed to parse"),
        ('{"sqs": "x"}', "No default entry in JSON message body"),
        ('{"default": 1}', "No default entry in JSON message body"),
        ("{}", "No default entry in JSON message body"),
    ],
)
def test_check_message_structure_errors(message: str, why: str) -> None:
    with pytest.raises(AwsError) as err:
        check_message_structure(message)
    assert err.value.code == "InvalidParameter"
    assert err.value.message == "Invalid parameter: Message Structure - " + why


def test_check_message_structure_accepts() -> None:
    check_message_structure('{"default": "d", "sqs": {"nested": 1}, "other": "ignored"}')


_text = st.text(st.characters(codec="utf-8"), max_size=100)


@settings(max_examples=30, deadline=None)
@given(
    message=_text,
    subject=st.one_of(st.none(), _text),
    version=st.sampled_from(["1", "2"]),
    ts=st.integers(0, 253_402_300_799_999),
)
def test_any_notification_verifies_after_json(
    message: str, subject: str | None, version: str, ts: int
) -> None:
    envelope = _notification(
        message=message, subject=subject, signature_version=version, timestamp_ms=ts
    )
    parsed = json.loads(to_json(envelope))
    assert parsed == envelope
    assert _verifies(parsed)

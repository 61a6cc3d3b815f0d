"""The push request for one message: Google's wrapped JSON envelope, the
unwrapped body with metadata headers; and the push endpoint checks."""

from __future__ import annotations

import base64
import json

import grpc
import pytest
from google.pubsub_v1 import types

from dovecote.core.subscription_state import Delivery
from dovecote.pubsub.push_config import check_push_config
from dovecote.pubsub.push_envelope import ACK_STATUSES, publish_time, push_request
from dovecote.pubsub.records import attributes_to_headers
from dovecote.pubsub.rpc import PubsubError
from dovecote.storage.batch import Record

SUB = "projects/p/subscriptions/s"
PushConfig = types.PushConfig.pb()
TS = 1_614_366_835_749  # 2021-02-26T19:13:55.749Z, the time in Google's example


def delivery(value: bytes, attributes=None, key: str = "", count: int = 1, partition=0):
    headers = attributes_to_headers(attributes or {}, key)
    record = Record(value, headers=headers, timestamp=TS, offset=42)
    return Delivery(partition, 42, record, count, attempt=7)


def wrapped(d: Delivery, with_attempt: bool = False) -> dict:
    request = push_request(d, SUB, PushConfig(push_endpoint="http://h/p"), with_attempt)
    assert request.headers == {"Content-Type": "application/json"}
    return json.loads(request.body)


def test_publish_time_is_rfc3339_with_milliseconds() -> None:
    assert publish_time(TS) == "2021-02-26T19:13:55.749Z"
    assert publish_time(0) == "1970-01-01T00:00:00.000Z"
    assert publish_time(-5) == "1970-01-01T00:00:00.000Z"


def test_minimal_envelope_has_both_spellings() -> None:
    assert wrapped(delivery(b"Hello there")) == {
        "message": {
            "data": base64.b64encode(b"Hello there").decode(),
            "messageId": "42",
            "message_id": "42",
            "publishTime": "2021-02-26T19:13:55.749Z",
            "publish_time": "2021-02-26T19:13:55.749Z",
        },
        "subscription": SUB,
    }


def test_full_envelope() -> None:
    envelope = wrapped(
        delivery(b"x", {"key": "value"}, key="k", count=5, partition=2), with_attempt=True
    )
    assert envelope["deliveryAttempt"] == 5
    message = envelope["message"]
    assert message["attributes"] == {"key": "value"}
    assert message["orderingKey"] == "k"
    assert message["messageId"] == message["message_id"] == "2-42"


def test_empty_data_is_sent_and_no_attributes_are_left_out() -> None:
    message = wrapped(delivery(b"", {"only": "attr"}))["message"]
    assert message["data"] == ""
    assert "orderingKey" not in message
    message = wrapped(delivery(b"d"))["message"]
    assert "attributes" not in message


def test_reserved_attribute_names_come_back_as_given() -> None:
    message = wrapped(delivery(b"d", {"ordering-key": "a", "pubsub.x": "b"}))["message"]
    assert message["attributes"] == {"ordering-key": "a", "pubsub.x": "b"}


def unwrapped(d: Delivery, write_metadata: bool):
    config = PushConfig(push_endpoint="http://h/p")
    config.no_wrapper.write_metadata = write_metadata
    return push_request(d, SUB, config, True)


def test_unwrapped_sends_the_raw_data_only() -> None:
    request = unwrapped(delivery(b"\x00\xffraw", {"a": "1"}, key="k"), write_metadata=False)
    assert request.body == b"\x00\xffraw"
    assert request.headers == {"Content-Type": "application/octet-stream"}


def test_unwrapped_metadata_headers() -> None:
    request = unwrapped(delivery(b"raw", {"a": "1", "Content-Type": "text/plain"}, key="k"), True)
    assert request.body == b"raw"
    assert request.headers == {
        "a": "1",
        "Content-Type": "text/plain",  # an attribute of that name is the content type
        "x-goog-pubsub-subscription-name": SUB,
        "x-goog-pubsub-message-id": "42",
        "x-goog-pubsub-publish-time": "2021-02-26T19:13:55.749Z",
        "x-goog-pubsub-ordering-key": "k",
    }


def test_attributes_that_cannot_be_headers_are_left_out() -> None:
    attributes = {"good": "v", "bad name": "v", "bad-value": "line\nbreak", "ok-tab": "a\tb"}
    headers = unwrapped(delivery(b"", attributes), True).headers
    assert headers["good"] == "v" and headers["ok-tab"] == "a\tb"
    assert "bad name" not in headers and "bad-value" not in headers


def test_metadata_wins_over_a_namesake_attribute() -> None:
    headers = unwrapped(delivery(b"", {"x-goog-pubsub-message-id": "forged"}), True).headers
    assert headers["x-goog-pubsub-message-id"] == "42"


def test_ack_statuses_are_googles_list() -> None:
    assert {102, 200, 201, 202, 204} == ACK_STATUSES


@pytest.mark.parametrize(
    ("endpoint", "error"),
    [
        ("", None),
        ("http://127.0.0.1:8080/push", None),
        ("https://example.com/push?token=x", None),
        ("foo", "Unsupported push_endpoint"),
        ("ftp://example.com/x", "Unsupported push_endpoint"),
        ("http://", "Invalid push_endpoint"),
        ("https://example.com:99999/x", "Invalid push_endpoint"),
    ],
)
def test_push_endpoint_checks(endpoint: str, error: str | None) -> None:
    config = PushConfig(push_endpoint=endpoint)
    if error is None:
        check_push_config(config)
        return
    with pytest.raises(PubsubError) as caught:
        check_push_config(config)
    assert caught.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert caught.value.message == error

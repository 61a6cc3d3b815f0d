"""The HTTP request a push subscription sends for one message.

Wrapped (the default): a JSON body, ``Content-Type: application/json``::

    {"message": {"data": <base64>, "attributes": {...},
                 "messageId": id, "message_id": id,
                 "publishTime": t, "publish_time": t, "orderingKey": k},
     "subscription": "projects/p/subscriptions/s",
     "deliveryAttempt": n}

Both spellings of the id and the time are sent, as Google's push page shows
and its emulator does; ``data`` always (``""`` for a message of attributes
only, as the emulator sends it); ``attributes`` and ``orderingKey`` only when
the message has them; ``deliveryAttempt`` only on a subscription with a
dead-letter policy (as Pull's ``delivery_attempt``).

Unwrapped (``push_config.no_wrapper``): the body is the raw data. With
``write_metadata`` the attributes become headers under their own names and
the metadata goes in ``x-goog-pubsub-<key>`` headers (the ``NoWrapper``
reference: "writes the Pub/Sub message metadata to x-goog-pubsub-<KEY>:<VAL>
headers ... the Pub/Sub message attributes to <KEY>:<VAL> headers").
An attribute that is not a legal HTTP header (name or value) is left out
rather than failing every attempt of the message.
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from dovecote.core.subscription_state import Delivery
from dovecote.pubsub.records import headers_to_attributes, message_id, ordering_key_of

# "To acknowledge the message, return one of the following status codes".
ACK_STATUSES = frozenset({102, 200, 201, 202, 204})

SUBSCRIPTION_HEADER = "x-goog-pubsub-subscription-name"
MESSAGE_ID_HEADER = "x-goog-pubsub-message-id"
PUBLISH_TIME_HEADER = "x-goog-pubsub-publish-time"
ORDERING_KEY_HEADER = "x-goog-pubsub-ordering-key"

_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")  # RFC 9110 field-name
_BAD_VALUE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


@dataclass(frozen=True, slots=True)
class PushRequest:
    body: bytes
    headers: dict[str, str]


def publish_time(timestamp_ms: int) -> str:
    """RFC 3339 in UTC with milliseconds (``2021-02-26T19:13:55.749Z``)."""
    moment = datetime.fromtimestamp(max(timestamp_ms, 0) / 1000, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def push_request(
    delivery: Delivery, subscription: str, push_config: Any, with_attempt: bool
) -> PushRequest:
    """The body and headers of the POST for ``delivery`` under ``push_config``."""
    record = delivery.record
    mid = message_id(delivery.partition, delivery.offset)
    when = publish_time(record.timestamp)
    attributes = headers_to_attributes(record.headers)
    key = ordering_key_of(record)
    if push_config.HasField("no_wrapper"):
        headers: dict[str, str] = {}
        if push_config.no_wrapper.write_metadata:
            headers.update(_header_safe(attributes))
            headers[SUBSCRIPTION_HEADER] = subscription
            headers[MESSAGE_ID_HEADER] = mid
            headers[PUBLISH_TIME_HEADER] = when
            if key:
                headers[ORDERING_KEY_HEADER] = key
        if not any(name.lower() == "content-type" for name in headers):
            headers["Content-Type"] = "application/octet-stream"
        return PushRequest(record.value or b"", headers)
    message: dict[str, Any] = {"data": base64.b64encode(record.value or b"").decode("ascii")}
    if attributes:
        message["attributes"] = attributes
    message.update(messageId=mid, message_id=mid, publishTime=when, publish_time=when)
    if key:
        message["orderingKey"] = key
    envelope: dict[str, Any] = {"message": message, "subscription": subscription}
    if with_attempt:
        envelope["deliveryAttempt"] = delivery.count
    body = json.dumps(envelope, separators=(",", ":")).encode("utf-8")
    return PushRequest(body, {"Content-Type": "application/json"})


def _header_safe(attributes: dict[str, str]) -> dict[str, str]:
    return {
        name: value
        for name, value in attributes.items()
        if _TOKEN.match(name) and not _BAD_VALUE.search(value)
    }

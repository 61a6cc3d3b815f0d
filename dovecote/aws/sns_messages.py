"""What SNS delivers: the JSON envelopes (Notification, SubscriptionConfirmation),
MessageStructure=json, and the view of a publish that binding filters test.

Pure functions: the publish path and the HTTP pusher build their records from
these, and the unit tests check every field against AWS's documented formats.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import quote

from dovecote.aws.errors import AwsError
from dovecote.aws.sns_signing import SigningKey, sign

API_VERSION = "2010-03-31"
CERT_PATH = "/dovecote/sns/signing-cert.pem"

# The order AWS writes a Notification's fields in.
_NOTIFICATION_ORDER = (
    "Type",
    "MessageId",
    "SequenceNumber",
    "TopicArn",
    "Subject",
    "Message",
    "Timestamp",
    "SignatureVersion",
    "Signature",
    "SigningCertURL",
    "UnsubscribeURL",
    "MessageAttributes",
)


def iso_timestamp(ms: int) -> str:
    """``2026-12-04T18:04:32.123Z``: the envelope's Timestamp form."""
    moment = datetime.fromtimestamp(ms / 1000, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def subscribe_url(base_url: str, topic_arn: str, token: str) -> str:
    """A plain GET on this URL confirms (the listener serves query GETs)."""
    return (
        f"{base_url}/?Action=ConfirmSubscription&TopicArn={quote(topic_arn, safe='')}"
        f"&Token={quote(token, safe='')}&Version={API_VERSION}"
    )


def unsubscribe_url(base_url: str, subscription_arn: str) -> str:
    return (
        f"{base_url}/?Action=Unsubscribe&SubscriptionArn={quote(subscription_arn, safe='')}"
        f"&Version={API_VERSION}"
    )


def envelope_attributes(attributes: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """Publish MessageAttributes as the envelope writes them: {"Type", "Value"},
    binary values in base64."""
    out: dict[str, Any] = {}
    for name, attr in attributes.items():
        data_type = str(attr["DataType"])
        if data_type.startswith("Binary"):
            raw = attr.get("BinaryValue") or b""
            value = base64.b64encode(raw if isinstance(raw, bytes) else str(raw).encode()).decode()
        else:
            value = str(attr.get("StringValue", ""))
        out[name] = {"Type": data_type, "Value": value}
    return out


def notification(
    *,
    message_id: str,
    topic_arn: str,
    message: str,
    timestamp_ms: int,
    subject: str | None,
    attributes: Mapping[str, Mapping[str, Any]],
    sequence_number: str | None,
    signature_version: str,
    key: SigningKey,
    cert_url: str,
    unsubscribe: str,
) -> dict[str, Any]:
    """A signed Notification envelope (fields in AWS's order)."""
    fields: dict[str, Any] = {
        "Type": "Notification",
        "MessageId": message_id,
        "SequenceNumber": sequence_number,
        "TopicArn": topic_arn,
        "Subject": subject,
        "Message": message,
        "Timestamp": iso_timestamp(timestamp_ms),
        "SignatureVersion": signature_version,
    }
    fields["Signature"] = sign(fields, key, signature_version)
    fields["SigningCertURL"] = cert_url
    fields["UnsubscribeURL"] = unsubscribe
    if attributes:
        fields["MessageAttributes"] = envelope_attributes(attributes)
    return {k: fields[k] for k in _NOTIFICATION_ORDER if fields.get(k) is not None}


def subscription_confirmation(
    *,
    message_id: str,
    token: str,
    topic_arn: str,
    subscribe: str,
    timestamp_ms: int,
    signature_version: str,
    key: SigningKey,
    cert_url: str,
) -> dict[str, Any]:
    """The signed SubscriptionConfirmation an http(s) endpoint is sent."""
    fields: dict[str, Any] = {
        "Type": "SubscriptionConfirmation",
        "MessageId": message_id,
        "Token": token,
        "TopicArn": topic_arn,
        "Message": (
            f"You have chosen to subscribe to the topic {topic_arn}.\n"
            "To confirm the subscription, visit the SubscribeURL included in this message."
        ),
        "SubscribeURL": subscribe,
        "Timestamp": iso_timestamp(timestamp_ms),
        "SignatureVersion": signature_version,
    }
    fields["Signature"] = sign(fields, key, signature_version)
    fields["SigningCertURL"] = cert_url
    return fields


def to_json(envelope: Mapping[str, Any]) -> bytes:
    return json.dumps(envelope, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


# --- MessageStructure=json ---------------------------------------------------------


def check_message_structure(message: str) -> dict[str, str]:
    """The per-protocol messages of a MessageStructure=json publish, as SNS checks them."""
    try:
        doc = json.loads(message)
    except ValueError:
        doc = None
    if not isinstance(doc, dict):
        raise AwsError(
            "InvalidParameterException",
            "Invalid parameter: Message Structure - JSON message body failed to parse",
        )
    if "default" not in doc:
        raise AwsError(
            "InvalidParameterException",
            "Invalid parameter: Message Structure - No default entry in JSON message body",
        )
    return {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in doc.items()}


def message_for_protocol(
    message: str, structure: Mapping[str, str] | None, protocol: str | None
) -> str:
    """What a subscriber of ``protocol`` gets (``None``: an AMQP-bound queue: the default)."""
    if structure is None:
        return message
    if protocol is not None and protocol in structure:
        return structure[protocol]
    return structure["default"]


# --- what binding filters see ---------------------------------------------------------


class PublishView(Mapping[str, Any]):
    """The ``headers`` an SNS publish routes with: plain values by name (what any
    other binding, e.g. a headers exchange, reads), plus the typed attributes and
    the body that SNS filter policies test."""

    __slots__ = ("_plain", "attributes", "body")

    def __init__(self, attributes: Mapping[str, Mapping[str, Any]], body: str) -> None:
        self.attributes: dict[str, tuple[str, str | bytes]] = {}
        self._plain: dict[str, Any] = {}
        for name, attr in attributes.items():
            data_type = str(attr["DataType"])
            if data_type.startswith("Binary"):
                value: str | bytes = attr.get("BinaryValue") or b""
            else:
                value = str(attr.get("StringValue", ""))
            self.attributes[name] = (data_type, value)
            self._plain[name] = value
        self.body = body

    def __getitem__(self, name: str) -> Any:
        return self._plain[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._plain)

    def __len__(self) -> int:
        return len(self._plain)


def typed_attributes(headers: Mapping[str, Any] | None) -> dict[str, tuple[str, str | bytes]]:
    """Filter-policy attributes from the headers of any publish: an SNS publish's
    own, or an AMQP header table's plain values (text is String, numbers Number)."""
    if headers is None:
        return {}
    if isinstance(headers, PublishView):
        return headers.attributes
    out: dict[str, tuple[str, str | bytes]] = {}
    for name, value in headers.items():
        if isinstance(value, bool):
            out[name] = ("String", "true" if value else "false")
        elif isinstance(value, int | float | Decimal):
            out[name] = ("Number", str(value))
        elif isinstance(value, str):
            out[name] = ("String", value)
        elif isinstance(value, bytes):
            out[name] = ("Binary", value)
    return out


def is_number(text: str) -> bool:
    try:
        return Decimal(text).is_finite()
    except (InvalidOperation, ValueError):
        return False

"""The JSON document SNS delivers to SQS (without raw delivery) and HTTP(S) endpoints.

Fields, their order and their layout follow what AWS sends (its "HTTP/HTTPS
notification JSON format" pages and deliveries seen from real topics):

* Notification: Type, MessageId, TopicArn, Subject (only when given), Message,
  Timestamp, SignatureVersion, Signature, SigningCertURL, UnsubscribeURL,
  MessageAttributes (only when there are any, ``{"Type", "Value"}`` each,
  Binary values in base64). A FIFO topic's notification carries
  SequenceNumber after MessageId and is not signed (no SignatureVersion,
  Signature or SigningCertURL), as AWS delivers them.
* SubscriptionConfirmation / UnsubscribeConfirmation: Type, MessageId, Token,
  TopicArn, Message, SubscribeURL, Timestamp, SignatureVersion, Signature,
  SigningCertURL.

:func:`to_json` writes AWS's layout: two-space indent, ``"key" : value``,
non-ASCII characters as they are.

With ``MessageStructure=json`` the published message is a JSON object of
one message per protocol; :func:`check_message_structure` validates it at
publish as SNS does and :func:`message_for_protocol` picks a subscriber's.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from dovecote.aws.errors import AwsError
from dovecote.aws.records import headers_to_attributes
from dovecote.aws.sns_signing import SigningKey, sign
from dovecote.core.headers import Header

__all__ = [
    "check_message_structure",
    "envelope_attributes",
    "iso_timestamp",
    "message_for_protocol",
    "notification",
    "subscription_confirmation",
    "to_json",
    "unsubscribe_confirmation",
]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def iso_timestamp(timestamp_ms: int) -> str:
    """``2026-12-04T17:00:00.123Z``: UTC, milliseconds, as SNS writes Timestamp."""
    moment = _EPOCH + timedelta(milliseconds=timestamp_ms)
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + f".{timestamp_ms % 1000:03d}Z"


def _envelope_attribute(attr: Mapping[str, Any]) -> dict[str, str]:
    data_type: str = attr["DataType"]
    if data_type.startswith("Binary"):
        raw = attr.get("BinaryValue") or b""
        value = base64.b64encode(raw.encode() if isinstance(raw, str) else bytes(raw)).decode()
    else:
        value = attr.get("StringValue") or ""
    return {"Type": data_type, "Value": value}


def attributes_for_envelope(
    attributes: Mapping[str, Mapping[str, Any]] | None,
) -> dict[str, dict[str, str]]:
    """botocore-shaped MessageAttributes as the envelope's MessageAttributes."""
    if not attributes:
        return {}
    return {name: _envelope_attribute(attr) for name, attr in attributes.items()}


def envelope_attributes(headers: Sequence[Header]) -> dict[str, dict[str, str]]:
    """A record's application headers as the envelope's MessageAttributes (for
    messages published over other protocols), typed as SQS would show them."""
    return attributes_for_envelope(headers_to_attributes(headers, ("All",)))


def _signed(
    envelope: dict[str, Any], key: SigningKey, signature_version: str, signing_cert_url: str
) -> dict[str, Any]:
    """The signature fields, placed after Timestamp as AWS places them."""
    signature = sign(envelope, key, signature_version)
    out: dict[str, Any] = {}
    for name, value in envelope.items():
        out[name] = value
        if name == "Timestamp":
            out["SignatureVersion"] = signature_version
            out["Signature"] = signature
            out["SigningCertURL"] = signing_cert_url
    return out


def notification(
    *,
    message_id: str,
    topic_arn: str,
    message: str,
    timestamp_ms: int,
    unsubscribe_url: str,
    signing_cert_url: str,
    key: SigningKey,
    subject: str | None = None,
    attributes: Mapping[str, Mapping[str, Any]] | None = None,
    signature_version: str = "1",
    sequence_number: str | None = None,
) -> dict[str, Any]:
    """A Notification envelope. ``attributes`` are botocore-shaped
    MessageAttributes; ``sequence_number`` marks a FIFO topic's (unsigned)."""
    envelope: dict[str, Any] = {"Type": "Notification", "MessageId": message_id}
    if sequence_number is not None:
        envelope["SequenceNumber"] = sequence_number
    envelope["TopicArn"] = topic_arn
    if subject is not None:
        envelope["Subject"] = subject
    envelope["Message"] = message
    envelope["Timestamp"] = iso_timestamp(timestamp_ms)
    envelope["UnsubscribeURL"] = unsubscribe_url
    if attributes:
        envelope["MessageAttributes"] = attributes_for_envelope(attributes)
    if sequence_number is not None:
        return envelope
    return _signed(envelope, key, signature_version, signing_cert_url)


def subscription_confirmation(
    *,
    message_id: str,
    topic_arn: str,
    token: str,
    subscribe_url: str,
    timestamp_ms: int,
    signing_cert_url: str,
    key: SigningKey,
    signature_version: str = "1",
    type_: str = "SubscriptionConfirmation",
    subscription_arn: str | None = None,
) -> dict[str, Any]:
    """A SubscriptionConfirmation (or, with ``type_="UnsubscribeConfirmation"``
    and the ``subscription_arn``, an UnsubscribeConfirmation) envelope."""
    if type_ == "SubscriptionConfirmation":
        text = (
            f"You have chosen to subscribe to the topic {topic_arn}.\n"
            "To confirm the subscription, visit the SubscribeURL included in this message."
        )
    elif type_ == "UnsubscribeConfirmation":
        if subscription_arn is None:
            raise ValueError("an UnsubscribeConfirmation names the subscription_arn")
        text = (
            f"You have chosen to deactivate subscription {subscription_arn}.\n"
            "To cancel this operation and restore the subscription, "
            "visit the SubscribeURL included in this message."
        )
    else:
        raise ValueError(f"not a confirmation Type: {type_!r}")
    envelope = {
        "Type": type_,
        "MessageId": message_id,
        "Token": token,
        "TopicArn": topic_arn,
        "Message": text,
        "SubscribeURL": subscribe_url,
        "Timestamp": iso_timestamp(timestamp_ms),
    }
    return _signed(envelope, key, signature_version, signing_cert_url)


def unsubscribe_confirmation(*, subscription_arn: str, **kwargs: Any) -> dict[str, Any]:
    """An UnsubscribeConfirmation envelope (same fields as a SubscriptionConfirmation)."""
    return subscription_confirmation(
        type_="UnsubscribeConfirmation", subscription_arn=subscription_arn, **kwargs
    )


_value = json.JSONEncoder(ensure_ascii=False)
_compact = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def to_json(envelope: Mapping[str, Any]) -> bytes:
    """The envelope as AWS writes it: ``{\\n  "Type" : "Notification",\\n ...}``,
    each MessageAttributes entry compact on a line of its own."""
    lines: list[str] = []
    for name, value in envelope.items():
        if isinstance(value, Mapping):
            inner = ",\n".join(
                f"    {_value.encode(k)} : {_compact.encode(v)}" for k, v in value.items()
            )
            text = "{\n" + inner + "\n  }" if inner else "{}"
        else:
            text = _value.encode(value)
        lines.append(f"  {_value.encode(name)} : {text}")
    return ("{\n" + ",\n".join(lines) + "\n}").encode("utf-8", "surrogatepass")


# --- MessageStructure=json ----------------------------------------------------------

_NO_DEFAULT = "Invalid parameter: Message Structure - No default entry in JSON message body"
_UNPARSABLE = "Invalid parameter: Message Structure - JSON message body failed to parse"


def _structure(message: str) -> dict[str, Any]:
    try:
        data = json.loads(message)
    except ValueError:
        raise AwsError("InvalidParameter", _UNPARSABLE) from None
    if not isinstance(data, dict):
        raise AwsError("InvalidParameter", _UNPARSABLE)
    return data


def check_message_structure(message: str) -> None:
    """Publish's check of a ``MessageStructure=json`` message: a JSON object
    with a string ``default`` (keys with non-string values are ignored)."""
    if not isinstance(_structure(message).get("default"), str):
        raise AwsError("InvalidParameter", _NO_DEFAULT)


def message_for_protocol(message: str, structure: str | None, protocol: str) -> str:
    """What a subscriber of ``protocol`` ("sqs", "http", "email"...) receives:
    the message itself, or with ``structure == "json"`` its entry for the
    protocol when that is a string, else the ``default`` entry."""
    if structure != "json":
        return message
    data = _structure(message)
    chosen = data.get(protocol)
    if isinstance(chosen, str):
        return chosen
    default = data.get("default")
    if not isinstance(default, str):
        raise AwsError("InvalidParameter", _NO_DEFAULT)
    return default

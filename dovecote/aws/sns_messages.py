"""The SNS pieces around the envelopes (``sns_envelope``): the URLs a delivery
names, and the view of a publish that binding filters test."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import quote

API_VERSION = "2010-03-31"
CERT_PATH = "/dovecote/sns/signing-cert.pem"


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

"""Google's checks of a ``PushConfig`` (CreateSubscription,
UpdateSubscription, ModifyPushConfig).

An empty endpoint is a pull subscription. Otherwise the endpoint must be an
http(s) URL: another scheme is INVALID_ARGUMENT "Unsupported push_endpoint"
and a URL without a host "Invalid push_endpoint" (the texts of Google's
emulator; it accepts ``http://`` and fails later, Dovecote refuses it at once).
Plain http is accepted, as the emulator does: endpoints here are local.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from dovecote.pubsub.rpc import invalid


def check_push_config(config: Any) -> None:
    endpoint = config.push_endpoint
    if not endpoint:
        return
    try:
        parts = urlsplit(endpoint)
        parts.port  # noqa: B018 (raises ValueError on a port out of range)
    except ValueError:
        raise invalid("Invalid push_endpoint") from None
    if parts.scheme.lower() not in ("http", "https"):
        raise invalid("Unsupported push_endpoint")
    if not parts.hostname:
        raise invalid("Invalid push_endpoint")

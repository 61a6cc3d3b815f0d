"""Exactly-once delivery: acks and modacks that name no current lease fail.

Without exactly-once, Google answers OK to a stale ack id (it changes
nothing). With ``enable_exactly_once_delivery`` the request fails with
INVALID_ARGUMENT, "Some acknowledgement ids in the request were invalid...",
and a ``google.rpc.Status`` whose ``ErrorInfo`` (reason
``EXACTLY_ONCE_ACKID_FAILURE``) maps each failed ack id to why:
``PERMANENT_FAILURE_INVALID_ACK_ID`` for one that is malformed, settled, or
whose lease expired (the message may be on its way to someone else). The
ids not named succeeded. The client libraries complete each message's ack
future from that map (``AcknowledgeError`` with ``INVALID_ACK_ID``).

The core's delivery tokens make this exact: a token names one delivery
attempt, so an ack after the lease expired (or after the message went to
another receiver) is stale and settles nothing; a lease that is still valid
is never handed to anyone else.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import grpc
from google.rpc import code_pb2, error_details_pb2, status_pb2

from dovecote.core.tokens import DeliveryToken, InvalidToken
from dovecote.pubsub.rpc import PubsubError

REASON = "EXACTLY_ONCE_ACKID_FAILURE"
DOMAIN = "pubsub.googleapis.com"
INVALID_ACK_ID = "PERMANENT_FAILURE_INVALID_ACK_ID"
MESSAGE = (
    "Some acknowledgement ids in the request were invalid. This could be because the "
    "acknowledgement ids have expired or the acknowledgement ids were malformed."
)


def parse_each(ack_ids: Sequence[str]) -> tuple[dict[DeliveryToken, str], list[str]]:
    """The well-formed ids by token (their text as sent), and the malformed ones:
    with exactly-once a malformed id fails alone, not the whole request."""
    tokens: dict[DeliveryToken, str] = {}
    malformed: list[str] = []
    for ack_id in ack_ids:
        try:
            tokens[DeliveryToken.parse(ack_id)] = ack_id
        except InvalidToken:
            malformed.append(ack_id)
    return tokens, malformed


def ack_failures(failed: Iterable[str]) -> PubsubError | None:
    """The error for these failed ack ids, or None if there are none."""
    metadata = dict.fromkeys(failed, INVALID_ACK_ID)
    if not metadata:
        return None
    info = error_details_pb2.ErrorInfo(reason=REASON, domain=DOMAIN, metadata=metadata)
    status = status_pb2.Status(code=code_pb2.INVALID_ARGUMENT, message=MESSAGE)
    status.details.add().Pack(info)
    return PubsubError(grpc.StatusCode.INVALID_ARGUMENT, MESSAGE, status)

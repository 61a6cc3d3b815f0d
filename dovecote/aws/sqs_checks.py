# TEMPORARY STUB
from __future__ import annotations

from dataclasses import dataclass

from dovecote.aws.errors import AwsError


@dataclass
class ReceiveOptions:
    max_messages: int
    wait_seconds: int | None
    visibility_timeout: int | None
    system_attribute_names: frozenset
    message_attribute_names: tuple
    request_attempt_id: str | None


def check_receive(p):
    n = int(p.get("MaxNumberOfMessages", 1))
    if not 1 <= n <= 10:
        raise AwsError("InvalidParameterValue", "bad max")
    w = p.get("WaitTimeSeconds")
    if w is not None and not 0 <= int(w) <= 20:
        raise AwsError("InvalidParameterValue", "bad wait")
    return ReceiveOptions(
        n,
        None if w is None else int(w),
        None if p.get("VisibilityTimeout") is None else int(p["VisibilityTimeout"]),
        frozenset(
            list(p.get("AttributeNames") or []) + list(p.get("MessageSystemAttributeNames") or [])
        ),
        tuple(p.get("MessageAttributeNames") or []),
        None,
    )


def check_batch_entries(entries, *, max_entries=10):
    if not entries:
        raise AwsError("EmptyBatchRequest", "empty")
    if len(entries) > max_entries:
        raise AwsError("TooManyEntriesInBatchRequest", "too many")
    ids = [e["Id"] for e in entries]
    if len(set(ids)) != len(ids):
        raise AwsError("BatchEntryIdsNotDistinct", "dup")
    import re

    for i in ids:
        if not re.fullmatch(r"[A-Za-z0-9_-]{1,80}", i):
            raise AwsError("InvalidBatchEntryId", "bad id")


def check_message_body(b):
    pass


def check_message_attributes(a, *, system=False):
    return sum(
        len(k) + len(v["DataType"]) + len(v.get("StringValue", "") or v.get("BinaryValue", b""))
        for k, v in (a or {}).items()
    )


def check_send(
    body, size, *, max_size, delay_seconds, fifo, group_id, dedup_id, content_based_dedup
):
    if len(body.encode()) + size > max_size:
        raise AwsError("InvalidParameterValue", "too long")
    if delay_seconds is not None and not 0 <= delay_seconds <= 900:
        raise AwsError("InvalidParameterValue", "bad delay")
    if fifo and group_id is None:
        raise AwsError("MissingParameter", "The request must contain the parameter MessageGroupId.")
    if fifo and dedup_id is None and not content_based_dedup:
        raise AwsError(
            "InvalidParameterValue",
            "The queue should either have ContentBasedDeduplication enabled or MessageDeduplicationId provided explicitly",
        )


def check_batch_size(total, max_size):
    if total > max_size:
        raise AwsError("BatchRequestTooLong", "too long")


def check_visibility_timeout(v):
    if not 0 <= v <= 43200:
        raise AwsError("InvalidParameterValue", "bad vis")

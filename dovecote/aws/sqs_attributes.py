# TEMPORARY STUB
from __future__ import annotations

import json
from dataclasses import dataclass

from dovecote.aws.errors import AwsError
from dovecote.core.queue_settings import QueueSettings

SETTABLE = frozenset(
    [
        "VisibilityTimeout",
        "MessageRetentionPeriod",
        "MaximumMessageSize",
        "DelaySeconds",
        "ReceiveMessageWaitTimeSeconds",
        "Policy",
        "RedrivePolicy",
        "RedriveAllowPolicy",
        "FifoQueue",
        "ContentBasedDeduplication",
        "DeduplicationScope",
        "FifoThroughputLimit",
        "SqsManagedSseEnabled",
        "KmsMasterKeyId",
        "KmsDataKeyReusePeriodSeconds",
    ]
)
READ_ONLY = frozenset(
    [
        "ApproximateNumberOfMessages",
        "ApproximateNumberOfMessagesNotVisible",
        "ApproximateNumberOfMessagesDelayed",
        "CreatedTimestamp",
        "LastModifiedTimestamp",
        "QueueArn",
    ]
)
FIFO_ONLY = frozenset(
    ["FifoQueue", "ContentBasedDeduplication", "DeduplicationScope", "FifoThroughputLimit"]
)


def check_queue_name(n):
    return n.endswith(".fifo")


def defaults(fifo):
    d = {
        "VisibilityTimeout": "30",
        "MessageRetentionPeriod": "345600",
        "MaximumMessageSize": "262144",
        "DelaySeconds": "0",
        "ReceiveMessageWaitTimeSeconds": "0",
        "SqsManagedSseEnabled": "true",
    }
    if fifo:
        d.update(
            FifoQueue="true",
            ContentBasedDeduplication="false",
            DeduplicationScope="queue",
            FifoThroughputLimit="perQueue",
        )
    return d


def normalize(a, *, fifo, creating):
    for k, v in a.items():
        if k not in SETTABLE:
            raise AwsError("InvalidAttributeName", f"Unknown Attribute {k}.")
        if k == "VisibilityTimeout" and not 0 <= int(v) <= 43200:
            raise AwsError("InvalidAttributeValue", "bad")
    return dict(a)


@dataclass(frozen=True)
class RedrivePolicy:
    dead_letter_target_arn: str
    max_receive_count: int


def redrive_policy(a):
    t = a.get("RedrivePolicy")
    if not t:
        return None
    d = json.loads(t)
    return RedrivePolicy(d["deadLetterTargetArn"], int(d["maxReceiveCount"]))


def redrive_allow_policy(a):
    return None


def allows_source(p, arn):
    return True


def to_settings(a, *, fifo, dead_letter_queue):
    r = redrive_policy(a)
    return QueueSettings(
        lease_ms=int(a["VisibilityTimeout"]) * 1000,
        message_ttl_ms=int(a["MessageRetentionPeriod"]) * 1000,
        max_deliveries=r.max_receive_count if r and dead_letter_queue else None,
        dead_letter_queue=dead_letter_queue,
        ordered=fifo,
        dedup_window_ms=300000 if fifo else None,
    )

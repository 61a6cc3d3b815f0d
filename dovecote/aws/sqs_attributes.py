"""SQS queue attributes: AWS's rules for names and values, and their translation
into neutral :class:`QueueSettings`.

Pure functions, so the SQS service only decides when to call them; every error is
the :class:`AwsError` AWS answers with (code and message text).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from dovecote.aws.errors import AwsError
from dovecote.core.queue_settings import QueueSettings

# Limits as of the 2025 API reference (MaximumMessageSize went up to 1 MiB).
MAX_MESSAGE_SIZE = 1_048_576
MIN_MESSAGE_SIZE = 1024
MAX_VISIBILITY_TIMEOUT = 43_200
MAX_DELAY_SECONDS = 900
MAX_WAIT_SECONDS = 20
MAX_RECEIVE_COUNT = 1000
MAX_SOURCE_QUEUE_ARNS = 10
FIFO_DEDUP_WINDOW_MS = 300_000

FIFO_ONLY = frozenset(
    ["FifoQueue", "ContentBasedDeduplication", "DeduplicationScope", "FifoThroughputLimit"]
)
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
        "KmsMasterKeyId",
        "KmsDataKeyReusePeriodSeconds",
        "SqsManagedSseEnabled",
        *FIFO_ONLY,
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

_NAME = re.compile(r"[A-Za-z0-9_-]+")
_NAME_TEXT = "Can only include alphanumeric characters, hyphens, or underscores. 1 to 80 in length"
_ARN = re.compile(r"arn:aws[a-z-]*:sqs:([a-z0-9-]+):([0-9]{12}):([A-Za-z0-9_-]+(?:\.fifo)?)")


def check_queue_name(name: str) -> bool:
    """Whether ``name`` is a FIFO queue name; AWS refuses any name outside
    1..80 alphanumerics, hyphens and underscores (``.fifo`` counts in the 80)."""
    fifo = name.endswith(".fifo")
    stem = name[: -len(".fifo")] if fifo else name
    if not 1 <= len(name) <= 80 or not _NAME.fullmatch(stem):
        raise AwsError("InvalidParameterValue", _NAME_TEXT)
    return fifo


def defaults(fifo: bool) -> dict[str, str]:
    """The attributes AWS gives a new queue of that kind."""
    values = {
        "VisibilityTimeout": "30",
        "MessageRetentionPeriod": "345600",
        "MaximumMessageSize": str(MAX_MESSAGE_SIZE),
        "DelaySeconds": "0",
        "ReceiveMessageWaitTimeSeconds": "0",
        "SqsManagedSseEnabled": "true",
    }
    if fifo:
        values.update(
            FifoQueue="true",
            ContentBasedDeduplication="false",
            DeduplicationScope="queue",
            FifoThroughputLimit="perQueue",
        )
    return values


def _bad_value(name: str) -> AwsError:
    return AwsError("InvalidAttributeValue", f"Invalid value for the parameter {name}.")


def _integer(name: str, value: str, low: int, high: int) -> str:
    text = value.strip()
    if not re.fullmatch(r"[+-]?[0-9]+", text) or not low <= int(text) <= high:
        raise _bad_value(name)
    return str(int(text))


def _boolean(name: str, value: str) -> str:
    if value.lower() not in ("true", "false"):
        raise _bad_value(name)
    return value.lower()


def _choice(*allowed: str) -> Callable[[str, str], str]:
    def check(name: str, value: str) -> str:
        if value not in allowed:
            raise _bad_value(name)
        return value

    return check


def _ranged(low: int, high: int) -> Callable[[str, str], str]:
    return lambda name, value: _integer(name, value, low, high)


def _json_object(name: str, value: str) -> dict[str, Any]:
    """The JSON object an attribute holds; InvalidAttributeValue otherwise."""
    try:
        parsed = json.loads(value)
    except ValueError:
        raise _bad_value(name) from None
    if not isinstance(parsed, dict):
        raise _bad_value(name)
    return parsed


def _policy(name: str, value: str) -> str:
    if value != "":
        _json_object(name, value)
    return value


def _kms_key(name: str, value: str) -> str:
    return value


def _redrive_error(value: str, why: str) -> AwsError:
    return AwsError(
        "InvalidParameterValue",
        f"Value {value} for parameter RedrivePolicy is invalid. Reason: {why}",
    )


def _redrive(name: str, value: str) -> str:
    """Checked and re-serialized compactly (AWS stores the count as a number)."""
    if value == "":
        return ""
    try:
        parsed = json.loads(value)
    except ValueError:
        parsed = None
    if not isinstance(parsed, dict):
        raise _redrive_error(value, "Redrive policy is not a valid JSON map.")
    for key in ("deadLetterTargetArn", "maxReceiveCount"):
        if key not in parsed:
            raise _redrive_error(
                value, f"Redrive policy does not contain mandatory attribute: {key}."
            )
    unknown = sorted(set(parsed) - {"deadLetterTargetArn", "maxReceiveCount"})
    if unknown:
        raise _redrive_error(
            value,
            "Only following attributes are supported: [deadLetterTargetArn, maxReceiveCount].",
        )
    count = parsed["maxReceiveCount"]
    if isinstance(count, bool) or not isinstance(count, int | str):
        count_ok = None
    else:
        count_ok = int(count) if re.fullmatch(r"[0-9]+", str(count).strip()) else None
    if count_ok is None or not 1 <= count_ok <= MAX_RECEIVE_COUNT:
        raise _redrive_error(
            value,
            f"Invalid value for maxReceiveCount: {count}, valid values are from 1 to "
            f"{MAX_RECEIVE_COUNT} both inclusive.",
        )
    target = parsed["deadLetterTargetArn"]
    if not isinstance(target, str):
        raise _redrive_error(value, "Invalid value for deadLetterTargetArn.")
    name_from_arn(target)
    return json.dumps(
        {"deadLetterTargetArn": target, "maxReceiveCount": count_ok}, separators=(",", ":")
    )


def _redrive_allow(name: str, value: str) -> str:
    if value == "":
        return ""
    parsed = _json_object(name, value)
    if set(parsed) - {"redrivePermission", "sourceQueueArns"}:
        raise _bad_value(name)
    permission = parsed.get("redrivePermission")
    sources = parsed.get("sourceQueueArns")
    if permission not in ("allowAll", "denyAll", "byQueue"):
        raise _bad_value(name)
    if permission == "byQueue":
        if (
            not isinstance(sources, list)
            or not 1 <= len(sources) <= MAX_SOURCE_QUEUE_ARNS
            or not all(isinstance(s, str) for s in sources)
        ):
            raise _bad_value(name)
        for source in sources:
            name_from_arn(source)
    elif sources is not None:
        raise _bad_value(name)
    canonical: dict[str, Any] = {"redrivePermission": permission}
    if sources is not None:
        canonical["sourceQueueArns"] = sources
    return json.dumps(canonical, separators=(",", ":"))


_CHECKS: dict[str, Callable[[str, str], str]] = {
    "VisibilityTimeout": _ranged(0, MAX_VISIBILITY_TIMEOUT),
    "MessageRetentionPeriod": _ranged(60, 1_209_600),
    "MaximumMessageSize": _ranged(MIN_MESSAGE_SIZE, MAX_MESSAGE_SIZE),
    "DelaySeconds": _ranged(0, MAX_DELAY_SECONDS),
    "ReceiveMessageWaitTimeSeconds": _ranged(0, MAX_WAIT_SECONDS),
    "Policy": _policy,
    "RedrivePolicy": _redrive,
    "RedriveAllowPolicy": _redrive_allow,
    "KmsMasterKeyId": _kms_key,
    "KmsDataKeyReusePeriodSeconds": _ranged(60, 86_400),
    "SqsManagedSseEnabled": _boolean,
    "FifoQueue": _boolean,
    "ContentBasedDeduplication": _boolean,
    "DeduplicationScope": _choice("messageGroup", "queue"),
    "FifoThroughputLimit": _choice("perQueue", "perMessageGroupId"),
}


def normalize(
    attributes: Mapping[str, str],
    *,
    fifo: bool,
    creating: bool,
    current: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Check CreateQueue/SetQueueAttributes attributes and give their canonical
    string values; an empty RedrivePolicy/RedriveAllowPolicy/Policy means remove it.

    ``current`` (the queue's attributes, on a set) lets rules that span two
    attributes see the one not being set."""
    result: dict[str, str] = {}
    for name, raw in attributes.items():
        value = str(raw)
        if name not in SETTABLE or (name in FIFO_ONLY and not fifo):
            # Read-only names and FIFO attributes on a standard queue are
            # unknown to AWS's setters too.
            raise AwsError("InvalidAttributeName", f"Unknown Attribute {name}.")
        result[name] = _CHECKS[name](name, value)
    if "FifoQueue" in result and result["FifoQueue"] != "true":
        # A queue's kind is fixed by its name; FifoQueue can only repeat it.
        raise _bad_value("FifoQueue")
    if fifo:
        # "The perMessageGroupId value is allowed only when the value for
        # DeduplicationScope is messageGroup" (API reference).
        if creating or current is not None:
            before = {} if creating else dict(current or {})
        else:  # unknown queue state: only a pair set together can be judged
            before = {"DeduplicationScope": "messageGroup", "FifoThroughputLimit": "perQueue"}
        scope = result.get("DeduplicationScope", before.get("DeduplicationScope", "queue"))
        limit = result.get("FifoThroughputLimit", before.get("FifoThroughputLimit", "perQueue"))
        if limit == "perMessageGroupId" and scope != "messageGroup":
            raise _bad_value("FifoThroughputLimit")
    return result


@dataclass(frozen=True)
class RedrivePolicy:
    """Where a queue dead-letters messages, and after how many receives."""

    dead_letter_target_arn: str
    max_receive_count: int


@dataclass(frozen=True)
class RedriveAllowPolicy:
    """Which source queues may use a queue as their dead-letter queue."""

    permission: str  # allowAll | denyAll | byQueue
    source_queue_arns: tuple[str, ...]


def redrive_policy(attributes: Mapping[str, str]) -> RedrivePolicy | None:
    """The queue's redrive policy, or None when it has none."""
    text = attributes.get("RedrivePolicy")
    if not text:
        return None
    parsed = json.loads(_redrive("RedrivePolicy", text))
    return RedrivePolicy(parsed["deadLetterTargetArn"], int(parsed["maxReceiveCount"]))


def redrive_allow_policy(attributes: Mapping[str, str]) -> RedriveAllowPolicy | None:
    """The queue's redrive allow policy, or None (every source allowed)."""
    text = attributes.get("RedriveAllowPolicy")
    if not text:
        return None
    parsed = json.loads(_redrive_allow("RedriveAllowPolicy", text))
    return RedriveAllowPolicy(
        parsed["redrivePermission"], tuple(parsed.get("sourceQueueArns") or ())
    )


def allows_source(policy: RedriveAllowPolicy | None, source_arn: str) -> bool:
    """Whether a queue with this allow policy may take ``source_arn``'s dead letters."""
    if policy is None or policy.permission == "allowAll":
        return True
    if policy.permission == "denyAll":
        return False
    return source_arn in policy.source_queue_arns


def to_settings(
    attributes: Mapping[str, str], *, fifo: bool, dead_letter_queue: str | None
) -> QueueSettings:
    """The neutral queue settings for a queue with these (complete) attributes."""
    values = {**defaults(fifo), **attributes}
    policy = redrive_policy(values)
    return QueueSettings(
        lease_ms=int(values["VisibilityTimeout"]) * 1000,
        delivery_delay_ms=int(values["DelaySeconds"]) * 1000,
        message_ttl_ms=int(values["MessageRetentionPeriod"]) * 1000,
        max_deliveries=(
            policy.max_receive_count if policy is not None and dead_letter_queue else None
        ),
        dead_letter_queue=dead_letter_queue,
        ordered=fifo,
        dedup_window_ms=FIFO_DEDUP_WINDOW_MS if fifo else None,
    )


def arn(region: str, account: str, name: str) -> str:
    """The queue's ARN."""
    return f"arn:aws:sqs:{region}:{account}:{name}"


def name_from_arn(value: str) -> tuple[str, str, str]:
    """(region, account, queue name) of an SQS queue ARN."""
    match = _ARN.fullmatch(value)
    if match is None or len(match.group(3)) > 80:
        raise AwsError("InvalidParameterValue", f"Invalid ARN: {value}")
    region, account, name = match.groups()
    return region, account, name

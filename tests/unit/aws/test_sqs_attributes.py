"""SQS queue attribute rules: names, values, policies and their settings."""

from __future__ import annotations

import json
import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dovecote.aws import sqs_attributes as attrs
from dovecote.aws.errors import AwsError

NAME_TEXT = "Can only include alphanumeric characters, hyphens, or underscores. 1 to 80 in length"
NAME_CHARS = "abcXYZ019_-"
DLQ = "arn:aws:sqs:us-east-1:123456789012:dlq"


def error(call, *args, **kwargs) -> AwsError:
    with pytest.raises(AwsError) as caught:
        call(*args, **kwargs)
    return caught.value


# --- queue names -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "fifo"),
    [("q", False), ("a" * 80, False), ("a" * 75 + ".fifo", True), ("my-q_1.fifo", True)],
)
def test_good_names(name: str, fifo: bool) -> None:
    assert attrs.check_queue_name(name) is fifo


@pytest.mark.parametrize("name", ["", "a" * 81, "a" * 76 + ".fifo", "a.b", "q!", ".fifo", "é"])
def test_bad_names(name: str) -> None:
    e = error(attrs.check_queue_name, name)
    assert (e.code, e.message) == ("InvalidParameterValue", NAME_TEXT)


@given(st.text(alphabet=NAME_CHARS, min_size=1, max_size=80))
def test_names_of_the_charset_pass(name: str) -> None:
    assert attrs.check_queue_name(name) is False


@given(st.text(min_size=1, max_size=90))
def test_names_outside_the_rule_fail(name: str) -> None:
    stem = name.removesuffix(".fifo")
    allowed = string.ascii_letters + string.digits + "_-"
    valid = len(name) <= 80 and stem != "" and all(c in allowed for c in stem)
    if valid:
        assert attrs.check_queue_name(name) is name.endswith(".fifo")
    else:
        with pytest.raises(AwsError):
            attrs.check_queue_name(name)


# --- defaults ----------------------------------------------------------------------


def test_defaults() -> None:
    standard = attrs.defaults(False)
    assert standard["MaximumMessageSize"] == "1048576"
    assert standard["VisibilityTimeout"] == "30"
    assert standard["MessageRetentionPeriod"] == "345600"
    assert not set(standard) & attrs.FIFO_ONLY
    fifo = attrs.defaults(True)
    assert fifo["FifoQueue"] == "true"
    assert fifo["DeduplicationScope"] == "queue"
    assert fifo["FifoThroughputLimit"] == "perQueue"
    assert fifo["ContentBasedDeduplication"] == "false"
    assert set(fifo) <= attrs.SETTABLE
    assert attrs.normalize(fifo, fifo=True, creating=True) == fifo


# --- normalize ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "good", "bad"),
    [
        ("VisibilityTimeout", ["0", "43200"], ["-1", "43201", "x", ""]),
        ("MessageRetentionPeriod", ["60", "1209600"], ["59", "1209601"]),
        ("MaximumMessageSize", ["1024", "1048576"], ["1023", "1048577"]),
        ("DelaySeconds", ["0", "900"], ["901", "-1"]),
        ("ReceiveMessageWaitTimeSeconds", ["0", "20"], ["21"]),
        ("KmsDataKeyReusePeriodSeconds", ["60", "86400"], ["59", "86401"]),
        ("SqsManagedSseEnabled", ["true", "false"], ["yes"]),
        ("Policy", ['{"Version": "2012-10-17"}', ""], ["{", "[]"]),
    ],
)
def test_ranges(name: str, good: list[str], bad: list[str]) -> None:
    for value in good:
        assert attrs.normalize({name: value}, fifo=False, creating=True) == {name: value}
    for value in bad:
        e = error(attrs.normalize, {name: value}, fifo=False, creating=True)
        assert (e.code, e.message) == (
            "InvalidAttributeValue",
            f"Invalid value for the parameter {name}.",
        )


def test_integers_are_canonical() -> None:
    assert attrs.normalize({"DelaySeconds": "007"}, fifo=False, creating=False) == {
        "DelaySeconds": "7"
    }


@pytest.mark.parametrize("name", ["Bogus", "QueueArn", "ApproximateNumberOfMessages"])
def test_unknown_and_read_only_names(name: str) -> None:
    e = error(attrs.normalize, {name: "1"}, fifo=False, creating=True)
    assert (e.code, e.message) == ("InvalidAttributeName", f"Unknown Attribute {name}.")


@pytest.mark.parametrize("name", sorted(attrs.FIFO_ONLY))
def test_fifo_attributes_unknown_on_standard(name: str) -> None:
    e = error(attrs.normalize, {name: "false"}, fifo=False, creating=True)
    assert (e.code, e.message) == ("InvalidAttributeName", f"Unknown Attribute {name}.")


def test_fifo_attributes() -> None:
    given_ = {
        "FifoQueue": "TRUE",
        "ContentBasedDeduplication": "True",
        "DeduplicationScope": "messageGroup",
        "FifoThroughputLimit": "perMessageGroupId",
    }
    assert attrs.normalize(given_, fifo=True, creating=True) == {
        "FifoQueue": "true",
        "ContentBasedDeduplication": "true",
        "DeduplicationScope": "messageGroup",
        "FifoThroughputLimit": "perMessageGroupId",
    }


@pytest.mark.parametrize(
    ("given_", "bad"),
    [
        ({"FifoQueue": "false"}, "FifoQueue"),
        ({"DeduplicationScope": "group"}, "DeduplicationScope"),
        ({"FifoThroughputLimit": "perGroup"}, "FifoThroughputLimit"),
        ({"FifoThroughputLimit": "perMessageGroupId"}, "FifoThroughputLimit"),
        (
            {"FifoThroughputLimit": "perMessageGroupId", "DeduplicationScope": "queue"},
            "FifoThroughputLimit",
        ),
    ],
)
def test_bad_fifo_values(given_: dict[str, str], bad: str) -> None:
    e = error(attrs.normalize, given_, fifo=True, creating=True)
    assert (e.code, e.message) == (
        "InvalidAttributeValue",
        f"Invalid value for the parameter {bad}.",
    )


def test_throughput_on_set_checks_the_current_scope() -> None:
    queue = attrs.defaults(True)
    e = error(
        attrs.normalize,
        {"FifoThroughputLimit": "perMessageGroupId"},
        fifo=True,
        creating=False,
        current=queue,
    )
    assert e.code == "InvalidAttributeValue"
    grouped = queue | {"DeduplicationScope": "messageGroup"}
    assert attrs.normalize(
        {"FifoThroughputLimit": "perMessageGroupId"}, fifo=True, creating=False, current=grouped
    ) == {"FifoThroughputLimit": "perMessageGroupId"}
    high = grouped | {"FifoThroughputLimit": "perMessageGroupId"}
    e = error(
        attrs.normalize, {"DeduplicationScope": "queue"}, fifo=True, creating=False, current=high
    )
    assert e.message == "Invalid value for the parameter FifoThroughputLimit."


def test_throughput_alone_on_set_is_left_to_the_queue() -> None:
    assert attrs.normalize(
        {"FifoThroughputLimit": "perMessageGroupId"}, fifo=True, creating=False
    ) == {"FifoThroughputLimit": "perMessageGroupId"}


# --- redrive policies --------------------------------------------------------------


@pytest.mark.parametrize("count", [5, "5", " 5"])
def test_redrive_policy_canonical(count: object) -> None:
    text = json.dumps({"maxReceiveCount": count, "deadLetterTargetArn": DLQ})
    out = attrs.normalize({"RedrivePolicy": text}, fifo=False, creating=True)
    assert out == {"RedrivePolicy": f'{{"deadLetterTargetArn":"{DLQ}","maxReceiveCount":5}}'}
    assert attrs.redrive_policy(out) == attrs.RedrivePolicy(DLQ, 5)


def test_redrive_policy_cleared() -> None:
    assert attrs.normalize({"RedrivePolicy": ""}, fifo=False, creating=False) == {
        "RedrivePolicy": ""
    }
    assert attrs.redrive_policy({"RedrivePolicy": ""}) is None
    assert attrs.redrive_policy({}) is None


@pytest.mark.parametrize(
    ("policy", "why"),
    [
        ("nope", "Redrive policy is not a valid JSON map."),
        ("[1]", "Redrive policy is not a valid JSON map."),
        (
            json.dumps({"maxReceiveCount": 3}),
            "Redrive policy does not contain mandatory attribute: deadLetterTargetArn.",
        ),
        (
            json.dumps({"deadLetterTargetArn": DLQ}),
            "Redrive policy does not contain mandatory attribute: maxReceiveCount.",
        ),
        (
            json.dumps({"deadLetterTargetArn": DLQ, "maxReceiveCount": 0}),
            "Invalid value for maxReceiveCount: 0, valid values are from 1 to 1000 both inclusive.",
        ),
        (
            json.dumps({"deadLetterTargetArn": DLQ, "maxReceiveCount": "1001"}),
            "Invalid value for maxReceiveCount: 1001, valid values are from 1 to 1000 both "
            "inclusive.",
        ),
    ],
)
def test_bad_redrive_policies(policy: str, why: str) -> None:
    e = error(attrs.normalize, {"RedrivePolicy": policy}, fifo=False, creating=True)
    assert e.code == "InvalidParameterValue"
    assert e.message == f"Value {policy} for parameter RedrivePolicy is invalid. Reason: {why}"


def test_redrive_policy_bad_arn() -> None:
    policy = json.dumps({"deadLetterTargetArn": "arn:nope", "maxReceiveCount": 1})
    e = error(attrs.normalize, {"RedrivePolicy": policy}, fifo=False, creating=True)
    assert (e.code, e.message) == ("InvalidParameterValue", "Invalid ARN: arn:nope")


SOURCE = "arn:aws:sqs:us-east-1:123456789012:src"


@pytest.mark.parametrize(
    ("policy", "permission", "sources"),
    [
        ({"redrivePermission": "allowAll"}, "allowAll", ()),
        ({"redrivePermission": "denyAll"}, "denyAll", ()),
        ({"redrivePermission": "byQueue", "sourceQueueArns": [SOURCE]}, "byQueue", (SOURCE,)),
    ],
)
def test_redrive_allow_policies(policy: dict, permission: str, sources: tuple) -> None:
    out = attrs.normalize({"RedriveAllowPolicy": json.dumps(policy)}, fifo=False, creating=True)
    allow = attrs.redrive_allow_policy(out)
    assert allow == attrs.RedriveAllowPolicy(permission, sources)
    assert attrs.allows_source(allow, SOURCE) is (permission != "denyAll")
    assert attrs.allows_source(allow, SOURCE + "x") is (permission == "allowAll")


def test_no_allow_policy_allows_all() -> None:
    assert attrs.redrive_allow_policy({}) is None
    assert attrs.allows_source(None, SOURCE)


@pytest.mark.parametrize(
    "policy",
    [
        "{",
        json.dumps({"redrivePermission": "maybe"}),
        json.dumps({"redrivePermission": "byQueue"}),
        json.dumps({"redrivePermission": "byQueue", "sourceQueueArns": []}),
        json.dumps({"redrivePermission": "byQueue", "sourceQueueArns": [SOURCE] * 11}),
        json.dumps({"redrivePermission": "allowAll", "sourceQueueArns": [SOURCE]}),
        json.dumps({"redrivePermission": "allowAll", "extra": 1}),
    ],
)
def test_bad_redrive_allow_policies(policy: str) -> None:
    e = error(attrs.normalize, {"RedriveAllowPolicy": policy}, fifo=False, creating=True)
    assert (e.code, e.message) == (
        "InvalidAttributeValue",
        "Invalid value for the parameter RedriveAllowPolicy.",
    )


# --- settings and ARNs -------------------------------------------------------------


def test_to_settings_fifo_with_dlq() -> None:
    values = attrs.defaults(True) | {
        "VisibilityTimeout": "45",
        "DelaySeconds": "3",
        "RedrivePolicy": json.dumps({"deadLetterTargetArn": DLQ, "maxReceiveCount": 4}),
    }
    settings = attrs.to_settings(values, fifo=True, dead_letter_queue="dlq.fifo")
    assert settings.lease_ms == 45_000
    assert settings.delivery_delay_ms == 3_000
    assert settings.message_ttl_ms == 345_600_000
    assert settings.max_deliveries == 4
    assert settings.dead_letter_queue == "dlq.fifo"
    assert settings.ordered is True
    assert settings.dedup_window_ms == 300_000


def test_to_settings_standard_without_dlq() -> None:
    values = attrs.defaults(False) | {
        "RedrivePolicy": json.dumps({"deadLetterTargetArn": DLQ, "maxReceiveCount": 4})
    }
    settings = attrs.to_settings(values, fifo=False, dead_letter_queue=None)
    assert settings.max_deliveries is None
    assert settings.dead_letter_queue is None
    assert settings.ordered is False
    assert settings.dedup_window_ms is None
    assert settings.lease_ms == 30_000


def test_arn_round_trip() -> None:
    value = attrs.arn("eu-west-1", "000000000000", "q.fifo")
    assert value == "arn:aws:sqs:eu-west-1:000000000000:q.fifo"
    assert attrs.name_from_arn(value) == ("eu-west-1", "000000000000", "q.fifo")


@pytest.mark.parametrize(
    "value",
    [
        "",
        "arn:aws:sns:us-east-1:123456789012:q",
        "arn:aws:sqs:us-east-1:12345:q",
        "arn:aws:sqs:us-east-1:123456789012:",
        "arn:aws:sqs:us-east-1:123456789012:q!",
    ],
)
def test_bad_arns(value: str) -> None:
    e = error(attrs.name_from_arn, value)
    assert (e.code, e.message) == ("InvalidParameterValue", f"Invalid ARN: {value}")

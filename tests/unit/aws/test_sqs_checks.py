"""Per-request SQS checks: receive options, batches, bodies, attributes, sends."""

from __future__ import annotations

import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dovecote.aws import sqs_checks as checks
from dovecote.aws.errors import AwsError

MAX = 1_048_576
BATCH_ID_TEXT = (
    "A batch entry id can only contain alphanumeric characters, hyphens and underscores. "
    "It can be at most 80 letters long."
)
ID_CHARS = string.ascii_letters + string.digits + string.punctuation


def error(call, *args, **kwargs) -> AwsError:
    with pytest.raises(AwsError) as caught:
        call(*args, **kwargs)
    return caught.value


def send(**overrides) -> None:
    arguments = {
        "max_size": MAX,
        "delay_seconds": None,
        "fifo": False,
        "group_id": None,
        "dedup_id": None,
        "content_based_dedup": False,
    }
    arguments.update(overrides)
    body = arguments.pop("body", "hello")
    size = arguments.pop("size", 0)
    checks.check_send(body, size, **arguments)


# --- receive -----------------------------------------------------------------------


def test_receive_defaults() -> None:
    options = checks.check_receive({})
    assert options == checks.ReceiveOptions(1, None, None, frozenset(), (), None)


def test_receive_full() -> None:
    options = checks.check_receive(
        {
            "MaxNumberOfMessages": 10,
            "WaitTimeSeconds": 20,
            "VisibilityTimeout": 0,
            "AttributeNames": ["All"],
            "MessageSystemAttributeNames": ["SentTimestamp", "DeadLetterQueueSourceArn"],
            "MessageAttributeNames": ["All", ".*", "foo.*", "bar"],
            "ReceiveRequestAttemptId": "attempt-1",
        }
    )
    assert options.max_messages == 10
    assert options.wait_seconds == 20
    assert options.visibility_timeout == 0
    assert options.system_attribute_names == {"All", "SentTimestamp", "DeadLetterQueueSourceArn"}
    assert options.message_attribute_names == ("All", ".*", "foo.*", "bar")
    assert options.request_attempt_id == "attempt-1"


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (
            {"MaxNumberOfMessages": 11},
            "Value 11 for parameter MaxNumberOfMessages is invalid. Reason: Must be between 1 "
            "and 10, if provided.",
        ),
        (
            {"MaxNumberOfMessages": 0},
            "Value 0 for parameter MaxNumberOfMessages is invalid. Reason: Must be between 1 "
            "and 10, if provided.",
        ),
        (
            {"WaitTimeSeconds": 21},
            "Value 21 for parameter WaitTimeSeconds is invalid. Reason: Must be >= 0 and <= 20, "
            "if provided.",
        ),
        (
            {"VisibilityTimeout": 43201},
            "Value 43201 for parameter VisibilityTimeout is invalid. Reason: Must be between 0 "
            "and 43200, if provided.",
        ),
        (
            {"ReceiveRequestAttemptId": "x" * 129},
            f"Value {'x' * 129} for parameter ReceiveRequestAttemptId is invalid. Reason: "
            "ReceiveRequestAttemptId can only include alphanumeric and punctuation characters. "
            "1 to 128 in length.",
        ),
    ],
)
def test_receive_bad_values(params: dict, message: str) -> None:
    e = error(checks.check_receive, params)
    assert (e.code, e.message) == ("InvalidParameterValue", message)


@pytest.mark.parametrize(
    ("params", "name"),
    [
        ({"AttributeNames": ["Bogus"]}, "Bogus"),
        ({"MessageSystemAttributeNames": ["QueueArn"]}, "QueueArn"),
        ({"MessageAttributeNames": ["a b"]}, "a b"),
    ],
)
def test_receive_unknown_attribute_names(params: dict, name: str) -> None:
    e = error(checks.check_receive, params)
    assert (e.code, e.message) == ("InvalidAttributeName", f"Unknown Attribute {name}.")


# --- batches -----------------------------------------------------------------------


def test_batch_ok() -> None:
    checks.check_batch_entries([{"Id": str(i)} for i in range(10)])


def test_batch_errors() -> None:
    e = error(checks.check_batch_entries, [])
    assert (e.code, e.message) == (
        "EmptyBatchRequest",
        "There should be at least one SendMessageBatchRequestEntry in the request.",
    )
    e = error(checks.check_batch_entries, None, entry_name="DeleteMessageBatchRequestEntry")
    assert (
        e.message == "There should be at least one DeleteMessageBatchRequestEntry in the request."
    )
    e = error(checks.check_batch_entries, [{"Id": str(i)} for i in range(11)])
    assert (e.code, e.message) == (
        "TooManyEntriesInBatchRequest",
        "Maximum number of entries per request are 10. You have sent 11.",
    )
    e = error(checks.check_batch_entries, [{"Id": "a"}, {"Id": "b"}, {"Id": "a"}])
    assert (e.code, e.message) == ("BatchEntryIdsNotDistinct", "Id a repeated.")
    e = error(checks.check_batch_entries, [{"Id": "a.b"}])
    assert (e.code, e.message) == ("InvalidBatchEntryId", BATCH_ID_TEXT)
    e = error(checks.check_batch_entries, [{"Id": "a" * 81}])
    assert (e.code, e.message) == ("InvalidBatchEntryId", BATCH_ID_TEXT)


@given(st.text(alphabet=string.ascii_letters + string.digits + "_-", min_size=1, max_size=80))
def test_batch_ids_of_the_charset_pass(entry_id: str) -> None:
    checks.check_batch_entries([{"Id": entry_id}])


@given(st.text(min_size=1, max_size=90))
def test_batch_ids_outside_the_charset_fail(entry_id: str) -> None:
    allowed = string.ascii_letters + string.digits + "_-"
    if len(entry_id) <= 80 and all(c in allowed for c in entry_id):
        checks.check_batch_entries([{"Id": entry_id}])
    else:
        e = error(checks.check_batch_entries, [{"Id": entry_id}])
        assert e.code == "InvalidBatchEntryId"


# --- bodies ------------------------------------------------------------------------


@pytest.mark.parametrize("body", ["x", "\t\n\r", "\ud7ff\ue000\ufffd", "\U0001f600", "é"])
def test_good_bodies(body: str) -> None:
    checks.check_message_body(body)


@pytest.mark.parametrize(
    ("body", "bad"),
    [("a\x00", "#x0"), ("\x1f", "#x1F"), ("\ufffe", "#xFFFE"), ("\ud800", "#xD800")],
)
def test_bad_bodies(body: str, bad: str) -> None:
    e = error(checks.check_message_body, body)
    assert e.code == "InvalidMessageContents"
    assert e.message == (
        f"Invalid binary character '{bad}' was found in the message body, the set of allowed "
        "characters is #x9 | #xA | #xD | #x20 to #xD7FF | #xE000 to #xFFFD | #x10000 to #x10FFFF"
    )


def test_empty_body() -> None:
    e = error(checks.check_message_body, "")
    assert (e.code, e.message) == (
        "MissingParameter",
        "The request must contain the parameter MessageBody.",
    )


# --- message attributes ------------------------------------------------------------


def test_attribute_size() -> None:
    size = checks.check_message_attributes(
        {
            "s": {"DataType": "String", "StringValue": "héllo"},
            "n": {"DataType": "Number.int", "StringValue": "-1.5e3"},
            "b": {"DataType": "Binary", "BinaryValue": b"\x00\x01"},
        }
    )
    assert size == (1 + 6 + 6) + (1 + 10 + 6) + (1 + 6 + 2)
    assert checks.check_message_attributes(None) == 0
    assert checks.check_message_attributes({}) == 0


NAME_INVALID = (
    "The message attribute name '{}' is invalid. Attribute name can contain A-Z, a-z, 0-9, "
    "underscore (_), hyphen (-), and period (.) characters."
)
RESERVED = "The message attribute name '{}' is invalid. Names starting with 'AWS.' or 'Amazon.' are reserved."


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("a b", NAME_INVALID),
        ("a..b", NAME_INVALID),
        (".a", NAME_INVALID),
        ("a.", NAME_INVALID),
        ("x" * 257, NAME_INVALID),
        ("AWS.x", RESERVED),
        ("amazon.x", RESERVED),
    ],
)
def test_bad_attribute_names(name: str, message: str) -> None:
    e = error(checks.check_message_attributes, {name: {"DataType": "String", "StringValue": "v"}})
    assert (e.code, e.message) == ("InvalidParameterValue", message.format(name))


def test_name_of_256_and_label_pass() -> None:
    assert (
        checks.check_message_attributes(
            {"a.b-c_d": {"DataType": "String.label", "StringValue": "v"}}
        )
        == len("a.b-c_d") + len("String.label") + 1
    )
    checks.check_message_attributes({"x" * 256: {"DataType": "String", "StringValue": "v"}})


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (
            {"DataType": "Text", "StringValue": "v"},
            "The message attribute 'a' has an invalid message attribute type, the set of "
            "supported type prefixes is Binary, Number, and String.",
        ),
        (
            {"DataType": "String." + "x" * 250, "StringValue": "v"},
            "The message attribute 'a' has an invalid message attribute type, the set of "
            "supported type prefixes is Binary, Number, and String.",
        ),
        (
            {"DataType": "String"},
            "The message attribute 'a' must contain non-empty message attribute value for "
            "message attribute type 'String'.",
        ),
        (
            {"DataType": "Binary", "BinaryValue": b""},
            "The message attribute 'a' must contain non-empty message attribute value for "
            "message attribute type 'Binary'.",
        ),
        (
            {"DataType": "Binary", "StringValue": "v"},
            "The message attribute 'a' with type 'Binary' must use field 'Binary'.",
        ),
        (
            {"DataType": "Number", "BinaryValue": b"1"},
            "The message attribute 'a' with type 'Number' must use field 'String'.",
        ),
        (
            {"DataType": "Number", "StringValue": "abc"},
            "Could not cast message attribute 'a' value to number.",
        ),
        (
            {"DataType": "Number", "StringValue": "1e127"},
            "Could not cast message attribute 'a' value to number.",
        ),
        (
            {"DataType": "Number", "StringValue": "1" * 39},
            "Could not cast message attribute 'a' value to number.",
        ),
        (
            {"DataType": "String", "StringValue": "\x00"},
            "Invalid binary character '#x0' was found in the message attribute 'a'.",
        ),
    ],
)
def test_bad_attribute_values(value: dict, message: str) -> None:
    e = error(checks.check_message_attributes, {"a": value})
    assert (e.code, e.message) == ("InvalidParameterValue", message)


@pytest.mark.parametrize("number", ["0", "-0.0", "1" * 38, "1e126", "1e-128", " 42 "])
def test_good_numbers(number: str) -> None:
    checks.check_message_attributes({"n": {"DataType": "Number", "StringValue": number}})


def test_too_many_attributes() -> None:
    many = {f"a{i}": {"DataType": "String", "StringValue": "v"} for i in range(11)}
    e = error(checks.check_message_attributes, many)
    assert (e.code, e.message) == (
        "InvalidParameterValue",
        "Number of message attributes [11] exceeds the allowed maximum [10].",
    )


def test_system_attributes() -> None:
    trace = {"AWSTraceHeader": {"DataType": "String", "StringValue": "Root=1-2-3"}}
    assert checks.check_message_attributes(trace, system=True) == 14 + 6 + 10
    e = error(
        checks.check_message_attributes,
        {"Other": {"DataType": "String", "StringValue": "v"}},
        system=True,
    )
    assert (e.code, e.message) == (
        "InvalidParameterValue",
        "Message system attribute name 'Other' is invalid.",
    )
    e = error(
        checks.check_message_attributes,
        {"AWSTraceHeader": {"DataType": "Binary", "BinaryValue": b"v"}},
        system=True,
    )
    assert e.code == "InvalidParameterValue"


# --- sends -------------------------------------------------------------------------


def test_send_ok() -> None:
    send()
    send(group_id="fair-group")  # standard queues take a group id (fair queues)
    send(fifo=True, group_id="g", dedup_id="d", delay_seconds=0)
    send(fifo=True, group_id="g", content_based_dedup=True)
    send(body="x" * (MAX - 10), size=10)


@pytest.mark.parametrize(
    ("overrides", "code", "message"),
    [
        (
            {"body": "x" * 1000, "size": 25, "max_size": 1024},
            "InvalidParameterValue",
            "One or more parameters are invalid. Reason: Message must be shorter than 1024 bytes.",
        ),
        (
            {"body": "é" * 513, "max_size": 1024},
            "InvalidParameterValue",
            "One or more parameters are invalid. Reason: Message must be shorter than 1024 bytes.",
        ),
        (
            {"delay_seconds": 901},
            "InvalidParameterValue",
            "Value 901 for parameter DelaySeconds is invalid. Reason: DelaySeconds must be >= 0 "
            "and <= 900.",
        ),
        (
            {"dedup_id": "d"},
            "InvalidParameterValue",
            "Value d for parameter MessageDeduplicationId is invalid. Reason: The request "
            "include parameter that is not valid for this queue type.",
        ),
        (
            {"fifo": True, "group_id": "g", "dedup_id": "d", "delay_seconds": 5},
            "InvalidParameterValue",
            "Value 5 for parameter DelaySeconds is invalid. Reason: The request include "
            "parameter that is not valid for this queue type.",
        ),
        (
            {"fifo": True, "dedup_id": "d"},
            "MissingParameter",
            "The request must contain the parameter MessageGroupId.",
        ),
        (
            {"fifo": True, "group_id": "g"},
            "InvalidParameterValue",
            "The queue should either have ContentBasedDeduplication enabled or "
            "MessageDeduplicationId provided explicitly",
        ),
        (
            {"fifo": True, "group_id": "g" * 129, "dedup_id": "d"},
            "InvalidParameterValue",
            f"Value {'g' * 129} for parameter MessageGroupId is invalid. Reason: MessageGroupId "
            "can only include alphanumeric and punctuation characters. 1 to 128 in length.",
        ),
        (
            {"fifo": True, "group_id": "g", "dedup_id": "a b"},
            "InvalidParameterValue",
            "Value a b for parameter MessageDeduplicationId is invalid. Reason: "
            "MessageDeduplicationId can only include alphanumeric and punctuation characters. "
            "1 to 128 in length.",
        ),
    ],
)
def test_send_errors(overrides: dict, code: str, message: str) -> None:
    e = error(send, **overrides)
    assert (e.code, e.message) == (code, message)


@given(st.text(alphabet=ID_CHARS, min_size=1, max_size=128))
def test_ids_of_the_charset_pass(value: str) -> None:
    send(fifo=True, group_id=value, dedup_id=value)


@given(st.text(min_size=1, max_size=140))
def test_ids_outside_the_charset_fail(value: str) -> None:
    if len(value) <= 128 and all(c in ID_CHARS for c in value):
        send(fifo=True, group_id=value, dedup_id=value)
    else:
        e = error(send, fifo=True, group_id=value, dedup_id="d")
        assert e.code == "InvalidParameterValue"
        assert "parameter MessageGroupId" in e.message


# --- batch size and visibility -----------------------------------------------------


def test_batch_size() -> None:
    checks.check_batch_size(MAX, MAX)
    e = error(checks.check_batch_size, MAX + 1, MAX)
    assert (e.code, e.message) == (
        "BatchRequestTooLong",
        f"Batch requests cannot be longer than {MAX} bytes. You have sent {MAX + 1} bytes.",
    )


@pytest.mark.parametrize("value", [-1, 43201])
def test_visibility_timeout(value: int) -> None:
    checks.check_visibility_timeout(0)
    checks.check_visibility_timeout(43200)
    e = error(checks.check_visibility_timeout, value)
    assert (e.code, e.message) == (
        "InvalidParameterValue",
        f"Value {value} for parameter VisibilityTimeout is invalid. Reason: Must be between 0 "
        "and 43200, if provided.",
    )

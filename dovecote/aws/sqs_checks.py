"""Per-request SQS checks (receive options, batches, bodies, message attributes,
sends) with AWS's error codes and texts, apart from the service so they stay pure."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation, localcontext
from typing import Any

from dovecote.aws.errors import AwsError
from dovecote.aws.sqs_attributes import MAX_DELAY_SECONDS, MAX_VISIBILITY_TIMEOUT

SYSTEM_ATTRIBUTE_NAMES = frozenset(
    [
        "All",
        "ApproximateReceiveCount",
        "ApproximateFirstReceiveTimestamp",
        "SentTimestamp",
        "SenderId",
        "MessageGroupId",
        "MessageDeduplicationId",
        "SequenceNumber",
        "AWSTraceHeader",
        "DeadLetterQueueSourceArn",
    ]
)
MAX_MESSAGE_ATTRIBUTES = 10
MAX_ATTRIBUTE_NAME = 256
MAX_DATA_TYPE = 256
MAX_ID = 128

_BATCH_ID = re.compile(r"[A-Za-z0-9_-]{1,80}")
_ATTRIBUTE_NAME = re.compile(r"[A-Za-z0-9_.-]+")
_ATTRIBUTE_SELECTOR = re.compile(r"All|\.\*|[A-Za-z0-9_.-]+(\.\*)?")
# MessageGroupId / MessageDeduplicationId: alphanumerics and punctuation.
_MESSAGE_ID = re.compile(r"[A-Za-z0-9!\"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~]{1,128}")
# W3C XML characters, the set SQS accepts in bodies and string values.
_BAD_CHARACTER = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_NOT_VALID_FOR_QUEUE = "The request include parameter that is not valid for this queue type."


def _invalid_value(value: Any, name: str, why: str) -> AwsError:
    return AwsError(
        "InvalidParameterValue", f"Value {value} for parameter {name} is invalid. Reason: {why}"
    )


def _integer(params: Mapping[str, Any], name: str) -> int | None:
    value = params.get(name)
    if value is None:
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise _invalid_value(value, name, "Must be an integer.") from None


@dataclass
class ReceiveOptions:
    """A ReceiveMessage request's options, checked."""

    max_messages: int
    wait_seconds: int | None  # None: the queue's ReceiveMessageWaitTimeSeconds
    visibility_timeout: int | None  # None: the queue's VisibilityTimeout
    system_attribute_names: frozenset[str]
    message_attribute_names: tuple[str, ...]
    request_attempt_id: str | None


def check_receive(params: Mapping[str, Any]) -> ReceiveOptions:
    """Check botocore-shaped ReceiveMessage params (AttributeNames, the legacy
    name, is merged with MessageSystemAttributeNames)."""
    count = _integer(params, "MaxNumberOfMessages")
    if count is not None and not 1 <= count <= 10:
        raise _invalid_value(count, "MaxNumberOfMessages", "Must be between 1 and 10, if provided.")
    wait = _integer(params, "WaitTimeSeconds")
    if wait is not None and not 0 <= wait <= 20:
        raise _invalid_value(wait, "WaitTimeSeconds", "Must be >= 0 and <= 20, if provided.")
    visibility = _integer(params, "VisibilityTimeout")
    if visibility is not None:
        check_visibility_timeout(visibility)
    names = [
        *(params.get("AttributeNames") or ()),
        *(params.get("MessageSystemAttributeNames") or ()),
    ]
    for name in names:
        if name not in SYSTEM_ATTRIBUTE_NAMES:
            raise AwsError("InvalidAttributeName", f"Unknown Attribute {name}.")
    selectors = tuple(str(n) for n in params.get("MessageAttributeNames") or ())
    for selector in selectors:
        if not _ATTRIBUTE_SELECTOR.fullmatch(selector) or len(selector) > MAX_ATTRIBUTE_NAME:
            raise AwsError("InvalidAttributeName", f"Unknown Attribute {selector}.")
    attempt = params.get("ReceiveRequestAttemptId")
    if attempt is not None:
        _check_id("ReceiveRequestAttemptId", str(attempt))
    return ReceiveOptions(
        max_messages=1 if count is None else count,
        wait_seconds=wait,
        visibility_timeout=visibility,
        system_attribute_names=frozenset(str(n) for n in names),
        message_attribute_names=selectors,
        request_attempt_id=None if attempt is None else str(attempt),
    )


def check_batch_entries(
    entries: list[Mapping[str, Any]] | None,
    *,
    max_entries: int = 10,
    entry_name: str = "SendMessageBatchRequestEntry",
) -> None:
    """Check a batch's entry list and ids (``entry_name`` is the operation's entry
    shape, which AWS names when the batch is empty)."""
    if not entries:
        raise AwsError(
            "EmptyBatchRequest", f"There should be at least one {entry_name} in the request."
        )
    if len(entries) > max_entries:
        raise AwsError(
            "TooManyEntriesInBatchRequest",
            f"Maximum number of entries per request are {max_entries}. "
            f"You have sent {len(entries)}.",
        )
    seen: set[str] = set()
    for entry in entries:
        entry_id = entry.get("Id")
        if entry_id is None:
            raise AwsError("MissingParameter", "The request must contain the parameter Id.")
        entry_id = str(entry_id)
        if not _BATCH_ID.fullmatch(entry_id):
            raise AwsError(
                "InvalidBatchEntryId",
                "A batch entry id can only contain alphanumeric characters, hyphens and "
                "underscores. It can be at most 80 letters long.",
            )
        if entry_id in seen:
            raise AwsError("BatchEntryIdsNotDistinct", f"Id {entry_id} repeated.")
        seen.add(entry_id)


# The ASCII characters a body may hold; deleting them from an ASCII body
# leaves nothing unless it has a control character (a quick test: most
# bodies are ASCII, and the regex costs several times as much).
_ASCII_ALLOWED = bytes(range(0x20, 0x80)) + b"\t\n\r"


def _bad_character(text: str) -> str | None:
    if text.isascii() and not text.encode("ascii").translate(None, _ASCII_ALLOWED):
        return None
    match = _BAD_CHARACTER.search(text)
    return None if match is None else f"#x{ord(match.group()):X}"


def check_message_body(body: str) -> None:
    """A body must be present and made of XML characters only."""
    if body == "":
        raise AwsError("MissingParameter", "The request must contain the parameter MessageBody.")
    bad = _bad_character(body)
    if bad is not None:
        raise AwsError(
            "InvalidMessageContents",
            f"Invalid binary character '{bad}' was found in the message body, the set of "
            "allowed characters is #x9 | #xA | #xD | #x20 to #xD7FF | #xE000 to #xFFFD | "
            "#x10000 to #x10FFFF",
        )


def _attributes_error(text: str) -> AwsError:
    return AwsError("InvalidParameterValue", text)


def _check_attribute_name(name: str) -> None:
    lowered = name.lower()
    if (
        not 1 <= len(name) <= MAX_ATTRIBUTE_NAME
        or not _ATTRIBUTE_NAME.fullmatch(name)
        or ".." in name
        or name.startswith(".")
        or name.endswith(".")
    ):
        raise _attributes_error(
            f"The message attribute name '{name}' is invalid. Attribute name can contain "
            "A-Z, a-z, 0-9, underscore (_), hyphen (-), and period (.) characters."
        )
    if lowered.startswith(("aws.", "amazon.")):
        raise _attributes_error(
            f"The message attribute name '{name}' is invalid. Names starting with "
            "'AWS.' or 'Amazon.' are reserved."
        )


def _number_ok(text: str) -> bool:
    """AWS Numbers: up to 38 significant digits, magnitude 10^-128..10^126."""
    try:
        number = Decimal(text.strip())
    except InvalidOperation:
        return False
    if not number.is_finite():
        return False
    if number.is_zero():
        return True
    with localcontext(prec=200):
        digits = len(number.normalize().as_tuple().digits)
    return digits <= 38 and -128 <= number.copy_abs().adjusted() <= 126


def _attribute_size(name: str, value: Mapping[str, Any], *, system: bool) -> int:
    kind = "message system attribute" if system else "message attribute"
    data_type = value.get("DataType")
    if not data_type:
        raise _attributes_error(
            f"The {kind} '{name}' must contain non-empty message attribute type."
        )
    data_type = str(data_type)
    base = data_type.split(".", 1)[0]
    if base not in ("String", "Number", "Binary") or len(data_type) > MAX_DATA_TYPE:
        raise _attributes_error(
            f"The {kind} '{name}' has an invalid message attribute type, the set of "
            "supported type prefixes is Binary, Number, and String."
        )
    if value.get("StringListValues") or value.get("BinaryListValues"):
        raise _attributes_error(f"The {kind} '{name}' uses a list value, which is not supported.")
    string_value = value.get("StringValue")
    binary_value = value.get("BinaryValue")
    wanted, present, other = (
        ("Binary", binary_value, string_value)
        if base == "Binary"
        else ("String", string_value, binary_value)
    )
    if other is not None:
        raise _attributes_error(
            f"The {kind} '{name}' with type '{base}' must use field '{wanted}'."
        )
    if present is None or len(present) == 0:
        raise _attributes_error(
            f"The {kind} '{name}' must contain non-empty message attribute value for "
            f"message attribute type '{data_type}'."
        )
    if base == "Binary":
        raw = bytes(present) if isinstance(present, bytes | bytearray) else str(present).encode()
    else:
        text = str(present)
        bad = _bad_character(text)
        if bad is not None:
            raise AwsError(
                "InvalidParameterValue",
                f"Invalid binary character '{bad}' was found in the message attribute '{name}'.",
            )
        if base == "Number" and not _number_ok(text):
            raise _attributes_error(f"Could not cast message attribute '{name}' value to number.")
        raw = text.encode("utf-8")
    return len(name.encode("utf-8")) + len(data_type.encode("utf-8")) + len(raw)


def check_message_attributes(
    attributes: Mapping[str, Mapping[str, Any]] | None, *, system: bool = False
) -> int:
    """Check MessageAttributes (or MessageSystemAttributes with ``system``) and
    return their size in bytes as AWS counts it toward the message size."""
    if not attributes:
        return 0
    if len(attributes) > MAX_MESSAGE_ATTRIBUTES:
        raise _attributes_error(
            f"Number of message attributes [{len(attributes)}] exceeds the allowed maximum "
            f"[{MAX_MESSAGE_ATTRIBUTES}]."
        )
    size = 0
    for name, value in attributes.items():
        if system:
            if name != "AWSTraceHeader":
                raise _attributes_error(f"Message system attribute name '{name}' is invalid.")
            if value.get("DataType") != "String":
                raise _attributes_error(
                    f"The message system attribute '{name}' has an invalid message attribute "
                    "type, the only supported type is String."
                )
        else:
            _check_attribute_name(name)
        size += _attribute_size(name, value, system=system)
    return size


def _check_id(name: str, value: str) -> None:
    if not _MESSAGE_ID.fullmatch(value):
        raise _invalid_value(
            value,
            name,
            f"{name} can only include alphanumeric and punctuation characters. "
            f"1 to {MAX_ID} in length.",
        )


def check_send(
    body: str,
    attributes_size: int,
    *,
    max_size: int,
    delay_seconds: int | None,
    fifo: bool,
    group_id: str | None,
    dedup_id: str | None,
    content_based_dedup: bool,
    body_size: int | None = None,
) -> None:
    """The checks of one SendMessage (or batch entry) against its queue
    (``body_size``: the body's UTF-8 length, when the caller has it)."""
    if body_size is None:
        body_size = len(body.encode("utf-8"))
    if body_size + attributes_size > max_size:
        raise AwsError(
            "InvalidParameterValue",
            f"One or more parameters are invalid. Reason: Message must be shorter than "
            f"{max_size} bytes.",
        )
    if delay_seconds is not None and not 0 <= delay_seconds <= MAX_DELAY_SECONDS:
        raise _invalid_value(
            delay_seconds,
            "DelaySeconds",
            f"DelaySeconds must be >= 0 and <= {MAX_DELAY_SECONDS}.",
        )
    if group_id is not None:
        _check_id("MessageGroupId", group_id)
    if dedup_id is not None:
        _check_id("MessageDeduplicationId", dedup_id)
    if not fifo:
        # Standard queues take a MessageGroupId (fair queues) but no dedup id.
        if dedup_id is not None:
            raise _invalid_value(dedup_id, "MessageDeduplicationId", _NOT_VALID_FOR_QUEUE)
        return
    if delay_seconds:
        # FIFO delays are per queue only; an explicit 0 is accepted.
        raise _invalid_value(delay_seconds, "DelaySeconds", _NOT_VALID_FOR_QUEUE)
    if group_id is None:
        raise AwsError("MissingParameter", "The request must contain the parameter MessageGroupId.")
    if dedup_id is None and not content_based_dedup:
        raise AwsError(
            "InvalidParameterValue",
            "The queue should either have ContentBasedDeduplication enabled or "
            "MessageDeduplicationId provided explicitly",
        )


def check_batch_size(total_bytes: int, max_size: int) -> None:
    """A whole batch (bodies and attributes) must fit in one message's limit."""
    if total_bytes > max_size:
        raise AwsError(
            "BatchRequestTooLong",
            f"Batch requests cannot be longer than {max_size} bytes. "
            f"You have sent {total_bytes} bytes.",
        )


def check_visibility_timeout(value: int) -> None:
    """A visibility timeout is 0..12 hours."""
    if not 0 <= value <= MAX_VISIBILITY_TIMEOUT:
        raise _invalid_value(
            value,
            "VisibilityTimeout",
            f"Must be between 0 and {MAX_VISIBILITY_TIMEOUT}, if provided.",
        )

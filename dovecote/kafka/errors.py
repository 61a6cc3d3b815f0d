"""Core errors as the Kafka error codes clients know."""

from __future__ import annotations

import re

from kio.schema.errors import ErrorCode

from dovecote.core.errors import (
    CorruptMessage,
    InvalidConfig,
    InvalidPartitions,
    InvalidProducerEpoch,
    InvalidRecord,
    InvalidTopicName,
    MessageTooLarge,
    OffsetOutOfRange,
    OutOfOrderSequence,
    PolicyViolation,
    StorageError,
    TopicExists,
    UnknownPartition,
    UnknownTopic,
)
from dovecote.core.groups import GroupError

_CODES: list[tuple[type[BaseException], ErrorCode]] = [
    (UnknownTopic, ErrorCode.unknown_topic_or_partition),
    (UnknownPartition, ErrorCode.unknown_topic_or_partition),
    (TopicExists, ErrorCode.topic_already_exists),
    (InvalidTopicName, ErrorCode.invalid_topic_exception),
    (InvalidPartitions, ErrorCode.invalid_partitions),
    (InvalidConfig, ErrorCode.invalid_config),
    (PolicyViolation, ErrorCode.policy_violation),
    (CorruptMessage, ErrorCode.corrupt_message),
    (MessageTooLarge, ErrorCode.message_too_large),
    (InvalidRecord, ErrorCode.invalid_record),
    (OutOfOrderSequence, ErrorCode.out_of_order_sequence_number),
    (InvalidProducerEpoch, ErrorCode.invalid_producer_epoch),
    (OffsetOutOfRange, ErrorCode.offset_out_of_range),
    (StorageError, ErrorCode.kafka_storage_error),
    (OSError, ErrorCode.kafka_storage_error),
]

LEGAL_TOPIC = re.compile(r"^[a-zA-Z0-9._-]{1,249}$")


def error_code(err: BaseException) -> ErrorCode:
    for kind, code in _CODES:
        if isinstance(err, kind):
            return code
    return ErrorCode.unknown_server_error


def group_error(err: GroupError) -> ErrorCode:
    return ErrorCode[err.value.lower()]


def check_kafka_topic_name(name: str) -> None:
    """Kafka's own rule for topic names (the core accepts any name)."""
    if name in (".", "..") or not LEGAL_TOPIC.match(name):
        raise InvalidTopicName(
            f"topic name {name!r} is illegal: use at most 249 of [a-zA-Z0-9._-], not '.' or '..'"
        )

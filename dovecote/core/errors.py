"""Errors the core raises. Adapters translate them into their protocol's codes
(each adapter has its own codes and names for them)."""

from __future__ import annotations

from dovecote.storage.errors import StorageError
from dovecote.storage.log import OffsetOutOfRange

__all__ = [
    "BrokerError",
    "CorruptMessage",
    "InvalidConfig",
    "InvalidPartitions",
    "InvalidProducerEpoch",
    "InvalidRecord",
    "InvalidTopicName",
    "MessageTooLarge",
    "OffsetOutOfRange",
    "OutOfOrderSequence",
    "PolicyViolation",
    "StorageError",
    "TopicExists",
    "UnknownPartition",
    "UnknownTopic",
]


class BrokerError(Exception):
    """Base of the core's own errors."""


class UnknownTopic(BrokerError, LookupError):
    pass


class UnknownPartition(BrokerError, LookupError):
    pass


class TopicExists(BrokerError):
    pass


class InvalidTopicName(BrokerError, ValueError):
    pass


class InvalidPartitions(BrokerError, ValueError):
    pass


class InvalidConfig(BrokerError, ValueError):
    pass


class PolicyViolation(BrokerError):
    pass


class CorruptMessage(BrokerError, ValueError):
    """A batch failed validation (CRC, magic, framing)."""


class InvalidRecord(BrokerError, ValueError):
    """A batch is well formed but not acceptable (e.g. an empty batch)."""


class MessageTooLarge(BrokerError, ValueError):
    pass


class OutOfOrderSequence(BrokerError):
    """An idempotent producer's batch does not follow its last sequence."""


class InvalidProducerEpoch(BrokerError):
    """A batch from a fenced (older) producer epoch."""

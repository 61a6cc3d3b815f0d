"""A Pub/Sub topic's settings as configs of its log topic.

The log keeps what the topic's ``message_retention_duration`` says (10 minutes
to 31 days); without it, what the broker's topic defaults keep (7 days, the
longest a subscription keeps unacked messages by default). Messages may be
up to 10 MB, so batches are allowed a little more than that.
"""

from __future__ import annotations

from typing import Any

from dovecote.pubsub.checks import duration_ms
from dovecote.pubsub.rpc import invalid

MIN_RETENTION_MS = 10 * 60 * 1000
MAX_RETENTION_MS = 31 * 24 * 3600 * 1000
RETENTION = "retention.ms"
MAX_BATCH_BYTES = 11 * 1024 * 1024


def check_topic_retention(topic: Any) -> None:
    if not topic.HasField("message_retention_duration"):
        return
    ms = duration_ms(topic.message_retention_duration)
    if not MIN_RETENTION_MS <= ms <= MAX_RETENTION_MS:
        raise invalid("Invalid message_retention_duration: must be between 10 minutes and 31 days.")


def log_topic_configs(topic: Any) -> dict[str, str]:
    configs = {"max.message.bytes": str(MAX_BATCH_BYTES)}
    if topic.HasField("message_retention_duration"):
        configs["retention.ms"] = str(duration_ms(topic.message_retention_duration))
    return configs


def log_retention_ms(topic: Any, subscriptions_ms: int, default_ms: int) -> int | None:
    """The log topic's ``retention.ms``: the topic's own or the longest a
    subscription keeps messages, whichever is longer; None (the broker's
    default, ``default_ms``, -1 = forever) when neither needs more."""
    if topic.HasField("message_retention_duration"):
        return max(duration_ms(topic.message_retention_duration), subscriptions_ms)
    if default_ms < 0 or default_ms >= subscriptions_ms:
        return None
    return subscriptions_ms

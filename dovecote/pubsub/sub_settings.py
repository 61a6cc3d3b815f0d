"""Google's checks and defaults of a subscription's retention and expiration
settings (the lease and delivery settings are in ``sub_config.py``).

- ``message_retention_duration``: 10 minutes to 31 days, default 7 days. The
  core drops unacked messages older than it (``message_ttl_ms``); with
  ``retain_acked_messages`` acked ones stay in the log for as long, so a
  Seek to a time can replay them.
- ``expiration_policy.ttl``: a subscription without subscriber activity for
  this long is deleted (``expiration.py``). Default 31 days; an empty
  policy (no ttl) means never; else at least 1 day and longer than the
  retention duration.
"""

from __future__ import annotations

from typing import Any

from dovecote.pubsub.checks import duration_ms
from dovecote.pubsub.rpc import invalid

MINUTE_S = 60
DAY_S = 24 * 3600
MIN_RETENTION_S = 10 * MINUTE_S
MAX_RETENTION_S = 31 * DAY_S
DEFAULT_RETENTION_S = 7 * DAY_S
DEFAULT_TTL_S = 31 * DAY_S
MIN_TTL_S = DAY_S


def fill_defaults(pb: Any) -> None:
    """What Google fills in on CreateSubscription."""
    if not pb.HasField("message_retention_duration"):
        pb.message_retention_duration.seconds = DEFAULT_RETENTION_S
    if not pb.HasField("expiration_policy"):
        pb.expiration_policy.ttl.seconds = DEFAULT_TTL_S


def check(pb: Any) -> None:
    """Retention and expiration within Google's bounds (INVALID_ARGUMENT)."""
    retention = retention_ms(pb)
    if not MIN_RETENTION_S * 1000 <= retention <= MAX_RETENTION_S * 1000:
        raise invalid(
            "Invalid message_retention_duration: must be between 10 minutes and 31 days "
            f"(got {retention // 1000}s)."
        )
    ttl = ttl_ms(pb)
    if ttl is None:
        return
    if ttl < MIN_TTL_S * 1000:
        raise invalid(
            f"Invalid expiration_policy.ttl: must be at least 1 day (got {ttl // 1000}s)."
        )
    if ttl <= retention:
        raise invalid(
            "Invalid expiration_policy.ttl: must be greater than message_retention_duration."
        )


def retention_ms(pb: Any) -> int:
    """How long the subscription keeps messages (its default when unset)."""
    if pb.HasField("message_retention_duration"):
        return duration_ms(pb.message_retention_duration)
    return DEFAULT_RETENTION_S * 1000


def ttl_ms(pb: Any) -> int | None:
    """After how long without activity the subscription expires (None: never)."""
    if not pb.HasField("expiration_policy") or not pb.expiration_policy.HasField("ttl"):
        return None
    return duration_ms(pb.expiration_policy.ttl)

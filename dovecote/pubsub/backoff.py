"""A subscription's ``retry_policy`` as the core's ``redelivery_delay``.

Google: a nacked message, or one whose ack deadline passed, is delivered
again after an exponential backoff between ``minimum_backoff`` (default 10 s)
and ``maximum_backoff`` (default 600 s), "on a best effort basis". Google
does not publish the formula; Dovecote doubles from the minimum for each
delivery so far (10 s, 20 s, 40 s, ...) and stops at the maximum. Without a
retry policy redelivery is immediate.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from dovecote.pubsub.rpc import invalid

DEFAULT_MIN_BACKOFF_S = 10
DEFAULT_MAX_BACKOFF_S = 600
MAX_BACKOFF_S = 600


def normalise_retry_policy(pb: Any) -> None:
    """Fill in the defaults Google shows on a set retry policy; check the ranges."""
    if not pb.HasField("retry_policy"):
        return
    policy = pb.retry_policy
    if not policy.HasField("minimum_backoff"):
        policy.minimum_backoff.FromSeconds(DEFAULT_MIN_BACKOFF_S)
    if not policy.HasField("maximum_backoff"):
        policy.maximum_backoff.FromSeconds(DEFAULT_MAX_BACKOFF_S)
    low = policy.minimum_backoff
    high = policy.maximum_backoff
    for field, value in (("minimum_backoff", low), ("maximum_backoff", high)):
        if not 0 <= value.ToMilliseconds() <= MAX_BACKOFF_S * 1000:
            raise invalid(
                f"The value for {field} is out of bounds. You passed {seconds_text(value)} "
                f"in the request, but the value must be between 0s and {MAX_BACKOFF_S}s."
            )
    if low.ToMilliseconds() > high.ToMilliseconds():
        raise invalid(
            f"The value for maximum_backoff is too small. You passed {seconds_text(high)} "
            f"in the request, but the minimum value is {seconds_text(low)}."
        )


def seconds_text(duration: Any) -> str:
    """A Duration as Google's messages show it: ``700s``, ``1.5s``."""
    return f"{duration.ToNanoseconds() / 1e9:g}s"


def exponential(low_ms: int, high_ms: int) -> Callable[[int], int]:
    """Delivery count (1 after the first delivery) -> ms before the next."""

    def delay(count: int) -> int:
        return min(high_ms, low_ms << min(max(count - 1, 0), 30))

    return delay


def redelivery_delay(pb: Any) -> Callable[[int], int] | None:
    if not pb.HasField("retry_policy"):
        return None
    policy = pb.retry_policy
    low = (
        policy.minimum_backoff.ToMilliseconds()
        if policy.HasField("minimum_backoff")
        else DEFAULT_MIN_BACKOFF_S * 1000
    )
    high = (
        policy.maximum_backoff.ToMilliseconds()
        if policy.HasField("maximum_backoff")
        else DEFAULT_MAX_BACKOFF_S * 1000
    )
    return exponential(low, max(low, high))

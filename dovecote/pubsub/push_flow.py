"""How fast one push subscription sends: Google's push window and push backoff.

Google's push page describes two mechanisms, reproduced here as plain state
(times are monotonic seconds from the injected clock; no I/O, so the rules are
tested without an endpoint):

- **Delivery rate (the push window).** "Pub/Sub adjusts the number of
  concurrent push requests using a slow-start algorithm ... The push window
  increases on any successful delivery and decreases on any failure. The
  system starts with a small single-digit window size." So: the window starts
  at :data:`INITIAL_WINDOW`; each success adds one (a window's worth of
  successes doubles it: exponential growth, as TCP slow start) until
  :data:`SLOW_START_LIMIT`, then grows by one per window of successes
  (linear, as Google's "after 3,000 outstanding messages the window increases
  linearly"); each failure halves it, never below one.
- **Push backoff.** "If a push subscriber sends too many negative
  acknowledgments ... it stops delivering messages for a predetermined amount
  of time ... between 100 milliseconds to 60 seconds"; it is exponential,
  global to the subscription, and triggered by nacks and expired deadlines.
  Here: after ``n`` consecutive failures nothing new is sent for
  ``min(60 s, 100 ms * 2**(n-1))``; a success ends the run.
- **Retry policy** (per message, independent of the backoff: "the total delay
  is the maximum combined value of both"): a failed message waits
  ``min(maximum_backoff, minimum_backoff * 2**(attempts-1))`` before it can be
  delivered again. Unset bounds are Google's defaults (10 s, 600 s); with no
  retry policy the message is ready again at once (the backoff still holds).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

INITIAL_WINDOW = 3
SLOW_START_LIMIT = 3000  # Google's figure: linear growth past it
MAX_WINDOW = 10_000  # in flight per subscription at most, whatever the endpoint does
BACKOFF_MIN_S = 0.1
BACKOFF_MAX_S = 60.0
RETRY_MIN_DEFAULT_S = 10.0
RETRY_MAX_DEFAULT_S = 600.0


@dataclass
class PushFlow:
    window: float = INITIAL_WINDOW
    in_flight: int = 0
    consecutive_failures: int = 0
    paused_until: float = 0.0  # monotonic seconds; nothing new starts before

    @property
    def room(self) -> int:
        """How many more requests may start now (ignoring the backoff)."""
        return max(0, int(self.window) - self.in_flight)

    def started(self, count: int = 1) -> None:
        self.in_flight += count

    def succeeded(self) -> None:
        self.in_flight = max(0, self.in_flight - 1)
        self.consecutive_failures = 0
        if self.window < SLOW_START_LIMIT:
            self.window += 1
        else:
            self.window += 1 / self.window
        self.window = min(self.window, MAX_WINDOW)

    def failed(self, now: float) -> None:
        """A nack, an error or an expired deadline: shrink and back off."""
        self.in_flight = max(0, self.in_flight - 1)
        self.consecutive_failures += 1
        self.window = max(1.0, self.window / 2)
        self.paused_until = max(self.paused_until, now + self.backoff_s())

    def backoff_s(self) -> float:
        """The pause the current run of failures calls for (0 with none)."""
        if self.consecutive_failures <= 0:
            return 0.0
        exponent = min(self.consecutive_failures - 1, 32)
        return min(BACKOFF_MAX_S, BACKOFF_MIN_S * 2**exponent)

    def ready_at(self) -> float:
        return self.paused_until


def duration_s(pb: Any) -> float:
    """A protobuf ``Duration`` in seconds."""
    return float(pb.seconds) + pb.nanos / 1e9


def retry_delay_ms(subscription: Any, attempts: int) -> int:
    """How long a message that failed its ``attempts``-th delivery waits
    under the subscription's retry policy (0 without one)."""
    if not subscription.HasField("retry_policy"):
        return 0
    policy = subscription.retry_policy
    low = (
        duration_s(policy.minimum_backoff)
        if policy.HasField("minimum_backoff")
        else RETRY_MIN_DEFAULT_S
    )
    high = (
        duration_s(policy.maximum_backoff)
        if policy.HasField("maximum_backoff")
        else RETRY_MAX_DEFAULT_S
    )
    exponent = min(max(attempts - 1, 0), 32)
    return round(min(high, low * 2**exponent) * 1000)

"""The push window (slow start) and push backoff as plain state, and the
retry policy's per-message delay."""

from __future__ import annotations

from google.pubsub_v1 import types
from hypothesis import given
from hypothesis import strategies as st

from dovecote.pubsub.push_flow import (
    BACKOFF_MAX_S,
    INITIAL_WINDOW,
    MAX_WINDOW,
    SLOW_START_LIMIT,
    PushFlow,
    retry_delay_ms,
)

Subscription = types.Subscription.pb()


def test_starts_small_and_grows_exponentially_on_success() -> None:
    flow = PushFlow()
    assert flow.room == INITIAL_WINDOW == 3
    for _ in range(3):  # one window's worth of successes doubles it
        flow.started()
        flow.succeeded()
    assert flow.window == 6
    for _ in range(6):
        flow.started()
        flow.succeeded()
    assert flow.window == 12


def test_grows_linearly_past_the_slow_start_limit() -> None:
    flow = PushFlow(window=SLOW_START_LIMIT)
    for _ in range(SLOW_START_LIMIT):
        flow.started()
        flow.succeeded()
    assert SLOW_START_LIMIT + 0.9 < flow.window < SLOW_START_LIMIT + 1.1


def test_failures_halve_the_window_down_to_one() -> None:
    flow = PushFlow(window=16)
    for expected in (8, 4, 2, 1, 1):
        flow.started()
        flow.failed(now=0.0)
        assert flow.window == expected


def test_backoff_doubles_from_100ms_to_60s_and_a_success_ends_it() -> None:
    flow = PushFlow()
    pauses = []
    for _ in range(12):
        flow.started()
        flow.failed(now=100.0)
        pauses.append(round(flow.paused_until - 100.0, 3))
    assert pauses[:6] == [0.1, 0.2, 0.4, 0.8, 1.6, 3.2]
    assert pauses[-1] == BACKOFF_MAX_S
    flow.started()
    flow.succeeded()
    assert flow.consecutive_failures == 0 and flow.backoff_s() == 0.0


def test_in_flight_counts_requests_out() -> None:
    flow = PushFlow()
    flow.started(3)
    assert flow.room == 0
    flow.succeeded()
    assert flow.in_flight == 2 and flow.room == 2  # window 4, two out


@given(st.lists(st.booleans(), max_size=300))
def test_window_and_backoff_stay_in_bounds(outcomes: list[bool]) -> None:
    flow = PushFlow()
    now = 0.0
    for ok in outcomes:
        now += 0.05
        flow.started()
        if ok:
            flow.succeeded()
        else:
            flow.failed(now)
            assert 0.1 - 1e-9 <= flow.paused_until - now <= BACKOFF_MAX_S
        assert 1 <= flow.window <= MAX_WINDOW
        assert flow.in_flight == 0


def test_no_retry_policy_means_no_delay() -> None:
    assert retry_delay_ms(Subscription(), 3) == 0


def test_retry_policy_is_exponential_between_its_bounds() -> None:
    sub = Subscription()
    sub.retry_policy.minimum_backoff.FromMilliseconds(500)
    sub.retry_policy.maximum_backoff.FromSeconds(3)
    assert [retry_delay_ms(sub, n) for n in (1, 2, 3, 4, 5)] == [500, 1000, 2000, 3000, 3000]


def test_retry_policy_defaults_are_10s_and_600s() -> None:
    sub = Subscription()
    sub.retry_policy.SetInParent()
    assert retry_delay_ms(sub, 1) == 10_000
    assert retry_delay_ms(sub, 20) == 600_000

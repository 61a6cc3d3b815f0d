"""Byte-rate quotas as Kafka computes them: no throttle within the quota, a
throttle that brings the rate back to the quota beyond it."""

from __future__ import annotations

from dovecote.core.quotas import ByteRateQuotas


def test_no_quota_never_throttles():
    quotas = ByteRateQuotas(0)
    assert quotas.record("c", 10**12, now=0.0) == 0


def test_a_burst_is_measured_over_ten_windows_and_throttled_back():
    quotas = ByteRateQuotas(1000)
    assert quotas.record("c", 500, now=0.0) == 0
    assert quotas.record("c", 9000, now=0.5) == 0  # 9500 bytes over 10.5 s: within
    # 15000 bytes over 10.5 s: 1428.6 B/s; (1428.6 - 1000) / 1000 * 10.5 s = 4.5 s
    assert quotas.record("c", 5500, now=0.5) == 4500
    assert quotas.throttled == 1
    # Throttles never exceed the measured time (11 windows).
    assert quotas.record("c", 10**9, now=0.6) == 11_000


def test_a_client_that_obeys_its_throttle_times_gets_the_quota():
    for request in (500, 5000):
        quotas = ByteRateQuotas(10_000)
        now, sent = 0.0, 0
        while now < 120:
            throttle_ms = quotas.record("c", request, now)
            sent += request
            now += max(throttle_ms / 1000, 0.001)
        assert 0.95 * 10_000 <= sent / now <= 1.05 * 10_000


def test_clients_are_measured_apart_and_forgotten_when_silent():
    quotas = ByteRateQuotas(1000)
    assert quotas.record("a", 50_000, now=0.0) > 0
    assert quotas.record("b", 500, now=0.0) == 0
    quotas.record("c", 1, now=1000.0)
    assert len(quotas) == 1

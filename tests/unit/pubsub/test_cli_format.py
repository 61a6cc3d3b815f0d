"""How `dovecote pubsub list` writes ages and push health."""

from __future__ import annotations

from dovecote.cli.pubsub import count, duration, health


def test_durations_show_the_two_largest_units() -> None:
    assert duration(0.25) == "0.2s"
    assert duration(59.9) == "59.9s"
    assert duration(200) == "3m20s"
    assert duration(7 * 86400) == "7d"
    assert duration(86400 + 3600 + 61) == "1d1h"


def test_counts_and_health() -> None:
    assert count(None) == "-" and count(12345) == "12,345"
    assert health(None) == "-"
    assert health({"healthy": True}) == "ok"
    assert health({"healthy": False, "last_status": 503}) == "failing (last_status=503)"

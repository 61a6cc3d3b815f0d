"""The timers benchmark's pure pieces: its percentiles, its header and its report section."""

from __future__ import annotations

from pathlib import Path

from bench.report import Report
from bench.timers import figure, summary_ms
from bench.timers_wire import PUBLISHED, published_ns


def test_summary_is_nearest_rank_and_keeps_fractions() -> None:
    samples = [300.0 + i / 10 for i in range(1, 101)]  # 300.1 .. 310.0 ms
    s = summary_ms(list(reversed(samples)))
    assert s == {"count": 100, "p50": 305.0, "p99": 309.9, "max": 310.0}
    assert summary_ms([301.25]) == {"count": 1, "p50": 301.25, "p99": 301.25, "max": 301.25}
    assert summary_ms([]) == {"count": 0}


def test_figure_records_p99_with_the_summary() -> None:
    r = figure("timers.ttl.wire", "dovecote", [302.0, 303.0, 340.0], "cmd", ttl_ms=300)
    assert (r.figure, r.unit, r.system) == (340.0, "ms", "dovecote")
    assert r.params["count"] == 3 and r.params["p50"] == 303.0 and r.params["ttl_ms"] == 300
    assert figure("x", "dovecote", [], "cmd").figure == 0.0


def test_published_time_is_read_as_text_or_bytes() -> None:
    assert published_ns({PUBLISHED: "123"}) == 123
    assert published_ns({PUBLISHED: b"456"}) == 456
    assert published_ns({"other": "1"}) is None
    assert published_ns(None) is None


def test_report_section_shows_goal_and_ratio() -> None:
    params = {"ttl_ms": 300, "idle": 10_000}
    results = [
        figure("timers.ttl.wire", "dovecote", [301.0, 360.0], "python -m bench.timers", **params),
        figure("timers.ttl.wire", "rabbitmq", [301.0, 300.0], "python -m bench.timers", **params),
        figure("timers.ttl.core", "dovecote", [301.0, 302.0], "python -m bench.timers", **params),
    ]
    text = "\n".join(Report("run", {}, results, Path("/nonexistent")).timers_section())
    assert "10,000 idle queues" in text
    dovecote_row = next(line for line in text.splitlines() if line.startswith("| Dovecote, pika"))
    assert "360.0" in dovecote_row and "**no**" in dovecote_row and "1.20" in dovecote_row
    core_row = next(line for line in text.splitlines() if line.startswith("| Dovecote core"))
    assert "| yes |" in core_row
    assert "python -m bench.timers" in text
    assert Report("run", {}, [], Path("/nonexistent")).timers_section() == []

"""The shared benchmark helpers: every published ratio depends on them being right."""

from __future__ import annotations

import json
import socket

import pytest

from bench.common import (
    Result,
    Timer,
    append_results,
    free_port,
    latency_percentiles,
    load_results,
    percentile,
    repeat,
    summarize,
)


def test_free_port_is_bindable_on_loopback() -> None:
    port = free_port()
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))


def test_summarize_median_quartiles_and_extremes() -> None:
    stats = summarize([5.0, 1.0, 3.0, 2.0, 4.0])
    assert (stats.median, stats.min, stats.max, stats.n) == (3.0, 1.0, 5.0, 5)
    assert (stats.q1, stats.q3) == (2.0, 4.0)
    assert stats.iqr == 2.0
    assert summarize([7.0]).spread() == {"min": 7.0, "max": 7.0, "q1": 7.0, "q3": 7.0}
    with pytest.raises(ValueError):
        summarize([])


def test_repeat_discards_warmup_runs() -> None:
    values = iter([100.0, 1.0, 2.0, 3.0])
    stats = repeat(lambda: next(values), repeats=3, warmup=1)
    assert stats.samples == (1.0, 2.0, 3.0)


def test_nearest_rank_percentiles() -> None:
    samples = list(range(1, 1001))  # 1..1000 ns
    lat = latency_percentiles(reversed(samples))
    assert (lat.p50, lat.p99, lat.p999, lat.max, lat.count) == (500, 990, 999, 1000, 1000)
    assert percentile([42], 99.9) == 42
    assert lat.as_ms()["p50"] == 500 / 1e6


def test_timer_measures_elapsed_time() -> None:
    with Timer() as t:
        sum(range(1000))
    assert t.ns > 0 and t.seconds == t.ns / 1e9


def test_results_append_to_one_json_array(tmp_path) -> None:
    path = tmp_path / "out.json"
    first = Result.from_stats("x", "tansu", summarize([1.0, 2.0, 3.0]), "msg/s", "cmd", size=1)
    append_results([first], path)
    append_results([Result("y", "dovecote", 2.5, "msg/s", 1, {}, "cmd")], path)
    rows = json.loads(path.read_text())
    assert [r["name"] for r in rows] == ["x", "y"]
    assert rows[0]["params"] == {"size": 1} and rows[0]["repeats"] == 3
    assert rows[0]["run_id"] == rows[1]["run_id"]  # same process, same run
    assert load_results(path)[0].spread["max"] == 3.0

"""The SQS benchmark: how phases are combined, its records, its report section, a tiny run."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

import bench.common
from bench import sqs
from bench.report import Report
from bench.sqs_load import MAX_ERRORS_KEPT, Latency, Phase, Tally, combine, split


@given(st.integers(0, 100_000), st.integers(1, 64))
def test_split_shares_everything_evenly(total: int, parts: int) -> None:
    shares = split(total, parts)
    assert len(shares) == parts and sum(shares) == total
    assert max(shares) - min(shares) <= 1
    assert shares == sorted(shares, reverse=True)


def test_tallies_add_up_and_keep_a_few_distinct_errors() -> None:
    total = Tally()
    for i in range(3):
        t = Tally(messages=10, calls=2, failed_entries=i, finished=float(i))
        for n in range(4):
            t.note_error(RuntimeError(f"boom {n}"))
        total.add(t)
    assert (total.messages, total.calls, total.failed_entries) == (30, 6, 3)
    assert total.errors == 12 and total.finished == 2.0
    assert total.error_texts == [f"RuntimeError: boom {n}" for n in range(4)]
    t = Tally()
    for n in range(MAX_ERRORS_KEPT + 3):
        t.note_error(ValueError(str(n)))
    assert t.errors == MAX_ERRORS_KEPT + 3 and len(t.error_texts) == MAX_ERRORS_KEPT


def test_a_phase_counts_from_its_start_to_the_last_call() -> None:
    reports = [
        Tally(messages=600, calls=60, finished=101.5, cpu_s=0.3),
        Tally(messages=400, calls=40, finished=102.0, cpu_s=0.2),
    ]
    phase = combine("send", 1000, 100.0, reports, broker_cpu_s=0.05)
    assert phase.messages == 1000 and phase.seconds == 2.0 and phase.rate == 500.0
    assert phase.complete and phase.calls == 100
    assert phase.client_us == pytest.approx(500.0) and phase.broker_us == pytest.approx(50.0)
    assert phase.cores(phase.client_cpu_s) == pytest.approx(0.25)
    short = combine("send", 2000, 100.0, reports, broker_cpu_s=0.05)
    assert not short.complete
    failed = combine("send", 1000, 100.0, [Tally(messages=1000, failed_entries=1, finished=101)], 0)
    assert not failed.complete
    twice = combine(
        "receive",
        3,
        100.0,
        [Tally(messages=2, ids=["a", "b"], finished=101), Tally(messages=2, ids=["b", "c"])],
        0.0,
    )
    assert (twice.messages, twice.duplicates, twice.complete) == (3, 1, True)
    nothing = combine("receive", 10, 100.0, [Tally()], 0.0)
    assert nothing.rate == 0.0 and nothing.broker_us == 0.0 and nothing.seconds == 0.0


def test_latency_record_has_both_references_in_ms() -> None:
    run = Latency(
        from_start_ns=[i * 1_000_000 for i in range(1, 101)],  # 1..100 ms
        from_return_ns=[i * 1_000_000 - 2_000_000 for i in range(1, 101)],
        rounds=101,
        lost=1,
    )
    r = sqs.latency_result("dovecote", run, {"version": "x"}, "cmd")
    assert (r.name, r.unit, r.figure) == ("sqs.latency", "ms", 99.0)
    assert r.params["p50"] == 50.0 and r.params["max"] == 100.0
    assert r.params["after_return_p50"] == 48.0 and r.params["after_return_p99"] == 97.0
    assert r.params["count"] == 100 and r.params["rounds"] == 101 and r.params["lost"] == 1
    empty = sqs.latency_result("moto", Latency(error_texts=["gone"]), {}, "cmd")
    assert empty.figure == 0.0 and empty.params["count"] == 0


def _phase(kind: str, target: int, messages: int, seconds: float, broker_us: float) -> Phase:
    return Phase(kind, target, messages, seconds, 0.1, broker_us * messages / 1e6, 10, 0, 0, ())


def test_report_section_shows_ratios_goals_and_short_runs() -> None:
    common = {"clients": 4, "threads": 2, "batch": 10, "size": 1024, "max_seconds": 10.0}
    results = [
        sqs.phase_result("dovecote", _phase("send", 20_000, 20_000, 2.0, 25.0), common, "cmd"),
        sqs.phase_result("dovecote", _phase("receive", 20_000, 20_000, 4.0, 80.0), common, "cmd"),
        sqs.phase_result("moto", _phase("send", 20_000, 1_000, 10.0, 9000.0), common, "cmd"),
        sqs.phase_result("moto", _phase("receive", 1_000, 500, 1.0, 50_000.0), common, "cmd"),
        sqs.latency_result(
            "dovecote", Latency([3_000_000] * 99 + [9_000_000], [0] * 100, 100), common, "cmd"
        ),
    ]
    bad = sqs.latency_result("moto", Latency(error_texts=["ClientError: nope"]), common, "cmd")
    text = "\n".join(Report("run", {}, [*results, bad], Path("docs")).sqs_section())
    assert "## SQS" in text and "fsynced" in text and "in memory" in text
    assert "| send, batches of 10 | 10,000<br>broker 25.0 µs/msg" in text
    assert "100 (short: 1,000 of 20,000)" in text  # moto's send row
    assert "| 100.0 | yes | yes |" in text  # send: 100x moto, 25 us/msg
    assert "| 10.0 | yes | **no** |" in text  # receive: 5000 / 500, 80 us/msg
    assert "| dovecote | 3.00 | 3.00 | 9.00 | 0.00 / 0.00 | 100 | yes |" in text
    assert "| moto |" not in text.split("Long-polled")[1]  # no latency samples: no row
    assert "- moto sqs.latency: 0 failed calls, 0 failed entries; `ClientError: nope`" in text
    assert "```sh\ncmd\n```" in text
    assert Report("run", {}, [], Path("docs")).sqs_section() == []


@pytest.mark.skipif(importlib.util.find_spec("moto") is None, reason="moto is not installed")
def test_a_tiny_run_against_dovecote_and_moto(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(bench.common, "RESULTS_DIR", tmp_path)
    argv = ["--messages", "200", "--rounds", "5", "--clients", "2", "--threads", "1"]
    assert sqs.main([*argv, "--max-seconds", "20", "--base-dir", str(tmp_path)]) == 0
    rows = {(r["name"], r["system"]): r for r in json.loads((tmp_path / "sqs.json").read_text())}
    assert set(rows) == {
        (n, s) for n in ("sqs.send", "sqs.receive", "sqs.latency") for s in sqs.SYSTEMS
    }
    for system in sqs.SYSTEMS:
        send, receive = rows["sqs.send", system]["params"], rows["sqs.receive", system]["params"]
        assert send["messages"] == 200 and send["complete"], send
        assert rows["sqs.send", system]["figure"] > 0 and send["broker_us_per_msg"] >= 0
        assert receive["errors"] == 0 and receive["failed_entries"] == 0
        # Receivers stop once 200 deliveries are counted; moto's concurrent receives
        # sometimes hand one message to two clients, so it may count a repeat.
        assert receive["messages"] + receive["duplicates"] >= 200
        assert rows["sqs.latency", system]["params"]["count"] == 5
    dovecote = rows["sqs.receive", "dovecote"]["params"]
    assert dovecote["messages"] == 200 and dovecote["duplicates"] == 0 and dovecote["complete"]

"""The Pub/Sub benchmark: its records, its report section, stream errors, a tiny run."""

from __future__ import annotations

import importlib
import json
import logging
from pathlib import Path

import pytest

import bench.common
from bench import pubsub
from bench.peers.pubsub_emulator import missing as emulator_missing
from bench.pubsub_load import Latency, StreamErrors
from bench.report import Report
from bench.sqs_load import MAX_ERRORS_KEPT, Phase

COMMON = {"clients": 2, "batch": 1000, "batch_bytes": 1_000_000, "max_seconds": 10.0}


def _phase(kind: str, target: int, messages: int, seconds: float, broker_us: float) -> Phase:
    return Phase(kind, target, messages, seconds, 0.1, broker_us * messages / 1e6, 10, 0, 0, ())


def test_phase_record_has_rate_bytes_and_costs() -> None:
    r = pubsub.phase_result("dovecote", 1024, _phase("publish", 20_000, 20_000, 2.0, 8.0), {}, "c")
    assert (r.name, r.system, r.unit, r.figure) == ("pubsub.publish", "dovecote", "msg/s", 10_000)
    assert r.params["size"] == 1024 and r.params["mib_s"] == pytest.approx(9.77, abs=0.01)
    assert r.params["broker_us_per_msg"] == 8.0 and r.params["complete"]
    short = pubsub.phase_result("emulator", 100, _phase("pull", 20_000, 5, 1.0, 1.0), {}, "c")
    assert short.name == "pubsub.pull" and not short.params["complete"]


def test_latency_record_gives_p99_ms_cpu_and_losses() -> None:
    run = Latency(
        latencies_ns=[i * 1_000_000 for i in range(1, 101)],  # 1..100 ms
        published=102,
        lost=2,
        late_ns=3_500_000,
        seconds=2.0,
        client_cpu_s=1.0,
    )
    r = pubsub.latency_result("dovecote", run, 0.5, {"rate": 50.0}, "cmd")
    assert (r.name, r.unit, r.figure) == ("pubsub.latency", "ms", 99.0)
    assert r.params["p50"] == 50.0 and r.params["max"] == 100.0
    assert (r.params["count"], r.params["published"], r.params["lost"]) == (100, 102, 2)
    assert r.params["late_ms"] == 3.5 and r.params["broker_us_per_msg"] == 5000.0
    assert r.params["broker_cpus"] == 0.25 and r.params["client_cpus"] == 0.5
    empty = pubsub.latency_result("emulator", Latency(error_texts=["gone"]), 1.0, {}, "cmd")
    assert empty.figure == 0.0 and empty.params["count"] == 0
    assert empty.params["broker_us_per_msg"] == 0.0 and empty.params["error_texts"] == ["gone"]


def test_stream_errors_keep_a_few_distinct_failures_not_local_cancels() -> None:
    handler = StreamErrors()
    log = logging.getLogger("test-pubsub-stream-errors")
    log.addHandler(handler)
    log.propagate = False
    try:
        log.warning("Observed terminating stream error 499 Locally cancelled by application!")
        log.warning("Heartbeating")
        for n in range(MAX_ERRORS_KEPT + 3):
            log.warning("Observed recoverable stream error 429 too big (%d)", n)
            log.warning("Observed recoverable stream error 429 too big (%d)", n)
    finally:
        log.removeHandler(handler)
    assert handler.texts == [
        f"Observed recoverable stream error 429 too big ({n})" for n in range(MAX_ERRORS_KEPT)
    ]


def _latency(system: str, rate: float, p99_ms: float) -> bench.common.Result:
    run = Latency(latencies_ns=[1_000_000] * 99 + [int(p99_ms * 1e6)] * 2, published=101)
    return pubsub.latency_result(system, run, 0.1, {**COMMON, "rate": rate}, "cmd")


def test_report_section_shows_ratios_goals_short_runs_and_errors() -> None:
    results = [
        pubsub.phase_result("dovecote", 1024, _phase("publish", 100, 100, 1.0, 8.0), COMMON, "c"),
        pubsub.phase_result("emulator", 1024, _phase("publish", 100, 100, 2.0, 25.0), COMMON, "c"),
        pubsub.phase_result("dovecote", 65536, _phase("pull", 100, 0, 0.0, 0.0), COMMON, "c"),
        pubsub.phase_result("emulator", 65536, _phase("pull", 100, 100, 1.0, 370.0), COMMON, "c"),
        _latency("dovecote", 100.0, 7.0),
        _latency("emulator", 100.0, 75.0),
        _latency("dovecote", 500.0, 600.0),
        _latency("emulator", 500.0, 120.0),
    ]
    results[2].params.update(errors=2, error_texts=["Sent message larger than max"])
    text = "\n".join(Report("run", {}, results, Path("docs")).pubsub_section())
    assert "## Pub/Sub with google-cloud-pubsub" in text and "fsynced" in text
    assert "| publish, 1 KiB | 100<br>broker 8.00 µs/msg" in text
    assert "| 2.00 | yes |" in text  # publish: 100 / 50 msg/s
    assert "| streaming pull + ack, 64 KiB | 0.00 (short: 0 of 100)" in text
    assert "| 0.00 | **no** |" in text
    assert "| 100 | dovecote | 1.00 | 7.00 |" in text and text.count("| yes |") == 2
    assert "| 500 | dovecote | 1.00 | 600.00 |" in text and "| **no** |" in text
    assert "- dovecote pubsub.pull 65536 B: 2 errors; `Sent message larger than max`" in text
    missing = pubsub.unavailable("emulator", "java missing", "cmd")
    text = "\n".join(Report("run", {}, [results[0], missing], Path("docs")).pubsub_section())
    assert "**emulator unavailable**: java missing" in text
    assert "| publish, 1 KiB | 100<br>" in text and "| - | - |" in text
    assert Report("run", {}, [], Path("docs")).pubsub_section() == []


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(SystemExit):
        pubsub.parse(["--rates", "0"])
    with pytest.raises(SystemExit):
        pubsub.parse(["--clients", "0"])
    args = pubsub.parse([])
    assert args.sizes == [1024, 100, 65536] and args.rates == [100.0, 500.0]


def test_a_tiny_run_against_dovecote_and_the_emulator(tmp_path, monkeypatch) -> None:
    """Dovecote always; the emulator where it is installed, else its 'unavailable' record."""
    monkeypatch.setattr(bench.common, "RESULTS_DIR", tmp_path)
    argv = ["--messages", "200", "--large-messages", "20", "--clients", "1", "--rates", "50"]
    argv += ["--latency-seconds", "1", "--max-seconds", "20", "--base-dir", str(tmp_path)]
    assert pubsub.main(argv) == 0
    rows = json.loads((tmp_path / "pubsub.json").read_text())
    systems = list(pubsub.SYSTEMS)
    if why := emulator_missing():
        gone = [r for r in rows if r["name"] == "pubsub.unavailable"]
        assert [(r["system"], r["params"]["reason"]) for r in gone] == [("emulator", why)]
        systems = ["dovecote"]
    for system in systems:
        mine = [r for r in rows if r["system"] == system]
        phases = {(r["name"], r["params"].get("size")) for r in mine}
        assert phases == {
            *(
                (n, s)
                for n in ("pubsub.publish", "pubsub.rawpublish", "pubsub.pull")
                for s in (1024, 100, 65536)
            ),
            ("pubsub.latency", 1024),
        }, system
        for r in mine:
            p = r["params"]
            if r["name"] == "pubsub.latency":
                assert p["count"] == 50 and not p["lost"] and r["figure"] > 0, (system, p)
            else:
                assert p["complete"] and p["duplicates"] == 0 and r["figure"] > 0, (system, p)
                sent = 20 if p["size"] == 65536 else 200
                if r["name"] == "pubsub.rawpublish":
                    sent *= pubsub.RAW_FACTOR
                assert p["messages"] == sent


def test_an_emulator_that_is_not_installed_is_reported_with_the_reason(
    tmp_path, monkeypatch
) -> None:
    emulator = importlib.import_module("bench.peers.pubsub_emulator")
    monkeypatch.setattr(bench.common, "RESULTS_DIR", tmp_path)
    monkeypatch.setattr(emulator, "LAUNCHER", tmp_path / "no-such-launcher")
    assert pubsub.main(["--systems", "emulator", "--clients", "1"]) == 0
    rows = json.loads((tmp_path / "pubsub.json").read_text())
    assert [(r["name"], r["system"]) for r in rows] == [("pubsub.unavailable", "emulator")]
    reason = rows[0]["params"]["reason"]
    assert "no-such-launcher missing" in reason and "install-bench-deps.sh" in reason

"""The physical-limit probes on tiny sizes: they run, clean up and report sane figures."""

from __future__ import annotations

import pytest

from bench.limits import FSYNC_MODES, KiB, main, measure_disk_write, measure_tcp_loopback


@pytest.mark.parametrize("mode", FSYNC_MODES)
def test_disk_write_modes(tmp_path, mode: str) -> None:
    r = measure_disk_write(tmp_path, 16 * KiB, 256 * KiB, mode, repeats=2)
    assert r.figure > 0 and r.unit == "MiB/s" and r.repeats == 2
    assert r.spread["min"] <= r.figure <= r.spread["max"]
    assert r.params["fsync_mode"] == mode and r.params["min_bytes_written"] == 256 * KiB
    assert list(tmp_path.iterdir()) == []  # the test file is removed


def test_disk_write_is_bounded_in_time(tmp_path) -> None:
    r = measure_disk_write(tmp_path, 4 * KiB, 1 << 30, "each-fsync", repeats=1, max_seconds=0.2)
    assert r.params["min_bytes_written"] < 1 << 30


def test_disk_write_rejects_unknown_mode(tmp_path) -> None:
    with pytest.raises(ValueError):
        measure_disk_write(tmp_path, 4 * KiB, 8 * KiB, "sometimes")


def test_tcp_loopback() -> None:
    r = measure_tcp_loopback(64 * KiB, duration=0.2, repeats=1)
    assert r.figure > 0 and r.name == "tcp-loopback/64KiB"


def test_cli_prints_a_table_and_writes_results(tmp_path, capsys) -> None:
    out = tmp_path / "limits.json"
    argv = ["--dir", str(tmp_path), "--total-mib", "1", "--chunks", "64K", "--repeats", "1"]
    assert main([*argv, "--tcp-seconds", "0.2", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "disk-write/64KiB/each-fdatasync" in text and "tcp-loopback/1MiB" in text
    assert out.exists()

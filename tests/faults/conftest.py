"""The reliability suite's fixtures and its report: each test records one row
through ``fault_report``; the session prints the table at the end."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.faults.disk import mounted_tmpfs
from tests.faults.report import Row, append_row, load_rows, render_text, results_path


def _path(config: pytest.Config) -> Path:
    return results_path(Path(config.rootpath))


def pytest_sessionstart(session: pytest.Session) -> None:
    # The file holds the latest session's rows only.
    _path(session.config).unlink(missing_ok=True)


@pytest.fixture
def fault_report(request: pytest.FixtureRequest) -> Callable[..., Row]:
    """``fault_report(scenario, runs=..., acknowledged=..., lost=..., duplicates=...,
    crashes=..., **figures)`` adds this test's row to the report."""
    path = _path(request.config)

    def record(
        scenario: str,
        *,
        runs: int = 1,
        acknowledged: int = 0,
        lost: int = 0,
        duplicates: int = 0,
        crashes: int = 0,
        **figures: object,
    ) -> Row:
        row = Row(
            scenario,
            request.node.nodeid,
            runs,
            acknowledged,
            lost,
            duplicates,
            crashes,
            dict(figures),
        )
        append_row(path, row)
        return row

    return record


@pytest.fixture
def small_disk(tmp_path: Path):
    """A small tmpfs mounted as the broker's data directory (its log and ready
    files live one level up, on the real disk); see :mod:`tests.faults.disk`."""
    with mounted_tmpfs(tmp_path / "data") as mount:
        yield mount


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    rows = load_rows(_path(config))
    if not rows:
        return
    terminalreporter.write_sep("=", "reliability report")
    terminalreporter.write_line(render_text(rows))

"""The reliability report.

Every fault test adds one row (scenario, runs, records acknowledged, lost,
duplicates, broker crashes, figures) to a JSON-lines file as soon as it has
counted, before it asserts, so a failing run still shows its numbers. The
session prints the table at the end (``conftest.py``); ``python -m
tests.faults.report --doc docs/reliability.md`` writes the last session's
table into the document.

    python -m tests.faults.report [--results FILE] [--doc FILE]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

RESULTS_ENV = "DOVECOTE_FAULT_RESULTS"
DEFAULT_RESULTS = Path("build") / "faults.jsonl"
DOC_BEGIN = "<!-- figures:begin -->"
DOC_END = "<!-- figures:end -->"
COLUMNS = ("scenario", "runs", "acknowledged", "lost", "duplicates", "crashes", "figures")


@dataclass
class Row:
    scenario: str
    test: str = ""
    runs: int = 0
    acknowledged: int = 0
    lost: int = 0
    duplicates: int = 0
    crashes: int = 0
    figures: dict[str, Any] = field(default_factory=dict)


def results_path(root: Path | None = None) -> Path:
    """Where rows go: ``$DOVECOTE_FAULT_RESULTS`` or ``build/faults.jsonl``."""
    configured = os.environ.get(RESULTS_ENV)
    if configured:
        return Path(configured)
    return (root or Path.cwd()) / DEFAULT_RESULTS


def append_row(path: Path, row: Row) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(asdict(row), sort_keys=True) + "\n")


def load_rows(path: Path) -> list[Row]:
    if not path.exists():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            rows.append(Row(**json.loads(line)))
    return rows


def merge(rows: list[Row]) -> list[Row]:
    """One row per scenario, in the order scenarios first appear: counts add up."""
    merged: dict[str, Row] = {}
    for row in rows:
        into = merged.setdefault(row.scenario, Row(row.scenario))
        into.runs += row.runs
        into.acknowledged += row.acknowledged
        into.lost += row.lost
        into.duplicates += row.duplicates
        into.crashes += row.crashes
        into.figures.update(row.figures)
    return list(merged.values())


def _figures(figures: dict[str, Any]) -> str:
    return ", ".join(f"{k}={_fmt(v)}" for k, v in figures.items())


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def _cells(row: Row) -> list[str]:
    return [
        row.scenario,
        str(row.runs),
        str(row.acknowledged),
        str(row.lost),
        str(row.duplicates),
        str(row.crashes),
        _figures(row.figures),
    ]


def render_text(rows: list[Row]) -> str:
    """A plain aligned table for the terminal."""
    table = [list(COLUMNS)] + [_cells(r) for r in merge(rows)]
    widths = [max(len(line[i]) for line in table) for i in range(len(COLUMNS) - 1)]
    out = []
    for line in table:
        cells = [
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(line[:-1], widths, strict=True))
        ]
        out.append("  ".join([*cells, line[-1]]).rstrip())
    return "\n".join(out)


def render_markdown(rows: list[Row]) -> str:
    lines = [
        "| " + " | ".join(COLUMNS) + " |",
        "|" + "|".join(["---"] + ["---:"] * (len(COLUMNS) - 2) + ["---"]) + "|",
    ]
    lines += ["| " + " | ".join(_cells(r)) + " |" for r in merge(rows)]
    return "\n".join(lines)


def totals(rows: list[Row]) -> Row:
    total = Row("total")
    for row in rows:
        total.runs += row.runs
        total.acknowledged += row.acknowledged
        total.lost += row.lost
        total.duplicates += row.duplicates
        total.crashes += row.crashes
    return total


def update_doc(doc: Path, rows: list[Row], command: str) -> None:
    """Replace the figures block of ``doc`` with this table, the command and the date."""
    text = doc.read_text(encoding="utf-8")
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    block = (
        f"{DOC_BEGIN}\nMeasured {stamp} with `{command}`"
        f" (Python {sys.version.split()[0]}, {os.cpu_count()} cores):\n\n"
        f"{render_markdown(rows)}\n{DOC_END}"
    )
    pattern = re.compile(re.escape(DOC_BEGIN) + ".*?" + re.escape(DOC_END), re.S)
    if not pattern.search(text):
        raise SystemExit(f"{doc} has no {DOC_BEGIN} ... {DOC_END} block")
    doc.write_text(pattern.sub(lambda _m: block, text), encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--results", type=Path, default=None)
    parser.add_argument("--doc", type=Path, help="write the table into this Markdown file")
    parser.add_argument("--command", default="make faults", help="command named in the doc")
    args = parser.parse_args(argv)
    rows = load_rows(args.results or results_path())
    if not rows:
        print("no fault results recorded", file=sys.stderr)
        return 1
    print(render_text(rows))
    if args.doc:
        update_doc(args.doc, rows, args.command)
    return 0


if __name__ == "__main__":
    sys.exit(main())

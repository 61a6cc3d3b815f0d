"""Helpers every benchmark workload shares, so their figures are comparable.

Dovecote's figures are only ever published next to a peer's figure from the
same run, as a ratio. That needs every workload to take medians the same way,
compute percentiles the same way and write the same record shape; this module
is that single definition.
"""

from __future__ import annotations

import json
import math
import os
import platform
import socket
import statistics
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

#: Where result files go; BENCH_RESULTS_DIR moves them (the orchestrator's test does).
RESULTS_DIR = Path(
    os.environ.get("BENCH_RESULTS_DIR") or Path(__file__).resolve().parent / "results"
)

#: One id for every result written by this process, so a report can pair a
#: Dovecote figure with the peer figure measured in the same run. Set
#: BENCH_RUN_ID to share it across several processes of one run.
RUN_ID = (
    os.environ.get("BENCH_RUN_ID") or time.strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6]
)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago on ``host``.

    The kernel picks it (bind to port 0); there is a small window in which
    another process could take it, which is acceptable for a benchmark box.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


# --- medians and spread -------------------------------------------------------


@dataclass(frozen=True)
class Stats:
    """Median of repeats with the spread around it (min/max and quartiles)."""

    median: float
    min: float
    max: float
    q1: float
    q3: float
    n: int
    samples: tuple[float, ...] = ()

    @property
    def iqr(self) -> float:
        return self.q3 - self.q1

    def spread(self) -> dict[str, float]:
        """The spread as stored in a result record."""
        return {"min": self.min, "max": self.max, "q1": self.q1, "q3": self.q3}


def summarize(samples: Iterable[float]) -> Stats:
    """Median, min/max and quartiles of ``samples`` (at least one)."""
    values = sorted(float(v) for v in samples)
    if not values:
        raise ValueError("summarize() needs at least one sample")
    if len(values) == 1:
        q1 = q3 = values[0]
    else:
        q1, _, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return Stats(
        median=statistics.median(values),
        min=values[0],
        max=values[-1],
        q1=q1,
        q3=q3,
        n=len(values),
        samples=tuple(values),
    )


def repeat(fn: Callable[[], float], repeats: int = 5, warmup: int = 0) -> Stats:
    """Run ``fn`` ``warmup + repeats`` times; summarize the last ``repeats`` figures.

    ``fn`` returns the figure of one run (a rate, a duration, ...), so the
    caller decides what is measured and this helper only decides how runs
    are combined.
    """
    if repeats < 1:
        raise ValueError("repeats must be >= 1")
    for _ in range(warmup):
        fn()
    return summarize(fn() for _ in range(repeats))


class Timer:
    """``with Timer() as t: ...`` then ``t.seconds`` / ``t.ns``: monotonic wall time."""

    def __enter__(self) -> Timer:
        self.ns = 0
        self._start = time.perf_counter_ns()
        return self

    def __exit__(self, *exc: object) -> None:
        self.ns = time.perf_counter_ns() - self._start

    @property
    def seconds(self) -> float:
        return self.ns / 1e9


# --- latency percentiles --------------------------------------------------------


@dataclass(frozen=True)
class Latency:
    """Latency percentiles in nanoseconds (nearest-rank, no interpolation).

    p999 is only meaningful with at least 1000 samples; ``count`` is kept so a
    report can say so.
    """

    count: int
    p50: int
    p99: int
    p999: int
    max: int

    def as_ms(self) -> dict[str, float]:
        return {k: getattr(self, k) / 1e6 for k in ("p50", "p99", "p999", "max")}


def percentile(sorted_ns: Sequence[int], q: float) -> int:
    """Nearest-rank percentile ``q`` (0..100) of an already sorted sequence."""
    if not sorted_ns:
        raise ValueError("percentile of no samples")
    # Exact arithmetic: 99.9 / 100 * 1000 is 999.0000000000001 in floats.
    rank = max(1, math.ceil(Fraction(str(q)) * len(sorted_ns) / 100))
    return int(sorted_ns[min(rank, len(sorted_ns)) - 1])


def latency_percentiles(samples_ns: Iterable[int]) -> Latency:
    """p50/p99/p999/max of latencies given in nanoseconds."""
    values = sorted(samples_ns)
    return Latency(
        count=len(values),
        p50=percentile(values, 50),
        p99=percentile(values, 99),
        p999=percentile(values, 99.9),
        max=int(values[-1]) if values else 0,
    )


# --- result records ---------------------------------------------------------------


@dataclass
class Result:
    """One published figure: what was measured, on which system, how it was run.

    ``system`` is "dovecote" or a peer name ("tansu", "rabbitmq", "nats",
    "redis-durable", ..., or "machine" for physical limits). ``spread`` holds
    min/max/q1/q3 of the repeats. ``command`` is how to reproduce the figure.
    ``params`` carries anything else a report needs (sizes, modes, versions).
    """

    name: str
    system: str
    figure: float
    unit: str
    repeats: int
    spread: dict[str, float]
    command: str
    params: dict[str, Any] = field(default_factory=dict)
    run_id: str = RUN_ID
    timestamp: str = field(default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    host: str = field(default_factory=platform.node)

    @classmethod
    def from_stats(
        cls, name: str, system: str, stats: Stats, unit: str, command: str, **params: Any
    ) -> Result:
        return cls(
            name=name,
            system=system,
            figure=stats.median,
            unit=unit,
            repeats=stats.n,
            spread=stats.spread(),
            command=command,
            params=params,
        )


def append_results(results: Iterable[Result], path: str | Path) -> Path:
    """Append ``results`` to a JSON array file (created if missing).

    A bare file name lands in bench/results/. The file is rewritten through a
    temporary file and a rename, so an interrupted run never leaves half a
    JSON document behind for the report generator.
    """
    target = Path(path)
    if not target.is_absolute() and target.parent == Path("."):
        target = RESULTS_DIR / target
    target.parent.mkdir(parents=True, exist_ok=True)
    existing: list[Any] = []
    if target.exists() and target.stat().st_size:
        existing = json.loads(target.read_text())
        if not isinstance(existing, list):
            raise ValueError(f"{target} does not hold a JSON array")
    existing.extend(asdict(r) for r in results)
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_text(json.dumps(existing, indent=2) + "\n")
    os.replace(tmp, target)
    return target


def load_results(path: str | Path) -> list[Result]:
    """Read back a results file written by :func:`append_results`."""
    return [Result(**row) for row in json.loads(Path(path).read_text())]

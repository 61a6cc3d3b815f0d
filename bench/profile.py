"""Where the Dovecote broker spends its time under the Kafka workloads (py-spy).

    python -m bench.profile [--quick] [--seconds 8]

For each scenario a fresh broker is started, ``py-spy record -f raw``
samples it (all threads, idle samples left out) while the workload runs,
and the raw stacks are aggregated per function: the share of samples in
which a function was itself running (self) and in which it was on the
stack at all (total). The top entries go to bench/results/profile.json,
the raw stacks to bench/results/profile-<run>-<scenario>.txt, so the next
speed-up can be aimed at a measured cost.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from bench.common import RESULTS_DIR, RUN_ID, Result, append_results
from bench.drivers import Driver, make_driver
from bench.procstat import broker_pids
from bench.streams import KIB, new_stream, produce_for
from bench.targets import DOVECOTE, Target, select

COMMAND = "python -m bench.profile " + " ".join(sys.argv[1:])
TOP = 12


Work = Callable[[Driver, str, float, object], None]  # (driver, mode, seconds, prepared)


@dataclass(frozen=True)
class Scenario:
    name: str
    mode: str  # which Dovecote target (bench/targets.py)
    describe: str
    work: Work
    prepare: Callable[[Driver, str], object] | None = None  # runs before sampling starts


def _produce(size: int, partitions: int) -> Work:
    def work(driver: Driver, mode: str, seconds: float, _prepared: object) -> None:
        deadline = time.monotonic() + seconds
        value = os.urandom(size)
        while time.monotonic() < deadline:  # one topic per round, so logs stay small
            stream = new_stream("prof")
            driver.create(stream, partitions)
            producer = driver.producer(stream, partitions, mode)  # type: ignore[arg-type]
            try:
                produce_for(producer, value, 10_000_000, min(2.0, seconds), driver.batch)
            finally:
                producer.close()
            driver.drop(stream, partitions)

    return work


def _fill(driver: Driver, mode: str) -> object:
    stream = new_stream("prof")
    driver.create(stream, 1)
    producer = driver.producer(stream, 1, mode)  # type: ignore[arg-type]
    try:
        sent, _ = produce_for(producer, os.urandom(KIB), 200_000, 3.0, driver.batch)
    finally:
        producer.close()
    return stream, sent


def _consume(driver: Driver, mode: str, seconds: float, prepared: object) -> None:
    stream, sent = prepared  # type: ignore[misc]
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        driver.read(stream, 1, sent, 30)


SCENARIOS = (
    Scenario(
        "produce durable",
        "durable",
        "Produce 1 KiB records, one partition, acks=all, `--flush ack` (confluent-kafka).",
        _produce(KIB, 1),
    ),
    Scenario(
        "produce fire-and-forget",
        "fire-and-forget",
        "Produce 100 B records over 8 partitions, acks=0, `--flush never`.",
        _produce(100, 8),
    ),
    Scenario(
        "consume",
        "durable",
        "Read 1 KiB records of one partition from offset 0, over and over (assign, no group).",
        _consume,
        _fill,
    ),
)

_LINE = re.compile(r"^(?P<stack>.*) (?P<count>\d+)$")
_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^():]*)(?::\d+)?\)$")


#: Frames whose self time is really C code below them, named for what it is.
C_CODE = {
    "Runner.run (asyncio/runners.py)": "event loop in C: uvloop polling, socket reads "
    "and writes, callback dispatch (Runner.run)",
}


#: Frames on every stack (start-up, the loop runner, thread bootstrap): no news in "total".
SCAFFOLD = (
    "<frozen runpy>",
    "dovecote/__main__.py",
    "dovecote/cli/",
    "asyncio/runners.py",
    "(threading.py)",
    "_worker (concurrent/futures/thread.py)",
)


def short_frame(frame: str) -> str:
    """``func (path/to/file.py:123)`` -> ``func (dovecote/kafka/server.py)``."""
    m = _FRAME.match(frame)
    if not m:
        return frame
    path = m["file"]
    for marker in ("site-packages/", "/lib/python3.", "/dovecote/", "/bench/"):
        i = path.find(marker)
        if i < 0:
            continue
        if marker == "site-packages/":
            path = path[i + len(marker) :]
        elif marker == "/lib/python3.":
            path = path[i + len(marker) :].split("/", 1)[-1]  # stdlib: drop "11/"
        else:
            path = path[i + 1 :]
        break
    return f"{m['func']} ({path})"


def aggregate(lines: Iterable[str]) -> tuple[int, Counter[str], Counter[str]]:
    """(samples, self counts, total counts) per function from py-spy raw output."""
    samples, own, total = 0, Counter[str](), Counter[str]()
    for line in lines:
        m = _LINE.match(line.rstrip("\n"))
        if not m:
            continue
        count = int(m["count"])
        frames = [
            short_frame(f)
            for f in m["stack"].split(";")
            if f and not f.startswith(("thread (", "process "))
        ]
        if not frames:
            continue
        samples += count
        own[C_CODE.get(frames[-1], frames[-1])] += count
        for frame in set(frames):
            if not any(part in frame for part in SCAFFOLD):
                total[frame] += count
    return samples, own, total


def record(pid: int, out: Path, run: Callable[[], None], rate: int = 100) -> None:
    """Run ``run()`` while py-spy samples ``pid`` into ``out`` (raw format)."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    proc = subprocess.Popen(
        [
            spy,
            "record",
            "--pid",
            str(pid),
            "--format",
            "raw",
            "--rate",
            str(rate),
            "--output",
            str(out),
            "--threads",
            "--nonblocking",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(0.5)  # let py-spy attach
        if proc.poll() is not None:
            raise RuntimeError(f"py-spy exited: {proc.stderr.read() if proc.stderr else ''}")
        run()
    finally:
        proc.send_signal(signal.SIGINT)  # py-spy writes its output on Ctrl-C
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def profile(scenario: Scenario, target: Target, seconds: float) -> list[Result]:
    out = RESULTS_DIR / f"profile-{RUN_ID}-{scenario.name.replace(' ', '-')}.txt"
    out.parent.mkdir(parents=True, exist_ok=True)
    with target.start() as info:
        pids = broker_pids(info)
        driver = make_driver(target.driver, info.address)
        try:
            prepared = scenario.prepare(driver, target.mode) if scenario.prepare else None
            record(pids[0], out, lambda: scenario.work(driver, target.mode, seconds, prepared))
        finally:
            driver.close()
    samples, own, total = aggregate(out.read_text().splitlines() if out.exists() else [])
    results = []
    for kind, counter in (("self", own), ("total", total)):
        for rank, (frame, count) in enumerate(counter.most_common(TOP), 1):
            results.append(
                Result(
                    name=f"profile {scenario.name}",
                    system=DOVECOTE,
                    figure=100 * count / samples,
                    unit="% of samples",
                    repeats=1,
                    spread={},
                    command=COMMAND,
                    params={
                        "scenario": scenario.name,
                        "describe": scenario.describe,
                        "kind": kind,
                        "rank": rank,
                        "frame": frame,
                        "samples": samples,
                        "raw": out.name,
                    },
                )
            )
    print(f"{scenario.name}: {samples} samples -> {out.name}")
    for r in results:
        if r.params["kind"] == "self" and r.params["rank"] <= 8:
            print(f"   self {r.figure:5.1f}%  {r.params['frame']}")
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.profile",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="2 s per scenario")
    parser.add_argument("--seconds", type=float, default=8.0, help="sampling time per scenario")
    parser.add_argument("--out", default="profile.json", help="results file (bench/results/)")
    args = parser.parse_args(argv)
    seconds = 2.0 if args.quick else args.seconds
    targets = {t.mode: t for t in select([DOVECOTE])}
    results = []
    for scenario in SCENARIOS:
        results += profile(scenario, targets[scenario.mode], seconds)
    print(f"{len(results)} results appended to {append_results(results, args.out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Storage engine throughput, side by side with raw file I/O of the same bytes.

    python -m bench.storage [--total-mib 256] [--repeats 5] [--dir DIR]

For 1 KiB records in batches of 16 KiB to 1 MiB it measures, in one run:
- append through the core (validation + CRC + offset assignment + write),
  flush.policy=never, against plain ``os.write`` of the same batches;
- durable append (flush.policy=ack, group commit) with 64 concurrent
  appenders, against a raw write+fdatasync loop (one fsync per batch, and one
  per 64 batches: the pattern one group-commit round produces, so the disk's
  own ceiling for it) and against Dovecote's own no-fsync rate;
- reading the log back from offset 0 through ``Log.read`` against a plain
  sequential read of the same file.
Each figure is the median of ``--repeats`` runs (spread = min..max); the
figures are appended as result records to bench/results/storage.json.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench.common import Result, append_results
from dovecote.core.broker import BrokerCore
from dovecote.core.config import BrokerConfig
from dovecote.storage.batch import Record, build_batch

RECORD = 1024
BATCH_SIZES = [16 << 10, 64 << 10, 256 << 10, 1 << 20]
CONCURRENCY = 64


def make_batches(batch_bytes: int, total: int) -> list[bytes]:
    per_batch = max(1, batch_bytes // (RECORD + 16))
    template = build_batch([Record(os.urandom(RECORD)) for _ in range(per_batch)])
    return [template] * max(1, total // len(template))


def median_rate(samples: list[float]) -> tuple[float, float, float]:
    return statistics.median(samples), min(samples), max(samples)


def timed(fn: Callable[[], int]) -> float:
    """MiB/s of one run of ``fn`` (which returns bytes moved)."""
    start = time.perf_counter()
    moved = fn()
    return moved / (time.perf_counter() - start) / (1 << 20)


# --- raw baselines -----------------------------------------------------------


def raw_write(path: Path, batches: list[bytes], sync_every: int = 0) -> int:
    """Plain sequential writes; with ``sync_every`` an fdatasync after every
    that many batches (1: after each; CONCURRENCY: what one group-commit
    round of 64 appenders covers, the physical ceiling of that pattern)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        for i, batch in enumerate(batches, 1):
            os.write(fd, batch)
            if sync_every and i % sync_every == 0:
                os.fdatasync(fd)
        if sync_every:
            os.fdatasync(fd)
    finally:
        os.close(fd)
    return sum(map(len, batches))


def raw_read(path: Path) -> int:
    fd = os.open(path, os.O_RDONLY)
    total = 0
    try:
        while chunk := os.read(fd, 1 << 20):
            total += len(chunk)
    finally:
        os.close(fd)
    return total


# --- Dovecote ----------------------------------------------------------------


async def dovecote_append(data_dir: Path, batches: list[bytes], policy: str, writers: int) -> float:
    core = BrokerCore(BrokerConfig.load(env={}, overrides={"data_dir": data_dir, "flush": policy}))
    await core.start()
    partition = (await core.create_topic("bench", 1)).partitions[0]
    queue = iter(batches)

    async def writer() -> None:
        for batch in queue:
            await partition.append(batch)

    start = time.perf_counter()
    await asyncio.gather(*(writer() for _ in range(writers)))
    elapsed = time.perf_counter() - start
    await core.stop()
    return sum(map(len, batches)) / elapsed / (1 << 20)


async def dovecote_read(data_dir: Path) -> float:
    core = BrokerCore(BrokerConfig.load(env={}, overrides={"data_dir": data_dir}))
    await core.start()
    partition = core.get_topic("bench").partitions[0]
    log = partition.log
    start = time.perf_counter()
    offset, moved = 0, 0
    while offset < log.high_watermark:
        chunk = log.read(offset, 1 << 20)
        data = chunk.read()
        moved += len(data)
        # The next fetch starts after the last whole batch, as a client's would.
        last = chunk.segment.find(offset)
        position = chunk.position
        end = chunk.position + len(data)
        for pos, info in chunk.segment.iter_headers(position, end):
            if pos + info.size <= end:
                last = (pos, info)
        offset = last[1].base_offset + last[1].last_offset_delta + 1
    elapsed = time.perf_counter() - start
    await core.stop()
    return moved / elapsed / (1 << 20)


def run(total: int, repeats: int, base: Path) -> list[dict]:
    results = []
    for batch_bytes in BATCH_SIZES:
        batches = make_batches(batch_bytes, total)
        row: dict[str, object] = {"batch_bytes": batch_bytes, "batch_count": len(batches)}
        samples: dict[str, list[float]] = {
            k: []
            for k in (
                "raw",
                "append",
                "raw_sync",
                "raw_group",
                "append_durable",
                "raw_read",
                "read",
            )
        }
        for _ in range(repeats):
            work = Path(tempfile.mkdtemp(dir=base))
            try:
                samples["raw"].append(
                    timed(lambda w=work, b=batches: raw_write(w / "raw.log", b, False))
                )
                samples["append"].append(
                    asyncio.run(dovecote_append(work / "a", batches, "never", 1))
                )
                samples["raw_read"].append(timed(lambda w=work: raw_read(w / "raw.log")))
                samples["read"].append(asyncio.run(dovecote_read(work / "a")))
                # Durable runs use fewer bytes: fsync-bound, and the point is the ratio.
                durable = batches[: max(CONCURRENCY * 2, len(batches) // 4)]
                samples["raw_sync"].append(
                    timed(lambda w=work, d=durable: raw_write(w / "s.log", d, 1))
                )
                samples["raw_group"].append(
                    timed(lambda w=work, d=durable: raw_write(w / "g.log", d, CONCURRENCY))
                )
                samples["append_durable"].append(
                    asyncio.run(dovecote_append(work / "d", durable, "ack", CONCURRENCY))
                )
            finally:
                shutil.rmtree(work, ignore_errors=True)
        for key, values in samples.items():
            row[key] = median_rate(values)
        results.append(row)
    return results


def report(results: list[dict], repeats: int) -> str:
    lines = [
        f"| batch | raw write | Dovecote append | ratio | raw write+fdatasync each | raw write, fdatasync per {CONCURRENCY} | Dovecote durable (x{CONCURRENCY}) | durable / no-fsync | durable / raw per {CONCURRENCY} | raw read | Dovecote read | ratio |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]

    def fmt(triple) -> str:
        med, lo, hi = triple
        return f"{med:,.0f} ({lo:,.0f}-{hi:,.0f})"

    for row in results:
        raw, app = row["raw"][0], row["append"][0]
        dur = row["append_durable"][0]
        lines.append(
            f"| {row['batch_bytes'] >> 10} KiB | {fmt(row['raw'])} | {fmt(row['append'])} | {app / raw:.2f} "
            f"| {fmt(row['raw_sync'])} | {fmt(row['raw_group'])} | {fmt(row['append_durable'])} | {dur / app:.2f} "
            f"| {dur / row['raw_group'][0]:.2f} "
            f"| {fmt(row['raw_read'])} | {fmt(row['read'])} | {row['read'][0] / row['raw_read'][0]:.2f} |"
        )
    lines.append("")
    lines.append(f"MiB/s, median of {repeats} runs (min-max).")
    return "\n".join(lines)


#: What each storage.py figure is, for the result records: (system, description).
FIGURES: dict[str, tuple[str, str]] = {
    "raw": ("machine", "raw write"),
    "append": ("dovecote", "append, flush=never"),
    "raw_sync": ("machine", "raw write + fdatasync per batch"),
    "raw_group": ("machine", f"raw write + fdatasync per {CONCURRENCY} batches"),
    "append_durable": ("dovecote", f"append, flush=ack, {CONCURRENCY} appenders"),
    "raw_read": ("machine", "raw read"),
    "read": ("dovecote", "read"),
}


def as_results(results: list[dict], repeats: int, command: str) -> list[Result]:
    """The run's figures as shared result records (name ``storage <figure>``)."""
    records = []
    for row in results:
        for key, (system, text) in FIGURES.items():
            med, lo, hi = row[key]
            records.append(
                Result(
                    name=f"storage {key}",
                    system=system,
                    figure=med,
                    unit="MiB/s",
                    repeats=repeats,
                    spread={"min": lo, "max": hi},
                    command=command,
                    params={"batch_bytes": row["batch_bytes"], "what": text},
                )
            )
    return records


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--total-mib", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--dir", type=Path, default=None, help="where to write (default: a temp dir)"
    )
    parser.add_argument("--json", default="storage.json", help="results file (bench/results/)")
    args = parser.parse_args()
    base = args.dir or Path(tempfile.mkdtemp(prefix="dovecote-bench-"))
    base.mkdir(parents=True, exist_ok=True)
    results = run(args.total_mib << 20, args.repeats, base)
    print(report(results, args.repeats))
    command = "python -m bench.storage " + " ".join(sys.argv[1:])
    print(f"appended to {append_results(as_results(results, args.repeats, command), args.json)}")


if __name__ == "__main__":
    main()

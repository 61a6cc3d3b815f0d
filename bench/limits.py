"""The machine's physical limits, measured in the same run as the broker figures.

A broker figure means little alone: "180 MiB/s durable" is good on a disk
that fsyncs at 200 MiB/s and poor on one that does 2 GiB/s. So each
benchmark run also measures, with plain Python and no broker:

- sequential file writes with ``os.write`` in 16 KiB / 64 KiB / 1 MiB chunks,
  without fsync, with one fsync at the end, and with fsync (or fdatasync)
  after every chunk, which is the ceiling for a broker that syncs per batch;
- loopback TCP throughput, one sender and one receiver process, 1 MiB sends.

Each figure is the median of repeats with min/max and quartiles::

    python -m bench.limits [--dir DIR] [--total-mib 256] [--repeats 5] [--out limits.json]

Measure ``--dir`` on the same file system the brokers write to.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import socket
import struct
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from bench.common import Result, append_results, summarize

MiB = 1 << 20
KiB = 1 << 10
FSYNC_MODES = ("none", "end", "each-fsync", "each-fdatasync")
DEFAULT_CHUNKS = (16 * KiB, 64 * KiB, 1 * MiB)


def _write_once(
    path: Path, chunk: int, total: int, fsync_mode: str, max_seconds: float
) -> tuple[int, int, float]:
    """Write ``total`` bytes (or as much as fits in ``max_seconds``) to a new file.

    Returns (bytes written, chunks written, seconds). Timed from the first
    write to the file's close, including the fsync(s) the mode asks for.
    The time bound matters for per-chunk fsync with small chunks, which can
    run at only a few hundred chunks per second.
    """
    buf = memoryview(os.urandom(chunk))
    per_chunk = {"each-fsync": os.fsync, "each-fdatasync": os.fdatasync}.get(fsync_mode)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    written = chunks = 0
    try:
        start = time.perf_counter()
        deadline = start + max_seconds
        while written < total:
            view = buf[: min(chunk, total - written)]
            while view:
                view = view[os.write(fd, view) :]
            written += min(chunk, total - written)
            chunks += 1
            if per_chunk is not None:
                per_chunk(fd)
            if time.perf_counter() >= deadline:
                break
        if fsync_mode == "end":
            os.fsync(fd)
    finally:
        os.close(fd)
        elapsed = time.perf_counter() - start
        path.unlink(missing_ok=True)
    return written, chunks, elapsed


def measure_disk_write(
    dir: str | Path,
    chunk: int,
    total: int,
    fsync_mode: str,
    repeats: int = 5,
    max_seconds: float = 3.0,
) -> Result:
    """Sequential write throughput (MiB/s) into a fresh file in ``dir``.

    ``fsync_mode``: "none" (page cache only), "end" (one fsync before close),
    "each-fsync" / "each-fdatasync" (after every chunk). ``params`` also
    carries the median syncs (chunks) per second and the bytes actually
    written when ``max_seconds`` cut a repeat short.
    """
    if fsync_mode not in FSYNC_MODES:
        raise ValueError(f"fsync_mode must be one of {FSYNC_MODES}")
    if chunk <= 0 or total < chunk or repeats < 1:
        raise ValueError("need chunk > 0, total >= chunk and repeats >= 1")
    directory = Path(dir)
    path = directory / f".dovecote-limits-{os.getpid()}.tmp"
    rates: list[float] = []
    ops: list[float] = []
    written_min = total
    for _ in range(repeats):
        written, chunks, seconds = _write_once(path, chunk, total, fsync_mode, max_seconds)
        rates.append(written / seconds / MiB)
        ops.append(chunks / seconds)
        written_min = min(written_min, written)
    stats = summarize(rates)
    return Result.from_stats(
        f"disk-write/{_size(chunk)}/{fsync_mode}",
        "machine",
        stats,
        "MiB/s",
        command=_command(),
        chunk=chunk,
        total=total,
        fsync_mode=fsync_mode,
        dir=str(directory.resolve()),
        max_seconds=max_seconds,
        min_bytes_written=written_min,
        writes_per_s=summarize(ops).median,
    )


# --- loopback TCP ------------------------------------------------------------------


def _receiver(conn: multiprocessing.connection.Connection, buf_size: int, timeout: float) -> None:
    """Child process: accept one connection, drain it, reply with the byte count."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen(1)
        srv.settimeout(timeout)
        conn.send(srv.getsockname()[1])
        sock, _ = srv.accept()
        with sock:
            sock.settimeout(timeout)
            buf = bytearray(buf_size)
            total = 0
            while n := sock.recv_into(buf):
                total += n
            sock.sendall(struct.pack(">Q", total))


def _tcp_once(send_size: int, duration: float) -> float:
    """One sender (this process) to one receiver (a child process): MiB/s received."""
    ctx = multiprocessing.get_context("spawn")  # no fork of a threaded parent
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=_receiver, args=(child, send_size, duration + 30), daemon=True)
    proc.start()
    try:
        if not parent.poll(30):
            raise TimeoutError("loopback receiver did not start")
        port = parent.recv()
        payload = os.urandom(send_size)
        max_sends = int(duration * 100 * 1024)  # far above any loopback rate: a count bound
        with socket.create_connection(("127.0.0.1", port), timeout=duration + 30) as sock:
            start = time.perf_counter()
            deadline = start + duration
            for _ in range(max_sends):
                sock.sendall(payload)
                if time.perf_counter() >= deadline:
                    break
            sock.shutdown(socket.SHUT_WR)
            reply = b""
            while len(reply) < 8:
                part = sock.recv(8 - len(reply))
                if not part:
                    raise ConnectionError("receiver closed before reporting")
                reply += part
            elapsed = time.perf_counter() - start
        received = struct.unpack(">Q", reply)[0]
        return received / elapsed / MiB
    finally:
        proc.join(10)
        if proc.is_alive():
            proc.kill()
            proc.join(5)


def measure_tcp_loopback(send_size: int = MiB, duration: float = 2.0, repeats: int = 5) -> Result:
    """Loopback TCP throughput (MiB/s): one sender, one receiver process, ``send_size`` sends."""
    stats = summarize(_tcp_once(send_size, duration) for _ in range(repeats))
    return Result.from_stats(
        f"tcp-loopback/{_size(send_size)}",
        "machine",
        stats,
        "MiB/s",
        command=_command(),
        send_size=send_size,
        duration=duration,
    )


# --- CLI -----------------------------------------------------------------------------


def _size(n: int) -> str:
    return f"{n // MiB}MiB" if n % MiB == 0 else f"{n // KiB}KiB"


def _parse_size(text: str) -> int:
    units = {"K": KiB, "M": MiB, "G": 1 << 30}
    suffix = text[-1].upper()
    return int(text[:-1]) * units[suffix] if suffix in units else int(text)


def _command() -> str:
    return "python -m bench.limits " + " ".join(sys.argv[1:]) if sys.argv else ""


def _row(r: Result) -> str:
    spread = f"{r.spread['min']:.0f}..{r.spread['max']:.0f}"
    ops = r.params.get("writes_per_s")
    ops_text = (
        f"{ops:10.0f}" if ops is not None and "each" in str(r.params.get("fsync_mode")) else ""
    )
    return f"{r.name:<34} {r.figure:10.1f} {spread:>15} {r.unit:<6} {ops_text}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.limits", description=__doc__)
    parser.add_argument("--dir", default=tempfile.gettempdir(), help="where to write test files")
    parser.add_argument("--total-mib", type=int, default=256, help="bytes per write repeat")
    parser.add_argument("--chunks", nargs="+", default=["16K", "64K", "1M"], help="write sizes")
    parser.add_argument("--modes", nargs="+", default=list(FSYNC_MODES), choices=FSYNC_MODES)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--max-seconds", type=float, default=3.0, help="time cap per write repeat")
    parser.add_argument("--tcp-seconds", type=float, default=2.0, help="duration per TCP repeat")
    parser.add_argument("--no-disk", action="store_true")
    parser.add_argument("--no-tcp", action="store_true")
    parser.add_argument(
        "--out", help="append results to this JSON file (bare name: bench/results/)"
    )
    args = parser.parse_args(argv)

    results: list[Result] = []
    print(f"{'figure':<34} {'median':>10} {'min..max':>15} {'unit':<6} {'syncs/s':>10}")
    if not args.no_disk:
        for chunk in map(_parse_size, args.chunks):
            for mode in args.modes:
                r = measure_disk_write(
                    args.dir, chunk, args.total_mib * MiB, mode, args.repeats, args.max_seconds
                )
                results.append(r)
                print(_row(r), flush=True)
    if not args.no_tcp:
        r = measure_tcp_loopback(MiB, args.tcp_seconds, args.repeats)
        results.append(r)
        print(_row(r), flush=True)
    print(f"dir={Path(args.dir).resolve()}  repeats={args.repeats}  spread=min..max of repeats")
    if args.out:
        print(f"appended {len(results)} results to {append_results(results, args.out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

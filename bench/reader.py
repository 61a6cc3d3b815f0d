"""A reader in its own process, for end-to-end runs.

End-to-end throughput and latency need a producer and a consumer at once.
In one Python process they would share one interpreter lock and the
consumer's latency would include waits for the producer's turn, so the
consumer runs here, in a child process that stays up for all the runs
against one system. Records carry ``(sequence, send time)`` in their first
16 bytes; both processes read the same clock (CLOCK_MONOTONIC).
"""

from __future__ import annotations

import multiprocessing
import struct
import time
from array import array
from dataclasses import dataclass
from multiprocessing.connection import Connection

from bench.drivers import make_driver

STAMP = struct.Struct(">qq")


def stamped(seq: int, sent_ns: int, pad: bytes) -> bytes:
    """A record value: sequence number and send time, padded to the record size."""
    return STAMP.pack(seq, sent_ns) + pad


@dataclass
class ReadResult:
    count: int
    last_ns: int  # when the last record arrived (0 if none)
    latencies_ns: array  # receive - send, for records with sequence >= warmup


def _serve(conn: Connection, kind: str, address: str) -> None:
    """Child process: answer ``read`` commands until told to stop (None)."""
    driver = make_driver(kind, address)
    try:
        while (command := conn.recv()) is not None:
            _, stream, partitions, count, timeout, warmup = command
            latencies = array("q")
            last = [0]

            def on_values(values, latencies=latencies, last=last, warmup=warmup) -> None:
                now = time.monotonic_ns()
                last[0] = now
                unpack = STAMP.unpack_from
                for value in values:
                    seq, sent = unpack(value)
                    if seq >= warmup:
                        latencies.append(now - sent)

            try:
                got = driver.read(
                    stream, partitions, count, timeout, on_values, lambda: conn.send("ready")
                )
                conn.send(("done", got, last[0], latencies.tobytes()))
            except Exception as exc:
                conn.send(("error", f"{type(exc).__name__}: {exc}"))
    finally:
        driver.close()


class ReaderProcess:
    """``with ReaderProcess(kind, address) as r: r.start(...); ...; r.result()``."""

    def __init__(self, kind: str, address: str) -> None:
        ctx = multiprocessing.get_context("spawn")  # no fork of a threaded parent
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_serve, args=(child, kind, address), daemon=True)
        self.timeout = 0.0

    def __enter__(self) -> ReaderProcess:
        self.proc.start()
        return self

    def start(
        self, stream: str, partitions: int, count: int, timeout: float, warmup: int = 0
    ) -> None:
        """Start reading ``stream`` from the beginning; returns once the reader is ready."""
        self.timeout = timeout
        self.conn.send(("read", stream, partitions, count, timeout, warmup))
        reply = self._recv(60)
        if reply != "ready":
            raise RuntimeError(f"reader failed to start: {reply}")

    def result(self) -> ReadResult:
        """Wait (bounded by the read's own timeout) for the read to finish."""
        reply = self._recv(self.timeout + 60)
        if reply[0] != "done":
            raise RuntimeError(f"reader failed: {reply[1]}")
        _, got, last_ns, raw = reply
        latencies = array("q")
        latencies.frombytes(raw)
        return ReadResult(got, last_ns, latencies)

    def _recv(self, timeout: float) -> object:
        if not self.conn.poll(timeout):
            raise TimeoutError(f"reader process silent for {timeout:.0f}s")
        return self.conn.recv()

    def __exit__(self, *exc: object) -> None:
        try:
            self.conn.send(None)
        except OSError:
            pass
        self.proc.join(20)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join(5)

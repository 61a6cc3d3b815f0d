from __future__ import annotations

import asyncio

import pytest

from dovecote.storage.batch import Record, build_batch, scan_batches
from dovecote.storage.flush import Flusher
from dovecote.storage.log import Log, LogConfig


def make_batch(n: int = 1, prefix: str = "v", ts: int | None = None, size: int = 0) -> bytes:
    pad = b"x" * size
    return build_batch(
        [Record(f"{prefix}{i}".encode() + pad, key=f"k{i}".encode()) for i in range(n)],
        timestamp=ts,
    )


def append(log: Log, data: bytes, now_ms: int | None = None, visible: bool = True):
    """Append; ``visible`` exposes it at once, as flush policies other than ack do."""
    result = log.append(data, scan_batches(data), now_ms)
    if visible:
        log.mark_written()
    return result


@pytest.fixture
def open_log(tmp_path):
    opened: list[Log] = []

    def _open(config: LogConfig | None = None, clean: bool = True, name: str = "p0") -> Log:
        log, _report = Log.open(tmp_path / name, config or LogConfig(), clean=clean)
        log.mark_written()
        opened.append(log)
        return log

    yield _open
    for log in opened:
        if not log.closed:
            log.close()


def flush(log: Log) -> None:
    async def run() -> None:
        flusher = Flusher()
        await flusher.flush(log)
        flusher.close()

    asyncio.run(run())

"""A flush round with many dirty logs on one file system syncs them with one
syncfs: every waiter is answered, every high watermark moves, rolled segments
and new directories count as synced; a failing syncfs fails every log of the
round and cuts each back to its durable end. Few dirty logs keep fdatasync."""

from __future__ import annotations

import asyncio
import errno

import pytest

from dovecote.storage import flush as flush_module
from dovecote.storage.batch import scan_batches
from dovecote.storage.errors import StorageError
from dovecote.storage.flush import Flusher, syncfs_supported
from dovecote.storage.log import Log, LogConfig

from .conftest import make_batch

pytestmark = pytest.mark.skipif(
    not syncfs_supported(), reason="syncfs with write-back errors needs Linux >= 5.8"
)


def open_logs(tmp_path, n: int) -> list[Log]:
    return [
        Log.open(tmp_path / f"t{i}", LogConfig(segment_bytes=2048), clean=True)[0] for i in range(n)
    ]


def write(log: Log, n: int = 1, prefix: str = "v") -> None:
    data = make_batch(n, prefix=prefix)
    log.append(data, scan_batches(data))


def test_many_dirty_logs_share_one_syncfs(tmp_path, monkeypatch):
    calls = {"syncfs": 0, "files": 0}
    real_fs, real_files = flush_module._sync_filesystem, flush_module._sync_files

    def counting_fs(segments, directory):
        calls["syncfs"] += 1
        return real_fs(segments, directory)

    def counting_files(*args):
        calls["files"] += 1
        return real_files(*args)

    monkeypatch.setattr(flush_module, "_sync_filesystem", counting_fs)
    monkeypatch.setattr(flush_module, "_sync_files", counting_files)
    logs = open_logs(tmp_path, 12)

    async def run() -> None:
        flusher = Flusher(syncfs_min_logs=8)
        for log in logs:
            for i in range(30):  # rolls segments: they must count as synced too
                write(log, 1, prefix=f"r{i}-")
        await asyncio.gather(*(flusher.flush(log) for log in logs))
        assert calls == {"syncfs": 1, "files": 0} and flusher.syncfs_rounds == 1
        for log in logs:
            assert log.high_watermark == 30
            assert len(log.segments) > 1 and not log.unsynced and not log.dir_dirty
            assert all(s.synced_size == s.size for s in log.segments)

        write(logs[0], 2)  # one dirty log: its own fdatasync
        await flusher.flush(logs[0])
        assert calls == {"syncfs": 1, "files": 1}
        assert logs[0].high_watermark == 32
        flusher.close()

    asyncio.run(run())
    for log in logs:
        log.close()


def test_a_failed_syncfs_fails_every_log_of_the_round(tmp_path, monkeypatch):
    logs = open_logs(tmp_path, 8)

    def failing(segments, directory):
        raise OSError(errno.EIO, "Input/output error")

    async def run() -> None:
        flusher = Flusher(syncfs_min_logs=8)
        for log in logs:
            write(log, 2)
        await asyncio.gather(*(flusher.flush(log) for log in logs))
        monkeypatch.setattr(flush_module, "_sync_filesystem", failing)
        for log in logs:
            write(log, 1, prefix="lost-")
        results = await asyncio.gather(
            *(flusher.flush(log) for log in logs), return_exceptions=True
        )
        assert all(isinstance(r, StorageError) for r in results)
        for log in logs:  # cut back to what the first round made durable
            assert log.log_end_offset == 2 and log.high_watermark == 2
        flusher.close()

    asyncio.run(run())
    for log in logs:
        log.close()

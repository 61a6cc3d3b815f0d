"""Writes that fail. A full disk: the append fails with the kernel's own
error, nothing of it stays in the file, and closing still works (indexes
are rebuilt next time). A failed fsync: its waiters fail, and so do appends
queued behind it; the log is cut back to its durable end (the kernel may
drop the dirty pages of a failed writeback and call the next fsync clean,
so nothing past that end can be trusted), and appends carry on from there."""

from __future__ import annotations

import asyncio
import errno
import threading

import pytest

from dovecote.storage import flush as flush_module
from dovecote.storage import segment as segment_module
from dovecote.storage.batch import scan_batches
from dovecote.storage.errors import StorageError
from dovecote.storage.flush import Flusher
from dovecote.storage.log import Log, LogConfig

from .conftest import make_batch


def write(log: Log, n: int = 1, prefix: str = "v") -> int:
    data = make_batch(n, prefix=prefix)
    return log.append(data, scan_batches(data)).base_offset


def test_failed_fsync_fails_waiters_and_cuts_back_to_the_durable_end(tmp_path, monkeypatch):
    log, _ = Log.open(tmp_path / "p0", LogConfig(segment_bytes=2048), clean=True)
    real_sync = flush_module._sync_files
    started, release = threading.Event(), threading.Event()
    fail_next = [False]

    def sync(rolled, active, directory_fd):
        if fail_next[0]:
            fail_next[0] = False
            started.set()
            release.wait(10)
            raise OSError(errno.EIO, "Input/output error")
        return real_sync(rolled, active, directory_fd)

    monkeypatch.setattr(flush_module, "_sync_files", sync)
    truncations = []
    log.on_truncate = lambda: truncations.append(log.log_end_offset)

    async def run() -> None:
        flusher = Flusher()
        assert write(log, 2) == 0
        await flusher.flush(log)
        assert log.high_watermark == 2

        fail_next[0] = True
        for i in range(40):  # enough to roll a segment inside the failing round
            write(log, 1, prefix=f"lost{i}-")
        assert len(log.segments) > 1
        failing = flusher.flush(log)
        await asyncio.get_running_loop().run_in_executor(None, started.wait, 10)
        write(log, 1, prefix="queued-")  # waits for the next round, behind the failure
        queued = flusher.flush(log)
        release.set()
        with pytest.raises(StorageError):
            await failing
        with pytest.raises(StorageError):
            await queued

        assert log.log_end_offset == 2 and log.high_watermark == 2
        assert truncations == [2]
        assert write(log, 1, prefix="after-") == 2
        await flusher.flush(log)
        assert log.high_watermark == 3
        assert [r.value for r in log.read_records(0, 1 << 20)] == [b"v0", b"v1", b"after-0"]
        flusher.close()

    asyncio.run(run())
    log.close()
    reopened, report = Log.open(tmp_path / "p0", LogConfig(segment_bytes=2048), clean=True)
    assert reopened.log_end_offset == 3 and not report.bytes_cut
    reopened.close()


def test_a_log_that_cannot_be_cut_takes_no_more_appends(tmp_path, monkeypatch):
    log, _ = Log.open(tmp_path / "p0", LogConfig(), clean=True)
    write(log, 1)

    def broken(offset: int) -> None:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(log, "truncate_to", broken)
    log.discard_unsynced()
    with pytest.raises(StorageError, match="cutting unsynced data"):
        write(log, 1)
    log.close()


def test_a_short_write_reports_the_real_error_and_leaves_nothing(tmp_path, monkeypatch):
    log, _ = Log.open(tmp_path / "p0", LogConfig(), clean=True)
    write(log, 1)
    size = log.active.size

    def short(fd, pieces, offset):
        return 10  # the disk filled up after 10 bytes

    def full(fd, data, offset):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(segment_module.os, "pwritev", short)
    monkeypatch.setattr(segment_module.os, "pwrite", full)
    with pytest.raises(OSError) as raised:
        write(log, 3)
    assert raised.value.errno == errno.ENOSPC
    assert log.active.size == size == (tmp_path / "p0" / "00000000000000000000.log").stat().st_size
    monkeypatch.undo()
    assert write(log, 1) == 1


def test_closing_on_a_full_disk_leaves_no_half_index(tmp_path, monkeypatch):
    log, _ = Log.open(tmp_path / "p0", LogConfig(index_interval_bytes=1), clean=True)
    for _ in range(5):
        write(log, 1)
    real_open = open

    def full_open(path, mode="r", *args, **kwargs):
        if str(path).endswith("index") and "w" in mode:
            f = real_open(path, mode, *args, **kwargs)
            f.close()
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_open(path, mode, *args, **kwargs)

    monkeypatch.setattr("builtins.open", full_open)
    log.close()  # does not raise: the data is safe, only the indexes are missing
    monkeypatch.undo()
    assert not list((tmp_path / "p0").glob("*index"))
    reopened, report = Log.open(tmp_path / "p0", LogConfig(), clean=True)
    assert reopened.log_end_offset == 5 and report.rebuilt_indexes == [0]
    reopened.close()

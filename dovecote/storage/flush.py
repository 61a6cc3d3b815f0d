"""Group commit: many appends share one fsync.

Appends mark their log dirty and get a future. One flush round at a time runs:
it notes, for each dirty log, how far the active segment has been written,
fsyncs those files in worker threads (off the event loop) and then completes
every future that was waiting when the round started and moves each log's high
watermark. Appends that arrive during a round wait for the next one, so under
load one fsync covers as many appends as arrived while the previous one ran.

When a round has many dirty logs on one file system (many topics written at
once), one ``syncfs`` replaces their fdatasyncs: each fdatasync of a grown
file is a journal commit of its own, so a round of N of them takes N commits
while one syncfs takes one. It also writes back other dirty files of that
file system, which is why it is kept for rounds of ``syncfs_min_logs`` logs
or more. Linux reports write-back errors through syncfs since 5.8; older
kernels and other systems keep the per-file path.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import logging
import os
import platform
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from dovecote.storage.errors import StorageError
from dovecote.storage.log import Log
from dovecote.storage.segment import Segment

log = logging.getLogger(__name__)

__all__ = ["Flusher", "StorageError", "syncfs_supported"]

SYNCFS_MIN_LOGS = 8


def _load_syncfs() -> Callable[[int], int] | None:
    """libc's syncfs where it reports write-back errors (Linux ≥ 5.8), else None."""
    if platform.system() != "Linux":
        return None
    try:
        major, minor = (int(part) for part in platform.release().split(".")[:2])
    except ValueError:
        return None
    if (major, minor) < (5, 8):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        syncfs = libc.syncfs
    except (OSError, AttributeError):
        return None
    syncfs.argtypes = [ctypes.c_int]
    syncfs.restype = ctypes.c_int
    return syncfs


_syncfs = _load_syncfs()


def syncfs_supported() -> bool:
    return _syncfs is not None


def _sync_files(rolled: list[Segment], active: Segment, directory_fd: int | None) -> None:
    for segment in rolled:
        segment.sync()
    active.sync()
    if directory_fd is not None:
        try:
            os.fsync(directory_fd)
        finally:
            os.close(directory_fd)


def _sync_filesystem(segments: list[Segment], directory: str) -> None:
    """One syncfs for every file (data, metadata, directories) on the file
    system holding ``directory``; then the segments count as synced up to
    the sizes they had before it started."""
    assert _syncfs is not None
    sizes = [segment.size for segment in segments]
    fd = os.open(directory, os.O_RDONLY)
    try:
        if _syncfs(fd) != 0:
            errno = ctypes.get_errno()
            raise OSError(errno, f"syncfs: {os.strerror(errno)}")
    finally:
        os.close(fd)
    for segment, size in zip(segments, sizes, strict=True):
        segment.mark_synced(size)


class _Target:
    """One log's part of a round: what the fsync covers and who waits for it."""

    __slots__ = ("active", "log", "offset", "position")

    def __init__(self, target: Log, active: Segment, position: int, offset: int) -> None:
        self.log = target
        self.active = active
        self.position = position
        self.offset = offset


class Flusher:
    def __init__(self, threads: int = 4, syncfs_min_logs: int = SYNCFS_MIN_LOGS) -> None:
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="dovecote-fsync")
        self._dirty: dict[Log, list[asyncio.Future[None] | None]] = {}
        self._task: asyncio.Task[None] | None = None
        # Rounds with at least this many logs on one file system use one
        # syncfs (0: never).
        self.syncfs_min_logs = syncfs_min_logs if _syncfs is not None else 0
        self.rounds = 0  # fsync rounds run, for metrics and tests
        self.syncfs_rounds = 0  # of which some logs were synced by one syncfs

    def flush(self, log: Log) -> asyncio.Future[None]:
        """Return a future that completes once everything appended to ``log``
        so far is on disk (and visible below the high watermark)."""
        future = asyncio.get_running_loop().create_future()
        self._enqueue(log, future)
        return future

    def schedule(self, log: Log) -> None:
        """Flush ``log`` in the next round; nobody waits (acks=0, background flush)."""
        self._enqueue(log, None)

    def _enqueue(self, log: Log, future: asyncio.Future[None] | None) -> None:
        self._dirty.setdefault(log, []).append(future)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while self._dirty:
            batch, self._dirty = self._dirty, {}
            jobs = self._start_round([target for target in batch if not target.closed])
            self.rounds += 1
            for targets, job in jobs:
                try:
                    await job
                except OSError as err:
                    for target in targets:
                        self._failed(target.log, batch, err)
                    continue
                for target in targets:
                    target.log.mark_durable(target.active, target.position, target.offset)
                    for future in batch[target.log]:
                        if future is not None and not future.done():
                            future.set_result(None)
            for target in batch:
                if target.closed:
                    _fail(batch[target], StorageError("log closed before flush"))

    def _start_round(self, logs: list[Log]) -> list[tuple[list[_Target], asyncio.Future[None]]]:
        """Start the syncs of one round: one syncfs per file system with many
        dirty logs, one job per log for the rest."""
        loop = asyncio.get_running_loop()
        by_device: dict[int, list[Log]] = {}
        for target in logs:
            by_device.setdefault(target.device, []).append(target)
        jobs = []
        for group in by_device.values():
            if self.syncfs_min_logs and len(group) >= self.syncfs_min_logs:
                targets, segments = [], []
                for target in group:
                    rolled, active, position, offset = target.flush_point()
                    target.dir_dirty = False  # syncfs covers the directories too
                    segments += rolled
                    segments.append(active)
                    targets.append(_Target(target, active, position, offset))
                job = loop.run_in_executor(
                    self._pool, _sync_filesystem, segments, str(group[0].directory)
                )
                jobs.append((targets, job))
                self.syncfs_rounds += 1
                continue
            for target in group:
                rolled, active, position, offset = target.flush_point()
                directory_fd = None
                if target.dir_dirty:
                    target.dir_dirty = False
                    directory_fd = os.open(target.directory, os.O_RDONLY)
                job = loop.run_in_executor(self._pool, _sync_files, rolled, active, directory_fd)
                jobs.append(([_Target(target, active, position, offset)], job))
        return jobs

    def _failed(
        self, target: Log, batch: dict[Log, list[asyncio.Future[None] | None]], err: OSError
    ) -> None:
        log.error("fsync of %s failed: %s", target.directory, err)
        error = StorageError(err.errno, f"fsync failed: {err}")
        _fail(batch[target], error)
        _fail(self._dirty.pop(target, []), error)
        target.discard_unsynced()

    async def drain(self) -> None:
        """Wait for the flush round in progress and any it queued."""
        while self._task is not None and not self._task.done():
            await asyncio.shield(self._task)

    def close(self) -> None:
        self._pool.shutdown(wait=True)


def _fail(futures: list[asyncio.Future[None] | None], error: Exception) -> None:
    for future in futures:
        if future is not None and not future.done():
            future.set_exception(error)

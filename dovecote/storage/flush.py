"""Group commit: many appends share one fsync.

Appends mark their log dirty and get a future. One flush round at a time runs:
it notes, for each dirty log, how far the active segment has been written,
fsyncs those files in worker threads (off the event loop) and then completes
every future that was waiting when the round started and moves each log's high
watermark. Appends that arrive during a round wait for the next one, so under
load one fsync covers as many appends as arrived while the previous one ran.
"""

from __future__ import annotations

import asyncio
import logging
import os
from concurrent.futures import ThreadPoolExecutor

from dovecote.storage.errors import StorageError
from dovecote.storage.log import Log
from dovecote.storage.segment import Segment

log = logging.getLogger(__name__)

__all__ = ["Flusher", "StorageError"]


def _sync_files(rolled: list[Segment], active: Segment, directory_fd: int | None) -> None:
    for segment in rolled:
        segment.sync()
    active.sync()
    if directory_fd is not None:
        try:
            os.fsync(directory_fd)
        finally:
            os.close(directory_fd)


class Flusher:
    def __init__(self, threads: int = 4) -> None:
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="dovecote-fsync")
        self._dirty: dict[Log, list[asyncio.Future[None] | None]] = {}
        self._task: asyncio.Task[None] | None = None
        self.rounds = 0  # fsync rounds run, for metrics and tests

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
        loop = asyncio.get_running_loop()
        while self._dirty:
            batch, self._dirty = self._dirty, {}
            jobs = []
            for target in batch:
                if target.closed:
                    continue
                rolled, active, position, offset = target.flush_point()
                directory_fd = None
                if target.dir_dirty:
                    target.dir_dirty = False
                    directory_fd = os.open(target.directory, os.O_RDONLY)
                job = loop.run_in_executor(self._pool, _sync_files, rolled, active, directory_fd)
                jobs.append((target, active, position, offset, job))
            self.rounds += 1
            for target, active, position, offset, job in jobs:
                try:
                    await job
                except OSError as err:
                    log.error("fsync of %s failed: %s", target.directory, err)
                    error = StorageError(err.errno, f"fsync failed: {err}")
                    _fail(batch[target], error)
                    _fail(self._dirty.pop(target, []), error)
                    target.discard_unsynced()
                    continue
                target.mark_durable(active, position, offset)
                for future in batch[target]:
                    if future is not None and not future.done():
                        future.set_result(None)
            for target in batch:
                if target.closed:
                    _fail(batch[target], StorageError("log closed before flush"))

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

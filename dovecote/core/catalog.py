"""Durable broker metadata: topics, and later exchanges, queues and bindings.

An append-only file of JSON lines, one change per line, fsynced before the
change is acknowledged. On start it is replayed into dictionaries and, when
mostly dead entries, rewritten compactly. A torn last line (crash during a
write) is ignored: that change was never acknowledged. A write that fails
(disk full) is cut back off the file at once, so it can neither come back on
the next start nor glue itself to the next change's line.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from pathlib import Path
from typing import Any

from dovecote.storage.fsutil import atomic_write

log = logging.getLogger(__name__)

CATALOG_FILE = "catalog.jsonl"


class Catalog:
    def __init__(self, directory: Path) -> None:
        self.path = directory / CATALOG_FILE
        self.entries: dict[str, dict[str, Any]] = {}  # kind -> name -> value
        self._lines = 0
        self._lock = asyncio.Lock()
        self._fd: int | None = None
        self._size = 0  # end of the last complete change

    def load(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.exists():
            data = self.path.read_bytes()
            complete = data[: data.rfind(b"\n") + 1]
            if len(complete) != len(data):
                # A torn last line: the change it held was never acknowledged.
                log.warning("%s: dropping a torn last line", self.path)
                with open(self.path, "r+b") as f:
                    f.truncate(len(complete))
            for number, raw in enumerate(complete.splitlines(), 1):
                try:
                    self._apply(json.loads(raw))
                except (ValueError, KeyError, TypeError):
                    log.warning("%s: ignoring unreadable line %d", self.path, number)
                self._lines += 1
        live = sum(len(v) for v in self.entries.values())
        if self._lines > 2 * live + 100 or not self.path.exists():
            try:
                self._rewrite()
            except OSError as err:
                if not self.path.exists():
                    raise
                log.warning("%s: not compacted (%s); keeping it as it is", self.path, err)
        self._fd = os.open(self.path, os.O_WRONLY)
        self._size = os.fstat(self._fd).st_size

    def _apply(self, change: dict[str, Any]) -> None:
        kind, name = change["kind"], change["name"]
        if change["op"] == "put":
            self.entries.setdefault(kind, {})[name] = change["value"]
        else:
            self.entries.get(kind, {}).pop(name, None)

    def _rewrite(self) -> None:
        atomic_write(
            self.path,
            b"".join(
                _line({"op": "put", "kind": kind, "name": name, "value": value})
                for kind, items in self.entries.items()
                for name, value in items.items()
            ),
        )
        self._lines = sum(len(v) for v in self.entries.values())

    def get(self, kind: str, name: str) -> dict[str, Any] | None:
        return self.entries.get(kind, {}).get(name)

    def items(self, kind: str) -> dict[str, dict[str, Any]]:
        return self.entries.get(kind, {})

    async def put(self, kind: str, name: str, value: dict[str, Any]) -> None:
        await self._write({"op": "put", "kind": kind, "name": name, "value": value})

    async def delete(self, kind: str, name: str) -> None:
        await self._write({"op": "del", "kind": kind, "name": name})

    async def _write(self, change: dict[str, Any]) -> None:
        assert self._fd is not None, "catalog not loaded"
        data = _line(change)
        async with self._lock:
            await asyncio.get_running_loop().run_in_executor(None, self._append_sync, data)
            self._apply(change)
            self._lines += 1

    def _append_sync(self, data: bytes) -> None:
        assert self._fd is not None
        start = self._size
        try:
            written = 0
            while written < len(data):
                written += os.pwrite(self._fd, data[written:], start + written)
            os.fsync(self._fd)
        except OSError:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, start)
            raise
        self._size = start + len(data)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _line(change: dict[str, Any]) -> bytes:
    return json.dumps(change, separators=(",", ":"), sort_keys=True).encode() + b"\n"

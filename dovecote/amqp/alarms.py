"""Resource alarms: block publishers when disk or memory runs short, as RabbitMQ does.

A small monitor polls the free space of the data directory's file system and
the broker's resident set size. When free disk falls below
``disk_free_limit_bytes`` or RSS rises above ``memory_limit_bytes`` an alarm
is raised; the AMQP listener then sends ``connection.blocked`` and stops
reading from publishing connections until it clears. The limits are plain
attributes, so a test (or an operator, through the broker object) can move
them at run time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)

DISK = "disk"
MEMORY = "memory"
DEFAULT_MEMORY_FRACTION = 0.4  # RabbitMQ's vm_memory_high_watermark


def free_disk_bytes(path: Path) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def rss_bytes() -> int:
    """Resident set size of this process (0 where /proc is missing)."""
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def physical_memory_bytes() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (OSError, ValueError):
        return 0


class ResourceMonitor:
    """Polls every ``interval`` seconds; ``on_change(alarms)`` gets the set of
    active alarm names (``"disk"``, ``"memory"``) whenever it changes."""

    def __init__(
        self,
        data_dir: Path,
        *,
        disk_free_limit: int,
        memory_limit: int,
        interval: float,
        on_change: Callable[[frozenset[str]], None],
    ) -> None:
        self.data_dir = data_dir
        self.disk_free_limit = disk_free_limit
        if memory_limit <= 0:
            memory_limit = int(physical_memory_bytes() * DEFAULT_MEMORY_FRACTION)
        self.memory_limit = memory_limit
        self.interval = interval
        self.on_change = on_change
        self.alarms: frozenset[str] = frozenset()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.check()
        self._task = asyncio.get_running_loop().create_task(self._loop(), name="amqp-alarms")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                self.check()
            except Exception:
                log.exception("resource check failed")

    def check(self) -> frozenset[str]:
        """Measure now; report a change of alarms."""
        active = set()
        try:
            free = free_disk_bytes(self.data_dir)
        except OSError:
            free = None
        if free is not None and free < self.disk_free_limit:
            active.add(DISK)
        rss = rss_bytes()
        if self.memory_limit and rss > self.memory_limit:
            active.add(MEMORY)
        alarms = frozenset(active)
        if alarms != self.alarms:
            for name in alarms - self.alarms:
                log.warning(
                    "%s alarm set: %s; blocking publishers",
                    name,
                    f"free disk {free} < limit {self.disk_free_limit}"
                    if name == DISK
                    else f"memory {rss} > limit {self.memory_limit}",
                )
            for name in self.alarms - alarms:
                log.warning("%s alarm cleared", name)
            self.alarms = alarms
            self.on_change(alarms)
        return alarms

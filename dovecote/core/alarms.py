"""Resource alarms: the broker is short of disk or memory.

A small monitor polls, every ``interval`` seconds of the injected
:class:`~dovecote.core.clock.Clock`, the free space of the data directory's
file system and the broker's resident set size. When free disk falls below
``disk_free_limit`` or RSS rises above ``memory_limit`` an alarm is raised,
and cleared when the measure is back. Adapters subscribe and tell their
clients in their own way (one protocol blocks publishing connections,
another has no way to say it); the core only measures. The limits are plain attributes, so a test
(or an operator, through the broker object) can move them at run time.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path

from dovecote.core.clock import Clock, TimerHandle

log = logging.getLogger(__name__)

DISK = "disk"
MEMORY = "memory"
DEFAULT_MEMORY_FRACTION = 0.4  # of physical memory, when no limit is set


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


Subscriber = Callable[[frozenset[str]], None]


class ResourceMonitor:
    """Measures every ``interval`` seconds once started; each subscriber gets
    the set of active alarm names (``"disk"``, ``"memory"``) whenever it
    changes."""

    def __init__(
        self,
        data_dir: Path,
        *,
        disk_free_limit: int,
        memory_limit: int,
        interval: float,
        clock: Clock,
    ) -> None:
        self.data_dir = data_dir
        self.disk_free_limit = disk_free_limit
        if memory_limit <= 0:
            memory_limit = int(physical_memory_bytes() * DEFAULT_MEMORY_FRACTION)
        self.memory_limit = memory_limit
        self.interval = interval
        self.clock = clock
        self.alarms: frozenset[str] = frozenset()
        self._subscribers: list[Subscriber] = []
        self._timer: TimerHandle | None = None

    def subscribe(self, on_change: Subscriber) -> Callable[[], None]:
        """Call ``on_change(alarms)`` on every change; returns the unsubscribe."""
        self._subscribers.append(on_change)

        def unsubscribe() -> None:
            if on_change in self._subscribers:
                self._subscribers.remove(on_change)

        return unsubscribe

    def start(self) -> None:
        """Measure now, then every ``interval``."""
        self.check()
        self._arm()

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _arm(self) -> None:
        self._timer = self.clock.call_at(self.clock.monotonic() + self.interval, self._tick)

    def _tick(self) -> None:
        try:
            self.check()
        except Exception:
            log.exception("resource check failed")
        self._arm()

    def check(self) -> frozenset[str]:
        """Measure now; tell the subscribers if the alarms changed."""
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
                    "%s alarm set: %s",
                    name,
                    f"free disk {free} < limit {self.disk_free_limit}"
                    if name == DISK
                    else f"memory {rss} > limit {self.memory_limit}",
                )
            for name in self.alarms - alarms:
                log.warning("%s alarm cleared", name)
            self.alarms = alarms
            for subscriber in list(self._subscribers):
                try:
                    subscriber(alarms)
                except Exception:
                    log.exception("a resource alarm subscriber failed")
        return alarms

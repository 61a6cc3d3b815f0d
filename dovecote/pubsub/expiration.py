"""Resources that expire: subscriptions after ``expiration_policy.ttl``
without subscriber activity, snapshots at their ``expire_time``.

One :class:`~dovecote.core.clock.Alarm` for all of them, armed for the
earliest deadline that may be due; activity only stores a timestamp
(``touch``), so a busy subscription costs one dict write per call, and its
deadline is looked at again only when the alarm reaches it. Deadlines are
on the monotonic clock; after a restart every subscription counts as
active at start (the broker was not serving it while down).
"""

from __future__ import annotations

import asyncio
import heapq
import logging
from collections.abc import Awaitable, Callable

from dovecote.core.clock import Alarm, Clock

log = logging.getLogger("dovecote.pubsub")

OnExpired = Callable[[str], Awaitable[None]]


class Expiry:
    """Names with a time to live since their last ``touch``."""

    def __init__(self, clock: Clock, on_expired: OnExpired) -> None:
        self.clock = clock
        self.on_expired = on_expired
        self._ttl: dict[str, float] = {}  # name -> ttl seconds
        self._last: dict[str, float] = {}  # name -> monotonic time of last activity
        self._heap: list[tuple[float, str]] = []  # (possible deadline, name)
        self._queued: dict[str, float] = {}  # name -> its live entry in the heap
        self._alarm = Alarm(clock, self._fire)
        self._tasks: set[asyncio.Task[None]] = set()

    def watch(self, name: str, ttl_s: float | None) -> None:
        """``name`` expires ``ttl_s`` after its last activity (None: never).
        Watching again (a changed ttl) counts as activity."""
        if ttl_s is None:
            self.forget(name)
            return
        now = self.clock.monotonic()
        self._ttl[name] = ttl_s
        self._last[name] = now
        self._push(now + ttl_s, name)

    def forget(self, name: str) -> None:
        self._ttl.pop(name, None)
        self._last.pop(name, None)
        self._queued.pop(name, None)
        if not self._queued:  # nothing left to expire: no timer either
            self._heap.clear()
            self._alarm.cancel()

    def touch(self, name: str) -> None:
        """Activity on ``name``: its deadline moves (lazily)."""
        if name in self._last:
            self._last[name] = self.clock.monotonic()

    def deadline(self, name: str) -> float | None:
        """Monotonic time ``name`` expires at, if it is watched."""
        ttl = self._ttl.get(name)
        return None if ttl is None else self._last[name] + ttl

    def _push(self, when: float, name: str) -> None:
        queued = self._queued.get(name)
        if queued is not None and queued <= when:
            return  # an earlier look is due anyway; it finds the new deadline
        self._queued[name] = when
        heapq.heappush(self._heap, (when, name))
        self._alarm.arm(when)

    def _fire(self) -> None:
        now = self.clock.monotonic()
        heap = self._heap
        while heap and heap[0][0] <= now:
            when, name = heapq.heappop(heap)
            if self._queued.get(name) != when:
                continue  # forgotten, or superseded by an earlier entry
            del self._queued[name]
            deadline = self.deadline(name)
            if deadline is not None and deadline > now:
                self._push(deadline, name)  # active since: look again then
                continue
            self.forget(name)
            self._spawn(name)
        while heap and self._queued.get(heap[0][1]) != heap[0][0]:
            heapq.heappop(heap)
        if heap:
            self._alarm.arm(heap[0][0])

    def _spawn(self, name: str) -> None:
        async def run() -> None:
            try:
                await self.on_expired(name)
            except Exception:
                log.exception("expiring %s failed", name)

        task = asyncio.get_running_loop().create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def close(self) -> None:
        self._alarm.cancel()
        for task in self._tasks:
            task.cancel()

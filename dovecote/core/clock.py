"""Time for the core, passed in so timing logic is tested without sleeping.

Every manager that needs time (leases, delays, TTL, queue expiry, group
session timeouts) takes a :class:`Clock` instead of calling ``time`` or
``asyncio.sleep`` itself. The broker passes :class:`SystemClock`; tests pass
:class:`FakeClock` and move time with :meth:`FakeClock.advance`.

Timers are asyncio's own heap (``loop.call_at``) on the system clock, so the
cost of a pending timer does not depend on how many idle queues exist: a
queue with nothing due has no timer at all. :class:`Alarm` is the one-timer-
per-owner pattern everything uses: it keeps the earliest due time asked for
and fires once.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Callable
from typing import Protocol


class TimerHandle(Protocol):
    def cancel(self) -> None: ...


class Clock(Protocol):
    """Two readings and a way to be called back."""

    def wall_ms(self) -> int:
        """Milliseconds since the epoch (record timestamps, TTL, delays)."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never jumps (deadlines, timeouts)."""
        ...

    def call_at(self, when: float, callback: Callable[[], None]) -> TimerHandle:
        """Call ``callback`` once ``monotonic()`` reaches ``when``."""
        ...

    async def sleep(self, seconds: float) -> None: ...


class SystemClock:
    """The real clock: ``time`` and the running event loop's timer heap."""

    def wall_ms(self) -> int:
        return int(time.time() * 1000)

    def monotonic(self) -> float:
        return time.monotonic()

    def call_at(self, when: float, callback: Callable[[], None]) -> TimerHandle:
        return _SystemTimer(asyncio.get_running_loop(), when, callback)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class _SystemTimer:
    """A loop timer that never runs its callback before ``when``.

    uvloop rounds timers to the millisecond and was measured firing 20-125 us
    early; a callback that reads ``monotonic()``, finds itself "not yet due"
    and does nothing would then never run. So an early wake-up re-arms.
    """

    __slots__ = ("_callback", "_handle", "_loop", "_when")

    def __init__(
        self, loop: asyncio.AbstractEventLoop, when: float, callback: Callable[[], None]
    ) -> None:
        self._loop = loop
        self._when = when
        self._callback = callback
        self._handle = self._schedule()

    def _schedule(self) -> asyncio.TimerHandle:
        # loop.time() and time.monotonic() are the same clock on Linux and
        # macOS, but translate anyway so a custom loop cannot skew timers.
        return self._loop.call_at(self._loop.time() + (self._when - time.monotonic()), self._fire)

    def _fire(self) -> None:
        if time.monotonic() < self._when:
            self._handle = self._schedule()
            return
        self._callback()

    def cancel(self) -> None:
        self._handle.cancel()


class _FakeTimer:
    __slots__ = ("callback", "cancelled", "when")

    def __init__(self, when: float, callback: Callable[[], None]) -> None:
        self.when = when
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class FakeClock:
    """A clock that moves only when a test says so.

    ``advance`` runs every timer that falls due, in due order, each at its
    own time (``monotonic()`` reads the timer's due time while it runs), and
    lets the event loop run between them so woken tasks make progress.
    """

    def __init__(self, wall_ms: int = 1_700_000_000_000, monotonic: float = 1000.0) -> None:
        self._wall_base = wall_ms
        self._mono_base = monotonic
        self._now = monotonic
        self._timers: list[tuple[float, int, _FakeTimer]] = []
        self._serial = itertools.count()

    def wall_ms(self) -> int:
        return self._wall_base + round((self._now - self._mono_base) * 1000)

    def monotonic(self) -> float:
        return self._now

    def call_at(self, when: float, callback: Callable[[], None]) -> TimerHandle:
        timer = _FakeTimer(when, callback)
        heapq.heappush(self._timers, (when, next(self._serial), timer))
        return timer

    async def sleep(self, seconds: float) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def wake() -> None:
            if not future.done():
                future.set_result(None)

        timer = self.call_at(self._now + max(0.0, seconds), wake)
        try:
            await future
        finally:
            timer.cancel()

    def pending(self) -> int:
        """Timers not yet fired or cancelled."""
        return sum(1 for _, _, t in self._timers if not t.cancelled)

    async def advance(self, seconds: float) -> None:
        """Move time forward, firing what falls due on the way."""
        await self._settle()
        target = self._now + seconds
        while self._timers and self._timers[0][0] <= target:
            when, _, timer = heapq.heappop(self._timers)
            if timer.cancelled:
                continue
            self._now = max(self._now, when)
            timer.callback()
            await self._settle()
        self._now = target
        await self._settle()

    @staticmethod
    async def _settle(turns: int = 5) -> None:
        for _ in range(turns):
            await asyncio.sleep(0)


class Alarm:
    """One timer per owner: fires ``callback`` at the earliest time asked for.

    ``arm(when)`` is cheap to call often (only an earlier time replaces the
    pending timer); after firing the alarm is idle until armed again. This is
    how a subscription keeps a single timer for its next lease deadline,
    delay or TTL instead of one per record.
    """

    __slots__ = ("_callback", "_clock", "_handle", "_when")

    def __init__(self, clock: Clock, callback: Callable[[], None]) -> None:
        self._clock = clock
        self._callback = callback
        self._handle: TimerHandle | None = None
        self._when = float("inf")

    @property
    def when(self) -> float | None:
        return None if self._handle is None else self._when

    def arm(self, when: float) -> None:
        if self._handle is not None:
            if when >= self._when:
                return
            self._handle.cancel()
        self._when = when
        self._handle = self._clock.call_at(when, self._fire)

    def cancel(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self._when = float("inf")

    def _fire(self) -> None:
        self._handle = None
        self._when = float("inf")
        self._callback()

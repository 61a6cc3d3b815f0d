"""The broker-wide budget of bytes held for requests in flight.

Every protocol adapter reserves the size of a request as soon as it knows it
(for a length-prefixed frame, when the size prefix arrives, before the body
is buffered) and releases it once the request is answered, through its
connections' :class:`~dovecote.core.flow.Flow`. When the budget is used up a
reservation is refused and the connection stops reading until bytes are
released: the kernel's socket buffers fill and TCP slows the client down, so
a flood of producers costs the broker a bounded amount of memory instead of
an unbounded queue of requests.

Admission works as a memory pool with a soft limit: a request is let in while less than
the whole budget is in use, even if it takes the total past the limit. So a
request larger than the budget still gets through (alone), nobody waits for
room that small requests keep taking, and the bytes held never exceed
``limit + largest request``. Waiting connections are resumed in the order
they started waiting.
"""

from __future__ import annotations

import collections
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(eq=False, slots=True)
class Waiter:
    """A connection waiting to reserve ``size`` bytes; ``on_reserved`` runs
    once they are reserved for it (then the connection resumes reading)."""

    size: int
    on_reserved: Callable[[], None]
    cancelled: bool = False


@dataclass
class MemoryBudget:
    """``limit`` bytes (0 or less: unlimited, but still counted)."""

    limit: int
    used: int = 0
    peak: int = 0
    refusals: int = 0  # reservations that had to wait: how often the budget was exhausted
    _waiters: collections.deque[Waiter] = field(default_factory=collections.deque)

    @property
    def unlimited(self) -> bool:
        return self.limit <= 0

    @property
    def exhausted(self) -> bool:
        return not self.unlimited and self.used >= self.limit

    @property
    def waiting(self) -> int:
        return sum(1 for w in self._waiters if not w.cancelled)

    def try_reserve(self, size: int) -> bool:
        """Reserve ``size`` bytes now if the budget admits them (and nobody
        is waiting ahead); False means: call :meth:`wait`."""
        if self._waiters or self.exhausted:
            self.refusals += 1
            return False
        self._take(size)
        return True

    def take(self, size: int) -> None:
        """Reserve ``size`` bytes whatever the budget says. For a connection
        that already holds budget for something it has not finished receiving
        (a message whose body frames are interleaved with another's):
        pausing it could leave every byte of the budget with paused
        connections, and nothing would ever be released."""
        self._take(size)

    def wait(self, size: int, on_reserved: Callable[[], None]) -> Waiter:
        """Queue a reservation; ``on_reserved`` is called (from :meth:`release`)
        once the bytes are reserved. Cancel it if the connection goes away."""
        waiter = Waiter(size, on_reserved)
        self._waiters.append(waiter)
        self._admit()
        return waiter

    def cancel(self, waiter: Waiter) -> None:
        waiter.cancelled = True

    def release(self, size: int) -> None:
        self.used -= size
        if self.used < 0:
            raise AssertionError(f"released more than was reserved ({self.used})")
        self._admit()

    def _take(self, size: int) -> None:
        self.used += size
        if self.used > self.peak:
            self.peak = self.used

    def _admit(self) -> None:
        waiters = self._waiters
        while waiters and not self.exhausted:
            waiter = waiters.popleft()
            if waiter.cancelled:
                continue
            self._take(waiter.size)
            waiter.on_reserved()


class Hold:
    """What one connection holds of the budget: the bytes reserved for it and,
    while it waits for more, its place in line. Each connection's
    :class:`~dovecote.core.flow.Flow` keeps one and gives everything back
    when the connection goes."""

    def __init__(self, budget: MemoryBudget) -> None:
        self.budget = budget
        self.reserved = 0
        self.waiter: Waiter | None = None

    def reserve(self, size: int, on_granted: Callable[[], None]) -> bool:
        """Reserve ``size`` more bytes. True: reserved now. False: queued;
        the connection should stop reading, and ``on_granted()`` runs once
        the bytes are reserved."""
        if self.budget.try_reserve(size):
            self.reserved += size
            return True
        granted = False

        def reserved() -> None:
            nonlocal granted
            granted = True
            self.reserved += size
            if self.waiter is not None:  # we answered "queued": say it is over
                self.waiter = None
                on_granted()

        waiter = self.budget.wait(size, reserved)
        if granted:  # room was made while queueing
            return True
        self.waiter = waiter
        return False

    def take(self, size: int) -> None:
        """Reserve ``size`` more bytes whatever the budget says (see :meth:`MemoryBudget.take`)."""
        self.budget.take(size)
        self.reserved += size

    def release(self, size: int) -> None:
        self.budget.release(size)
        self.reserved -= size

    def hand_over(self) -> int:
        """Stop holding what is reserved and return it: its new owner (a
        request being handled) releases it."""
        reserved, self.reserved = self.reserved, 0
        return reserved

    def close(self) -> None:
        """Give back everything (the connection is gone)."""
        if self.waiter is not None:
            self.budget.cancel(self.waiter)
            self.waiter = None
        if self.reserved:
            self.budget.release(self.reserved)
            self.reserved = 0

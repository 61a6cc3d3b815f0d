"""Flow control for one client connection of any listener.

Every listener (the binary protocols now, the HTTP and gRPC ones next)
keeps one :class:`Flow` per connection. It decides when the connection stops reading
from its client and when it reads again, and it closes a connection whose
half-received request holds memory while the client sends nothing more.

Reading pauses while any reason to pause holds; the reasons are named:

- ``budget``: the connection's share of the broker's budget of bytes in
  flight (:mod:`dovecote.core.memory`) was refused. A listener either
  reserves each request's size as soon as it is known (:meth:`Flow.reserve`,
  e.g. at a frame's size prefix) or tells, after each read, how many bytes
  it holds (:meth:`Flow.settle`: messages received and not handled yet).
  Reading resumes when the budget has reserved the bytes for it.
- ``write``: the transport's output buffer is past its high-water mark (a
  client that does not read its answers is not read from).
- anything the listener adds with :meth:`Flow.pause` / :meth:`Flow.resume`:
  a handler it must await, too many requests in flight, a produce quota, a
  resource alarm.

The stall watchdog: while half a request holds budget, a timer checks that
the client keeps sending. After ``stall_timeout`` seconds with nothing
received the owner is told to close the connection (the memory comes back).
Time the broker spent not reading is not the client's: while reading is
paused the wait starts again.

This module knows no sockets: the listener implements :class:`FlowOwner`
(switch reading on and off, close on a stall, carry on once budget is
granted), and time comes from the injected :class:`~dovecote.core.clock.Clock`.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

from dovecote.core.clock import Clock, TimerHandle
from dovecote.core.memory import Hold, MemoryBudget

BUDGET = "budget"
WRITE = "write"
MIN_RECHECK = 0.01  # the watchdog never re-arms for less than this


class FlowOwner(Protocol):
    """What one connection of a listener does for its :class:`Flow`."""

    def pause_reading(self) -> None:
        """Stop reading from the client (the first reason to pause came)."""
        ...

    def resume_reading(self) -> None:
        """Read again (the last reason to pause went)."""
        ...

    def budget_granted(self) -> None:
        """Bytes this connection waited for are reserved and reading has
        resumed. Runs inside the budget's bookkeeping: carry on at the next
        turn of the loop, not here."""
        ...

    def stalled(self, idle: float) -> None:
        """Half a request has held budget for ``idle`` seconds with nothing
        more received: close the connection."""
        ...


class Flow:
    """One connection's reading switch, budget share and stall watchdog."""

    def __init__(
        self, owner: FlowOwner, budget: MemoryBudget, clock: Clock, stall_timeout: float
    ) -> None:
        self.owner = owner
        self.clock = clock
        self.stall_timeout = stall_timeout
        self.hold = Hold(budget)
        self.pauses: set[str] = set()
        self.writing_paused = False
        self.last_received = clock.monotonic()
        self.closed = False
        self._writable: asyncio.Future[None] | None = None
        self._stall: TimerHandle | None = None

    # --- the reading switch -----------------------------------------------------

    @property
    def paused(self) -> bool:
        return bool(self.pauses)

    def pause(self, reason: str) -> None:
        """Stop reading for ``reason`` (until :meth:`resume` with it)."""
        pauses = self.pauses
        if reason in pauses:
            return
        pauses.add(reason)
        if len(pauses) == 1 and not self.closed:
            self.owner.pause_reading()

    def resume(self, reason: str) -> None:
        """``reason`` no longer holds; read again if nothing else does."""
        pauses = self.pauses
        if reason not in pauses:
            return
        pauses.discard(reason)
        if not pauses and not self.closed:
            self.last_received = self.clock.monotonic()  # the wait was ours, not the client's
            self.owner.resume_reading()

    def pause_while(self, reason: str, condition: bool) -> None:
        """Pause for ``reason`` if ``condition``, else resume for it."""
        if condition:
            self.pause(reason)
        else:
            self.resume(reason)

    # --- transport write backpressure ----------------------------------------------

    def pause_writing(self) -> None:
        """The transport's output buffer is full: stop reading too."""
        self.writing_paused = True
        self.pause(WRITE)

    def resume_writing(self) -> None:
        self.writing_paused = False
        self._wake_writers()
        self.resume(WRITE)

    async def writable(self) -> None:
        """Wait until the transport's output buffer has drained (or the
        connection is gone)."""
        if not self.writing_paused or self.closed:
            return
        if self._writable is None:
            self._writable = asyncio.get_running_loop().create_future()
        await self._writable

    def _wake_writers(self) -> None:
        waiter, self._writable = self._writable, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # --- the in-flight budget ------------------------------------------------------

    @property
    def reserved(self) -> int:
        """Bytes of the budget this connection holds."""
        return self.hold.reserved

    @property
    def waiting(self) -> bool:
        """Queued for budget (reading is paused until it is reserved)."""
        return self.hold.waiter is not None

    def reserve(self, size: int) -> bool:
        """Reserve ``size`` more bytes for a request whose size is known (a
        frame whose size prefix arrived).
        False: queued; reading pauses until they are reserved, then
        :meth:`FlowOwner.budget_granted` is called."""
        if self.hold.reserve(size, self._granted):
            return True
        self.pause(BUDGET)
        return False

    def settle(self, held: int) -> None:
        """Make the reservation match the ``held`` bytes the connection holds
        now (after a read), or pause until the budget admits them.

        A connection that already holds a reservation is never paused for
        more (it takes what it needs): it may be in the middle of a request
        that other connections' pauses cannot complete, and a budget held
        entirely by paused connections would never be released.
        """
        hold = self.hold
        if hold.waiter is not None:
            return  # paused: settled again once the budget calls back
        if held <= hold.reserved:
            if held < hold.reserved:
                hold.release(hold.reserved - held)
            return
        need = held - hold.reserved
        if hold.reserved:
            hold.take(need)
        elif not hold.reserve(need, self._granted):
            self.pause(BUDGET)

    def hand_over(self) -> int:
        """Stop holding what is reserved and return it: the request it was
        reserved for now owns it and releases it once answered."""
        return self.hold.hand_over()

    def release(self, size: int) -> None:
        """Give back ``size`` bytes handed over for a request that is done."""
        self.hold.budget.release(size)

    def _granted(self) -> None:
        self.resume(BUDGET)
        if not self.closed:
            self.owner.budget_granted()

    # --- the stall watchdog --------------------------------------------------------

    def received(self) -> None:
        """Bytes came from the client (the watchdog's reference point)."""
        self.last_received = self.clock.monotonic()

    def watch(self) -> None:
        """Arm the watchdog if half a request holds budget (call after reads)."""
        if self._stall is None and self.hold.reserved and not self.closed:
            clock = self.clock
            self._stall = clock.call_at(clock.monotonic() + self.stall_timeout, self._check_stall)

    def _check_stall(self) -> None:
        self._stall = None
        if self.closed or not self.hold.reserved:
            return
        now = self.clock.monotonic()
        if self.pauses:
            self.last_received = now  # not reading: the client is not stalling
        idle = now - self.last_received
        if idle >= self.stall_timeout:
            self.owner.stalled(idle)
            return
        delay = max(self.stall_timeout - idle, MIN_RECHECK)
        self._stall = self.clock.call_at(now + delay, self._check_stall)

    # --- the end -----------------------------------------------------------------

    def close(self) -> None:
        """The connection is gone: give back its budget, stop the watchdog,
        wake whoever waits to write."""
        self.closed = True
        if self._stall is not None:
            self._stall.cancel()
            self._stall = None
        self.hold.close()
        self._wake_writers()

"""One AMQP connection's share of the broker's budget for bytes in flight
(:mod:`dovecote.core.memory`, the same budget the Kafka intake uses).

What an AMQP connection holds between socket reads is messages it has not
handled yet: content still arriving (charged at its announced size as soon
as the content header is in, as Kafka charges a request when its size
prefix is), publishes lingering for their run, commands queued behind a
handler that awaits. Complete publishes are stored within the read that
completed them, so they cost nothing beyond it.

After each read the connection tells :meth:`Admission.settle` how many bytes
it holds. Bytes no longer held are released; more bytes are reserved if the
budget admits them. If it does not, the connection stops reading (TCP slows
the client down, as RabbitMQ's credit flow does; ``connection.blocked`` is
only for resource alarms) until the budget calls back. A connection that
already holds a reservation is never paused for more (it takes what it
needs): it may be in the middle of a message that other connections' pauses
cannot complete, and a budget held entirely by paused connections would
never be released.
"""

from __future__ import annotations

from collections.abc import Callable

from dovecote.core.memory import MemoryBudget, Waiter


class Admission:
    def __init__(
        self, budget: MemoryBudget, pause: Callable[[], None], resume: Callable[[], None]
    ) -> None:
        self.budget = budget
        self.reserved = 0
        self.waiter: Waiter | None = None
        self._pause = pause
        self._resume = resume

    def settle(self, held: int) -> None:
        """Make the reservation match ``held`` bytes, or pause until it can."""
        if self.waiter is not None:
            return  # paused: settled again when the budget calls back
        if held <= self.reserved:
            if held < self.reserved:
                self.budget.release(self.reserved - held)
                self.reserved = held
            return
        need = held - self.reserved
        if self.budget.try_reserve(need):
            self.reserved = held
        elif self.reserved:
            self.budget.take(need)
            self.reserved = held
        else:
            granted = False

            def reserved() -> None:
                nonlocal granted
                granted = True
                self.reserved += need
                if self.waiter is not None:
                    self.waiter = None
                    self._resume()

            waiter = self.budget.wait(need, reserved)
            if not granted:
                self.waiter = waiter
                self._pause()

    def close(self) -> None:
        """The connection is gone: give back everything."""
        if self.waiter is not None:
            self.budget.cancel(self.waiter)
            self.waiter = None
        if self.reserved:
            self.budget.release(self.reserved)
            self.reserved = 0

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

from dovecote.core.memory import Hold, MemoryBudget


class Admission:
    def __init__(
        self, budget: MemoryBudget, pause: Callable[[], None], resume: Callable[[], None]
    ) -> None:
        self.hold = Hold(budget)
        self._pause = pause
        self._resume = resume

    @property
    def reserved(self) -> int:
        return self.hold.reserved

    def settle(self, held: int) -> None:
        """Make the reservation match ``held`` bytes, or pause until it can."""
        hold = self.hold
        if hold.waiter is not None:
            return  # paused: settled again when the budget calls back
        if held <= hold.reserved:
            if held < hold.reserved:
                hold.release(hold.reserved - held)
            return
        need = held - hold.reserved
        if hold.reserved:
            hold.take(need)  # never pause a connection holding budget (see above)
        elif not hold.reserve(need, self._resume):
            self._pause()

    def close(self) -> None:
        """The connection is gone: give back everything."""
        self.hold.close()

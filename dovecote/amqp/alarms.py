"""How an AMQP connection shows the broker's resource alarms
(:mod:`dovecote.core.alarms`): as RabbitMQ does, a connection that publishes
is sent ``connection.blocked`` (if the client said it understands it) and is
no longer read from until every alarm clears; then it is sent
``connection.unblocked`` and read again. A connection that has not
published yet is blocked when it does.
"""

from __future__ import annotations

from collections.abc import Callable

from pamqp import base
from pamqp import commands as C

from dovecote.core.flow import Flow

ALARM = "alarm"  # the flow's reason to stop reading


class Blocking:
    """One connection's side of the alarms."""

    __slots__ = ("_can_tell", "_send_method", "_told", "active", "alarms", "flow")

    def __init__(
        self,
        flow: Flow,
        send_method: Callable[[int, base.Frame], None],
        can_tell: Callable[[], bool],
    ) -> None:
        self.flow = flow
        self._send_method = send_method
        self._can_tell = can_tell
        self.alarms: frozenset[str] = frozenset()
        self.active = False  # an alarm is on: a publisher is blocked
        self._told = False  # connection.blocked was sent

    def set(self, alarms: frozenset[str], published: bool) -> None:
        """The alarms changed to ``alarms``; ``published``: the connection
        has published (then it is blocked now)."""
        self.alarms = alarms
        if alarms:
            self.active = True
            if published:
                self.block()
        else:
            self.active = False
            if self._told:
                self._send_method(0, C.Connection.Unblocked())
                self._told = False
            self.flow.resume(ALARM)

    def block(self) -> None:
        """Tell the client (once) and stop reading from it."""
        if not self._told and self._can_tell():
            reason = " & ".join(f"low on {name}" for name in sorted(self.alarms))
            self._send_method(0, C.Connection.Blocked(reason))
            self._told = True
        self.flow.pause(ALARM)

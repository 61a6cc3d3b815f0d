"""What a connection's channels leave to be done at the next write or shortly:
acks and publisher confirms, batched.

Acks return credit to consumers at the connection's next write (so they are
topped up in the same loop turn) and are settled in the core at most
``SETTLE_DELAY`` later: a client acking one message per packet then costs one
settle (and one progress record, which the core fsyncs) per 10 ms, not one
per ack. Confirms for stored publishes go out with the next write.
"""

from __future__ import annotations

import asyncio

from dovecote.amqp.interfaces import ChannelView

SETTLE_DELAY = 0.01


class Settling:
    """One connection's pending acks and confirms, per channel."""

    __slots__ = ("_confirm", "_credit", "_loop", "_settle", "_timer", "pending")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._settle: set[ChannelView] = set()
        self._credit: set[ChannelView] = set()
        self._confirm: set[ChannelView] = set()
        self._timer: asyncio.TimerHandle | None = None
        self.pending = False  # credit or confirms wait for the next write

    def ack_later(self, channel: ChannelView) -> None:
        """``channel`` took acks: its credit returns at the next write, the
        acks are settled shortly."""
        self._credit.add(channel)
        self.pending = True
        self._settle.add(channel)
        if self._timer is None:
            self._timer = self._loop.call_later(SETTLE_DELAY, self.settle)

    def settle(self) -> None:
        """Settle every collected ack in the core now."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        channels, self._settle = self._settle, set()
        for channel in channels:
            channel.flush_acks()

    def confirm_later(self, channel: ChannelView) -> None:
        """``channel`` has confirms to send with the next write."""
        self._confirm.add(channel)
        self.pending = True

    def before_write(self, out: list[bytes | memoryview]) -> None:
        """Return the credit and add the confirm frames to ``out``."""
        self.pending = False
        if self._credit:
            channels, self._credit = self._credit, set()
            for channel in channels:
                if not channel.closing:
                    channel.credit_freed()
        if self._confirm:
            channels, self._confirm = self._confirm, set()
            for channel in channels:
                if not channel.closing:
                    out.extend(channel.confirm_frames())

    def close(self) -> None:
        """The connection is gone: nothing more is settled from here."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

"""Log a recurring failure without flooding the log: a full disk fails every
append of every producer, and one line every few seconds says as much as
thousands would."""

from __future__ import annotations

import logging
import time


class RateLimitedLog:
    """At most one record per ``period`` seconds per key; the next one says
    how many were held back in between."""

    def __init__(self, logger: logging.Logger, period: float = 10.0) -> None:
        self.logger = logger
        self.period = period
        self._last: dict[str, float] = {}
        self._held: dict[str, int] = {}

    def log(self, level: int, key: str, message: str, *args: object) -> bool:
        """Log unless ``key`` was logged less than ``period`` ago; True if logged."""
        now = time.monotonic()
        last = self._last.get(key)
        if last is not None and now - last < self.period:
            self._held[key] = self._held.get(key, 0) + 1
            return False
        self._last[key] = now
        held = self._held.pop(key, 0)
        if held:
            message += " (%d more like it since the last report)"
            args = (*args, held)
        self.logger.log(level, message, *args)
        return True

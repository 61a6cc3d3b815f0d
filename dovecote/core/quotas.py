"""Byte-rate quotas per client, measured and enforced as Kafka does.

A client's rate is the bytes it sent in the last ``samples`` windows of
``window_ms`` (Kafka's quota.window.num=11, quota.window.size.seconds=1),
divided by the time they span, counted as at least ``samples - 1`` whole
windows (so a client's first burst is measured over ~10 s, not over the
instant it took). When the rate exceeds the quota the client is throttled
for as long as it would take the rate over that span to fall back to it:

    throttle = (rate - quota) / quota * span        (at most samples * window)

The protocol adapter tells the client (Kafka: ``throttle_time_ms`` in the
response, KIP-219) and stops reading from its connection for that long, so a
client that ignores the hint is slowed all the same.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

WINDOW_MS = 1000
SAMPLES = 11
FORGET_AFTER_S = 60.0  # a client id silent this long is forgotten (ids are client-chosen)


@dataclass(slots=True)
class _Rate:
    windows: list[list[float]] = field(default_factory=list)  # [start seconds, bytes]
    last_seen: float = 0.0


class ByteRateQuotas:
    """Quota ``bytes_per_second`` for each client id (0: no quota)."""

    def __init__(
        self, bytes_per_second: int, window_ms: int = WINDOW_MS, samples: int = SAMPLES
    ) -> None:
        self.quota = bytes_per_second
        self.window = window_ms / 1000
        self.samples = samples
        self._clients: dict[str, _Rate] = {}
        self._next_sweep = 0.0
        self.throttled = 0  # requests that were throttled, for metrics and tests

    @property
    def enabled(self) -> bool:
        return self.quota > 0

    def record(self, client_id: str, size: int, now: float | None = None) -> int:
        """Count ``size`` bytes from ``client_id``; returns how many ms it
        must now be throttled (0 when within its quota)."""
        if not self.enabled:
            return 0
        now = time.monotonic() if now is None else now
        self._sweep(now)
        rate = self._clients.get(client_id)
        if rate is None:
            rate = self._clients[client_id] = _Rate()
        rate.last_seen = now
        windows = rate.windows
        horizon = now - self.window * self.samples
        while windows and windows[0][0] <= horizon:
            del windows[0]  # obsolete: outside the measured time
        if not windows or now - windows[-1][0] >= self.window:
            windows.append([now, 0.0])
            if len(windows) > self.samples:
                del windows[0]
        windows[-1][1] += size
        span = now - windows[0][0]
        whole = int(span // self.window)
        if whole < self.samples - 1:
            span += (self.samples - 1 - whole) * self.window
        observed = sum(w[1] for w in windows) / span
        if observed <= self.quota:
            return 0
        self.throttled += 1
        throttle = (observed - self.quota) / self.quota * span
        return int(min(throttle, self.window * self.samples) * 1000)

    def _sweep(self, now: float) -> None:
        if now < self._next_sweep:
            return
        self._next_sweep = now + FORGET_AFTER_S
        stale = [c for c, r in self._clients.items() if now - r.last_seen > FORGET_AFTER_S]
        for client_id in stale:
            del self._clients[client_id]

    def __len__(self) -> int:
        return len(self._clients)

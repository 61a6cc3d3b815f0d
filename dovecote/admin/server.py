"""The HTTP admin listener (default 127.0.0.1:8080)."""

from __future__ import annotations

import logging
import time

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from dovecote.admin.api import build_app

CLIENT_ERROR_LOG_PERIOD = 10.0  # seconds between reports of malformed requests


class MalformedRequestFilter(logging.Filter):
    """aiohttp logs every malformed request it answers with a 4xx at ERROR,
    traceback included: a client sending garbage would fill the disk with
    the broker's log. Those become one WARNING line per period, without the
    traceback, saying how many there were; real server errors pass as they are."""

    def __init__(self, period: float = CLIENT_ERROR_LOG_PERIOD) -> None:
        super().__init__()
        self.period = period
        self._last = -period
        self._held = 0

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if not isinstance(exc, HttpProcessingError) or not 400 <= (exc.code or 400) < 500:
            return True
        now = time.monotonic()
        if now - self._last < self.period:
            self._held += 1
            return False
        self._last = now
        record.msg = "malformed HTTP request (%s) answered %d: %s%s"
        record.args = (
            record.args[0] if record.args else "?",
            exc.code or 400,
            str(exc.message).strip().splitlines()[0] if exc.message else type(exc).__name__,
            f" ({self._held} more since the last report)" if self._held else "",
        )
        record.levelno, record.levelname = logging.WARNING, "WARNING"
        record.exc_info, record.exc_text = None, None
        self._held = 0
        return True


def http_logger() -> logging.Logger:
    logger = logging.getLogger("dovecote.admin.http")
    if not any(isinstance(f, MalformedRequestFilter) for f in logger.filters):
        logger.addFilter(MalformedRequestFilter())
    return logger


class AdminListener:
    def __init__(self, runner: web.AppRunner, site: web.TCPSite) -> None:
        self._runner = runner
        self._site = site

    @property
    def address(self) -> tuple[str, int]:
        server = self._site._server
        assert server is not None and server.sockets
        host, port = server.sockets[0].getsockname()[:2]
        return host, port

    async def close(self) -> None:
        await self._runner.cleanup()


async def start_listener(broker, host: str, port: int) -> AdminListener:
    runner = web.AppRunner(
        build_app(broker.core, broker),
        access_log=None,
        handle_signals=False,
        logger=http_logger(),
    )
    await runner.setup()
    site = web.TCPSite(runner, host, port, reuse_address=True)
    await site.start()
    return AdminListener(runner, site)

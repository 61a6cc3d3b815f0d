"""The HTTP admin listener (default 127.0.0.1:8080)."""

from __future__ import annotations

from aiohttp import web

from dovecote.admin.api import build_app


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
    runner = web.AppRunner(build_app(broker.core, broker), access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port, reuse_address=True)
    await site.start()
    return AdminListener(runner, site)

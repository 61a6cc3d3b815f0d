"""A real HTTP endpoint for SNS http(s) subscriptions, on its own thread and loop.

It confirms subscriptions by GETting the SubscribeURL (as a subscriber's
application would), can fail the first notifications it is sent, and hands
every request it got to the test through a thread-safe queue.
"""

from __future__ import annotations

import asyncio
import json
import queue
import threading
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web


@dataclass
class Received:
    kind: str  # the x-amz-sns-message-type, "confirmed" after a confirmation GET
    headers: dict[str, str]
    body: str
    status: int  # what the sink answered (or the confirmation GET's status)


class HttpSink:
    def __init__(self, *, fail_first: int = 0, confirm: bool = True) -> None:
        self.fail_first = fail_first
        self.confirm = confirm
        self.failed = 0
        self.events: queue.Queue[Received] = queue.Queue()
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None
        self.url = ""

    def __enter__(self) -> HttpSink:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(10)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_post("/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}/sns"

    async def _stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.text()
        headers = dict(request.headers)
        kind = headers.get("x-amz-sns-message-type", "")
        status = 200
        if kind == "Notification" and self.failed < self.fail_first:
            self.failed += 1
            status = 500
        self.events.put(Received(kind, headers, body, status))
        if kind == "SubscriptionConfirmation" and self.confirm:
            url = json.loads(body)["SubscribeURL"]
            async with aiohttp.ClientSession() as session, session.get(url) as answer:
                text = await answer.text()
            self.events.put(Received("confirmed", dict(answer.headers), text, answer.status))
        return web.Response(status=status, text="ok" if status == 200 else "boom")

    def next(self, kind: str | None = None, timeout: float = 10) -> Received:
        """The next request (of ``kind``, skipping others)."""
        while True:
            event = self.events.get(timeout=timeout)
            if kind is None or event.kind == kind:
                return event

    def pending(self) -> list[Any]:
        out = []
        while not self.events.empty():
            out.append(self.events.get_nowait())
        return out

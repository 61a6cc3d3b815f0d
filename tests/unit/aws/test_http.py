"""The AWS listener's HTTP/1.1 server over a real loopback socket: keep-alive,
pipelining, chunked bodies, 100-continue, refusals (413, malformed requests),
budget accounting, and a departed client cancelling its running request."""

from __future__ import annotations

import asyncio

import pytest

from dovecote.aws.http import serve
from dovecote.core.clock import SystemClock
from dovecote.core.memory import MemoryBudget

LIMIT = 1000


class App:
    def __init__(self) -> None:
        self.seen: list[tuple[str, str, bytes]] = []
        self.cancelled = asyncio.Event()
        self.started = asyncio.Event()

    async def __call__(self, method, target, headers, body):
        self.seen.append((method, target, body))
        if target == "/slow":
            self.started.set()
            try:
                await asyncio.sleep(30)
            except asyncio.CancelledError:
                self.cancelled.set()
                raise
        return 200, {"Content-Type": "text/plain"}, b"echo:" + body

    def too_large(self, headers):
        return 413, {"Content-Type": "text/plain"}, b"too large"


async def start(app: App, budget: MemoryBudget | None = None):
    budget = budget or MemoryBudget(1 << 20)
    server, _connections = await serve(
        app,
        app.too_large,
        "127.0.0.1",
        0,
        max_body=LIMIT,
        budget=budget,
        clock=SystemClock(),
        stall_timeout=5,
    )
    port = server.sockets[0].getsockname()[1]
    return server, port, budget


async def read_response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    status_line = await reader.readline()
    status = int(status_line.split()[1])
    headers = {}
    while True:
        line = (await reader.readline()).decode("latin-1").rstrip("\r\n")
        if not line:
            break
        key, _, value = line.partition(":")
        headers[key.strip().lower()] = value.strip()
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return status, headers, body


def run(coro):
    return asyncio.run(coro)


def test_keep_alive_and_pipelined_requests_are_answered_in_order():
    async def main():
        app = App()
        server, port, budget = await start(app)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(
            b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\none"
            b"POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\ntwo"
        )
        first = await read_response(reader)
        second = await read_response(reader)
        assert first[0] == 200 and first[2] == b"echo:one"
        assert second[2] == b"echo:two"
        assert [s[1] for s in app.seen] == ["/a", "/b"]
        writer.close()
        server.close()
        await server.wait_closed()
        assert budget.used == 0

    run(main())


def test_chunked_body_and_expect_continue():
    async def main():
        app = App()
        server, port, _ = await start(app)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(
            b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
        )
        assert (await read_response(reader))[2] == b"echo:abcde"
        writer.write(
            b"POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n"
        )
        assert (await reader.readline()).startswith(b"HTTP/1.1 100")
        await reader.readline()
        writer.write(b"hi")
        assert (await read_response(reader))[2] == b"echo:hi"
        writer.close()
        server.close()

    run(main())


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        + b"3e8\r\n"
        + b"x" * 1000
        + b"\r\n"
        + b"3e8\r\n"
        + b"x" * 1000
        + b"\r\n",
    ],
)
def test_too_large_is_refused_unread_and_closed(request_bytes):
    async def main():
        app = App()
        server, port, _ = await start(app)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(request_bytes)
        status, headers, body = await read_response(reader)
        assert status == 413 and body == b"too large"
        assert headers.get("connection") == "close"
        assert await reader.read() == b""  # closed
        assert app.seen == []
        server.close()

    run(main())


def test_malformed_request_gets_400_and_the_server_keeps_serving():
    async def main():
        app = App()
        server, port, _ = await start(app)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"\x00\x01garbage\r\n\r\n")
        status, _, _ = await read_response(reader)
        assert status == 400
        assert await reader.read() == b""
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /ok HTTP/1.1\r\nHost: x\r\n\r\n")
        assert (await read_response(reader))[0] == 200
        writer.close()
        server.close()

    run(main())


def test_a_client_that_leaves_cancels_its_request_and_returns_its_budget():
    async def main():
        app = App()
        budget = MemoryBudget(1 << 20)
        server, port, _ = await start(app, budget)
        _reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"POST /slow HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nwait")
        await asyncio.wait_for(app.started.wait(), 5)
        assert budget.used == 4
        writer.close()
        await asyncio.wait_for(app.cancelled.wait(), 5)
        await asyncio.sleep(0)
        assert budget.used == 0
        server.close()

    run(main())

"""A small HTTP/1.1 server for the AWS listener: httptools parses, we do the rest.

The AWS protocols need one thing of HTTP: requests in, answers out, on
keep-alive connections. A general framework cost more per request than the
SQS operation it carried (about 450 us of a 10-message SendMessageBatch), so
this is a plain asyncio protocol around httptools' C parser (llhttp).

Per connection: requests are answered in order, one at a time (HTTP/1.1
clients do not pipeline SQS calls; any that do are queued, up to
``MAX_QUEUED``). A request's body is reserved from the broker's in-flight
budget through the connection's :class:`~dovecote.core.flow.Flow` when its
Content-Length is known; reading pauses while the budget is short, while
too many requests are queued and while the client does not read its
answers, and a half-sent request that stalls is closed by the flow's
watchdog. A body over the limit
is answered with the handler's refusal (413) without being read. A
connection that closes cancels the request it had running (a long poll of
a client that left leases nothing).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Generator
from email.utils import formatdate
from http import HTTPStatus
from typing import Any

import httptools

from dovecote.core.clock import Clock
from dovecote.core.flow import Flow
from dovecote.core.memory import MemoryBudget

log = logging.getLogger("dovecote.aws.http")

Answer = tuple[int, dict[str, str], bytes]
# (method, target, headers, body) -> answer
Handler = Callable[[str, str, dict[str, str], bytes], Awaitable[Answer]]
# (status, headers, body) for a request refused before it was read: too large
TooLarge = Callable[[dict[str, str]], Answer]

QUEUED = "queued"
MAX_QUEUED = 8  # requests read ahead on one connection before reading pauses
_REASONS = {s.value: s.phrase for s in HTTPStatus}


class Headers(dict[str, str]):
    """A request's headers as they came (name -> value, a repeated name's
    values joined by ", "), plus ``by_lower``: each lowercased name -> the
    first spelling received, so a case-insensitive lookup
    (:func:`dovecote.aws.protocol.header`) is one dict get rather than a scan
    lowering every name (several per request)."""

    __slots__ = ("by_lower",)

    def __init__(self) -> None:
        super().__init__()
        self.by_lower: dict[str, str] = {}

    def add(self, key: str, text: str) -> None:
        old = self.get(key)
        if old is None:
            self[key] = text
            self.by_lower.setdefault(key.lower(), key)
        else:
            self[key] = f"{old}, {text}"


class _Request:
    __slots__ = ("body", "headers", "keep_alive", "method", "reserved", "size", "target")

    def __init__(self) -> None:
        self.method = ""
        self.target = b""
        self.headers = Headers()
        self.body: list[bytes] = []
        self.size = 0
        self.reserved = 0
        self.keep_alive = True


class HttpConnection(asyncio.Protocol):
    """One client connection (a :class:`~dovecote.core.flow.FlowOwner`)."""

    def __init__(
        self,
        handler: Handler,
        too_large: TooLarge,
        *,
        max_body: int,
        budget: MemoryBudget,
        clock: Clock,
        stall_timeout: float,
        connections: set[HttpConnection],
    ) -> None:
        self.handler = handler
        self.too_large = too_large
        self.max_body = max_body
        self.flow = Flow(self, budget, clock, stall_timeout)
        self.connections = connections
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.request: _Request | None = None
        self.ready: deque[_Request] = deque()
        self.task: asyncio.Task[None] | None = None  # a handler that had to wait
        self.busy = False  # a handler's first step is running (no task yet)
        self.refused = False  # a request was refused unread: close after answering

    # --- transport -------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.connections.discard(self)
        self.flow.close()
        if self.task is not None and not self.task.done():
            self.task.cancel()
        for request in self.ready:
            self._release(request)
        self.ready.clear()
        if self.request is not None:
            self._release(self.request)
            self.request = None

    def pause_writing(self) -> None:
        self.flow.pause_writing()

    def resume_writing(self) -> None:
        self.flow.resume_writing()

    # FlowOwner
    def pause_reading(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()

    def budget_granted(self) -> None:
        pass  # the reservation was for a body still arriving: reading resumed

    def stalled(self, idle: float) -> None:
        log.warning("closing an SQS/SNS connection: request stalled for %.0f s", idle)
        self.close()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        self.flow.received()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._refuse(400, b"upgrades are not supported")
        except httptools.HttpParserError as error:
            if not self.refused:
                self._refuse(400, f"malformed HTTP request: {error}".encode())
        self.flow.watch()

    def _refuse(self, status: int, text: bytes) -> None:
        self.refused = True
        self._write(status, {"Content-Type": "text/plain"}, text, keep_alive=False)
        self.close()

    # --- parser callbacks ---------------------------------------------------------------

    def on_message_begin(self) -> None:
        self.request = _Request()

    def on_url(self, url: bytes) -> None:
        if self.request is not None:
            self.request.target += url

    def on_header(self, name: bytes, value: bytes) -> None:
        request = self.request
        if request is not None:
            request.headers.add(name.decode("latin-1"), value.decode("latin-1"))

    def on_headers_complete(self) -> None:
        request = self.request
        if request is None:
            return
        request.method = self.parser.get_method().decode("ascii", "replace")
        request.keep_alive = self.parser.should_keep_alive()
        length = _content_length(request.headers)
        if length is not None and length > self.max_body:
            self._refuse_unread(request)
            return
        if length:
            self.flow.reserve(length)
            request.reserved = length
        if _header(request.headers, "expect", "").lower() == "100-continue":
            assert self.transport is not None
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def on_body(self, body: bytes) -> None:
        request = self.request
        if request is None or self.refused:
            return
        request.size += len(body)
        if request.size > self.max_body:
            self._refuse_unread(request)
            return
        if request.size > request.reserved:
            self.flow.settle(self.flow.reserved + request.size - request.reserved)
            request.reserved = request.size
        request.body.append(body)

    def on_message_complete(self) -> None:
        request, self.request = self.request, None
        if request is None or self.refused:
            return
        self.ready.append(request)
        # Reading goes on while a request is handled, so a client that
        # leaves is noticed (its long poll is cancelled); only a client that
        # pipelines many requests is paused.
        self.flow.pause_while(QUEUED, len(self.ready) >= MAX_QUEUED)
        self._next()

    def _refuse_unread(self, request: _Request) -> None:
        status, headers, body = self.too_large(request.headers)
        self._release(request)
        self.request = None
        self.refused = True
        self._write(status, headers, body, keep_alive=False)
        self.close()
        raise httptools.HttpParserError("request too large")  # stop parsing this connection

    # --- handling ------------------------------------------------------------------------

    def _next(self) -> None:
        if self.task is not None or self.busy or not self.ready:
            return
        request = self.ready.popleft()
        # The handler's first step runs here, at once: most requests
        # (receives that find messages, deletes, lookups) finish without
        # ever waiting, and a task per request cost more than they did. Only
        # one that suspends (a send waiting for its fsync, a long poll)
        # becomes a task, which takes over the coroutine where it stopped.
        coro = self._handle(request)
        self.busy = True
        try:
            waiting = coro.send(None)
        except StopIteration:
            return
        finally:
            self.busy = False
        self.task = asyncio.get_running_loop().create_task(_resumed(coro, waiting))

    async def _handle(self, request: _Request) -> None:
        try:
            body = b"".join(request.body)
            target = request.target.decode("latin-1")
            status, headers, data = await self.handler(
                request.method, target, request.headers, body
            )
            await self.flow.writable()
            self._write(status, headers, data, keep_alive=request.keep_alive)
            if not request.keep_alive:
                self.close()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("SQS/SNS request failed")
            self._write(500, {"Content-Type": "text/plain"}, b"internal error", keep_alive=False)
            self.close()
        finally:
            self._release(request)
            self.task = None
            self.busy = False
            if self.transport is not None and not self.transport.is_closing():
                self.flow.pause_while(QUEUED, len(self.ready) >= MAX_QUEUED)
                self._next()

    def _release(self, request: _Request) -> None:
        if request.reserved:
            self.flow.settle(max(0, self.flow.reserved - request.reserved))
            request.reserved = 0

    def _write(
        self, status: int, headers: dict[str, str], body: bytes, *, keep_alive: bool
    ) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        lines = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Unknown')}"]
        for key, value in headers.items():
            lines.append(f"{key}: {value}")
        lines.append(f"Content-Length: {len(body)}")
        lines.append(f"Date: {_date()}")
        if not keep_alive:
            lines.append("Connection: close")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        transport.write(head + body if len(body) < 65536 else head)
        if len(body) >= 65536:
            transport.write(body)


class _Continue:
    """Awaiting this goes on with a coroutine whose first step already ran and
    yielded ``waiting`` (what an asyncio task waits on): it hands that up,
    then passes results and exceptions (cancellation included) down."""

    __slots__ = ("coro", "waiting")

    def __init__(self, coro: Coroutine[Any, Any, None], waiting: Any) -> None:
        self.coro = coro
        self.waiting = waiting

    def __await__(self) -> Generator[Any, Any, None]:
        coro = self.coro
        waiting = self.waiting
        while True:
            try:
                sent = yield waiting
            except BaseException as exc:  # thrown in by the task: pass it on
                try:
                    waiting = coro.throw(exc)
                except StopIteration:
                    return
            else:
                try:
                    waiting = coro.send(sent)
                except StopIteration:
                    return


async def _resumed(coro: Coroutine[Any, Any, None], waiting: Any) -> None:
    await _Continue(coro, waiting)


def _header(headers: dict[str, str], name: str, default: str) -> str:
    by_lower = getattr(headers, "by_lower", None)
    if by_lower is not None:
        key = by_lower.get(name)
        return default if key is None else headers[key]
    for key, value in headers.items():
        if key.lower() == name:
            return value
    return default


def _content_length(headers: dict[str, str]) -> int | None:
    value = _header(headers, "content-length", "")
    if not value:
        return None
    try:
        return int(value)
    except ValueError:
        return None


_date_cache: tuple[int, str] = (0, "")


def _date() -> str:
    """The Date header, made once a second."""
    global _date_cache
    now = int(time.time())
    if _date_cache[0] != now:
        _date_cache = (now, formatdate(now, usegmt=True))
    return _date_cache[1]


async def serve(
    handler: Handler,
    too_large: TooLarge,
    host: str,
    port: int,
    *,
    max_body: int,
    budget: MemoryBudget,
    clock: Clock,
    stall_timeout: float,
) -> tuple[asyncio.Server, set[HttpConnection]]:
    """Listen on ``host:port``; returns the server and its live connections."""
    connections: set[HttpConnection] = set()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: HttpConnection(
            handler,
            too_large,
            max_body=max_body,
            budget=budget,
            clock=clock,
            stall_timeout=stall_timeout,
            connections=connections,
        ),
        host,
        port,
        reuse_address=True,
    )
    return server, connections

"""The Kafka listener: one asyncio protocol per client connection.

Requests on a connection are handled concurrently (a slow Fetch long-poll does
not hold up a Produce behind it), but responses go back in request order, as
the protocol requires. A malformed or oversized frame closes that connection
only. Reading pauses while the client does not read its responses.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import socket
from typing import Any

from dovecote.kafka.build import build
from dovecote.kafka.codec import (
    FrameError,
    FrameReader,
    Request,
    RequestError,
    UnsupportedVersion,
    decode_request,
    encode_response,
    response_class,
    unsupported_api_versions_response,
)
from dovecote.kafka.handlers import API_VERSIONS_KEY, HANDLERS, cluster, supported_versions
from dovecote.kafka.handlers.context import Encoded, KafkaContext, Session

log = logging.getLogger(__name__)

MAX_IN_FLIGHT = 64  # requests per connection before reading pauses


class KafkaListener:
    def __init__(self, broker, ctx: KafkaContext, server: asyncio.base_events.Server) -> None:
        self.broker = broker
        self.ctx = ctx
        self.server = server
        self.connections: set[KafkaConnection] = set()

    @property
    def address(self) -> tuple[str, int]:
        host, port = self.server.sockets[0].getsockname()[:2]
        return host, port

    async def close(self) -> None:
        self.server.close()
        for conn in list(self.connections):
            conn.abort()
        await self.server.wait_closed()


class KafkaConnection(asyncio.Protocol):
    def __init__(self, listener: KafkaListener, supported: dict[int, tuple[int, int]]) -> None:
        self.listener = listener
        self.ctx = listener.ctx
        self.supported = supported
        self.reader = FrameReader(listener.ctx.core.config.max_request_bytes)
        self.transport: asyncio.Transport | None = None
        self.session = Session("")
        self.pending: collections.deque[tuple[Request, asyncio.Future[Any]]] = collections.deque()
        self.reading_paused = False
        self.writing_paused = False
        self.closed = False

    # --- transport events ---------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no asyncio.Transport
        peer = transport.get_extra_info("peername")
        self.session.client_host = f"/{peer[0]}" if peer else "/unknown"
        sock = transport.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass
        transport.set_write_buffer_limits(high=4 << 20)
        self.listener.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.listener.connections.discard(self)
        for _request, future in self.pending:
            future.cancel()
        self.pending.clear()

    def pause_writing(self) -> None:
        self.writing_paused = True
        self._update_reading()

    def resume_writing(self) -> None:
        self.writing_paused = False
        self._update_reading()

    def data_received(self, data: bytes) -> None:
        try:
            frames = self.reader.feed(data)
        except FrameError as err:
            log.warning("closing Kafka connection from %s: %s", self.session.client_host, err)
            self.abort()
            return
        for frame in frames:
            if self.closed:
                return
            self._dispatch(frame)
        self._update_reading()

    def abort(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()

    # --- requests ----------------------------------------------------------------------

    def _dispatch(self, frame: bytes | memoryview) -> None:
        try:
            request = decode_request(frame, self.supported)
        except UnsupportedVersion as err:
            if err.api_key == API_VERSIONS_KEY and err.correlation_id is not None:
                self._answer_unsupported_api_versions(err.correlation_id)
                return
            log.warning("closing Kafka connection from %s: %s", self.session.client_host, err)
            self.abort()
            return
        except RequestError as err:
            log.warning(
                "closing Kafka connection from %s: api %s v%s: %s",
                self.session.client_host,
                err.api_key,
                err.api_version,
                err,
            )
            self.abort()
            return
        if request.client_id is not None:
            self.session.client_id = request.client_id
        future = asyncio.ensure_future(self._handle(request))
        self.pending.append((request, future))
        future.add_done_callback(self._write_ready)

    async def _handle(self, request: Request) -> Any:
        if log.isEnabledFor(logging.DEBUG):
            log.debug(
                "%s %s: api %d v%d %.300r",
                self.session.client_host,
                request.client_id,
                request.api_key,
                request.api_version,
                request.body,
            )
        if request.api_key == API_VERSIONS_KEY:
            return cluster.api_versions(self.ctx, self.session, request, self.supported)
        handler, _ = HANDLERS[request.api_key]
        return await handler(self.ctx, self.session, request)

    def _answer_unsupported_api_versions(self, correlation_id: int) -> None:
        """A too-new ApiVersions request gets a v0 answer with our ranges (KIP-511)."""
        done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        done.set_result(
            Encoded([unsupported_api_versions_response(correlation_id, self.supported)])
        )
        self.pending.append((None, done))  # type: ignore[arg-type]
        self._write_ready(done)

    def _write_ready(self, _future: asyncio.Future[Any]) -> None:
        """Write every finished response at the head of the queue, in order."""
        pending = self.pending
        out = []
        while pending and pending[0][1].done():
            request, future = pending.popleft()
            if future.cancelled():
                continue
            error = future.exception()
            if error is not None:
                log.error(
                    "Kafka api %s from %s failed; closing the connection",
                    request.api_key if request else "?",
                    self.session.client_host,
                    exc_info=error,
                )
                self.abort()
                return
            result = future.result()
            if result is None:
                continue
            if isinstance(result, Encoded):
                out.extend(result.buffers)
                continue
            try:
                body = build(response_class(request.api_key, request.api_version), result)
                out.append(encode_response(request, body))
            except Exception:
                log.exception(
                    "encoding a response to api %d v%d failed", request.api_key, request.api_version
                )
                self.abort()
                return
        if out and not self.closed and self.transport is not None:
            self.transport.writelines(out)
        self._update_reading()

    def _update_reading(self) -> None:
        if self.transport is None or self.closed:
            return
        should_pause = self.writing_paused or len(self.pending) >= MAX_IN_FLIGHT
        if should_pause and not self.reading_paused:
            self.reading_paused = True
            self.transport.pause_reading()
        elif not should_pause and self.reading_paused:
            self.reading_paused = False
            self.transport.resume_reading()


async def start_listener(broker, host: str, port: int) -> KafkaListener:
    core = broker.core
    supported = supported_versions()
    loop = asyncio.get_running_loop()
    listener: KafkaListener | None = None

    def factory() -> KafkaConnection:
        assert listener is not None
        return KafkaConnection(listener, supported)

    server = await loop.create_server(factory, host, port, reuse_address=True, backlog=1024)
    bound_host, bound_port = server.sockets[0].getsockname()[:2]
    advertised = core.config.advertised_host or (
        bound_host if bound_host not in ("0.0.0.0", "::") else socket.getfqdn()
    )
    ctx = KafkaContext(core, core.config.node_id, advertised, bound_port, await core.cluster_id())
    listener = KafkaListener(broker, ctx, server)
    return listener

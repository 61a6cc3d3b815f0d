"""The Kafka listener: one asyncio protocol per client connection.

Requests on a connection are handled concurrently (a slow Fetch long-poll does
not hold up a Produce behind it), but responses go back in request order, as
the protocol requires. A malformed or oversized frame closes that connection
only. Flow control is :mod:`dovecote.core.flow`'s: reading pauses while the
client does not read its responses, while the broker's budget for requests
in flight is used up (each frame's size is reserved when its size prefix
arrives, see :mod:`dovecote.kafka.intake`), while ``MAX_IN_FLIGHT`` requests
await their answers, and while the connection is muted by a produce quota
(KIP-219: the response carries throttle_time_ms and nothing more is read
until it has passed). A half-received request that stalls is closed by the
flow's watchdog after ``request_stall_timeout_ms``.

The broker's resource alarms (:mod:`dovecote.core.alarms`) are not rendered
here: Kafka has no way to tell a producer, and the in-flight budget and the
storage's own errors already bound what a producer costs.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import socket
import time
from typing import Any

from dovecote.core.flow import Flow
from dovecote.core.ratelog import RateLimitedLog
from dovecote.kafka.build import build
from dovecote.kafka.codec import (
    FrameError,
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
from dovecote.kafka.intake import WAIT, Frame, FrameIntake

log = logging.getLogger(__name__)
# A client sending garbage in a loop would otherwise fill the disk with the log.
noisy = RateLimitedLog(log)

MAX_IN_FLIGHT = 64  # requests per connection before reading pauses
PRODUCE_KEY = 0
# reasons to stop reading, beside the flow's own (budget, write)
REQUESTS = "requests"
MUTE = "mute"
CLIENT_THROTTLING_PRODUCE_VERSION = 6  # from here clients back off themselves (KIP-219)


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


class KafkaConnection(asyncio.BufferedProtocol):
    def __init__(self, listener: KafkaListener, supported: dict[int, tuple[int, int]]) -> None:
        self.listener = listener
        self.ctx = listener.ctx
        self.supported = supported
        core = listener.ctx.core
        self.budget = core.memory
        self.quotas = core.produce_quotas
        self.flow = Flow(self, self.budget, core.clock, core.config.request_stall_timeout_ms / 1000)
        self.intake = FrameIntake(self.flow, core.config.max_request_bytes)
        self.transport: asyncio.Transport | None = None
        self.session = Session("")
        # (request, its response to come, bytes reserved for it in the budget)
        self.pending: collections.deque[tuple[Request | None, asyncio.Future[Any], int]] = (
            collections.deque()
        )
        self.muted_until = 0.0  # produce quota: read nothing more until then
        self._unmute: asyncio.TimerHandle | None = None
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
        for _request, future, reserved in self.pending:
            future.cancel()
            self.budget.release(reserved)
        self.pending.clear()
        self.intake.close()
        if self._unmute is not None:
            self._unmute.cancel()

    def pause_writing(self) -> None:
        self.flow.pause_writing()

    def resume_writing(self) -> None:
        self.flow.resume_writing()

    # --- what the flow control asks of us (dovecote.core.flow.FlowOwner) ---------------

    def pause_reading(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.resume_reading()

    def budget_granted(self) -> None:
        asyncio.get_running_loop().call_soon(self._take_frames)

    def stalled(self, idle: float) -> None:
        self._close_for("no more of a request for %.0fs", idle)

    def get_buffer(self, sizehint: int) -> memoryview:
        return self.intake.get_buffer(sizehint)

    def buffer_updated(self, nbytes: int) -> None:
        self.flow.received()
        self.intake.buffer_updated(nbytes)
        self._take_frames()

    def _take_frames(self) -> None:
        """Dispatch every whole frame the budget admits; stop at a frame that
        must wait for budget (reading pauses until it is reserved)."""
        while not self.closed:
            try:
                taken = self.intake.take()
            except FrameError as err:
                self._close_for("%s", err)
                return
            if taken is None or taken == WAIT:
                break
            frame, reserved = taken
            self._dispatch(frame, reserved)
        self._update_reading()

    def _close_for(self, reason: str, *args: object) -> None:
        noisy.log(
            logging.WARNING,
            reason,
            "closing Kafka connection from %s: " + reason,
            self.session.client_host,
            *args,
        )
        self.abort()

    def abort(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()

    # --- requests ----------------------------------------------------------------------

    def _dispatch(self, frame: Frame, reserved: int) -> None:
        try:
            request = decode_request(frame, self.supported)
        except UnsupportedVersion as err:
            if err.api_key == API_VERSIONS_KEY and err.correlation_id is not None:
                self._answer_unsupported_api_versions(err.correlation_id, reserved)
                return
            self.budget.release(reserved)
            self._close_for("%s", err)
            return
        except RequestError as err:
            self.budget.release(reserved)
            self._close_for("api %s v%s: %s", err.api_key, err.api_version, err)
            return
        if request.client_id is not None:
            self.session.client_id = request.client_id
        throttle_ms = 0
        if request.api_key == PRODUCE_KEY and self.quotas.enabled:
            throttle_ms = self.quotas.record(self.session.client_id or "", len(frame))
            if throttle_ms:
                self._mute(throttle_ms)
        future = asyncio.ensure_future(self._handle(request, throttle_ms))
        self.pending.append((request, future, reserved))
        future.add_done_callback(self._write_ready)

    async def _handle(self, request: Request, throttle_ms: int = 0) -> Any:
        result = await self._call_handler(request)
        if throttle_ms:
            if request.api_version < CLIENT_THROTTLING_PRODUCE_VERSION:
                # Older clients do not back off on their own: the answer waits.
                await asyncio.sleep(throttle_ms / 1000)
            if isinstance(result, dict):
                result["throttle_time"] = max(result.get("throttle_time", 0), throttle_ms)
        return result

    def _mute(self, throttle_ms: int) -> None:
        """Read nothing more from this client until its throttle time has passed."""
        until = time.monotonic() + throttle_ms / 1000
        if until <= self.muted_until:
            return
        self.muted_until = until
        self._arm_unmute()
        self._update_reading()

    def _arm_unmute(self) -> None:
        if self._unmute is not None:
            self._unmute.cancel()
        delay = max(self.muted_until - time.monotonic(), 0.0) + 0.001
        self._unmute = asyncio.get_running_loop().call_later(delay, self._unmuted)

    def _unmuted(self) -> None:
        # Timers may fire a little early by this clock: wait out the rest.
        self._unmute = None
        if time.monotonic() < self.muted_until:
            self._arm_unmute()
        else:
            self._update_reading()

    async def _call_handler(self, request: Request) -> Any:
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

    def _answer_unsupported_api_versions(self, correlation_id: int, reserved: int) -> None:
        """A too-new ApiVersions request gets a v0 answer with our ranges (KIP-511)."""
        done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        done.set_result(
            Encoded([unsupported_api_versions_response(correlation_id, self.supported)])
        )
        self.pending.append((None, done, reserved))
        self._write_ready(done)

    def _write_ready(self, _future: asyncio.Future[Any]) -> None:
        """Write every finished response at the head of the queue, in order."""
        pending = self.pending
        out = []
        while pending and pending[0][1].done():
            request, future, reserved = pending.popleft()
            # The request's bytes are done with once its answer is built
            # (what is written is the transport's, bounded by its buffer).
            self.budget.release(reserved)
            if future.cancelled():
                continue
            error = future.exception()
            if error is not None:
                api = request.api_key if request else "?"
                noisy.log(
                    logging.ERROR,
                    f"{api}:{type(error).__name__}",
                    "Kafka api %s from %s failed; closing the connection",
                    api,
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
            assert request is not None
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
        flow = self.flow
        flow.pause_while(REQUESTS, len(self.pending) >= MAX_IN_FLIGHT)
        if self.muted_until:
            flow.pause_while(MUTE, time.monotonic() < self.muted_until)
        flow.watch()


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
    advertised = broker.config.advertised_host or (
        bound_host if bound_host not in ("0.0.0.0", "::") else socket.getfqdn()
    )
    ctx = KafkaContext(core, core.config.node_id, advertised, bound_port, await core.cluster_id())
    listener = KafkaListener(broker, ctx, server)
    return listener

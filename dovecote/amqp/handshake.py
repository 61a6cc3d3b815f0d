"""The connection class of AMQP: handshake, connection.* methods and heartbeats.

The handshake follows RabbitMQ: ``connection.start`` offers PLAIN and
AMQPLAIN with the server properties and capabilities clients look for; a
refused login gets ``connection.close`` 403 (authentication_failure_close);
``connection.tune`` proposes channel_max, frame_max and heartbeat from the
config and the client's tune-ok values are taken (a frame_max above ours is
refused with 530); only the virtual host ``/`` exists. Heartbeats go out
every half interval in which nothing else was sent, and a client silent for
two intervals is disconnected (unless the broker itself stopped reading).
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pamqp import base
from pamqp import commands as C

import dovecote
from dovecote.amqp.auth import MECHANISMS, AuthError
from dovecote.amqp.codec import FRAME_MIN_SIZE, HEARTBEAT_FRAME
from dovecote.amqp.errors import (
    ACCESS_REFUSED,
    CHANNEL_ERROR,
    COMMAND_INVALID,
    NOT_ALLOWED,
    ConnectionError_,
    reply_text,
)
from dovecote.core.flow import Flow
from dovecote.core.ratelog import RateLimitedLog

if TYPE_CHECKING:
    from dovecote.amqp.interfaces import ListenerView

log = logging.getLogger(__name__)
# Refused logins and dead handshakes can come by the thousand: one line now and then.
noisy = RateLimitedLog(log)

# handshake states, then running, then closing
AWAIT_HEADER, AWAIT_START_OK, AWAIT_TUNE_OK, AWAIT_OPEN, RUNNING, CLOSING, CLOSED = range(7)

CAPABILITIES = {
    "publisher_confirms": True,
    "exchange_exchange_bindings": True,
    "basic.nack": True,
    "consumer_cancel_notify": True,
    "connection.blocked": True,
    "authentication_failure_close": True,
    "per_consumer_qos": True,
    "direct_reply_to": True,
    "accept_consumer_cancel_ok": True,  # a client may answer our basic.cancel
}


def server_properties() -> dict[str, Any]:
    return {
        "product": "Dovecote",
        "version": getattr(dovecote, "__version__", "0"),
        "platform": f"Python {sys.version.split()[0]}",
        "copyright": "Dovecote contributors",
        "information": "AMQP 0-9-1 front door of the Dovecote broker",
        "cluster_name": "dovecote",
        "capabilities": CAPABILITIES,
    }


class ConnectionMethods:
    """Mixin of :class:`~dovecote.amqp.connection.Connection` for channel 0."""

    listener: ListenerView
    loop: asyncio.AbstractEventLoop
    state: int
    user: str
    peer: tuple[str, int] | None
    client_properties: dict[str, Any]
    frame_max: int
    channel_max: int
    heartbeat: int
    flow: Flow
    transport: Any
    reader: Any
    _sent: bool
    _timer: asyncio.TimerHandle | None

    # provided by Connection
    send_method: Callable[[int, base.Frame], None]
    set_alarms: Callable[[frozenset[str]], None]
    close: Callable[..., None]
    _flush: Callable[[], None]
    _drop: Callable[[], None]
    _release_all: Callable[[], None]

    def _on_protocol_header(self) -> None:
        self.state = AWAIT_START_OK
        self.send_method(
            0,
            C.Connection.Start(
                0,
                9,
                server_properties(),
                " ".join(MECHANISMS),
                "en_US",
            ),
        )

    def _on_connection_method(self, method: base.Frame) -> None:
        index = method.index
        state = self.state
        if state == CLOSING:
            if index == C.Connection.CloseOk.index:
                self._drop()
            elif index == C.Connection.Close.index:
                self.send_method(0, C.Connection.CloseOk())
                self._flush()
                self._drop()
            return
        if index == C.Connection.Close.index:
            # Requeue what the channels hold before the client hears close-ok.
            self._release_all()
            self.send_method(0, C.Connection.CloseOk())
            self._flush()
            self._drop()
        elif state == AWAIT_START_OK and index == C.Connection.StartOk.index:
            self._on_start_ok(method)
        elif state == AWAIT_TUNE_OK and index == C.Connection.TuneOk.index:
            self._on_tune_ok(method)
        elif state == AWAIT_OPEN and index == C.Connection.Open.index:
            self._on_open(method)
        elif state == RUNNING and index == C.Connection.UpdateSecret.index:
            self.send_method(0, C.Connection.UpdateSecretOk())
        elif state == RUNNING and index in (
            C.Connection.Blocked.index,
            C.Connection.Unblocked.index,
        ):
            pass
        elif state == RUNNING:
            raise ConnectionError_(
                CHANNEL_ERROR, f"unexpected method in connection state running: {method.name}"
            )
        else:
            raise ConnectionError_(COMMAND_INVALID, f"unexpected method {method.name} in handshake")

    def _on_start_ok(self, m: C.Connection.StartOk) -> None:
        self.client_properties = m.client_properties or {}
        mechanism = m.mechanism
        if mechanism not in MECHANISMS:
            self._refuse(f"unsupported authentication mechanism '{mechanism}'", mechanism)
            return
        try:
            self.user = self.listener.users.authenticate(
                mechanism, m.response, self.peer[0] if self.peer else None
            )
        except AuthError as err:
            self._refuse(str(err), mechanism)
            return
        config = self.listener.config
        self.state = AWAIT_TUNE_OK
        self.send_method(
            0,
            C.Connection.Tune(
                config.amqp_channel_max, config.amqp_frame_max, config.amqp_heartbeat
            ),
        )

    def _refuse(self, why: str, mechanism: str) -> None:
        noisy.log(logging.WARNING, "login", "%r: login refused: %s", self, why)
        text = (
            f"Login was refused using authentication mechanism {mechanism}. "
            "For details see the broker logfile."
        )
        self.close(ACCESS_REFUSED, reply_text(ACCESS_REFUSED, text), 10, 11, wait=False)

    def _on_tune_ok(self, m: C.Connection.TuneOk) -> None:
        config = self.listener.config
        frame_max = m.frame_max or config.amqp_frame_max
        if frame_max < FRAME_MIN_SIZE:
            raise ConnectionError_(
                NOT_ALLOWED, f"frame_max={frame_max} < {FRAME_MIN_SIZE} min size", 10, 31
            )
        if config.amqp_frame_max and frame_max > config.amqp_frame_max:
            raise ConnectionError_(
                NOT_ALLOWED, f"frame_max={frame_max} > {config.amqp_frame_max} max size", 10, 31
            )
        channel_max = m.channel_max or config.amqp_channel_max
        self.channel_max = min(channel_max, config.amqp_channel_max or channel_max) or 65535
        self.frame_max = frame_max
        self.reader.frame_max = frame_max
        self.heartbeat = m.heartbeat
        self.state = AWAIT_OPEN

    def _on_open(self, m: C.Connection.Open) -> None:
        vhost = m.virtual_host or "/"
        if vhost != "/":
            raise ConnectionError_(NOT_ALLOWED, f"vhost {vhost} not found", 10, 40)
        self.state = RUNNING
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.send_method(0, C.Connection.OpenOk())
        if self.heartbeat:
            self._timer = self.loop.call_later(self.heartbeat / 2, self._heartbeat_tick)
        if self.listener.alarms:
            self.set_alarms(self.listener.alarms)

    # --- heartbeats ------------------------------------------------------------------

    def _heartbeat_tick(self) -> None:
        if self.state not in (RUNNING, CLOSING):
            return
        flow = self.flow
        now = flow.clock.monotonic()
        if flow.paused:
            # We are not reading (alarm, backpressure, a pending declaration):
            # the client's heartbeats wait in the socket, as RabbitMQ's
            # heartbeat monitor pauses while a connection is blocked.
            flow.last_received = now
        if now - flow.last_received > 2 * self.heartbeat:
            log.warning(
                "%r: missed heartbeats from client, timeout: %ds; closing", self, self.heartbeat
            )
            self._drop()
            return
        if not self._sent and self.transport is not None and not self.transport.is_closing():
            self.transport.write(HEARTBEAT_FRAME)
        self._sent = False
        self._timer = self.loop.call_later(self.heartbeat / 2, self._heartbeat_tick)

    def _handshake_timeout(self) -> None:
        self._timer = None
        if self.state < RUNNING:
            noisy.log(logging.WARNING, "handshake", "%r: handshake timed out", self)
            self._drop()

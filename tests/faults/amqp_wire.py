"""Raw AMQP 0-9-1 bytes for the malformed-input scenarios: a pipelined
handshake, frames built by hand (any type, channel, size and end octet),
reading the broker's answer over a plain socket, and pika sessions captured
from the broker's side of the socket for cutting and mutating."""

from __future__ import annotations

import socket
import struct
import tempfile
import time
import uuid

import pika
from pamqp import base
from pamqp import commands as C

from dovecote.amqp import connection as amqp_connection
from dovecote.amqp.codec import PROTOCOL_HEADER, CodecError, FrameReader, MethodFrame, encode_method
from dovecote.testing import BrokerThread

FRAME_MAX = 131072


def frame(kind: int, channel: int, payload: bytes, *, size: int | None = None, end: int = 0xCE):
    """One frame; ``size`` and ``end`` may lie."""
    head = struct.pack(">BHI", kind, channel, len(payload) if size is None else size)
    return head + payload + bytes([end])


def content_header(channel: int, body_size: int, class_id: int = 60) -> bytes:
    return frame(2, channel, struct.pack(">HHQ", class_id, 0, body_size) + b"\x00\x00")


def handshake(channels: int = 1) -> bytes:
    """Everything a client sends up to open channels 1..``channels``, without
    waiting for the answers (the broker handles a pipelined handshake)."""
    out = [
        PROTOCOL_HEADER,
        encode_method(0, C.Connection.StartOk({}, "PLAIN", b"\x00guest\x00guest")),
        encode_method(0, C.Connection.TuneOk(2047, FRAME_MAX, 0)),
        encode_method(0, C.Connection.Open("/")),
    ]
    out += [encode_method(n, C.Channel.Open()) for n in range(1, channels + 1)]
    return b"".join(out)


def send_and_read(
    address: tuple[str, int], data: bytes, chunks: list[int] = (), timeout: float = 5.0
) -> tuple[list[base.Frame], bytes, bool]:
    """Send ``data`` (in pieces of the sizes in ``chunks``, then the rest) and
    the end of the stream; read until the broker hangs up. Returns what it sent (decoded), the first raw bytes, and
    whether the socket was closed by the broker."""
    with socket.create_connection(address, timeout=timeout) as sock:
        pos = 0
        try:
            for size in [*chunks, len(data)]:
                if pos >= len(data):
                    break
                sock.sendall(data[pos : pos + max(1, size)])
                pos += max(1, size)
            sock.shutdown(socket.SHUT_WR)  # the broker sees the end at once
        except OSError:
            pass  # the broker hung up mid-send: what it does with a fatal error
        reader = FrameReader(frame_max=0, expect_protocol_header=False)
        methods: list[base.Frame] = []
        first = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                got = sock.recv(65536)
            except TimeoutError:
                break
            except OSError:
                return methods, first, True
            if not got:
                return methods, first, True
            if not first:
                first = got[:8]
                if got.startswith(b"AMQP"):
                    got = got[8:]
            try:
                events = reader.feed(got)
            except CodecError:
                return methods, first, False
            for event in events:
                if isinstance(event, MethodFrame):
                    methods.append(event.method)
        return methods, first, False


def closed_with(methods: list[base.Frame]) -> int | None:
    """The reply code of the connection.close the broker sent, if any."""
    for method in methods:
        if isinstance(method, C.Connection.Close):
            return method.reply_code
    return None


def _session(url: str) -> None:
    """What an application does with pika: declarations, confirmed and plain
    publishes with properties and headers, get, consume, ack, nack, reject,
    qos, a transaction, purge, delete, close."""
    name = f"cap-{uuid.uuid4().hex[:6]}"
    connection = pika.BlockingConnection(pika.URLParameters(url))
    channel = connection.channel()
    channel.exchange_declare(name, "topic", durable=True)
    channel.queue_declare(name, durable=True, arguments={"x-max-length": 100})
    channel.queue_bind(name, name, "a.#")
    channel.confirm_delivery()
    props = pika.BasicProperties(
        content_type="text/plain",
        delivery_mode=2,
        headers={"n": 1, "s": "x", "l": [1, "a"], "t": {"k": True}},
        priority=3,
        correlation_id="c",
        reply_to="r",
        expiration="60000",
        message_id="m",
        timestamp=1700000000,
        type="t",
        app_id="a",
    )
    for i in range(3):
        channel.basic_publish(name, "a.b", b"body-%d" % i + b"x" * (i * 250), props)
    channel.basic_publish("", name, b"", pika.BasicProperties())
    method, _props, _body = channel.basic_get(name)
    channel.basic_ack(method.delivery_tag)
    channel.basic_qos(prefetch_count=2)
    for seen, (method, _props, _body) in enumerate(
        channel.consume(name, inactivity_timeout=1), start=1
    ):
        if method is None:
            break
        if seen == 1:
            channel.basic_nack(method.delivery_tag, requeue=True)
        elif seen == 2:
            channel.basic_reject(method.delivery_tag, requeue=False)
        else:
            channel.basic_ack(method.delivery_tag, multiple=True)
        if seen >= 4:
            break
    channel.cancel()
    other = connection.channel()
    other.tx_select()
    other.basic_publish("", name, b"tx")
    other.tx_commit()
    other.queue_purge(name)
    other.queue_unbind(name, name, "a.#")
    other.queue_delete(name)
    other.exchange_delete(name)
    other.close()
    connection.close()


def capture_pika_sessions() -> list[bytes]:
    """The byte streams pika sent to a broker during :func:`_session`, one per
    connection, recorded on the broker's side of the socket."""
    streams: dict[int, bytearray] = {}
    original = amqp_connection.Connection.data_received

    def tap(self, data: bytes) -> None:
        streams.setdefault(id(self), bytearray()).extend(data)
        original(self, data)

    amqp_connection.Connection.data_received = tap  # type: ignore[method-assign]
    try:
        with (
            tempfile.TemporaryDirectory(prefix="dovecote-capture-") as tmp,
            BrokerThread(tmp, kafka="off", http="off") as broker,
        ):
            _session(broker.amqp_url)
    finally:
        amqp_connection.Connection.data_received = original  # type: ignore[method-assign]
    return [bytes(s) for s in streams.values() if s]

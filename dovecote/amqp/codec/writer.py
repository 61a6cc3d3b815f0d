"""Frame encoders for what the server sends, with fast paths for per-message frames.

:func:`encode_method` handles any method via the compiled plans in
:mod:`~.methods`. Deliveries (basic.deliver, basic.get-ok, basic.return) and
publisher confirms (basic.ack/nack) are hand-packed with precompiled structs:
the output is byte-identical to pamqp's ``frame.marshal`` (the tests check
that) at a fraction of the cost. Content is sent with the property block
exactly as stored, never re-encoded.

Body frames are cut at ``frame_max - 8`` bytes (frame header + end octet);
``frame_max=0`` means no limit. An empty body sends no body frame, as
RabbitMQ and pika do. ``consumer_tag``/``exchange``/``routing_key`` may be
``str`` or already-encoded ``bytes`` (cheaper: the adapter can cache them).
"""

from __future__ import annotations

import struct

from pamqp import base, commands

from dovecote.amqp.codec.frames import (
    FRAME_BODY,
    FRAME_END,
    FRAME_HEADER,
    FRAME_HEARTBEAT,
    FRAME_METHOD,
    FRAME_OVERHEAD,
)
from dovecote.amqp.codec.methods import encode_method_payload
from dovecote.amqp.codec.properties import BASIC_CLASS_ID

HEARTBEAT_FRAME = bytes((FRAME_HEARTBEAT, 0, 0, 0, 0, 0, 0, FRAME_END))

_FRAME = struct.Struct(">BHI")
_END = b"\xce"
_ONE = [bytes((i,)) for i in range(256)]

# method frame header + method index + first shortstr length, in one pack
_METHOD_HEAD_STR = struct.Struct(">BHIIB")
_CONTENT_HEADER_FRAME = struct.Struct(">BHIHHQ")
# frame end + content header frame (type, channel, size, class, weight, body size)
_END_CONTENT_HEADER = struct.Struct(">BBHIHHQ")
# frame end + body frame header
_END_BODY = struct.Struct(">BBHI")
_CONFIRM = struct.Struct(">BHIIQBB")  # whole basic.ack/nack frame

_DELIVER = commands.Basic.Deliver.index
_GET_OK = commands.Basic.GetOk.index
_RETURN = commands.Basic.Return.index
_ACK = commands.Basic.Ack.index
_NACK = commands.Basic.Nack.index
_QBB = struct.Struct(">QBB")
_HB = struct.Struct(">HB")
_IB = struct.Struct(">I")


def encode_frame(frame_type: int, channel: int, payload: bytes) -> bytes:
    """One raw frame: header, payload, frame-end octet."""
    return _FRAME.pack(frame_type, channel, len(payload)) + payload + _END


def encode_method(channel: int, method: base.Frame) -> bytes:
    """A method frame for any pamqp method object (no content)."""
    payload = encode_method_payload(method)
    return _FRAME.pack(FRAME_METHOD, channel, len(payload)) + payload + _END


def encode_content_header(
    channel: int, body_size: int, property_block: bytes, class_id: int = BASIC_CLASS_ID
) -> bytes:
    """A content header frame carrying ``property_block`` verbatim."""
    head = _CONTENT_HEADER_FRAME.pack(
        FRAME_HEADER, channel, 12 + len(property_block), class_id, 0, body_size
    )
    return head + property_block + _END


def encode_body_frames(channel: int, body: bytes, frame_max: int = 0) -> list[bytes]:
    """Body frames for ``body`` split at ``frame_max - 8`` (none for an empty body)."""
    chunk = _chunk_size(frame_max)
    return [
        _FRAME.pack(FRAME_BODY, channel, len(piece)) + piece + _END
        for piece in (body[start : start + chunk] for start in range(0, len(body), chunk))
    ]


def _chunk_size(frame_max: int) -> int:
    if frame_max == 0:
        return 1 << 62
    if frame_max <= FRAME_OVERHEAD:
        raise ValueError(f"frame_max {frame_max} leaves no room for a body")
    return frame_max - FRAME_OVERHEAD


def _body_parts(channel: int, body: bytes, frame_max: int, first: int) -> list[bytes | memoryview]:
    """Parts of the body frames; the first part starts with the previous frame's end
    octet unless ``first`` is 1 (then that octet is skipped)."""
    n = len(body)
    chunk = _chunk_size(frame_max)
    parts: list[bytes | memoryview] = []
    view = memoryview(body) if n > chunk else body
    for start in range(0, n, chunk):
        piece = view[start : start + chunk]
        parts.append(_END_BODY.pack(FRAME_END, FRAME_BODY, channel, len(piece))[first:])
        parts.append(piece)
        first = 0
    parts.append(_END)
    return parts


def _raw(value: str | bytes) -> bytes:
    return value.encode("utf-8") if isinstance(value, str) else value


def _content_tail(
    channel: int, property_block: bytes, body: bytes, frame_max: int
) -> list[bytes | memoryview]:
    """Everything after a content method's arguments: its end octet, header, bodies."""
    n = len(body)
    head = _END_CONTENT_HEADER.pack(
        FRAME_END, FRAME_HEADER, channel, 12 + len(property_block), BASIC_CLASS_ID, 0, n
    )
    if not n:
        return [head, property_block, _END]
    if frame_max == 0 or n <= frame_max - FRAME_OVERHEAD:
        return [head, property_block, _END_BODY.pack(FRAME_END, FRAME_BODY, channel, n), body, _END]
    return [head, property_block, *_body_parts(channel, body, frame_max, 0)]


def _deliver_parts(
    channel: int,
    consumer_tag: str | bytes,
    delivery_tag: int,
    redelivered: bool,
    exchange: str | bytes,
    routing_key: str | bytes,
    property_block: bytes,
    body: bytes,
    frame_max: int,
) -> list[bytes | memoryview]:
    ctag = _raw(consumer_tag)
    ex = _raw(exchange)
    rk = _raw(routing_key)
    lc, le, lr = len(ctag), len(ex), len(rk)
    if lc > 255 or le > 255 or lr > 255:
        raise ValueError("consumer_tag, exchange and routing_key are limited to 255 bytes")
    return [
        _METHOD_HEAD_STR.pack(FRAME_METHOD, channel, 16 + lc + le + lr, _DELIVER, lc),
        ctag,
        _QBB.pack(delivery_tag, redelivered, le),
        ex,
        _ONE[lr],
        rk,
        *_content_tail(channel, property_block, body, frame_max),
    ]


def encode_delivery(
    channel: int,
    consumer_tag: str | bytes,
    delivery_tag: int,
    redelivered: bool,
    exchange: str | bytes,
    routing_key: str | bytes,
    property_block: bytes,
    body: bytes,
    frame_max: int = 0,
) -> bytes:
    """basic.deliver + content header + body frames, as one bytes object."""
    return b"".join(
        _deliver_parts(
            channel,
            consumer_tag,
            delivery_tag,
            redelivered,
            exchange,
            routing_key,
            property_block,
            body,
            frame_max,
        )
    )


def encode_delivery_parts(
    channel: int,
    consumer_tag: str | bytes,
    delivery_tag: int,
    redelivered: bool,
    exchange: str | bytes,
    routing_key: str | bytes,
    property_block: bytes,
    body: bytes,
    frame_max: int = 0,
) -> list[bytes | memoryview]:
    """Like :func:`encode_delivery` but as buffers for ``transport.writelines``:
    a large body is referenced, not copied."""
    return _deliver_parts(
        channel,
        consumer_tag,
        delivery_tag,
        redelivered,
        exchange,
        routing_key,
        property_block,
        body,
        frame_max,
    )


def encode_get_ok(
    channel: int,
    delivery_tag: int,
    redelivered: bool,
    exchange: str | bytes,
    routing_key: str | bytes,
    message_count: int,
    property_block: bytes,
    body: bytes,
    frame_max: int = 0,
) -> bytes:
    """basic.get-ok + content header + body frames."""
    ex = _raw(exchange)
    rk = _raw(routing_key)
    le, lr = len(ex), len(rk)
    if le > 255 or lr > 255:
        raise ValueError("exchange and routing_key are limited to 255 bytes")
    parts = [
        _FRAME.pack(FRAME_METHOD, channel, 19 + le + lr),
        _IB.pack(_GET_OK),
        _QBB.pack(delivery_tag, redelivered, le),
        ex,
        _ONE[lr],
        rk,
        _IB.pack(message_count),
        *_content_tail(channel, property_block, body, frame_max),
    ]
    return b"".join(parts)


def encode_return(
    channel: int,
    reply_code: int,
    reply_text: str | bytes,
    exchange: str | bytes,
    routing_key: str | bytes,
    property_block: bytes,
    body: bytes,
    frame_max: int = 0,
) -> bytes:
    """basic.return + content header + body frames (unroutable mandatory message)."""
    text = _raw(reply_text)
    ex = _raw(exchange)
    rk = _raw(routing_key)
    lt, le, lr = len(text), len(ex), len(rk)
    if lt > 255 or le > 255 or lr > 255:
        raise ValueError("reply_text, exchange and routing_key are limited to 255 bytes")
    parts = [
        _FRAME.pack(FRAME_METHOD, channel, 9 + lt + le + lr),
        _IB.pack(_RETURN),
        _HB.pack(reply_code, lt),
        text,
        _ONE[le],
        ex,
        _ONE[lr],
        rk,
        *_content_tail(channel, property_block, body, frame_max),
    ]
    return b"".join(parts)


def encode_basic_ack(channel: int, delivery_tag: int, multiple: bool = False) -> bytes:
    """A basic.ack frame (publisher confirm)."""
    return _CONFIRM.pack(FRAME_METHOD, channel, 13, _ACK, delivery_tag, multiple, FRAME_END)


def encode_basic_nack(
    channel: int, delivery_tag: int, multiple: bool = False, requeue: bool = True
) -> bytes:
    """A basic.nack frame (negative publisher confirm)."""
    return _CONFIRM.pack(
        FRAME_METHOD, channel, 13, _NACK, delivery_tag, multiple | (requeue << 1), FRAME_END
    )

"""Server->client encoders: byte-identical to pamqp, readable by pika."""

from __future__ import annotations

import pika.frame
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pamqp import body as pbody
from pamqp import commands as C
from pamqp import frame, heartbeat
from pamqp import header as pheader

from dovecote.amqp.codec import (
    HEARTBEAT_FRAME,
    CommandReader,
    Message,
    encode_basic_ack,
    encode_basic_nack,
    encode_body_frames,
    encode_content_header,
    encode_delivery,
    encode_delivery_parts,
    encode_get_ok,
    encode_return,
)
from tests.unit.amqp.strategies import names, shortstrs
from tests.unit.amqp.test_properties import pamqp_properties

channels = st.integers(1, 65535)
tags = st.integers(0, 2**63 - 1)
bodies = st.binary(max_size=3000)
frame_maxes = st.sampled_from([0, 9, 10, 100, 4096, 131072])


def pamqp_content(channel, method, props, body, frame_max):
    out = [
        frame.marshal(method, channel),
        frame.marshal(pheader.ContentHeader(0, len(body), props), channel),
    ]
    step = frame_max - 8 if frame_max else max(len(body), 1)
    for start in range(0, len(body), step):
        out.append(frame.marshal(pbody.ContentBody(body[start : start + step]), channel))
    return b"".join(out)


@settings(max_examples=150)
@given(channels, shortstrs, tags, st.booleans(), names, shortstrs, pamqp_properties, bodies,
       frame_maxes)  # fmt: skip
def test_delivery_matches_pamqp(channel, ctag, tag, redelivered, exchange, rk, props, body, fmax):
    method = C.Basic.Deliver(ctag, tag, redelivered, exchange, rk)
    reference = pamqp_content(channel, method, props, body, fmax)
    block = props.marshal()
    args = (channel, ctag, tag, redelivered, exchange, rk, block, body, fmax)
    assert encode_delivery(*args) == reference
    assert b"".join(encode_delivery_parts(*args)) == reference
    raw = (channel, ctag.encode(), tag, redelivered, exchange.encode(), rk.encode(), block, body)
    assert encode_delivery(*raw, fmax) == reference


@settings(max_examples=100)
@given(channels, tags, st.booleans(), names, shortstrs, st.integers(0, 2**32 - 1),
       pamqp_properties, bodies, frame_maxes)  # fmt: skip
def test_get_ok_matches_pamqp(channel, tag, redelivered, exchange, rk, count, props, body, fmax):
    method = C.Basic.GetOk(tag, redelivered, exchange, rk, count)
    reference = pamqp_content(channel, method, props, body, fmax)
    assert (
        encode_get_ok(channel, tag, redelivered, exchange, rk, count, props.marshal(), body, fmax)
        == reference
    )


@settings(max_examples=100)
@given(channels, st.integers(0, 65535), shortstrs, names, shortstrs, pamqp_properties, bodies,
       frame_maxes)  # fmt: skip
def test_return_matches_pamqp(channel, code, text, exchange, rk, props, body, fmax):
    method = C.Basic.Return(code, text, exchange, rk)
    reference = pamqp_content(channel, method, props, body, fmax)
    assert (
        encode_return(channel, code, text, exchange, rk, props.marshal(), body, fmax) == reference
    )


@settings(max_examples=200)
@given(channels, tags, st.booleans(), st.booleans())
def test_confirms_match_pamqp(channel, tag, multiple, requeue):
    assert encode_basic_ack(channel, tag, multiple) == frame.marshal(
        C.Basic.Ack(tag, multiple), channel
    )
    assert encode_basic_nack(channel, tag, multiple, requeue) == frame.marshal(
        C.Basic.Nack(tag, multiple, requeue), channel
    )


def test_unsigned_delivery_tags_beyond_pamqps_range():
    frame_bytes = encode_basic_ack(1, 2**64 - 1)
    (event,) = CommandReader(expect_protocol_header=False).feed(frame_bytes)
    assert event.method.delivery_tag == 2**64 - 1


def test_content_header_and_body_frames():
    props = C.Basic.Properties(message_id="m")
    assert encode_content_header(3, 10, props.marshal()) == frame.marshal(
        pheader.ContentHeader(0, 10, props), 3
    )
    assert encode_body_frames(3, b"", 4096) == []
    assert encode_body_frames(3, b"abcdef", 12) == [
        frame.marshal(pbody.ContentBody(b"abcd"), 3),
        frame.marshal(pbody.ContentBody(b"ef"), 3),
    ]
    with pytest.raises(ValueError):
        encode_body_frames(3, b"abc", 8)
    assert frame.marshal(heartbeat.Heartbeat(), 0) == HEARTBEAT_FRAME


def test_parts_reference_large_bodies_without_copying():
    body = bytes(100_000)
    parts = encode_delivery_parts(1, "c", 1, False, "", "q", b"\x00\x00", body, 4096)
    views = [p for p in parts if isinstance(p, memoryview)]
    assert len(views) == -(-len(body) // 4088) and views[0].obj is body


def test_oversized_strings_are_refused():
    with pytest.raises(ValueError):
        encode_delivery(1, "c" * 256, 1, False, "", "", b"\x00\x00", b"")
    with pytest.raises(ValueError):
        encode_get_ok(1, 1, False, "", "r" * 256, 0, b"\x00\x00", b"")
    with pytest.raises(ValueError):
        encode_return(1, 312, "t" * 256, "", "", b"\x00\x00", b"")


def test_pika_reads_a_delivery():
    block = b"".join(pika.spec.BasicProperties(content_type="text/plain", priority=3).encode())
    data = encode_delivery(1, "ctag", 9, True, "ex", "rk", block, b"x" * 10000, 4096)
    frames = []
    while data:
        consumed, decoded = pika.frame.decode_frame(data)
        frames.append(decoded)
        data = data[consumed:]
    deliver, head, *bodies = frames
    assert (deliver.method.consumer_tag, deliver.method.delivery_tag) == ("ctag", 9)
    assert deliver.method.redelivered and head.properties.priority == 3
    assert b"".join(b.fragment for b in bodies) == b"x" * 10000


def test_server_output_reads_back_as_messages():
    block = C.Basic.Properties(delivery_mode=2).marshal()
    reader = CommandReader(expect_protocol_header=False, frame_max=0)
    data = encode_delivery(1, "c", 1, False, "", "q", block, b"hi", 4096)
    data += encode_get_ok(2, 2, False, "", "q", 0, block, b"", 4096)
    data += encode_return(3, 312, "NO_ROUTE", "ex", "rk", block, b"ret", 4096)
    messages = reader.feed(data)
    assert [type(m) for m in messages] == [Message] * 3
    assert [m.method.name for m in messages] == ["Basic.Deliver", "Basic.GetOk", "Basic.Return"]
    assert [m.body for m in messages] == [b"hi", b"", b"ret"]

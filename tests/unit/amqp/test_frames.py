"""FrameReader and CommandReader on real client bytes, split anywhere, and under fuzz."""

from __future__ import annotations

import struct

import pika
import pika.frame
import pika.spec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pamqp import commands as C

from dovecote.amqp.codec import (
    HEARTBEAT_FRAME,
    PROTOCOL_HEADER,
    AMQPError,
    BadProtocolHeader,
    CodecError,
    CommandReader,
    ContentAssembler,
    ContentBodyFrame,
    ContentHeaderFrame,
    FrameError,
    FrameReader,
    Heartbeat,
    Message,
    MethodFrame,
    ProtocolHeader,
    SyntaxError_,
    UnexpectedFrame,
    encode_frame,
    encode_method,
)


def pika_publish(channel, body, frame_max=131072, **props):
    """The frames pika sends for basic_publish, split like pika splits bodies."""
    out = [
        pika.frame.Method(
            channel, pika.spec.Basic.Publish(exchange="ex", routing_key="rk")
        ).marshal(),
        pika.frame.Header(channel, len(body), pika.spec.BasicProperties(**props)).marshal(),
    ]
    step = frame_max - 8
    for start in range(0, len(body), step):
        out.append(pika.frame.Body(channel, body[start : start + step]).marshal())
    return b"".join(out)


def client_session():
    """A connection's worth of client bytes, as pika marshals them."""
    spec = pika.spec
    parts = [
        pika.frame.ProtocolHeader().marshal(),
        pika.frame.Method(
            0,
            spec.Connection.StartOk(
                client_properties={"product": "pika", "capabilities": {"publisher_confirms": True}},
                mechanism="PLAIN",
                response="\0guest\0guest",
            ),
        ).marshal(),
        pika.frame.Method(0, spec.Connection.TuneOk(2047, 131072, 60)).marshal(),
        pika.frame.Method(0, spec.Connection.Open("/")).marshal(),
        pika.frame.Method(1, spec.Channel.Open()).marshal(),
        pika.frame.Method(1, spec.Confirm.Select()).marshal(),
        pika.frame.Method(
            1, spec.Queue.Declare(queue="jobs", durable=True, arguments={"x-max-priority": 10})
        ).marshal(),
        pika_publish(
            1,
            b"small",
            content_type="text/plain",
            delivery_mode=2,
            headers={"x-delay": 50, "trace": ["a", 1]},
        ),
        pika.frame.Heartbeat().marshal(),
        pika_publish(1, bytes(range(256)) * 20, frame_max=4096, priority=7),
        pika_publish(2, b"", message_id="empty"),
        pika.frame.Method(1, spec.Basic.Ack(7, multiple=True)).marshal(),
        pika.frame.Method(1, spec.Basic.Nack(8, requeue=False)).marshal(),
        pika.frame.Method(1, spec.Channel.Close(200, "bye", 0, 0)).marshal(),
        pika.frame.Method(0, spec.Connection.Close(200, "Normal shutdown", 0, 0)).marshal(),
    ]
    return b"".join(parts)


SESSION = client_session()


def summarize(events):
    out = []
    for event in events:
        if isinstance(event, Message):
            out.append(("msg", event.channel, event.method.name, event.property_block, event.body))
        elif isinstance(event, MethodFrame):
            out.append(("method", event.channel, event.method.name, dict(event.method)))
        else:
            out.append(event)
    return out


def read_all(chunks, **kwargs):
    reader = CommandReader(frame_max=131072, **kwargs)
    events = []
    for chunk in chunks:
        events += reader.feed(chunk)
    return events


def test_decodes_a_pika_session():
    events = read_all([SESSION])
    kinds = [type(e).__name__ for e in events]
    assert kinds == ["ProtocolHeader"] + ["MethodFrame"] * 6 + ["Message", "Heartbeat"] + [
        "Message", "Message"] + ["MethodFrame"] * 4  # fmt: skip
    start_ok = events[1].method
    assert isinstance(start_ok, C.Connection.StartOk)
    assert start_ok.client_properties["capabilities"] == {"publisher_confirms": True}
    assert start_ok.response == "\0guest\0guest"
    assert events[6].method.arguments == {"x-max-priority": 10}
    small = events[7]
    assert small.body == b"small" and small.method.exchange == "ex"
    assert small.properties.headers == {"x-delay": 50, "trace": ["a", 1]}
    assert small.properties.delivery_mode == 2
    assert small.property_block == b"".join(
        pika.spec.BasicProperties(
            content_type="text/plain", delivery_mode=2, headers={"x-delay": 50, "trace": ["a", 1]}
        ).encode()
    )
    big = events[9]
    assert big.body == bytes(range(256)) * 20 and big.properties.priority == 7
    empty = events[10]
    assert (empty.channel, empty.body, empty.properties.message_id) == (2, b"", "empty")
    assert (events[11].method.delivery_tag, events[11].method.multiple) == (7, True)
    assert (events[12].method.delivery_tag, events[12].method.requeue) == (8, False)


def test_split_at_every_byte_boundary():
    expected = summarize(read_all([SESSION]))
    for cut in range(1, len(SESSION)):
        assert summarize(read_all([SESSION[:cut], SESSION[cut:]])) == expected, cut


def test_byte_at_a_time_and_odd_chunk_sizes():
    expected = summarize(read_all([SESSION]))
    assert summarize(read_all([SESSION[i : i + 1] for i in range(len(SESSION))])) == expected
    for size in (3, 7, 8, 100, 4097):
        chunks = [SESSION[i : i + size] for i in range(0, len(SESSION), size)]
        assert summarize(read_all(chunks)) == expected
    assert summarize(read_all([bytearray(SESSION)])) == expected
    assert summarize(read_all([memoryview(SESSION)])) == expected


def test_frame_reader_events():
    data = PROTOCOL_HEADER + pika_publish(3, b"abc") + HEARTBEAT_FRAME
    events = FrameReader().feed(data)
    assert events[0] == ProtocolHeader(0, 9, 1)
    assert isinstance(events[1], MethodFrame) and events[1].channel == 3
    assert isinstance(events[2], ContentHeaderFrame) and events[2][:4] == (3, 60, 0, 3)
    assert events[3] == ContentBodyFrame(3, b"abc")
    assert events[4] == Heartbeat()


@pytest.mark.parametrize(
    "head",
    [
        b"AMQP\x00\x00\x09\x00",
        b"AMQP\x01\x01\x00\x09",
        b"AMQP\x00\x01\x00\x00",
        b"GET / HTTP/1.1\r\n",
    ],
)
def test_bad_protocol_header(head):
    reader = FrameReader()
    with pytest.raises(BadProtocolHeader) as info:
        reader.feed(head)
    assert info.value.received == head[:8] and info.value.fatal
    with pytest.raises(BadProtocolHeader):
        reader.feed(b"more")


def test_bad_header_is_reported_as_soon_as_it_cannot_match():
    with pytest.raises(BadProtocolHeader):
        FrameReader().feed(b"HT")
    reader = FrameReader()
    assert reader.feed(b"AMQ") == []
    assert reader.feed(b"P\x00\x00\x09") == []
    assert reader.feed(b"\x01") == [ProtocolHeader()]


def test_oversized_frame_is_fatal_501_before_the_payload_arrives():
    reader = FrameReader(expect_protocol_header=False)  # frame_max 4096 until tune-ok
    with pytest.raises(FrameError) as info:
        reader.feed(struct.pack(">BHI", 3, 1, 4097))
    assert info.value.reply_code == 501 and info.value.fatal
    with pytest.raises(FrameError):
        reader.feed(b"")
    reader = FrameReader(expect_protocol_header=False)
    body = encode_frame(3, 1, b"x" * 4096)  # payload == frame_max: tolerated, like RabbitMQ
    assert reader.feed(body) == [ContentBodyFrame(1, b"x" * 4096)]
    reader.frame_max = 131072
    assert len(reader.feed(encode_frame(3, 1, b"y" * 100000))[0].payload) == 100000
    reader.frame_max = 0
    assert reader.feed(encode_frame(3, 1, b"z" * 200000))[0].payload == b"z" * 200000


def test_bad_frame_end_is_fatal_501():
    frame = bytearray(HEARTBEAT_FRAME)
    frame[-1] = 0
    reader = FrameReader(expect_protocol_header=False)
    with pytest.raises(FrameError) as info:
        reader.feed(HEARTBEAT_FRAME + bytes(frame))
    assert info.value.fatal and info.value.events == [Heartbeat()]


@pytest.mark.parametrize(
    ("frame", "error", "code"),
    [
        (encode_frame(9, 0, b""), FrameError, 501),  # unknown frame type
        (encode_frame(4, 1, b"x"), FrameError, 501),
        (encode_frame(8, 0, b"x"), FrameError, 501),  # heartbeat with payload
        (encode_frame(8, 1, b""), UnexpectedFrame, 505),  # heartbeat off channel 0
        (encode_frame(2, 0, struct.pack(">HHQH", 60, 0, 0, 0)), UnexpectedFrame, 505),
        (encode_frame(3, 0, b"body"), UnexpectedFrame, 505),
        (encode_frame(2, 1, b"\x00\x3c\x00\x00"), FrameError, 501),  # header too short
        (encode_frame(1, 1, b"\x00\x3c"), FrameError, 501),  # method ids truncated
        (encode_frame(1, 1, b"\x00\x3c\x00\x50"), SyntaxError_, 502),  # ack without arguments
        (encode_frame(1, 1, b"\x00\x3c\x00\x63"), AMQPError, 503),  # unknown method
    ],
)
def test_bad_frames_are_non_fatal_and_the_reader_continues(frame, error, code):
    reader = FrameReader(expect_protocol_header=False)
    close_ok = encode_method(0, C.Connection.CloseOk())
    with pytest.raises(error) as info:
        reader.feed(HEARTBEAT_FRAME + frame + close_ok)
    assert info.value.reply_code == code and not info.value.fatal
    assert info.value.events == [Heartbeat()]
    (event,) = reader.feed(b"")
    assert isinstance(event.method, C.Connection.CloseOk)
    assert info.value.close_method().reply_code == code


def publish(channel=1):
    return encode_method(channel, C.Basic.Publish(exchange="", routing_key="q"))


def header(channel=1, size=3, block=b"\x00\x00", class_id=60, weight=0):
    return encode_frame(2, channel, struct.pack(">HHQ", class_id, weight, size) + block)


def body(channel=1, data=b"abc"):
    return encode_frame(3, channel, data)


@pytest.mark.parametrize(
    ("stream", "error", "code"),
    [
        (header(), UnexpectedFrame, 505),  # header without a content method
        (body(), UnexpectedFrame, 505),
        (publish() + publish(), UnexpectedFrame, 505),  # method where header is due
        (publish() + body(), UnexpectedFrame, 505),
        (publish() + header() + publish(), UnexpectedFrame, 505),  # method inside content
        (publish() + header() + header(), UnexpectedFrame, 505),
        (publish() + header(class_id=50), UnexpectedFrame, 505),
        (publish() + header(weight=1), UnexpectedFrame, 505),
        (publish() + header() + body(data=b"abcd"), FrameError, 501),  # more than announced
        (publish() + header(size=2**40), FrameError, 501),  # over max_body_size
        (publish() + header(block=b"\x80\x00"), SyntaxError_, 502),  # bad property block
    ],
)
def test_content_sequencing_errors(stream, error, code):
    reader = CommandReader(expect_protocol_header=False)
    with pytest.raises(error) as info:
        reader.feed(stream)
    assert info.value.reply_code == code
    assert info.value.channel == 1


def test_error_keeps_earlier_commands_and_later_frames():
    reader = CommandReader(expect_protocol_header=False)
    good = publish() + header() + body()
    close = encode_method(0, C.Connection.Close(200, "x", 0, 0))
    with pytest.raises(UnexpectedFrame) as info:
        reader.feed(good + body(channel=2) + close)
    (message,) = info.value.events
    assert message.body == b"abc"
    (event,) = reader.feed()
    assert isinstance(event.method, C.Connection.Close)


def test_channels_interleave_content():
    stream = (
        publish(1) + publish(2) + header(2, 2) + header(1, 3) + body(1, b"ab") + body(2, b"xy")
        + body(1, b"c")
    )  # fmt: skip
    events = CommandReader(expect_protocol_header=False).feed(stream)
    assert [(m.channel, m.body) for m in events] == [(2, b"xy"), (1, b"abc")]


def test_discard_forgets_partial_content():
    reader = CommandReader(expect_protocol_header=False)
    assert reader.feed(publish() + header()) == []
    assert reader.assembler.in_progress(1)
    reader.discard(1)
    assert not reader.assembler.in_progress(1)
    assert isinstance(reader.feed(publish() + header(size=0))[0], Message)


def test_standalone_assembler_matches_command_reader():
    frames = FrameReader(frame_max=131072).feed(SESSION)
    assembler = ContentAssembler()
    events = [e for e in map(assembler.process, frames) if e is not None]
    assert summarize(events) == summarize(read_all([SESSION]))


def test_fatal_error_sticks_in_command_reader():
    reader = CommandReader(expect_protocol_header=False)
    with pytest.raises(FrameError):
        reader.feed(struct.pack(">BHI", 1, 0, 10**6))
    with pytest.raises(FrameError):
        reader.feed(HEARTBEAT_FRAME)


# --- fuzz ---------------------------------------------------------------------


def drain(reader, data):
    """Feed data; after each non-fatal error keep going. Only codec errors may escape."""
    try:
        reader.feed(data)
    except CodecError as exc:
        assert isinstance(exc, BadProtocolHeader | AMQPError)
        if exc.fatal:
            return
    for _ in range(200):
        try:
            reader.feed(b"")
            return
        except CodecError as exc:
            if exc.fatal:
                return


@settings(max_examples=300)
@given(st.binary(max_size=300))
def test_random_bytes_raise_only_codec_errors(data):
    drain(CommandReader(expect_protocol_header=False, frame_max=0), data)
    drain(CommandReader(), PROTOCOL_HEADER + data)
    drain(CommandReader(), data)


@settings(max_examples=300)
@given(
    st.lists(
        st.tuples(st.integers(0, len(SESSION) - 1), st.binary(min_size=1, max_size=6)),
        min_size=1,
        max_size=4,
    ),
    st.integers(1, 64),
)
def test_mutated_sessions_raise_only_codec_errors(mutations, chunk):
    data = bytearray(SESSION)
    for at, junk in mutations:
        data[at : at + len(junk)] = junk
    reader = CommandReader(frame_max=131072)
    for start in range(0, len(data), chunk * 37):
        drain(reader, bytes(data[start : start + chunk * 37]))

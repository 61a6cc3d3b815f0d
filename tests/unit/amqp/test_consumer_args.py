"""The consume and queue arguments the AMQP adapter turns into core settings:
x-priority, x-stream-offset, x-single-active-consumer, stream queue arguments."""

from __future__ import annotations

import datetime
import time

import pytest

from dovecote.amqp.arguments import (
    consumer_priority,
    delivery_settings,
    single_active_consumer,
    stream_start,
)
from dovecote.amqp.codec.tables import Timestamp
from dovecote.amqp.errors import ChannelError
from dovecote.core.cursor import FIRST, LAST, NEXT, AtTime
from dovecote.core.queue_settings import QueueSettings


def test_x_priority():
    assert consumer_priority(None) == 0
    assert consumer_priority({"x-priority": -3}) == -3
    for bad in ("1", 1.5, True):
        with pytest.raises(ChannelError) as info:
            consumer_priority({"x-priority": bad})
        assert info.value.code == 406


def test_x_stream_offset():
    assert stream_start(None) == NEXT
    assert stream_start({"x-stream-offset": "first"}) == FIRST
    assert stream_start({"x-stream-offset": b"last"}) == LAST
    assert stream_start({"x-stream-offset": 42}) == 42
    assert stream_start({"x-stream-offset": Timestamp(1_700_000_000)}) == AtTime(1_700_000_000_000)
    stamp = datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)
    assert stream_start({"x-stream-offset": stamp}) == AtTime(int(stamp.timestamp() * 1000))
    naive = stamp.replace(tzinfo=None)  # AMQP timestamps are UTC
    assert stream_start({"x-stream-offset": naive}) == AtTime(int(stamp.timestamp() * 1000))
    before = int((time.time() - 3600) * 1000)
    start = stream_start({"x-stream-offset": "1h"})
    assert isinstance(start, AtTime) and before - 1000 <= start.ms <= before + 1000
    for bad in ("middle", -1, 1.5, True, "10x"):
        with pytest.raises(ChannelError) as info:
            stream_start({"x-stream-offset": bad})
        assert info.value.code == 406


def test_x_single_active_consumer():
    assert single_active_consumer({}) is False
    assert single_active_consumer({"x-single-active-consumer": True}) is True
    with pytest.raises(ChannelError):
        single_active_consumer({"x-single-active-consumer": 1}, "q")


def test_stream_queue_settings():
    flags = {"durable": True, "exclusive": False, "auto_delete": False}
    args = delivery_settings(
        QueueSettings(max_length_bytes=5000),
        {"x-queue-type": "stream", "x-max-length-bytes": 5000, "x-max-age": "2D"},
        "s",
        **flags,
    )
    assert args.stream and args.max_length_bytes is None
    assert (args.retention_bytes, args.retention_ms) == (5000, 2 * 86400 * 1000)
    plain = delivery_settings(QueueSettings(), {"x-single-active-consumer": True}, "q", **flags)
    assert plain.single_active_consumer and not plain.stream
    for arguments, overrides in (
        ({"x-max-length": 10}, {}),
        ({}, {"durable": False}),
        ({}, {"exclusive": True}),
        ({}, {"auto_delete": True}),
        ({"x-max-age": "0D"}, {}),
    ):
        with pytest.raises(ChannelError) as info:
            delivery_settings(
                QueueSettings(),
                {"x-queue-type": "stream", **arguments},
                "s",
                **{**flags, **overrides},
            )
        assert info.value.code == 406

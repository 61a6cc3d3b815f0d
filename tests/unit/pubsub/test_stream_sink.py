"""A StreamingPull stream's sink coalesces a trickle of deliveries into one
response per COALESCE_S (on an injected clock), and sends at once after a
quiet spell or when many messages wait."""

from __future__ import annotations

import asyncio

from dovecote.core.clock import FakeClock
from dovecote.core.subscription_state import Delivery
from dovecote.pubsub.streaming import COALESCE_BELOW, COALESCE_S, StreamSink
from dovecote.storage.batch import Record


def burst(*offsets: int) -> list[Delivery]:
    return [Delivery(0, o, Record(b"x"), 1) for o in offsets]


def offsets(bursts: list[list[Delivery]]) -> list[int]:
    return [d.offset for b in bursts for d in b]


def test_a_trickle_is_gathered_and_a_quiet_stream_sends_at_once() -> None:
    async def run() -> None:
        clock = FakeClock()
        sink = StreamSink()
        sink.deliver(burst(1))
        assert offsets(await sink.next_bursts(clock)) == [1]  # nothing sent before: at once
        sink.deliver(burst(2))
        waiting = asyncio.ensure_future(sink.next_bursts(clock))
        await clock.advance(COALESCE_S / 2)
        assert not waiting.done()  # a response went out just now: gather
        sink.deliver(burst(3))
        await clock.advance(COALESCE_S / 2)
        assert offsets(await waiting) == [2, 3]
        await clock.advance(COALESCE_S * 2)  # quiet
        sink.deliver(burst(4))
        assert offsets(await sink.next_bursts(clock)) == [4]

    asyncio.run(run())


def test_many_waiting_messages_go_at_once() -> None:
    async def run() -> None:
        clock = FakeClock()
        sink = StreamSink()
        sink.deliver(burst(0))
        await sink.next_bursts(clock)
        sink.deliver(burst(*range(1, COALESCE_BELOW + 1)))
        got = await asyncio.wait_for(sink.next_bursts(clock), 1)  # no clock advance needed
        assert len(offsets(got)) == COALESCE_BELOW

    asyncio.run(run())

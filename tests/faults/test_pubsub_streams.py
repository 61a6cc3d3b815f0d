"""Ten thousand Pub/Sub StreamingPull streams held open at once (raw grpc.aio
streams over a few channels, on ten subscriptions), while a
google-cloud-pubsub publisher and streaming subscriber exchange messages on
a subscription of their own.

What must hold: the active pair is never starved (each publish -> callback
round trip under ROUND_TRIP_LIMIT, p99 under P99_LIMIT: an idle stream is a
consumer on its subscription's dispatcher, which sleeps, not a loop that
polls); memory per held stream is reported and bounded; a message published
to a subscription with a thousand streams reaches exactly one of them,
promptly (competing consumers); and once the streams are cancelled, the
broker lets go of them (a message published afterwards is received at once
by a new stream: no departed stream holds it).

Streams are multiplexed over CHANNELS HTTP/2 connections (a thousand each),
so open files are not the limit here; grpcio's server sets no limit of
concurrent streams per connection unless ``grpc.max_concurrent_streams`` is
given, and the listener gives none. ``DOVECOTE_PUBSUB_STREAMS`` changes the
count (10,000 took about 17 s on 2 cores, so ``make test`` runs them all).
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import grpc
import pytest
from google.cloud import pubsub_v1
from google.pubsub_v1 import types

from tests.faults.fuzzing import MiB
from tests.faults.harness import Broker, wait_until

STREAMS = int(os.environ.get("DOVECOTE_PUBSUB_STREAMS", "10000"))
SUBSCRIPTIONS = 10
CHANNELS = 10
ROUND_TRIP_LIMIT = 5.0
P99_LIMIT = 1.0
WAKE_LIMIT = 1.0
KIB_PER_STREAM_LIMIT = 64
ACTIVE_S = 3.0
PROJECT = "faults"
METHOD = "/google.pubsub.v1.Subscriber/StreamingPull"
Request: Any = types.StreamingPullRequest.pb()
Response: Any = types.StreamingPullResponse.pb()


@dataclass
class Received:
    subscription: int
    at: float
    messages: int


@dataclass
class Streams:
    """Raw StreamingPull calls run by an event loop in a thread: open them,
    see what they receive, cancel them all."""

    host: str
    subscriptions: list[str]
    received: list[Received] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    held: int = 0
    loop: asyncio.AbstractEventLoop = field(default_factory=asyncio.new_event_loop)
    _channels: list[grpc.aio.Channel] = field(default_factory=list)
    _calls: list[Any] = field(default_factory=list)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._thread = threading.Thread(target=self.loop.run_forever, name="streams", daemon=True)
        self._thread.start()
        self._stop: asyncio.Event | None = None

    def _run(self, coro, timeout: float = 120):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def open(self, count: int) -> None:
        self._run(self._open(count))

    async def _open(self, count: int) -> None:
        self._stop = asyncio.Event()
        self._channels = [grpc.aio.insecure_channel(self.host) for _ in range(CHANNELS)]
        for start in range(0, count, 500):
            calls = []
            for index in range(start, min(count, start + 500)):
                sub = index % len(self.subscriptions)
                call = self._channels[index % CHANNELS].stream_stream(
                    METHOD,
                    request_serializer=Request.SerializeToString,
                    response_deserializer=Response.FromString,
                )(self._requests(self.subscriptions[sub]))
                calls.append(call)
                self._calls.append(call)
                self._tasks.append(asyncio.ensure_future(self._read(sub, call)))
            # the server has the stream once the headers came back
            await asyncio.gather(*(call.initial_metadata() for call in calls))
            self.held += len(calls)

    async def _requests(self, subscription: str):
        yield Request(subscription=subscription, stream_ack_deadline_seconds=60)
        assert self._stop is not None
        await self._stop.wait()

    async def _read(self, sub: int, call: Any) -> None:
        try:
            async for response in call:
                self.received.append(
                    Received(sub, time.monotonic(), len(response.received_messages))
                )
        except grpc.aio.AioRpcError as error:
            if error.code() != grpc.StatusCode.CANCELLED:
                self.errors.append(f"{error.code()}: {error.details()}")
        except asyncio.CancelledError:
            pass

    def close(self) -> None:
        async def close_all() -> None:
            for call in self._calls:
                call.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            for channel in self._channels:
                await channel.close()

        self._run(close_all())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)


def round_trips(publisher, topic: str, inbox: Inbox, seconds: float) -> list[float]:
    """Publish one message and wait for the streaming subscriber's callback, for
    ``seconds``: each round trip's time."""
    out: list[float] = []
    deadline = time.monotonic() + seconds
    n = 0
    while time.monotonic() < deadline:
        started = time.monotonic()
        publisher.publish(topic, f"rt-{n}".encode()).result()
        got = inbox.wait(f"rt-{n}".encode(), ROUND_TRIP_LIMIT)
        assert got, f"round trip {n} starved"
        out.append(time.monotonic() - started)
        n += 1
    return out


class Inbox:
    """What the active subscriber's callback received (and acked)."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.seen: set[bytes] = set()

    def __call__(self, message: Any) -> None:
        message.ack()
        with self.cond:
            self.seen.add(message.data)
            self.cond.notify_all()

    def wait(self, data: bytes, timeout: float) -> bool:
        with self.cond:
            return self.cond.wait_for(lambda: data in self.seen, timeout)


def p99(values: list[float]) -> float:
    ordered = sorted(values) or [0.0]
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def stable_rss(broker: Broker) -> int:
    """The broker's RSS once it stops changing by more than 1 MiB per 200 ms."""
    last = broker.rss()
    for _ in range(25):
        time.sleep(0.2)
        now = broker.rss()
        if abs(now - last) < MiB:
            return now
        last = now
    return last


@pytest.mark.slow
def test_ten_thousand_streams_do_not_starve_an_active_subscriber(tmp_path, fault_report):
    broker = Broker(tmp_path / "data").start()
    streams: Streams | None = None
    before_env = os.environ.get("PUBSUB_EMULATOR_HOST")
    os.environ["PUBSUB_EMULATOR_HOST"] = broker.pubsub_host
    publisher = pubsub_v1.PublisherClient(
        batch_settings=pubsub_v1.types.BatchSettings(max_latency=0.001)
    )
    subscriber = pubsub_v1.SubscriberClient()
    future = None
    try:
        topic = publisher.topic_path(PROJECT, "active")
        publisher.create_topic(name=topic)
        active = subscriber.subscription_path(PROJECT, "active")
        subscriber.create_subscription(name=active, topic=topic)
        held_topic = publisher.topic_path(PROJECT, "held")
        publisher.create_topic(name=held_topic)
        subs = [subscriber.subscription_path(PROJECT, f"held-{s}") for s in range(SUBSCRIPTIONS)]
        for sub in subs:
            subscriber.create_subscription(name=sub, topic=held_topic)

        inbox = Inbox()
        future = subscriber.subscribe(active, inbox)
        round_trips(publisher, topic, inbox, 0.5)  # warm up
        alone = round_trips(publisher, topic, inbox, ACTIVE_S / 2)

        before = stable_rss(broker)
        streams = Streams(broker.pubsub_host, subs)
        opening = time.monotonic()
        streams.open(STREAMS)
        open_s = time.monotonic() - opening
        held_rss = stable_rss(broker)
        loaded = round_trips(publisher, topic, inbox, ACTIVE_S)
        early = len(streams.received)  # nothing was published to the held topic yet

        # one message on the held topic: each of the ten subscriptions delivers
        # it to exactly one of its thousand streams
        sent = time.monotonic()
        publisher.publish(held_topic, b"wake").result()
        wait_until(lambda: len(streams.received) >= SUBSCRIPTIONS, WAKE_LIMIT * 5, "the wakes")
        time.sleep(0.5)  # a second delivery would show by now
        woken = list(streams.received)
        wake_s = max(r.at for r in woken) - sent
        held_s = time.monotonic() - opening

        stream_errors = list(streams.errors)
        streams.close()
        streams = None
        # every held stream's lease went back with it: a new stream gets the wake again
        closing = time.monotonic()
        again = Streams(broker.pubsub_host, subs[:1])
        again.open(1)
        wait_until(lambda: len(again.received) >= 1, 10, "the released message")
        again.close()
        release_s = time.monotonic() - closing
        freed_rss = stable_rss(broker)
        alive = broker.settle(0.1)
    finally:
        if future is not None:
            future.cancel()
        subscriber.close()
        publisher.stop()
        if streams is not None:
            streams.close()
        if before_env is None:
            os.environ.pop("PUBSUB_EMULATOR_HOST", None)
        else:
            os.environ["PUBSUB_EMULATOR_HOST"] = before_env
        broker.stop()

    held = STREAMS
    kib_per_stream = (held_rss - before) / 1024 / held
    fault_report(
        f"{held} Pub/Sub streaming pulls held",
        runs=1,
        crashes=broker.crashes,
        streams=held,
        open_s=round(open_s, 1),
        p99_alone_ms=round(p99(alone) * 1000),
        p99_loaded_ms=round(p99(loaded) * 1000),
        round_trips_loaded=len(loaded),
        kib_per_stream=round(kib_per_stream, 1),
        rss_held_mib=round(held_rss / MiB),
        rss_freed_mib=round(freed_rss / MiB),
        wake_ms=round(wake_s * 1000),
        woken=len(woken),
        release_ms=round(release_s * 1000),
        held_s=round(held_s, 1),
    )
    assert alive and broker.crashes == 0
    assert not stream_errors, stream_errors[:5]
    assert early == 0, f"{early} responses before any publish"
    assert sorted(r.subscription for r in woken) == list(range(SUBSCRIPTIONS)), woken
    assert all(r.messages == 1 for r in woken)
    assert wake_s < WAKE_LIMIT, f"the woken streams received after {wake_s:.2f}s"
    assert p99(loaded) < P99_LIMIT, f"active p99 {p99(loaded):.2f}s with {held} streams held"
    assert kib_per_stream < KIB_PER_STREAM_LIMIT, f"{kib_per_stream:.0f} KiB per held stream"

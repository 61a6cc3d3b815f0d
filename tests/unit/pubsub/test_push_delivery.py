"""The pusher on a FakeClock, over a real core and the real Pub/Sub services,
with a scripted endpoint in place of HTTP: backoff timing, the ack deadline
as the request's timeout, the window, the retry policy, delivery counts, and
starting/stopping with the registry (and on restart)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from google.pubsub_v1 import types

from dovecote.core.broker import BrokerCore
from dovecote.core.clock import FakeClock
from dovecote.core.config import BrokerConfig
from dovecote.pubsub.server import PubsubServices

TOPIC = "projects/p/topics/orders"
SUB = "projects/p/subscriptions/orders-push"
URL = "http://endpoint/push"


@dataclass
class ScriptedEndpoint:
    """Answers with the statuses it is given (then 200); ``hold`` keeps
    requests unanswered until released. Remembers when each arrived."""

    clock: FakeClock
    statuses: list[int] = field(default_factory=list)
    hold: bool = False
    seen: list[tuple[float, dict]] = field(default_factory=list)
    held: list[asyncio.Future[int]] = field(default_factory=list)

    async def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> int:
        assert url == URL
        self.seen.append((self.clock.monotonic(), json.loads(body)))
        if self.hold:
            future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
            self.held.append(future)
            return await future
        return self.statuses.pop(0) if self.statuses else 200

    def times(self) -> list[float]:
        start = self.seen[0][0]
        return [round(at - start, 3) for at, _ in self.seen]


@dataclass
class Rig:
    clock: FakeClock
    core: BrokerCore
    services: PubsubServices
    endpoint: ScriptedEndpoint

    async def publish(self, *payloads: bytes) -> None:
        request = types.PublishRequest.pb()(topic=TOPIC)
        for payload in payloads:
            request.messages.add(data=payload)
        await self.services.publisher.publish(request, None)
        await self.clock.advance(0)

    def core_sub(self):
        entry = self.services.state.subscription(SUB)
        return self.core.subscription(entry.core_id)


async def new_services(core: BrokerCore, endpoint: ScriptedEndpoint) -> PubsubServices:
    services = PubsubServices(core)
    services.push.post = endpoint.post
    await services.start()
    return services


@contextlib.asynccontextmanager
async def started(tmp_path: Path) -> AsyncIterator[Rig]:
    clock = FakeClock()
    core = BrokerCore(BrokerConfig.load(env={}, overrides={"data_dir": tmp_path}), clock=clock)
    await core.start()
    endpoint = ScriptedEndpoint(clock)
    services = await new_services(core, endpoint)
    await services.publisher.create_topic(types.Topic.pb()(name=TOPIC), None)
    rig = Rig(clock, core, services, endpoint)
    try:
        yield rig
    finally:
        await rig.services.close()
        await core.stop()


async def create_push(rig: Rig, **fields) -> None:
    pb = types.Subscription.pb()(name=SUB, topic=TOPIC, **fields)
    pb.push_config.push_endpoint = URL
    await rig.services.subscriber.subscriptions.create_subscription(pb, None)


def run(coro) -> None:
    asyncio.run(coro)


def test_backoff_after_failures(tmp_path: Path) -> None:
    async def body() -> None:
        async with started(tmp_path) as rig:
            rig.endpoint.statuses = [500, 503, 404]
            await create_push(rig)
            await rig.publish(b"m")
            await rig.clock.advance(5)
            assert rig.endpoint.times() == [0.0, 0.1, 0.3, 0.7]  # 100, 200, 400 ms apart
            assert [e["message"]["data"] for _, e in rig.endpoint.seen] == ["bQ=="] * 4
            health = rig.services.push.health(SUB)
            assert health is not None
            assert health["last_status"] == 200 and health["acked"] == 1
            assert health["failed"] == 3 and health["consecutive_failures"] == 0
            await rig.clock.advance(60)
            assert len(rig.endpoint.seen) == 4  # acked: never again
            assert rig.core_sub().unacked_count() == 0

    run(body())


def test_no_answer_within_the_ack_deadline_is_a_failure(tmp_path: Path) -> None:
    async def body() -> None:
        async with started(tmp_path) as rig:
            rig.endpoint.hold = True
            await create_push(rig, ack_deadline_seconds=20)
            await rig.publish(b"slow")
            await rig.clock.advance(19.9)
            assert len(rig.endpoint.seen) == 1
            await rig.clock.advance(0.3)  # the deadline passed: nacked, backoff 100 ms
            assert len(rig.endpoint.seen) == 2
            health = rig.services.push.health(SUB)
            assert health is not None
            assert health["consecutive_failures"] == 1 and health["last_status"] == 0
            assert "ack deadline" in health["last_error"]
            assert rig.endpoint.held[0].cancelled()

    run(body())


def test_delivery_attempts_count_up_through_nacks(tmp_path: Path) -> None:
    async def body() -> None:
        async with started(tmp_path) as rig:
            dead = "projects/p/topics/dead"
            await rig.services.publisher.create_topic(types.Topic.pb()(name=dead), None)
            rig.endpoint.statuses = [500, 500, 500]
            policy = types.DeadLetterPolicy.pb()(dead_letter_topic=dead, max_delivery_attempts=5)
            await create_push(rig, dead_letter_policy=policy)
            await rig.publish(b"m")
            await rig.clock.advance(5)
            assert [e["deliveryAttempt"] for _, e in rig.endpoint.seen] == [1, 2, 3, 4]

    run(body())


def test_window_starts_at_three_and_grows_with_successes(tmp_path: Path) -> None:
    async def body() -> None:
        async with started(tmp_path) as rig:
            rig.endpoint.hold = True
            await create_push(rig, ack_deadline_seconds=600)
            await rig.publish(*[b"m%d" % i for i in range(20)])
            await rig.clock.advance(0.01)
            assert len(rig.endpoint.seen) == 3
            for future in rig.endpoint.held[:3]:
                future.set_result(200)
            await rig.clock.advance(0.01)
            assert len(rig.endpoint.seen) == 3 + 6  # window 6 now, none in flight
            health = rig.services.push.health(SUB)
            assert health is not None and health["window"] == 6 and health["in_flight"] == 6

    run(body())


def test_failures_shrink_the_window(tmp_path: Path) -> None:
    async def body() -> None:
        async with started(tmp_path) as rig:
            rig.endpoint.hold = True
            await create_push(rig, ack_deadline_seconds=600)
            await rig.publish(*[b"m%d" % i for i in range(20)])
            await rig.clock.advance(0.01)
            for future in rig.endpoint.held[:3]:
                future.set_result(503)
            await rig.clock.advance(1)  # past the backoff
            health = rig.services.push.health(SUB)
            assert health is not None and health["window"] == 1
            assert len(rig.endpoint.seen) == 4  # one at a time now

    run(body())


def test_retry_policy_delays_the_failed_message(tmp_path: Path) -> None:
    async def body() -> None:
        async with started(tmp_path) as rig:
            rig.endpoint.statuses = [500]
            policy = types.RetryPolicy.pb()()
            policy.minimum_backoff.FromSeconds(2)
            await create_push(rig, retry_policy=policy)
            await rig.publish(b"m")
            await rig.clock.advance(1.9)
            assert len(rig.endpoint.seen) == 1  # the backoff (100 ms) is not enough
            await rig.clock.advance(0.2)
            assert rig.endpoint.times() == [0.0, 2.0]

    run(body())


def test_switching_to_pull_stops_and_hands_messages_back(tmp_path: Path) -> None:
    async def body() -> None:
        async with started(tmp_path) as rig:
            rig.endpoint.hold = True
            await create_push(rig)
            await rig.publish(b"m")
            await rig.clock.advance(0.01)
            assert rig.core_sub().unacked_count() == 1
            request = types.ModifyPushConfigRequest.pb()(subscription=SUB)
            await rig.services.subscriber.subscriptions.modify_push_config(request, None)
            assert rig.services.push.health(SUB) is None
            assert rig.core_sub().unacked_count() == 0
            assert [d.record.value for d in rig.core_sub().pull(10, "puller")] == [b"m"]

    run(body())


def test_stored_push_subscriptions_start_with_the_listener(tmp_path: Path) -> None:
    async def body() -> None:
        async with started(tmp_path) as rig:
            await create_push(rig)
            await rig.services.close()
            await rig.publish(b"while down")
            await rig.clock.advance(1)
            assert rig.endpoint.seen == []
            rig.services = await new_services(rig.core, rig.endpoint)
            await rig.clock.advance(0.01)
            assert len(rig.endpoint.seen) == 1

    run(body())


def test_deleting_stops_the_pusher(tmp_path: Path) -> None:
    async def body() -> None:
        async with started(tmp_path) as rig:
            rig.endpoint.statuses = [500] * 100
            await create_push(rig)
            await rig.publish(b"m")
            await rig.clock.advance(0.5)
            request = types.DeleteSubscriptionRequest.pb()(subscription=SUB)
            await rig.services.subscriber.subscriptions.delete_subscription(request, None)
            seen = len(rig.endpoint.seen)
            await rig.clock.advance(120)
            assert len(rig.endpoint.seen) == seen
            assert rig.services.push.health(SUB) is None

    run(body())


def test_ordered_key_waits_for_its_failed_message(tmp_path: Path) -> None:
    async def body() -> None:
        async with started(tmp_path) as rig:
            rig.endpoint.statuses = [500, 500]
            await create_push(rig, enable_message_ordering=True)
            request = types.PublishRequest.pb()(topic=TOPIC)
            for payload in (b"first", b"second"):
                request.messages.add(data=payload, ordering_key="k")
            await rig.services.publisher.publish(request, None)
            await rig.clock.advance(5)
            sent = [base64.b64decode(e["message"]["data"]) for _, e in rig.endpoint.seen]
            assert sent == [b"first", b"first", b"first", b"second"]

    run(body())

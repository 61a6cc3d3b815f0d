"""Expiration on the injected clock: idle subscriptions are deleted after
their ttl (activity moves the deadline), snapshots at their expire_time,
leases follow an updated ack deadline and unacked messages older than the
retention are dropped. The Pub/Sub services run over a real core with a
FakeClock; their RPC handlers are called with real protobuf requests."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import grpc

from dovecote.core.broker import BrokerCore
from dovecote.core.clock import FakeClock
from dovecote.core.config import BrokerConfig
from dovecote.pubsub.expiration import Expiry
from dovecote.pubsub.methods import PUBLISHER_METHODS, SUBSCRIBER_METHODS
from dovecote.pubsub.rpc import PubsubError
from dovecote.pubsub.server import PubsubServices

DAY = 24 * 3600
TOPIC = "projects/p/topics/orders"
SUB = "projects/p/subscriptions/orders-sub"


def request(methods, method: str, **fields):
    return methods[method].request(**fields)


@contextlib.asynccontextmanager
async def services(tmp_path: Path) -> AsyncIterator[tuple[FakeClock, PubsubServices]]:
    clock = FakeClock()
    core = BrokerCore(BrokerConfig.load(env={}, overrides={"data_dir": tmp_path}), clock=clock)
    await core.start()
    # The core's housekeeping loops tick every second; a test that moves
    # days would spin through them, and none of them is under test here.
    core.resources.close()
    for task in core._tasks:
        task.cancel()
    ps = PubsubServices(core)
    await ps.start()
    try:
        yield clock, ps
    finally:
        await ps.close()
        await core.stop()


async def call(ps: PubsubServices, service: str, method: str, **fields):
    table = ps.publisher.table() if service == "pub" else ps.subscriber.table()
    methods = PUBLISHER_METHODS if service == "pub" else SUBSCRIBER_METHODS
    return await table.handlers[method](request(methods, method, **fields), None)


def test_expiry_fires_once_after_the_last_touch() -> None:
    async def run() -> None:
        clock = FakeClock()
        expired: list[str] = []

        async def on_expired(name: str) -> None:
            expired.append(name)

        expiry = Expiry(clock, on_expired)
        expiry.watch("a", 100)
        expiry.watch("b", 50)
        expiry.watch("never", None)
        await clock.advance(40)
        expiry.touch("b")  # now due at 90
        await clock.advance(45)
        assert expired == []
        await clock.advance(10)  # 95: b is due
        assert expired == ["b"]
        expiry.touch("a")  # at 95: a is due at 195
        await clock.advance(99)
        assert expired == ["b"]
        await clock.advance(2)
        assert expired == ["b", "a"]
        expiry.watch("c", 10)
        expiry.forget("c")
        await clock.advance(20)
        assert expired == ["b", "a"]
        assert clock.pending() == 0  # nothing left armed

    asyncio.run(run())


def test_an_idle_subscription_is_deleted_after_its_ttl(tmp_path: Path) -> None:
    async def run() -> None:
        async with services(tmp_path) as (clock, ps):
            await call(ps, "pub", "CreateTopic", name=TOPIC)
            await call(
                ps,
                "sub",
                "CreateSubscription",
                name=SUB,
                topic=TOPIC,
                expiration_policy={"ttl": {"seconds": 8 * DAY}},
            )
            await clock.advance(5 * DAY)
            await call(ps, "sub", "Pull", subscription=SUB, max_messages=1, return_immediately=True)
            await clock.advance(5 * DAY)  # 5 days since the pull: still there
            assert ps.state.subscription(SUB) is not None
            await clock.advance(3 * DAY + 1)
            assert ps.state.subscription(SUB) is None
            assert ps.core.subscription("pubsub/p/orders-sub") is None

    asyncio.run(run())


def test_an_empty_expiration_policy_never_expires(tmp_path: Path) -> None:
    async def run() -> None:
        async with services(tmp_path) as (clock, ps):
            await call(ps, "pub", "CreateTopic", name=TOPIC)
            await call(ps, "sub", "CreateSubscription", name=SUB, topic=TOPIC, expiration_policy={})
            await clock.advance(400 * DAY)
            assert ps.state.subscription(SUB) is not None

    asyncio.run(run())


async def publish(ps: PubsubServices, *data: bytes) -> None:
    await call(ps, "pub", "Publish", topic=TOPIC, messages=[{"data": d} for d in data])


async def pull(ps: PubsubServices, n: int = 10) -> list:
    response = await call(
        ps, "sub", "Pull", subscription=SUB, max_messages=n, return_immediately=True
    )
    return list(response.received_messages)


def test_an_updated_ack_deadline_applies_to_new_leases(tmp_path: Path) -> None:
    async def run() -> None:
        async with services(tmp_path) as (clock, ps):
            await call(ps, "pub", "CreateTopic", name=TOPIC)
            await call(ps, "sub", "CreateSubscription", name=SUB, topic=TOPIC)
            await call(
                ps,
                "sub",
                "UpdateSubscription",
                subscription={"name": SUB, "ack_deadline_seconds": 120},
                update_mask={"paths": ["ack_deadline_seconds"]},
            )
            await publish(ps, b"m")
            assert len(await pull(ps)) == 1
            await clock.advance(100)
            assert await pull(ps) == []  # a 10 s lease would have ended
            await clock.advance(21)
            assert [m.message.data for m in await pull(ps)] == [b"m"]

    asyncio.run(run())


def test_unacked_messages_older_than_the_retention_are_dropped(tmp_path: Path) -> None:
    async def run() -> None:
        async with services(tmp_path) as (clock, ps):
            await call(ps, "pub", "CreateTopic", name=TOPIC)
            await call(
                ps,
                "sub",
                "CreateSubscription",
                name=SUB,
                topic=TOPIC,
                message_retention_duration={"seconds": 600},
            )
            await publish(ps, b"old")
            await clock.advance(400)
            await publish(ps, b"young")
            await clock.advance(201)
            assert [m.message.data for m in await pull(ps)] == [b"young"]

    asyncio.run(run())


def test_a_snapshot_is_deleted_at_its_expire_time(tmp_path: Path) -> None:
    async def run() -> None:
        async with services(tmp_path) as (clock, ps):
            await call(ps, "pub", "CreateTopic", name=TOPIC)
            await call(ps, "sub", "CreateSubscription", name=SUB, topic=TOPIC)
            await publish(ps, b"m")
            await clock.advance(DAY)
            snap = await call(
                ps, "sub", "CreateSnapshot", name="projects/p/snapshots/snap", subscription=SUB
            )
            # 7 days after the oldest unacked message was published, a day ago.
            assert snap.expire_time.ToMilliseconds() == clock.wall_ms() + 6 * DAY * 1000
            await clock.advance(6 * DAY - 1)
            assert "projects/p/snapshots/snap" in ps.state.snapshots
            await clock.advance(2)
            assert "projects/p/snapshots/snap" not in ps.state.snapshots

    asyncio.run(run())


def test_a_backlog_too_old_to_snapshot_is_refused(tmp_path: Path) -> None:
    async def run() -> None:
        async with services(tmp_path) as (clock, ps):
            await call(ps, "pub", "CreateTopic", name=TOPIC)
            await call(ps, "sub", "CreateSubscription", name=SUB, topic=TOPIC)
            await publish(ps, b"m")
            await clock.advance(7 * DAY - 1800)  # it would expire in half an hour
            try:
                await call(
                    ps, "sub", "CreateSnapshot", name="projects/p/snapshots/old", subscription=SUB
                )
            except PubsubError as error:
                assert error.code == grpc.StatusCode.FAILED_PRECONDITION
            else:
                raise AssertionError("snapshot of a too old backlog was made")
            assert "projects/p/snapshots/old" not in ps.state.snapshots

    asyncio.run(run())


def test_definitions_and_snapshots_survive_a_restart(tmp_path: Path) -> None:
    snap = "projects/p/snapshots/kept"

    async def before() -> None:
        async with services(tmp_path) as (_clock, ps):
            await call(ps, "pub", "CreateTopic", name=TOPIC)
            await call(ps, "sub", "CreateSubscription", name=SUB, topic=TOPIC)
            await call(
                ps,
                "sub",
                "UpdateSubscription",
                subscription={"name": SUB, "ack_deadline_seconds": 77},
                update_mask={"paths": ["ack_deadline_seconds"]},
            )
            await publish(ps, b"a", b"b")
            got = await pull(ps)
            await call(ps, "sub", "Acknowledge", subscription=SUB, ack_ids=[got[0].ack_id])
            await call(ps, "sub", "CreateSnapshot", name=snap, subscription=SUB)
            await call(ps, "sub", "Acknowledge", subscription=SUB, ack_ids=[got[1].ack_id])

    async def after() -> None:
        async with services(tmp_path) as (clock, ps):
            got = await call(ps, "sub", "GetSubscription", subscription=SUB)
            assert got.ack_deadline_seconds == 77
            assert ps.core.subscription("pubsub/p/orders-sub").config.lease_ms == 77_000
            assert await pull(ps) == []
            await call(ps, "sub", "Seek", subscription=SUB, snapshot=snap)
            assert [m.message.data for m in await pull(ps)] == [b"b"]
            # Its expiry is armed again: 7 days after b was published.
            await clock.advance(7 * DAY + 1)
            assert snap not in ps.state.snapshots

    asyncio.run(before())
    asyncio.run(after())


def test_a_subscription_with_messages_in_flight_does_not_expire(tmp_path: Path) -> None:
    async def run() -> None:
        async with services(tmp_path) as (clock, ps):
            await call(ps, "pub", "CreateTopic", name=TOPIC)
            await call(
                ps,
                "sub",
                "CreateSubscription",
                name=SUB,
                topic=TOPIC,
                message_retention_duration={"seconds": 3 * DAY},
                expiration_policy={"ttl": {"seconds": 4 * DAY}},
            )
            await publish(ps, b"m")
            # A consumer that holds a lease and calls nothing through the
            # registry (as a stream pulling on the core subscription would).
            sub = ps.core.subscription("pubsub/p/orders-sub")
            (held,) = sub.pull(1, object(), 5 * DAY * 1000)
            await clock.advance(4 * DAY + 1)
            assert ps.state.subscription(SUB) is not None
            sub.ack([held.token])
            await clock.advance(4 * DAY + 1)  # idle since the ttl came up again
            assert ps.state.subscription(SUB) is None

    asyncio.run(run())


def test_a_push_subscription_is_in_use_and_does_not_expire(tmp_path: Path) -> None:
    async def run() -> None:
        async with services(tmp_path) as (clock, ps):
            await call(ps, "pub", "CreateTopic", name=TOPIC)
            await call(
                ps,
                "sub",
                "CreateSubscription",
                name=SUB,
                topic=TOPIC,
                push_config={"push_endpoint": "http://127.0.0.1:9/push"},
                message_retention_duration={"seconds": 600},
                expiration_policy={"ttl": {"seconds": 1 * DAY}},
            )
            await clock.advance(3 * DAY)
            assert ps.state.subscription(SUB) is not None
            await call(ps, "sub", "ModifyPushConfig", subscription=SUB, push_config={})
            await clock.advance(1 * DAY + 1)  # a pull subscription again, and idle
            assert ps.state.subscription(SUB) is None

    asyncio.run(run())

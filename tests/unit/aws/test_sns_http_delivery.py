"""The http(s) pusher on a FakeClock: AWS's default schedule (three retries 20 s
apart), acks on 2xx, the dead-letter queue after the last retry, and nothing
delivered before confirmation or after Unsubscribe (but its UnsubscribeConfirmation)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from dovecote.aws.context import RequestContext, name_from_arn
from dovecote.aws.sns import SnsService
from dovecote.core.broker import BrokerCore
from dovecote.core.clock import FakeClock
from dovecote.core.config import BrokerConfig

CTX = RequestContext("us-east-1", "000000000000", "http://broker")
ENDPOINT = "http://subscriber/sns"


@dataclass
class FakeEndpoint:
    """Answers POSTs with the statuses it is given (then 200), remembering each."""

    statuses: list[int] = field(default_factory=list)
    posts: asyncio.Queue[tuple[dict[str, str], bytes, int]] = field(default_factory=asyncio.Queue)

    async def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> int:
        assert url == ENDPOINT
        status = self.statuses.pop(0) if self.statuses else 200
        self.posts.put_nowait((dict(headers), body, status))
        return status

    async def next(self) -> tuple[dict[str, str], bytes, int]:
        return await asyncio.wait_for(self.posts.get(), 10)

    async def none_within(self, clock: FakeClock, seconds: float) -> bool:
        await clock.advance(seconds)
        for _ in range(100):
            await asyncio.sleep(0)
        return self.posts.empty()


@dataclass
class Rig:
    clock: FakeClock
    core: BrokerCore
    sns: SnsService
    endpoint: FakeEndpoint


@contextlib.asynccontextmanager
async def started(tmp_path: Path) -> AsyncIterator[Rig]:
    clock = FakeClock()
    core = BrokerCore(BrokerConfig.load(env={}, overrides={"data_dir": tmp_path}), clock=clock)
    await core.start()
    sns = SnsService(core.queues, lambda arn: name_from_arn(arn, "sqs"))
    await sns.start()
    endpoint = FakeEndpoint()
    sns.http.post = endpoint.post  # type: ignore[method-assign]
    try:
        yield Rig(clock, core, sns, endpoint)
    finally:
        await sns.close()
        await core.stop()


async def subscribed(rig: Rig, **attributes: str) -> tuple[str, str]:
    """A topic with a confirmed http subscription: (topic ARN, subscription ARN)."""
    ops = rig.sns.operations
    arn = (await ops["CreateTopic"]({"Name": "t"}, CTX))["TopicArn"]
    answer = await ops["Subscribe"](
        {"TopicArn": arn, "Protocol": "http", "Endpoint": ENDPOINT, "Attributes": attributes}, CTX
    )
    assert answer["SubscriptionArn"] == "pending confirmation"
    headers, body, _ = await rig.endpoint.next()
    assert headers["x-amz-sns-message-type"] == "SubscriptionConfirmation"
    await ops["Publish"]({"TopicArn": arn, "Message": "too early"}, CTX)
    confirmation = json.loads(body)
    sub = await ops["ConfirmSubscription"]({"TopicArn": arn, "Token": confirmation["Token"]}, CTX)
    return arn, sub["SubscriptionArn"]


def test_default_schedule_is_three_retries_twenty_seconds_apart(tmp_path: Path) -> None:
    asyncio.run(_default_schedule_is_three_retries_twenty_seconds_apart(tmp_path))


async def _default_schedule_is_three_retries_twenty_seconds_apart(tmp_path: Path) -> None:
    async with started(tmp_path) as rig:
        arn, sub = await subscribed(rig)
        rig.endpoint.statuses = [500, 503, 0]  # 0: could not connect
        published = await rig.sns.operations["Publish"]({"TopicArn": arn, "Message": "m"}, CTX)
        attempts = [await rig.endpoint.next()]
        for _ in range(3):
            assert await rig.endpoint.none_within(rig.clock, 19.9)
            await rig.clock.advance(0.1)
            attempts.append(await rig.endpoint.next())
        assert [status for _, _, status in attempts] == [500, 503, 0, 200]
        for headers, body, _ in attempts:
            assert headers["x-amz-sns-message-type"] == "Notification"
            assert headers["x-amz-sns-message-id"] == published["MessageId"]
            assert headers["x-amz-sns-subscription-arn"] == sub
            assert json.loads(body)["Message"] == "m"  # never "too early": it was not confirmed
        assert await rig.endpoint.none_within(rig.clock, 120)  # acked


def test_dead_letter_queue_after_the_last_retry(tmp_path: Path) -> None:
    asyncio.run(_dead_letter_queue_after_the_last_retry(tmp_path))


async def _dead_letter_queue_after_the_last_retry(tmp_path: Path) -> None:
    async with started(tmp_path) as rig:
        await rig.core.queues.declare_queue("dlq")
        policy = {"healthyRetryPolicy": {"minDelayTarget": 5, "maxDelayTarget": 5, "numRetries": 2}}
        arn, _ = await subscribed(
            rig,
            DeliveryPolicy=json.dumps(policy),
            RedrivePolicy=json.dumps({"deadLetterTargetArn": "arn:aws:sqs:us-east-1:0:dlq"}),
            RawMessageDelivery="true",
        )
        rig.endpoint.statuses = [500] * 10
        await rig.sns.operations["Publish"]({"TopicArn": arn, "Message": "lost"}, CTX)
        first = await rig.endpoint.next()
        assert first[0]["x-amz-sns-rawdelivery"] == "true" and first[1] == b"lost"
        for _ in range(2):
            await rig.clock.advance(5)
            await rig.endpoint.next()
        dlq = rig.core.queues.get_queue("dlq")
        for _ in range(1000):
            await dlq.settle_visible()
            if dlq.subscription.ready_count():
                break
            await asyncio.sleep(0)
        [dead] = dlq.subscription.pull(10, "test")
        assert dead.record.value == b"lost"
        assert await rig.endpoint.none_within(rig.clock, 60)


def test_unsubscribe_stops_the_pusher_and_drops_its_queue(tmp_path: Path) -> None:
    asyncio.run(_unsubscribe_stops_the_pusher_and_drops_its_queue(tmp_path))


async def _unsubscribe_stops_the_pusher_and_drops_its_queue(tmp_path: Path) -> None:
    async with started(tmp_path) as rig:
        arn, sub = await subscribed(rig)
        rig.endpoint.statuses = [500]
        await rig.sns.operations["Publish"]({"TopicArn": arn, "Message": "m"}, CTX)
        await rig.endpoint.next()
        await rig.sns.operations["Unsubscribe"]({"SubscriptionArn": sub}, CTX)
        assert not rig.sns.http.pushers
        assert not [q for q in rig.core.queues.queues if q.startswith("__sns_http/")]
        headers, _, _ = await rig.endpoint.next()
        assert headers["x-amz-sns-message-type"] == "UnsubscribeConfirmation"
        assert await rig.endpoint.none_within(rig.clock, 60)

"""A message that outlives its subscription's retention is dropped, never
forwarded to the dead-letter topic (Google drops it; the core reports it to
the dead-letter handler with the reason ``expired``)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from google.pubsub_v1 import types

from tests.unit.pubsub.test_push_delivery import TOPIC, started

DEAD = "projects/p/topics/dead"
SUB = "projects/p/subscriptions/retained"
MINUTE_S = 60


def test_expired_messages_are_dropped_not_dead_lettered(tmp_path: Path) -> None:
    async def body() -> None:
        async with started(tmp_path) as rig:
            services = rig.services
            await services.publisher.create_topic(types.Topic.pb()(name=DEAD), None)
            pb = types.Subscription.pb()(name=SUB, topic=TOPIC)
            pb.dead_letter_policy.dead_letter_topic = DEAD
            pb.message_retention_duration.seconds = 10 * MINUTE_S
            await services.subscriber.subscriptions.create_subscription(pb, None)
            await rig.publish(b"old")
            await rig.clock.advance(11 * MINUTE_S)
            pulled = await services.subscriber.receiving.pull(
                types.PullRequest.pb()(subscription=SUB, max_messages=10, return_immediately=True),
                None,
            )
            await rig.clock.advance(1)
            assert list(pulled.received_messages) == []
            dead_log = rig.core.get_topic(services.state.topic(DEAD).log_topic)
            assert dead_log.partitions[0].high_watermark == 0

    asyncio.run(body())

"""Dead-letter policy: a message delivered ``max_delivery_attempts`` times
is published to the subscription's dead-letter topic.

The core calls the handler made here when a record passes the subscription's
delivery limit, and settles the original only once the handler has appended
the forwarded message to the dead-letter topic's log (a crash in between
forwards it twice, never loses it: Google's dead lettering is best effort
and may also forward a message more than once).

The forwarded message keeps data, attributes and ordering key and gets the
attributes Google adds: ``CloudPubSubDeadLetterSourceDeliveryCount``,
``CloudPubSubDeadLetterSourceSubscription`` (the subscription id),
``CloudPubSubDeadLetterSourceSubscriptionProject`` and
``CloudPubSubDeadLetterSourceTopicPublishTime`` (the original publish time).
It gets a new message id and publish time in the dead-letter topic.

If the dead-letter topic is gone, the message is not dropped: it stays in
the source subscription, undelivered, and forwarding is tried again every
``RETRY_MS`` (Google also keeps retrying; recreating the topic lets it go).
"""

from __future__ import annotations

import datetime
from typing import Any

import grpc

from dovecote.core.partitioner import Partitioner
from dovecote.core.subscription import EXPIRED
from dovecote.core.subscription_state import DeadLetterDeferred, DeadLetterHandler
from dovecote.pubsub import names
from dovecote.pubsub.rpc import PubsubError
from dovecote.pubsub.state import PubsubState
from dovecote.storage.batch import Record

RETRY_MS = 10_000
PREFIX = "CloudPubSubDeadLetterSource"
DELIVERY_COUNT = PREFIX + "DeliveryCount"
SUBSCRIPTION = PREFIX + "Subscription"
SUBSCRIPTION_PROJECT = PREFIX + "SubscriptionProject"
TOPIC_PUBLISH_TIME = PREFIX + "TopicPublishTime"


def publish_time_text(ms: int) -> str:
    """``2026-12-05T06:41:00.941Z``, the form Google's emulator gives the attribute."""
    moment = datetime.datetime.fromtimestamp(max(ms, 0) / 1000, tz=datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def check_dead_letter_topic(state: PubsubState, pb: Any) -> None:
    """A subscription's dead-letter topic must exist when it is set (Google:
    "The operation will fail if the topic does not exist")."""
    if not pb.HasField("dead_letter_policy") or not pb.dead_letter_policy.dead_letter_topic:
        return
    topic = pb.dead_letter_policy.dead_letter_topic
    names.topic(topic)
    if state.topic(topic) is None:
        raise PubsubError(grpc.StatusCode.NOT_FOUND, "Dead letter topic not found")


class DeadLetters:
    def __init__(self, core: Any, state: PubsubState) -> None:
        self.core = core
        self.state = state
        self.partitioner = Partitioner()

    def handler(self, subscription: str) -> DeadLetterHandler:
        """The core's ``on_dead_letter`` for ``subscription`` (full name). It
        reads the policy when called, so it follows UpdateSubscription."""

        async def forward(record: Record, reason: str) -> None:
            if reason == EXPIRED:
                return  # past the subscription's retention: dropped, as Google does
            await self.forward(subscription, record)

        return forward

    async def forward(self, subscription: str, record: Record) -> None:
        entry = self.state.subscription(subscription)
        if entry is None or not entry.pb.HasField("dead_letter_policy"):
            return  # the subscription or its policy is gone: nothing to forward to
        policy = entry.pb.dead_letter_policy
        target = self.state.topic(policy.dead_letter_topic)
        topic = None if target is None else self.core.topic(target.log_topic)
        if topic is None:
            raise DeadLetterDeferred(RETRY_MS, f"dead-letter topic {policy.dead_letter_topic} gone")
        parsed = names.subscription(subscription)
        headers = [(k, v) for k, v in record.headers if not k.startswith(PREFIX)]
        headers += [
            (DELIVERY_COUNT, str(policy.max_delivery_attempts).encode()),
            (SUBSCRIPTION, parsed.id.encode()),
            (SUBSCRIPTION_PROJECT, parsed.project.encode()),
            (TOPIC_PUBLISH_TIME, publish_time_text(record.timestamp).encode()),
        ]
        moved = Record(record.value, record.key, headers, self.core.clock.wall_ms())
        count = len(topic.partitions)
        index = 0 if count == 1 else self.partitioner.choose(record.key, count)
        await topic.partitions[index].append_records([moved])

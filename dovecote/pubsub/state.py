"""What the Pub/Sub listener keeps: its topics, subscriptions, snapshots and
IAM policies, by full resource name, durable in the core's catalog.

A Pub/Sub topic is a topic of the log (``log_topic``: the topic id, so the
Kafka topic ``orders`` is ``projects/*/topics/orders``; should a second
project take the same id, its log topic is ``<project>.<id>``). A
subscription is a core :class:`~dovecote.core.subscription.Subscription` on
that log topic, named ``pubsub/<project>/<id>``; the core keeps its progress,
this module its definition (the ``Subscription`` protobuf, stored as JSON).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import Message

from dovecote.pubsub import names
from dovecote.pubsub.methods import PUBLISHER_METHODS, SUBSCRIBER_METHODS

log = logging.getLogger("dovecote.pubsub")

TopicPb: Any = PUBLISHER_METHODS["GetTopic"].response
SubscriptionPb: Any = SUBSCRIBER_METHODS["GetSubscription"].response
SnapshotPb: Any = SUBSCRIBER_METHODS["GetSnapshot"].response

TOPIC_KIND = "pubsub.topic"
SUBSCRIPTION_KIND = "pubsub.subscription"
SNAPSHOT_KIND = "pubsub.snapshot"
POLICY_KIND = "pubsub.policy"


def to_json(message: Message) -> dict[str, Any]:
    return json_format.MessageToDict(message, preserving_proto_field_name=True)


def from_json(cls: Any, data: dict[str, Any]) -> Any:
    return json_format.ParseDict(data, cls(), ignore_unknown_fields=True)


@dataclass(slots=True)
class TopicEntry:
    pb: Any  # google.pubsub.v1.Topic
    log_topic: str
    owns_log: bool = True  # False when it adopted a log topic made by another protocol
    subscriptions: set[str] = field(default_factory=set)  # full names

    @property
    def name(self) -> str:
        return str(self.pb.name)

    def stored(self) -> dict[str, Any]:
        return {"topic": to_json(self.pb), "log_topic": self.log_topic, "owns_log": self.owns_log}


@dataclass(slots=True)
class SubscriptionEntry:
    pb: Any  # google.pubsub.v1.Subscription; topic is DELETED_TOPIC once its topic is gone
    log_topic: str
    core_id: str

    @property
    def name(self) -> str:
        return str(self.pb.name)

    def stored(self) -> dict[str, Any]:
        return {"subscription": to_json(self.pb), "log_topic": self.log_topic}


def core_subscription_id(name: names.ResourceName) -> str:
    return f"pubsub/{name.project}/{name.id}"


class PubsubState:
    """The registry, loaded from and written through the catalog."""

    def __init__(self, catalog: Any) -> None:
        self.catalog = catalog
        self.topics: dict[str, TopicEntry] = {}
        self.subscriptions: dict[str, SubscriptionEntry] = {}
        self.snapshots: dict[str, dict[str, Any]] = {}  # name -> stored snapshot record
        self.policies: dict[str, Any] = {}  # resource -> policy JSON

    def load(self) -> None:
        for value in self.catalog.items(TOPIC_KIND).values():
            entry = TopicEntry(
                from_json(TopicPb, value["topic"]), value["log_topic"], value.get("owns_log", True)
            )
            self.topics[entry.name] = entry
        for value in self.catalog.items(SUBSCRIPTION_KIND).values():
            pb = from_json(SubscriptionPb, value["subscription"])
            entry_s = SubscriptionEntry(
                pb, value["log_topic"], core_subscription_id(names.subscription(pb.name))
            )
            self.subscriptions[entry_s.name] = entry_s
            topic = self.topics.get(pb.topic)
            if topic is not None:
                topic.subscriptions.add(entry_s.name)
        self.snapshots = dict(self.catalog.items(SNAPSHOT_KIND))
        self.policies = dict(self.catalog.items(POLICY_KIND))

    # --- topics -------------------------------------------------------------------

    def topic(self, name: str) -> TopicEntry | None:
        return self.topics.get(name)

    def log_topic_for(self, name: names.ResourceName) -> str:
        """The log topic a new Pub/Sub topic uses (see the module docstring)."""
        taken = {t.log_topic for t in self.topics.values()}
        return name.id if name.id not in taken else f"{name.project}.{name.id}"

    async def put_topic(self, entry: TopicEntry) -> None:
        await self.catalog.put(TOPIC_KIND, entry.name, entry.stored())
        old = self.topics.get(entry.name)
        if old is not None:
            entry.subscriptions = old.subscriptions
        self.topics[entry.name] = entry

    async def delete_topic(self, name: str) -> TopicEntry | None:
        entry = self.topics.pop(name, None)
        if entry is not None:
            await self.catalog.delete(TOPIC_KIND, name)
        return entry

    def topics_of(self, project: str) -> Iterator[TopicEntry]:
        prefix = f"projects/{project}/topics/"
        return (t for n, t in sorted(self.topics.items()) if n.startswith(prefix))

    # --- subscriptions ------------------------------------------------------------

    def subscription(self, name: str) -> SubscriptionEntry | None:
        return self.subscriptions.get(name)

    async def put_subscription(self, entry: SubscriptionEntry) -> None:
        await self.catalog.put(SUBSCRIPTION_KIND, entry.name, entry.stored())
        self.subscriptions[entry.name] = entry
        topic = self.topics.get(entry.pb.topic)
        if topic is not None:
            topic.subscriptions.add(entry.name)

    async def delete_subscription(self, name: str) -> SubscriptionEntry | None:
        entry = self.subscriptions.pop(name, None)
        if entry is not None:
            await self.catalog.delete(SUBSCRIPTION_KIND, name)
            topic = self.topics.get(entry.pb.topic)
            if topic is not None:
                topic.subscriptions.discard(name)
        return entry

    def subscriptions_of(self, project: str) -> Iterator[SubscriptionEntry]:
        prefix = f"projects/{project}/subscriptions/"
        return (s for n, s in sorted(self.subscriptions.items()) if n.startswith(prefix))

    # --- snapshots and policies -----------------------------------------------------

    async def put_snapshot(self, name: str, value: dict[str, Any]) -> None:
        await self.catalog.put(SNAPSHOT_KIND, name, value)
        self.snapshots[name] = value

    async def delete_snapshot(self, name: str) -> dict[str, Any] | None:
        value = self.snapshots.pop(name, None)
        if value is not None:
            await self.catalog.delete(SNAPSHOT_KIND, name)
        return value

    async def put_policy(self, resource: str, policy: dict[str, Any]) -> None:
        await self.catalog.put(POLICY_KIND, resource, policy)
        self.policies[resource] = policy

    async def delete_policy(self, resource: str) -> None:
        if self.policies.pop(resource, None) is not None:
            await self.catalog.delete(POLICY_KIND, resource)

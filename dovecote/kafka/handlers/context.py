"""What every Kafka request handler gets: the broker, who we are, who asks."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from dovecote.core.broker import BrokerCore
from dovecote.core.topic import Topic


@dataclass
class KafkaContext:
    """Broker-wide facts for the Kafka adapter."""

    core: BrokerCore
    node_id: int
    host: str  # advertised to clients
    port: int
    cluster_id: str
    topics_by_id: dict[uuid.UUID, str] = field(default_factory=dict)

    def topic_id(self, topic: Topic) -> uuid.UUID:
        topic_uuid = uuid.UUID(topic.id)
        self.topics_by_id.setdefault(topic_uuid, topic.name)
        return topic_uuid

    def topic_by_id(self, topic_id: uuid.UUID | None) -> Topic | None:
        if topic_id is None:
            return None
        name = self.topics_by_id.get(topic_id)
        if name is None:
            for topic in self.core.topics.values():
                self.topic_id(topic)
            name = self.topics_by_id.get(topic_id)
        return self.core.topic(name) if name else None

    def resolve(self, entry: Any) -> tuple[str | None, Topic | None]:
        """(name, topic) of a request entry naming a topic by name or by id."""
        name = getattr(entry, "name", None) or getattr(entry, "topic", None)
        if name:
            return name, self.core.topic(name)
        topic = self.topic_by_id(getattr(entry, "topic_id", None))
        return (topic.name if topic else None), topic

    @property
    def broker_entry(self) -> dict[str, Any]:
        return {
            "node_id": self.node_id,
            "broker_id": self.node_id,
            "host": self.host,
            "port": self.port,
            "rack": None,
            "is_fenced": False,
        }


@dataclass(slots=True)
class Encoded:
    """A response already encoded (size prefix included), as buffers to write."""

    buffers: list[bytes | memoryview]


@dataclass(slots=True)
class Session:
    """One client connection."""

    client_host: str
    client_id: str | None = None

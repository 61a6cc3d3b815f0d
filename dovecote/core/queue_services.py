"""The services a :class:`~dovecote.core.queues.QueueManager` is built from.

The queue manager is given the topics it keeps its queues in and the place
their delivery state lives, not :class:`~dovecote.core.broker.BrokerCore`:
these protocols are what it needs of them (the broker implements both, tests
may pass anything shaped alike), so no module below the broker imports it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from dovecote.core.dedup import DedupWindow
from dovecote.core.subscription import Subscription
from dovecote.core.subscription_state import DeadLetterHandler, SubscriptionConfig
from dovecote.core.topic import Topic


class TopicService(Protocol):
    """The topics a queue manager keeps its queues in."""

    def topic(self, name: str) -> Topic | None: ...

    async def create_topic(
        self, name: str, partitions: int | None = None, configs: Mapping[str, str] | None = None
    ) -> Topic | None: ...

    async def delete_topic(self, name: str) -> None: ...


class SubscriptionService(Protocol):
    """Where a queue's delivery state lives."""

    def open_subscription(
        self,
        sub_id: str,
        topic_name: str,
        config: SubscriptionConfig | None = None,
        on_dead_letter: DeadLetterHandler | None = None,
    ) -> Subscription: ...

    def drop_subscription(self, sub_id: str) -> None: ...

    def dedup_window(self, name: str, window_ms: int) -> DedupWindow:
        """The durable dedup window ``name`` (dropped with the subscription of that name)."""
        ...

"""Subscriptions: their definitions (Create/Get/Update/List/Delete,
ModifyPushConfig) and the core subscription behind each.

A subscription is a core subscription on its topic's log topic (see
``state.py``). It starts at the end of the log, as a new Pub/Sub
subscription sees only messages published after it was made. Ack ids are
the core's delivery tokens (see ``receiving.py``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import grpc

from dovecote.core.subscription_state import DeadLetterHandler
from dovecote.pubsub import names
from dovecote.pubsub.dead_letters import check_dead_letter_topic
from dovecote.pubsub.detach import detached_error
from dovecote.pubsub.methods import SUBSCRIBER_METHODS, Empty
from dovecote.pubsub.paging import page
from dovecote.pubsub.publisher import Publisher
from dovecote.pubsub.rpc import PubsubError, already_exists, not_found
from dovecote.pubsub.state import PubsubState, SubscriptionEntry, core_subscription_id
from dovecote.pubsub.sub_config import core_config, normalise

M = SUBSCRIBER_METHODS


# Told of every change of a subscription's definition: (old, new); old is None
# on create, new is None on delete. Push delivery and the like follow it.
ChangeListener = Callable[[SubscriptionEntry | None, SubscriptionEntry | None], Awaitable[None]]


class Subscriptions:
    def __init__(self, core: Any, state: PubsubState, publisher: Publisher) -> None:
        self.core = core
        self.state = state
        self.publisher = publisher
        publisher.on_topic_deleted = self.topic_deleted
        self.change_listeners: list[ChangeListener] = []
        # The core's on_dead_letter for a subscription (by full name): dead_letters.py.
        self.dead_letters: Callable[[str], DeadLetterHandler] | None = None

    def handlers(self) -> dict[str, Any]:
        return {
            "CreateSubscription": self.create_subscription,
            "GetSubscription": self.get_subscription,
            "UpdateSubscription": self.update_subscription,
            "ListSubscriptions": self.list_subscriptions,
            "DeleteSubscription": self.delete_subscription,
            "ModifyPushConfig": self.modify_push_config,
        }

    async def _changed(self, old: SubscriptionEntry | None, new: SubscriptionEntry | None) -> None:
        for listener in self.change_listeners:
            await listener(old, new)

    async def replace(self, old: SubscriptionEntry, pb: Any) -> SubscriptionEntry:
        """Store a changed definition of ``old`` and tell the listeners."""
        new = SubscriptionEntry(pb, old.log_topic, old.core_id)
        await self.state.put_subscription(new)
        await self._changed(old, new)
        return new

    async def start(self) -> None:
        """Reopen the core subscriptions of every stored subscription."""
        for entry in self.state.subscriptions.values():
            if self.core.topic(entry.log_topic) is not None and not entry.pb.detached:
                self._open(entry)

    # --- definitions ------------------------------------------------------------------

    def existing(self, name: str) -> SubscriptionEntry:
        parsed = names.subscription(name)
        entry = self.state.subscription(name)
        if entry is None:
            raise not_found("Resource", parsed.id)
        return entry

    def core_subscription(self, entry: SubscriptionEntry) -> Any:
        if entry.pb.detached:
            raise detached_error()
        sub = self.core.subscription(entry.core_id)
        if sub is None:
            raise PubsubError(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"The subscription's topic is gone (resource={entry.name}).",
            )
        return sub

    def _open(self, entry: SubscriptionEntry) -> Any:
        return self.core.open_subscription(
            entry.core_id,
            entry.log_topic,
            core_config(entry.pb, self.record_filter(entry.pb)),
            on_dead_letter=None if self.dead_letters is None else self.dead_letters(entry.name),
        )

    def record_filter(self, pb: Any) -> Any:
        if not pb.filter:
            return None
        from dovecote.pubsub.filter import compile_filter
        from dovecote.pubsub.records import headers_to_attributes

        accept = compile_filter(pb.filter)
        return lambda record: accept(headers_to_attributes(record.headers))

    async def create_subscription(self, request: Any, context: Any) -> Any:
        name = names.subscription(request.name)
        names.topic(request.topic)
        if self.state.subscription(request.name) is not None:
            raise already_exists(request.name)
        topic = self.state.topic(request.topic)
        if topic is None:
            raise not_found("Resource", names.topic(request.topic).id)
        pb = M["GetSubscription"].response()
        pb.CopyFrom(request)
        normalise(pb)
        check_dead_letter_topic(self.state, pb)
        entry = SubscriptionEntry(pb, topic.log_topic, core_subscription_id(name))
        self.core.drop_subscription(entry.core_id)  # progress of an earlier namesake
        sub = self._open(entry)
        sub.seek({p.index: p.high_watermark for p in sub.topic.partitions})
        await self.state.put_subscription(entry)
        await self._changed(None, entry)
        return pb

    async def get_subscription(self, request: Any, context: Any) -> Any:
        return self.existing(request.subscription).pb

    async def update_subscription(self, request: Any, context: Any) -> Any:
        raise PubsubError(grpc.StatusCode.UNIMPLEMENTED, "UpdateSubscription is not built yet.")

    async def list_subscriptions(self, request: Any, context: Any) -> Any:
        project = names.parse_project(request.project)
        response = M["ListSubscriptions"].response()
        found, token = page(
            [s.name for s in self.state.subscriptions_of(project)],
            request.page_size,
            request.page_token,
        )
        response.subscriptions.extend(self.state.subscriptions[n].pb for n in found)
        response.next_page_token = token
        return response

    async def delete_subscription(self, request: Any, context: Any) -> Any:
        entry = self.existing(request.subscription)
        await self.state.delete_subscription(entry.name)
        self.core.drop_subscription(entry.core_id)
        await self._changed(entry, None)
        return Empty()

    async def modify_push_config(self, request: Any, context: Any) -> Any:
        entry = self.existing(request.subscription)
        pb = M["GetSubscription"].response()
        pb.CopyFrom(entry.pb)
        pb.push_config.CopyFrom(request.push_config)
        await self.replace(entry, pb)
        return Empty()

    async def topic_deleted(self, topic: Any) -> None:
        """Google keeps a deleted topic's subscriptions, naming their topic
        ``_deleted-topic_``; they receive nothing more."""
        for name in sorted(topic.subscriptions):
            entry = self.state.subscription(name)
            if entry is None:
                continue
            pb = M["GetSubscription"].response()
            pb.CopyFrom(entry.pb)
            pb.topic = names.DELETED_TOPIC
            await self.replace(entry, pb)

"""Subscriptions: their definitions (Create/Get/Update/List/Delete,
ModifyPushConfig) and the core subscription behind each.

A subscription is a core subscription on its topic's log topic (see
``state.py``). It starts at the end of the log, as a new Pub/Sub
subscription sees only messages published after it was made. Ack ids are
the core's delivery tokens (see ``receiving.py``).

UpdateSubscription applies a changed lease, retention or delivery limit to
the live core subscription (``config_changed``). Subscriber activity (any
RPC that reaches the core subscription: pull, ack, modack, a new stream)
keeps a subscription from expiring (``expiration.py``). The log topic keeps
messages as long as its longest-retaining subscription needs them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from google.protobuf import field_mask_pb2

from dovecote.core.subscription_state import DeadLetterHandler
from dovecote.pubsub import names, sub_settings
from dovecote.pubsub.checks import check_labels, mask_paths
from dovecote.pubsub.dead_letters import check_dead_letter_topic
from dovecote.pubsub.detach import detached_error
from dovecote.pubsub.expiration import Expiry
from dovecote.pubsub.filter import FilterError, compile_filter
from dovecote.pubsub.methods import SUBSCRIBER_METHODS, Empty
from dovecote.pubsub.paging import page
from dovecote.pubsub.publisher import Publisher
from dovecote.pubsub.push_config import check_push_config
from dovecote.pubsub.records import headers_to_attributes
from dovecote.pubsub.rpc import PubsubError, already_exists, invalid, not_found
from dovecote.pubsub.state import (
    PubsubState,
    SubscriptionEntry,
    TopicEntry,
    core_subscription_id,
)
from dovecote.pubsub.sub_config import core_config, normalise
from dovecote.pubsub.topic_config import RETENTION, log_retention_ms

M = SUBSCRIBER_METHODS


# Told of every change of a subscription's definition: (old, new); old is None
# on create, new is None on delete. Push delivery and the like follow it.
ChangeListener = Callable[[SubscriptionEntry | None, SubscriptionEntry | None], Awaitable[None]]
# Asked before an idle subscription expires: True if it is in use all the
# same (a stream held open with nothing to deliver, a push endpoint).
InUse = Callable[[SubscriptionEntry], bool]

# Fields UpdateSubscription may change (Google's list); the others answer
# "not mutable", unknown ones "not a known Subscription field".
UPDATABLE_FIELDS = frozenset(
    {
        "ack_deadline_seconds",
        "push_config",
        "bigquery_config",
        "cloud_storage_config",
        "retain_acked_messages",
        "message_retention_duration",
        "labels",
        "expiration_policy",
        "dead_letter_policy",
        "retry_policy",
        "enable_exactly_once_delivery",
        "message_transforms",
    }
)


class Subscriptions:
    def __init__(self, core: Any, state: PubsubState, publisher: Publisher) -> None:
        self.core = core
        self.state = state
        self.publisher = publisher
        publisher.on_topic_deleted = self.topic_deleted
        publisher.on_topic_updated = self.sync_log_retention
        self.change_listeners: list[ChangeListener] = []
        # Leases held: someone is consuming (a stream that pulls on the core
        # subscription directly does not pass through ``core_subscription``).
        self.in_use: list[InUse] = [self._has_leases]
        self.expiry = Expiry(core.clock, self.expire)
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
            self._watch_expiry(entry)

    def close(self) -> None:
        self.expiry.close()

    # --- activity and expiration ------------------------------------------------------

    def touch(self, name: str) -> None:
        """Subscriber activity on ``name`` (one timestamp; see ``expiration.py``)."""
        self.expiry.touch(name)

    def _watch_expiry(self, entry: SubscriptionEntry) -> None:
        ttl = sub_settings.ttl_ms(entry.pb)
        self.expiry.watch(entry.name, None if ttl is None else ttl / 1000)

    def _has_leases(self, entry: SubscriptionEntry) -> bool:
        sub = self.core.subscription(entry.core_id)
        return sub is not None and sub.unacked_count() > 0

    async def expire(self, name: str) -> None:
        """No subscriber activity for the expiration policy's ttl: delete it."""
        entry = self.state.subscription(name)
        if entry is None:
            return
        if any(check(entry) for check in self.in_use):
            self._watch_expiry(entry)
            return
        await self._delete(entry)

    async def _delete(self, entry: SubscriptionEntry) -> None:
        self.expiry.forget(entry.name)
        self.core.drop_subscription(entry.core_id)
        await self.state.delete_subscription(entry.name)
        await self.state.delete_policy(entry.name)
        topic = self.state.topic(entry.pb.topic)
        if topic is not None:
            await self.sync_log_retention(topic)
        await self._changed(entry, None)

    # --- retention --------------------------------------------------------------------

    async def sync_log_retention(self, topic: TopicEntry) -> None:
        """The log topic keeps messages for the topic's retention or the
        longest retention of its subscriptions, whichever is longer; with
        neither longer than the broker's default, the default (an adopted
        log topic of another protocol is left as its owner set it)."""
        if not topic.owns_log or self.core.topic(topic.log_topic) is None:
            return
        longest = max(
            (
                sub_settings.retention_ms(s.pb)
                for n in topic.subscriptions
                if (s := self.state.subscription(n)) is not None
            ),
            default=0,
        )
        want = log_retention_ms(topic.pb, longest, int(self.core.config.topic_default(RETENTION)))
        current = self.core.get_topic(topic.log_topic).configs.get(RETENTION)
        if want is None and current is not None:
            await self.core.alter_topic_configs(topic.log_topic, delete=[RETENTION])
        elif want is not None and current != str(want):
            await self.core.alter_topic_configs(topic.log_topic, {RETENTION: str(want)})

    # --- definitions ------------------------------------------------------------------

    def existing(self, name: str) -> SubscriptionEntry:
        parsed = names.subscription(name)
        entry = self.state.subscription(name)
        if entry is None:
            raise not_found("Resource", parsed.id)
        return entry

    def core_subscription(self, entry: SubscriptionEntry) -> Any:
        """The core subscription of ``entry``; asking for it is subscriber activity."""
        if entry.pb.detached:
            raise detached_error()
        self.expiry.touch(entry.name)
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
        """The core's filter hook for the subscription's ``filter`` (None: all)."""
        if not pb.filter:
            return None
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
        check_definition(pb)
        pb.ClearField("topic_message_retention_duration")  # output only: the topic's
        if topic.pb.HasField("message_retention_duration"):
            pb.topic_message_retention_duration.CopyFrom(topic.pb.message_retention_duration)
        check_dead_letter_topic(self.state, pb)
        entry = SubscriptionEntry(pb, topic.log_topic, core_subscription_id(name))
        self.core.drop_subscription(entry.core_id)  # progress of an earlier namesake
        sub = self._open(entry)
        sub.seek({p.index: p.high_watermark for p in sub.topic.partitions})
        await self.state.put_subscription(entry)
        self._watch_expiry(entry)
        await self.sync_log_retention(topic)
        await self._changed(None, entry)
        return pb

    async def get_subscription(self, request: Any, context: Any) -> Any:
        return self.existing(request.subscription).pb

    async def update_subscription(self, request: Any, context: Any) -> Any:
        entry = self.existing(request.subscription.name)
        paths = mask_paths(request, "Subscription")
        fields = M["GetSubscription"].response.DESCRIPTOR.fields_by_name
        for path in paths:  # top-level fields only, as Google's service takes them
            if path not in fields:
                raise invalid(
                    "Invalid update_mask provided in the UpdateSubscriptionRequest: "
                    f"{path} is not a known Subscription field. Note that field paths must "
                    "be of the form 'push_config' rather than 'pushConfig'."
                )
            if path not in UPDATABLE_FIELDS:
                raise invalid(
                    "Invalid update_mask provided in the UpdateSubscriptionRequest: the "
                    f"{path} field in the Subscription is not mutable."
                )
        pb = M["GetSubscription"].response()
        pb.CopyFrom(entry.pb)
        field_mask_pb2.FieldMask(paths=paths).MergeMessage(
            request.subscription, pb, replace_message_field=True, replace_repeated_field=True
        )
        check_definition(pb)
        sub = self.core.subscription(entry.core_id)
        if sub is not None:
            sub.config = core_config(pb, sub.config.filter)
            sub.config_changed()
        new = await self.replace(entry, pb)
        self._watch_expiry(new)
        topic = self.state.topic(pb.topic)
        if topic is not None:
            await self.sync_log_retention(topic)
        return pb

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
        await self._delete(self.existing(request.subscription))
        return Empty()

    async def modify_push_config(self, request: Any, context: Any) -> Any:
        entry = self.existing(request.subscription)
        check_push_config(request.push_config)
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


def check_definition(pb: Any) -> None:
    """Google's checks of a new or updated subscription, filling in its defaults."""
    normalise(pb)
    sub_settings.fill_defaults(pb)
    sub_settings.check(pb)
    check_labels(pb.labels)
    check_push_config(pb.push_config)
    if pb.filter:
        try:
            compile_filter(pb.filter)
        except FilterError as err:
            raise invalid(str(err)) from None

"""google.pubsub.v1.Subscriber: subscriptions and receiving.

A subscription is a core subscription on its topic's log topic (see
``state.py``). It starts at the end of the log, as a new Pub/Sub
subscription sees only messages published after it was made. Ack ids are
the core's delivery tokens; a stale one changes nothing (acks are
idempotent), and exactly-once subscriptions report it (``exactly_once.py``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import grpc

from dovecote.core.tokens import DeliveryToken, InvalidToken
from dovecote.pubsub import names
from dovecote.pubsub.messages import received_message
from dovecote.pubsub.methods import SUBSCRIBER, SUBSCRIBER_METHODS, Empty
from dovecote.pubsub.paging import page
from dovecote.pubsub.publisher import Publisher
from dovecote.pubsub.rpc import PubsubError, ServiceTable, already_exists, invalid, not_found
from dovecote.pubsub.state import PubsubState, SubscriptionEntry, core_subscription_id
from dovecote.pubsub.sub_config import core_config, normalise

M = SUBSCRIBER_METHODS
MAX_ACK_IDS = 2500  # per Acknowledge / ModifyAckDeadline, as the service allows
MAX_PULL = 1000
STREAM_IDLE_S = 1.0
PULL_HOLD_S = 5.0  # a StreamingPull with nothing to send looks again this often


class Subscriber:
    def __init__(self, core: Any, state: PubsubState, publisher: Publisher) -> None:
        self.core = core
        self.state = state
        self.publisher = publisher
        self.handlers: dict[str, Any] = {
            "CreateSubscription": self.create_subscription,
            "GetSubscription": self.get_subscription,
            "UpdateSubscription": self.update_subscription,
            "ListSubscriptions": self.list_subscriptions,
            "DeleteSubscription": self.delete_subscription,
            "ModifyAckDeadline": self.modify_ack_deadline,
            "Acknowledge": self.acknowledge,
            "Pull": self.pull,
            "StreamingPull": self.streaming_pull,
            "ModifyPushConfig": self.modify_push_config,
        }
        publisher.on_topic_deleted = self.topic_deleted

    def table(self) -> ServiceTable:
        return ServiceTable(SUBSCRIBER, M, self.handlers)

    async def start(self) -> None:
        """Reopen the core subscriptions of every stored subscription."""
        for entry in self.state.subscriptions.values():
            if self.core.topic(entry.log_topic) is not None:
                self._open(entry)

    # --- definitions ------------------------------------------------------------------

    def existing(self, name: str) -> SubscriptionEntry:
        parsed = names.subscription(name)
        entry = self.state.subscription(name)
        if entry is None:
            raise not_found("Resource", parsed.id)
        return entry

    def core_subscription(self, entry: SubscriptionEntry) -> Any:
        sub = self.core.subscription(entry.core_id)
        if sub is None:
            raise PubsubError(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"The subscription's topic is gone (resource={entry.name}).",
            )
        return sub

    def _open(self, entry: SubscriptionEntry) -> Any:
        return self.core.open_subscription(
            entry.core_id, entry.log_topic, core_config(entry.pb, self.record_filter(entry.pb))
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
        entry = SubscriptionEntry(pb, topic.log_topic, core_subscription_id(name))
        self.core.drop_subscription(entry.core_id)  # progress of an earlier namesake
        sub = self._open(entry)
        sub.seek({p.index: p.high_watermark for p in sub.topic.partitions})
        await self.state.put_subscription(entry)
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
        return Empty()

    async def modify_push_config(self, request: Any, context: Any) -> Any:
        entry = self.existing(request.subscription)
        pb = M["GetSubscription"].response()
        pb.CopyFrom(entry.pb)
        pb.push_config.CopyFrom(request.push_config)
        await self.state.put_subscription(SubscriptionEntry(pb, entry.log_topic, entry.core_id))
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
            await self.state.put_subscription(SubscriptionEntry(pb, entry.log_topic, entry.core_id))

    # --- receiving --------------------------------------------------------------------

    async def pull(self, request: Any, context: Any) -> Any:
        entry = self.existing(request.subscription)
        if request.max_messages <= 0:
            raise invalid("max_messages must be positive.")
        sub = self.core_subscription(entry)
        limit = min(request.max_messages, MAX_PULL)
        deliveries = sub.pull(limit, owner=None)
        # Google holds a pull open until messages come (or ~90 s); clients
        # retry an empty answer, so a shorter hold costs nothing.
        if not deliveries and not request.return_immediately and await sub.wait(PULL_HOLD_S):
            deliveries = sub.pull(limit, owner=None)
        response = M["Pull"].response()
        attempts = entry.pb.HasField("dead_letter_policy")
        response.received_messages.extend(received_message(d, attempts) for d in deliveries)
        return response

    def _tokens(self, ack_ids: Any) -> list[DeliveryToken]:
        if len(ack_ids) > MAX_ACK_IDS:
            raise invalid(f"Too many ack ids: at most {MAX_ACK_IDS} per request.")
        tokens = []
        for ack_id in ack_ids:
            try:
                tokens.append(DeliveryToken.parse(ack_id))
            except InvalidToken:
                raise invalid(
                    f"You have passed an invalid ack ID to the service (ack_id={ack_id})."
                ) from None
        return tokens

    async def acknowledge(self, request: Any, context: Any) -> Any:
        entry = self.existing(request.subscription)
        if not request.ack_ids:
            raise invalid("No ack ids specified.")
        tokens = self._tokens(request.ack_ids)
        self.core_subscription(entry).ack(tokens)
        return Empty()

    async def modify_ack_deadline(self, request: Any, context: Any) -> Any:
        entry = self.existing(request.subscription)
        if not 0 <= request.ack_deadline_seconds <= 600:
            raise invalid(
                f"Invalid ack deadline given: {request.ack_deadline_seconds}. It must be "
                "between 0 and 600 seconds."
            )
        tokens = self._tokens(request.ack_ids)
        sub = self.core_subscription(entry)
        if request.ack_deadline_seconds == 0:
            sub.nack(tokens)
        else:
            sub.extend(tokens, request.ack_deadline_seconds * 1000)
        return Empty()

    async def streaming_pull(
        self, requests: AsyncIterator[Any], context: Any
    ) -> AsyncIterator[Any]:
        """A first request names the subscription; later ones carry heartbeats
        (and possibly acks/modacks). Messages go out as they come."""
        first = await anext(aiter(requests), None)
        if first is None:
            return
        entry = self.existing(first.subscription)
        sub = self.core_subscription(entry)
        owner = object()
        lease_ms = (first.stream_ack_deadline_seconds or 10) * 1000
        limit = first.max_outstanding_messages or MAX_PULL
        attempts = entry.pb.HasField("dead_letter_policy")
        reader = asyncio.ensure_future(self._read_stream(sub, first, requests))
        try:
            while not reader.done():
                room = limit - len(sub.leases_of(owner))
                deliveries = sub.pull(min(room, MAX_PULL), owner, lease_ms) if room > 0 else []
                if deliveries:
                    response = M["StreamingPull"].response()
                    response.received_messages.extend(
                        received_message(d, attempts) for d in deliveries
                    )
                    yield response
                    continue
                await sub.wait(STREAM_IDLE_S)
        finally:
            reader.cancel()

    async def _read_stream(self, sub: Any, first: Any, requests: AsyncIterator[Any]) -> None:
        request = first
        while True:
            if request.ack_ids:
                sub.ack(self._tokens(request.ack_ids))
            for ack_id, seconds in zip(
                request.modify_deadline_ack_ids, request.modify_deadline_seconds, strict=False
            ):
                token = self._tokens([ack_id])
                if seconds == 0:
                    sub.nack(token)
                else:
                    sub.extend(token, seconds * 1000)
            request = await anext(aiter(requests), None)
            if request is None:
                return

"""StreamingPull as the Python client drives it.

The first request names the subscription and carries the stream's ack
deadline and flow control; later ones carry heartbeats (and possibly acks
and modacks). Messages go out as they come. When the stream ends, what it
held is released for redelivery.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from dovecote.pubsub.messages import received_message, set_subscription_properties
from dovecote.pubsub.methods import SUBSCRIBER_METHODS
from dovecote.pubsub.receiving import (
    MAX_PULL,
    end_stream_leases,
    modify_deadlines,
    parse_ack_ids,
)
from dovecote.pubsub.registry import Subscriptions

M = SUBSCRIBER_METHODS
STREAM_IDLE_S = 1.0  # a stream with nothing to send looks again this often


class Streaming:
    def __init__(self, subscriptions: Subscriptions) -> None:
        self.subscriptions = subscriptions

    def handlers(self) -> dict[str, Any]:
        return {"StreamingPull": self.streaming_pull}

    async def streaming_pull(
        self, requests: AsyncIterator[Any], context: Any
    ) -> AsyncIterator[Any]:
        first = await anext(aiter(requests), None)
        if first is None:
            return
        entry = self.subscriptions.existing(first.subscription)
        sub = self.subscriptions.core_subscription(entry)
        owner = object()
        lease_ms = (first.stream_ack_deadline_seconds or 10) * 1000
        limit = first.max_outstanding_messages or MAX_PULL
        attempts = entry.pb.HasField("dead_letter_policy")
        reader = asyncio.ensure_future(_read_stream(sub, first, requests))
        try:
            while not reader.done():
                room = limit - len(sub.leases_of(owner))
                deliveries = sub.pull(min(room, MAX_PULL), owner, lease_ms) if room > 0 else []
                if deliveries:
                    response = M["StreamingPull"].response()
                    response.received_messages.extend(
                        received_message(d, attempts) for d in deliveries
                    )
                    set_subscription_properties(response, entry.pb)
                    yield response
                    continue
                await sub.wait(STREAM_IDLE_S)
        finally:
            reader.cancel()
            end_stream_leases(sub, owner)


async def _read_stream(sub: Any, first: Any, requests: AsyncIterator[Any]) -> None:
    request = first
    while True:
        if request.ack_ids:
            sub.ack(parse_ack_ids(request.ack_ids))
        pairs = zip(request.modify_deadline_ack_ids, request.modify_deadline_seconds, strict=False)
        for ack_id, seconds in pairs:
            modify_deadlines(sub, parse_ack_ids([ack_id]), seconds)
        request = await anext(aiter(requests), None)
        if request is None:
            return

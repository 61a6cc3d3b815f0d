"""google.pubsub.v1.Subscriber: one service table over the modules that
serve its parts (definitions in ``registry.py``, receiving in
``receiving.py``, ``streaming.py``, snapshots and Seek in ``snapshots.py``)."""

from __future__ import annotations

from typing import Any

from dovecote.pubsub.methods import SUBSCRIBER, SUBSCRIBER_METHODS
from dovecote.pubsub.publisher import Publisher
from dovecote.pubsub.receiving import Receiving
from dovecote.pubsub.registry import Subscriptions
from dovecote.pubsub.rpc import ServiceTable
from dovecote.pubsub.snapshots import Snapshots
from dovecote.pubsub.state import PubsubState
from dovecote.pubsub.streaming import Streaming


class Subscriber:
    def __init__(self, core: Any, state: PubsubState, publisher: Publisher) -> None:
        self.subscriptions = Subscriptions(core, state, publisher)
        self.receiving = Receiving(self.subscriptions)
        self.streaming = Streaming(self.subscriptions)
        self.snapshots = Snapshots(self.subscriptions)

    async def start(self) -> None:
        await self.subscriptions.start()
        await self.snapshots.start()

    def close(self) -> None:
        self.subscriptions.close()
        self.snapshots.close()

    def table(self) -> ServiceTable:
        handlers: dict[str, Any] = {}
        for part in (self.subscriptions, self.receiving, self.streaming, self.snapshots):
            handlers.update(part.handlers())
        return ServiceTable(SUBSCRIBER, SUBSCRIBER_METHODS, handlers)

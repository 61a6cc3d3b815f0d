"""DetachSubscription: the subscription stays, its topic lets go of it.

Google: the subscription gets ``detached=true``, every message it retained
is dropped, and Pull and StreamingPull answer FAILED_PRECONDITION from then
on; a subscription cannot be attached again. Dovecote keeps the definition
(marked detached) and drops the core subscription, which holds the backlog
and the leases, so nothing of it is kept or delivered.
"""

from __future__ import annotations

from typing import Any

import grpc

from dovecote.pubsub.methods import SUBSCRIBER_METHODS
from dovecote.pubsub.rpc import PubsubError

SubscriptionPb: Any = SUBSCRIBER_METHODS["GetSubscription"].response
DETACHED = "Subscription is detached."


def detached_error() -> PubsubError:
    return PubsubError(grpc.StatusCode.FAILED_PRECONDITION, DETACHED)


class Detacher:
    """The Publisher's ``on_detach`` hook."""

    def __init__(self, core: Any, subscriptions: Any) -> None:
        self.core = core
        self.subscriptions = subscriptions  # registry.Subscriptions

    async def detach(self, name: str) -> None:
        entry = self.subscriptions.existing(name)
        if entry.pb.detached:
            return
        pb = SubscriptionPb()
        pb.CopyFrom(entry.pb)
        pb.detached = True
        await self.subscriptions.replace(entry, pb)
        self.core.drop_subscription(entry.core_id)

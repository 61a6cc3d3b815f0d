"""Amazon SNS over the core: topics are fanout exchanges, subscriptions bindings.

Wires the topic, subscription, publish and http-delivery parts together, keeps
the broker's signing key (made once, stored in the catalog as kind
"sns-signing-key" so subscribers' cached certificates stay valid across
restarts) and gives the gateway its operation table.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from dovecote.aws.gateway import Operation
from dovecote.aws.sns_http import HttpDelivery
from dovecote.aws.sns_messages import CERT_PATH
from dovecote.aws.sns_publish import PLAIN_QUEUE, QueueTraits, SnsPublisher
from dovecote.aws.sns_signing import SigningKey, generate_signing_key
from dovecote.aws.sns_subscriptions import SnsSubscriptions
from dovecote.aws.sns_topics import SnsTopics
from dovecote.core.queues import QueueManager

KEY_KIND = "sns-signing-key"


class SnsService:
    """The SNS operations, by name, over one queue manager."""

    def __init__(
        self,
        manager: QueueManager,
        sqs_queue_name: Callable[[str], str],
        queue_traits: Callable[[str], QueueTraits] = lambda _name: PLAIN_QUEUE,
    ) -> None:
        self.manager = manager
        self.topics = SnsTopics(manager)
        self.subscriptions = SnsSubscriptions(manager, self.topics, sqs_queue_name)
        self.http = HttpDelivery(manager, self.topics, self.signing_key, sqs_queue_name)
        self.publisher = SnsPublisher(
            manager, self.topics, self.subscriptions, self.signing_key, queue_traits
        )
        self.subscriptions.start_pusher = self.http.start
        self.subscriptions.stop_pusher = self.http.stop
        self.subscriptions.send_confirmation = self.http.send_confirmation
        self.subscriptions.send_unsubscribed = self.http.send_unsubscribed
        self._key: SigningKey | None = None
        topics, subs, pub = self.topics, self.subscriptions, self.publisher
        self.operations: dict[str, Operation] = {
            "CreateTopic": topics.create_topic,
            "DeleteTopic": topics.delete_topic,
            "ListTopics": topics.list_topics,
            "GetTopicAttributes": topics.get_topic_attributes,
            "SetTopicAttributes": topics.set_topic_attributes,
            "TagResource": topics.tag_resource,
            "UntagResource": topics.untag_resource,
            "ListTagsForResource": topics.list_tags_for_resource,
            "AddPermission": topics.add_permission,
            "RemovePermission": topics.remove_permission,
            "GetDataProtectionPolicy": topics.get_data_protection_policy,
            "PutDataProtectionPolicy": topics.put_data_protection_policy,
            "Subscribe": subs.subscribe,
            "Unsubscribe": subs.unsubscribe,
            "ConfirmSubscription": subs.confirm_subscription,
            "ListSubscriptions": subs.list_subscriptions,
            "ListSubscriptionsByTopic": subs.list_subscriptions_by_topic,
            "GetSubscriptionAttributes": subs.get_subscription_attributes,
            "SetSubscriptionAttributes": subs.set_subscription_attributes,
            "Publish": pub.publish,
            "PublishBatch": pub.publish_batch,
        }

    def signing_key(self) -> SigningKey:
        assert self._key is not None, "SnsService.start() loads the key"
        return self._key

    def certificate(self) -> tuple[str, bytes]:
        """What ``GET /dovecote/sns/signing-cert.pem`` serves."""
        return "application/x-pem-file", self.signing_key().certificate_pem()

    async def start(self) -> None:
        await self._load_key()
        await self.topics.load()
        await self.subscriptions.load()

    async def _load_key(self) -> None:
        catalog = self.manager.catalog
        stored = catalog.get(KEY_KIND, "default")
        if stored is not None:
            self._key = SigningKey.from_pem(
                stored["private_key"].encode(), stored["certificate"].encode()
            )
            return
        key = await asyncio.get_running_loop().run_in_executor(None, generate_signing_key)
        await catalog.put(
            KEY_KIND,
            "default",
            {
                "private_key": key.private_key_pem().decode(),
                "certificate": key.certificate_pem().decode(),
            },
        )
        self._key = key

    async def close(self) -> None:
        await self.http.close()


def register(by_name: dict[str, Any], static: dict[str, Any], service: SnsService) -> None:
    """Put SNS into the listener's service and static-file tables."""
    by_name["sns"] = service
    static[CERT_PATH] = service.certificate

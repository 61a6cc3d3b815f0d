"""The Pub/Sub listener (default 127.0.0.1:8085): grpcio's asyncio server with
one generic handler per service table (``rpc.py``), on the broker's loop.

Clients find it through ``PUBSUB_EMULATOR_HOST``, as they find Google's
emulator: anonymous credentials over an insecure channel.
"""

from __future__ import annotations

from typing import Any

import grpc

from dovecote.pubsub.dead_letters import DeadLetters
from dovecote.pubsub.detach import Detacher
from dovecote.pubsub.iam import IamPolicies
from dovecote.pubsub.publisher import Publisher
from dovecote.pubsub.push import PushDeliveries
from dovecote.pubsub.schemas import SchemaService
from dovecote.pubsub.state import PubsubState
from dovecote.pubsub.subscriber import Subscriber
from dovecote.pubsub.views import PubsubViews

CLOSE_GRACE_S = 1.0
# A publish may carry 10 MB of messages; the request around them is larger.
MAX_MESSAGE_BYTES = 20 * 1024 * 1024


class PubsubServices:
    """Everything the listener serves, built over the core."""

    def __init__(self, core: Any) -> None:
        self.core = core
        self.state = PubsubState(core.catalog)
        self.publisher = Publisher(core, self.state)
        self.subscriber = Subscriber(core, self.state, self.publisher)
        subscriptions = self.subscriber.subscriptions
        subscriptions.dead_letters = DeadLetters(core, self.state).handler
        self.publisher.on_detach = Detacher(core, subscriptions).detach
        self.schemas = SchemaService(core, self.state)
        self.publisher.topic_checks.append(self.schemas.check_topic)
        self.publisher.message_checks.append(self.schemas.check_messages)
        self.iam = IamPolicies(self.state, schema_exists=self.schemas.exists)
        self.push = PushDeliveries(self.subscriber.subscriptions, core.clock)
        self.views = PubsubViews(core, self.state)
        self.views.push_health = self.push.health

    async def start(self) -> None:
        self.state.load()
        await self.schemas.start()
        await self.subscriber.start()
        await self.push.start()

    def tables(self) -> list[Any]:
        return [
            self.publisher.table(),
            self.subscriber.table(),
            self.schemas.table(),
            self.iam.table(),
        ]

    async def close(self) -> None:
        await self.push.close()
        self.subscriber.close()


class PubsubListener:
    def __init__(self, server: grpc.aio.Server, host: str, port: int, services: PubsubServices):
        self._server = server
        self._address = (host, port)
        self.services = services

    @property
    def address(self) -> tuple[str, int]:
        return self._address

    def admin_objects(self) -> dict[str, list[dict[str, Any]]]:
        """What the admin API shows of this listener's own objects."""
        views = self.services.views
        return {"pubsub_topics": views.topics(), "pubsub_subscriptions": views.subscriptions()}

    def push_health(self, subscription_name: str) -> dict[str, Any] | None:
        """The push endpoint's health of a subscription (None: nothing to report)."""
        return self.services.views.push_health(subscription_name)

    async def close(self) -> None:
        await self._server.stop(CLOSE_GRACE_S)
        await self.services.close()


async def start_listener(broker: Any, host: str, port: int) -> PubsubListener:
    services = PubsubServices(broker.core)
    await services.start()
    server = grpc.aio.server(
        options=[
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
            ("grpc.so_reuseport", 0),
        ]
    )
    server.add_generic_rpc_handlers([table.generic_handler() for table in services.tables()])
    target = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"  # IPv6 in brackets
    bound = server.add_insecure_port(target)
    if bound == 0:
        raise OSError(f"cannot listen on {host}:{port}")
    await server.start()
    return PubsubListener(server, host, bound, services)

"""Push subscriptions against a real local HTTP endpoint (aiohttp, its own
thread): Google's envelope, unwrapped delivery with metadata headers,
retries with backoff until a 2xx (then never again), a slower rate while the
endpoint fails, and switching between push and pull."""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from aiohttp import web
from google.api_core import exceptions
from google.cloud import pubsub_v1
from google.pubsub_v1 import types

from tests.compat.pubsub.conftest import PROJECT

TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


@dataclass
class Request:
    at: float
    headers: dict[str, str]
    body: bytes
    status: int

    def envelope(self) -> dict:
        return json.loads(self.body)

    def message_id(self) -> str:
        if "x-goog-pubsub-message-id" in self.headers:
            return self.headers["x-goog-pubsub-message-id"]
        return self.envelope()["message"]["messageId"]


@dataclass
class Endpoint:
    """An HTTP server on loopback answering 503 to its first ``fail_first``
    requests (or until ``fail_until``, a monotonic time), then 200."""

    url: str = ""
    fail_first: int = 0
    fail_until: float = 0.0
    requests: list[Request] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        now = time.monotonic()
        with self.lock:
            failing = len(self.requests) < self.fail_first or now < self.fail_until
            status = 503 if failing else 200
            self.requests.append(Request(now, dict(request.headers), body, status))
        return web.Response(status=status)

    def wait_for(self, predicate, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if predicate(list(self.requests)):
                    return
            time.sleep(0.05)
        raise AssertionError(f"endpoint never saw that; got {len(self.requests)} requests")

    def acked_ids(self) -> list[str]:
        with self.lock:
            return [r.message_id() for r in self.requests if r.status == 200]


@pytest.fixture
def endpoint() -> Iterator[Endpoint]:
    loop = asyncio.new_event_loop()
    found = Endpoint()
    app = web.Application()
    app.router.add_post("/push", found.handle)
    runner = web.AppRunner(app)
    loop.run_until_complete(runner.setup())
    site = web.TCPSite(runner, "127.0.0.1", 0)
    loop.run_until_complete(site.start())
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    found.url = f"http://127.0.0.1:{port}/push"
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield found
    asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)
    loop.close()


def push_subscription(subscriber, topic: str, name: str, config: types.PushConfig, **extra) -> str:
    path = subscriber.subscription_path(PROJECT, name)
    subscriber.create_subscription(
        request={"name": path, "topic": topic, "push_config": config, **extra}
    )
    return path


def health(broker, name: str) -> dict | None:
    async def read() -> dict | None:
        return broker.broker.listeners["pubsub"].push_health(name)

    return broker.call(read())


def test_wrapped_envelope_retried_then_acked_once(broker, subscriber, topic, name, endpoint):
    endpoint.fail_first = 3
    path = push_subscription(
        subscriber, topic, name + "-push", types.PushConfig(push_endpoint=endpoint.url)
    )
    publisher = pubsub_v1.PublisherClient(
        publisher_options=pubsub_v1.types.PublisherOptions(enable_message_ordering=True)
    )
    try:
        mid = publisher.publish(topic, b"hello push", ordering_key="k1", colour="blue").result()
    finally:
        publisher.stop()
    endpoint.wait_for(lambda rs: any(r.status == 200 for r in rs))
    time.sleep(1.5)  # nothing after the 2xx
    with endpoint.lock:
        requests = list(endpoint.requests)
    assert [r.status for r in requests] == [503, 503, 503, 200]
    gaps = [b.at - a.at for a, b in itertools.pairwise(requests)]
    assert gaps[0] >= 0.08 and gaps[1] >= 0.15 and gaps[2] >= 0.3  # 100, 200, 400 ms backoff
    for request in requests:
        assert request.headers["Content-Type"] == "application/json"
        assert request.headers["User-Agent"] == "CloudPubSub-Google"
        envelope = request.envelope()
        assert set(envelope) == {"message", "subscription"}
        assert envelope["subscription"] == path
        message = envelope["message"]
        assert base64.b64decode(message["data"]) == b"hello push"
        assert message["attributes"] == {"colour": "blue"}
        assert message["messageId"] == message["message_id"] == mid
        assert message["publishTime"] == message["publish_time"]
        assert TIME.match(message["publishTime"])
        assert message["orderingKey"] == "k1"
    seen = health(broker, path)
    assert seen is not None
    assert seen["endpoint"] == endpoint.url
    assert seen["last_status"] == 200 and seen["consecutive_failures"] == 0
    assert seen["acked"] == 1 and seen["failed"] == 3
    assert seen["in_flight"] == 0


def test_delivery_attempt_with_a_dead_letter_policy(publisher, subscriber, topic, name, endpoint):
    endpoint.fail_first = 2
    dead = publisher.topic_path(PROJECT, name + "-dead")
    publisher.create_topic(name=dead)
    push_subscription(
        subscriber,
        topic,
        name + "-dl",
        types.PushConfig(push_endpoint=endpoint.url),
        dead_letter_policy={"dead_letter_topic": dead, "max_delivery_attempts": 5},
    )
    publisher.publish(topic, b"counted").result()
    endpoint.wait_for(lambda rs: any(r.status == 200 for r in rs))
    with endpoint.lock:
        attempts = [r.envelope()["deliveryAttempt"] for r in endpoint.requests]
    assert attempts == [1, 2, 3]


def test_unwrapped_with_metadata_headers(publisher, subscriber, topic, name, endpoint):
    path = push_subscription(
        subscriber,
        topic,
        name + "-raw",
        types.PushConfig(
            push_endpoint=endpoint.url,
            no_wrapper=types.PushConfig.NoWrapper(write_metadata=True),
        ),
    )
    mid = publisher.publish(topic, b"\x00raw bytes\xff", colour="red").result()
    endpoint.wait_for(lambda rs: len(rs) == 1)
    request = endpoint.requests[0]
    assert request.body == b"\x00raw bytes\xff"
    assert request.headers["colour"] == "red"
    assert request.headers["x-goog-pubsub-subscription-name"] == path
    assert request.headers["x-goog-pubsub-message-id"] == mid
    assert TIME.match(request.headers["x-goog-pubsub-publish-time"])
    assert "x-goog-pubsub-ordering-key" not in request.headers


def test_unwrapped_without_metadata(publisher, subscriber, topic, name, endpoint):
    push_subscription(
        subscriber,
        topic,
        name + "-bare",
        types.PushConfig(push_endpoint=endpoint.url, no_wrapper=types.PushConfig.NoWrapper()),
    )
    publisher.publish(topic, b"just data", colour="green").result()
    endpoint.wait_for(lambda rs: len(rs) == 1)
    request = endpoint.requests[0]
    assert request.body == b"just data"
    assert "colour" not in request.headers
    assert not [h for h in request.headers if h.lower().startswith("x-goog-pubsub-")]


def test_failing_endpoint_is_sent_less(publisher, subscriber, topic, name, endpoint):
    """While the endpoint fails, the window shrinks to one request at a time
    and the backoff grows; once it answers, every message is acked once."""
    count = 40
    endpoint.fail_until = time.monotonic() + 2.0
    push_subscription(
        subscriber, topic, name + "-slow", types.PushConfig(push_endpoint=endpoint.url)
    )
    futures = [publisher.publish(topic, f"m{i}".encode()) for i in range(count)]
    ids = {f.result() for f in futures}
    endpoint.wait_for(lambda rs: len({r.message_id() for r in rs if r.status == 200}) == count)
    time.sleep(1.0)
    with endpoint.lock:
        requests = list(endpoint.requests)
    failing = [r for r in requests if r.status == 503]
    # 100 ms, 200 ms, 400 ms, 800 ms... apart, one at a time once the window
    # is down to one: a handful, where a healthy endpoint gets all 40 at once.
    assert 1 <= len(failing) <= 12
    acked = endpoint.acked_ids()
    assert sorted(acked) == sorted(ids)  # each acked exactly once, never redelivered


def test_switch_to_pull_and_back(publisher, subscriber, topic, name, endpoint):
    path = push_subscription(
        subscriber, topic, name + "-sw", types.PushConfig(push_endpoint=endpoint.url)
    )
    subscriber.modify_push_config(subscription=path, push_config=types.PushConfig())
    publisher.publish(topic, b"pulled").result()
    response = subscriber.pull(subscription=path, max_messages=10, timeout=10)
    assert [m.message.data for m in response.received_messages] == [b"pulled"]
    subscriber.acknowledge(
        subscription=path, ack_ids=[m.ack_id for m in response.received_messages]
    )
    time.sleep(0.5)
    assert endpoint.requests == []
    subscriber.modify_push_config(
        subscription=path, push_config=types.PushConfig(push_endpoint=endpoint.url)
    )
    publisher.publish(topic, b"pushed").result()
    endpoint.wait_for(lambda rs: len(rs) == 1)
    assert base64.b64decode(endpoint.requests[0].envelope()["message"]["data"]) == b"pushed"


def test_deleted_subscription_stops_pushing(broker, publisher, subscriber, topic, name, endpoint):
    endpoint.fail_until = time.monotonic() + 60
    path = push_subscription(
        subscriber, topic, name + "-del", types.PushConfig(push_endpoint=endpoint.url)
    )
    publisher.publish(topic, b"doomed").result()
    endpoint.wait_for(lambda rs: len(rs) >= 1)
    subscriber.delete_subscription(subscription=path)
    assert health(broker, path) is None
    time.sleep(0.3)
    with endpoint.lock:
        seen = len(endpoint.requests)
    time.sleep(1.5)
    assert len(endpoint.requests) == seen


def test_bad_push_endpoints_are_refused(subscriber, topic, subscription, name):
    with pytest.raises(exceptions.InvalidArgument, match="Unsupported push_endpoint"):
        push_subscription(subscriber, topic, name + "-bad", types.PushConfig(push_endpoint="foo"))
    with pytest.raises(exceptions.InvalidArgument, match="Unsupported push_endpoint"):
        subscriber.modify_push_config(
            subscription=subscription, push_config=types.PushConfig(push_endpoint="ftp://x/y")
        )
    assert subscriber.get_subscription(subscription=subscription).push_config.push_endpoint == ""

"""StreamingPull as google-cloud-pubsub drives it: server-side flow control
(messages and bytes), nacks, streams that end with messages outstanding,
competing streams, subscription properties, a deleted subscription.

Some tests open the stream with a plain grpc call (``RawStream``) to see
exactly what the server sends; the others use ``SubscriberClient.subscribe``.
The broker's own count of outstanding leases is read on its loop.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from google.cloud import pubsub_v1
from google.pubsub_v1 import types

from tests.compat.pubsub.conftest import PROJECT

Request: Any = types.StreamingPullRequest.pb()
Response: Any = types.StreamingPullResponse.pb()
METHOD = "/google.pubsub.v1.Subscriber/StreamingPull"


class RawStream:
    """One StreamingPull over its own channel; responses collected by a thread."""

    def __init__(self, host: str, subscription: str, **first: Any) -> None:
        self.channel = grpc.insecure_channel(
            host, options=[("grpc.max_receive_message_length", 32 * 1024 * 1024)]
        )
        call = self.channel.stream_stream(
            METHOD,
            request_serializer=Request.SerializeToString,
            response_deserializer=Response.FromString,
        )
        self.requests: queue.Queue[Any] = queue.Queue()
        first.setdefault("stream_ack_deadline_seconds", 60)
        self.requests.put(Request(subscription=subscription, **first))
        self.responses: list[Any] = []
        self.error: grpc.RpcError | None = None
        self.call = call(self._requests())
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _requests(self) -> Iterator[Any]:
        while (request := self.requests.get()) is not None:
            yield request

    def _read(self) -> None:
        try:
            for response in self.call:
                self.responses.append(response)
        except grpc.RpcError as error:
            self.error = error

    @property
    def messages(self) -> list[Any]:
        return [m for r in list(self.responses) for m in r.received_messages]

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Any]:
        deadline = time.monotonic() + timeout
        while len(self.messages) < count and time.monotonic() < deadline:
            time.sleep(0.01)
        return self.messages

    def close(self) -> None:
        self.requests.put(None)
        self.call.cancel()
        self.reader.join(5)
        self.channel.close()


@pytest.fixture
def raw(emulator_host: str) -> Iterator[Any]:
    streams: list[RawStream] = []

    def open_stream(subscription: str, **first: Any) -> RawStream:
        stream = RawStream(emulator_host, subscription, **first)
        streams.append(stream)
        return stream

    yield open_stream
    for stream in streams:
        stream.close()


def outstanding(broker: Any, subscription: str) -> int:
    """Leases the broker holds on the subscription (delivered, not settled)."""
    core_id = f"pubsub/{PROJECT}/{subscription.rsplit('/', 1)[-1]}"

    async def count() -> int:
        return broker.broker.core.subscription(core_id).unacked_count()

    return broker.call(count())


def publish_all(publisher: Any, topic: str, count: int, size: int = 8, **attrs: str) -> None:
    futures = [publisher.publish(topic, f"{i:0{size}d}".encode(), **attrs) for i in range(count)]
    for future in futures:
        future.result()


# --- flow control --------------------------------------------------------------------


def test_the_server_sends_no_more_than_max_outstanding_messages(
    broker, publisher, subscriber, topic, subscription, raw
):
    publish_all(publisher, topic, 30)
    stream = raw(subscription, max_outstanding_messages=5)
    assert len(stream.wait_for(5)) == 5
    time.sleep(0.3)
    assert len(stream.messages) == 5
    assert outstanding(broker, subscription) == 5
    subscriber.acknowledge(
        subscription=subscription, ack_ids=[m.ack_id for m in stream.messages[:2]]
    )
    assert len(stream.wait_for(7)) == 7
    time.sleep(0.3)
    assert len(stream.messages) == 7
    assert outstanding(broker, subscription) == 5


def test_the_server_sends_no_more_than_max_outstanding_bytes(
    broker, publisher, subscriber, topic, subscription, raw
):
    publish_all(publisher, topic, 20, size=1000)
    stream = raw(subscription, max_outstanding_bytes=3000)
    assert len(stream.wait_for(3)) == 3
    time.sleep(0.3)
    assert len(stream.messages) == 3
    assert outstanding(broker, subscription) == 3
    subscriber.modify_ack_deadline(
        subscription=subscription, ack_ids=[stream.messages[0].ack_id], ack_deadline_seconds=0
    )  # a nack frees its bytes too (and the message comes back)
    assert len(stream.wait_for(4)) == 4
    time.sleep(0.3)
    assert len(stream.messages) == 4
    assert outstanding(broker, subscription) == 3


def test_subscribe_with_flow_control_holds_the_broker_to_max_messages(
    broker, publisher, subscriber, topic, subscription
):
    publish_all(publisher, topic, 50)
    held: list[Any] = []
    seen: list[int] = []
    lock = threading.Lock()

    def callback(message: Any) -> None:
        with lock:
            held.append(message)

    flow = pubsub_v1.types.FlowControl(max_messages=7)
    future = subscriber.subscribe(subscription, callback, flow_control=flow)
    try:
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            seen.append(outstanding(broker, subscription))
            time.sleep(0.05)
        assert max(seen) == 7 and len(held) == 7
        got: set[bytes] = set()
        deadline = time.monotonic() + 15
        while len(got) < 50 and time.monotonic() < deadline:
            with lock:
                batch, held[:] = list(held), []
            for message in batch:
                got.add(message.data)
                message.ack()
            seen.append(outstanding(broker, subscription))
            time.sleep(0.02)
        assert len(got) == 50
        assert max(seen) <= 7
    finally:
        future.cancel()


def test_subscribe_with_byte_flow_control_holds_the_broker_to_max_bytes(
    broker, publisher, subscriber, topic, subscription
):
    publish_all(publisher, topic, 20, size=1000)
    held: list[Any] = []
    flow = pubsub_v1.types.FlowControl(max_bytes=4500, max_messages=1000)
    future = subscriber.subscribe(subscription, held.append, flow_control=flow)
    try:
        seen = []
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline:
            seen.append(outstanding(broker, subscription))
            time.sleep(0.05)
        # 1,000-byte bodies: delivery stops once 4,500 bytes are out (5 messages);
        # the client itself holds back what would pass its own limit
        assert max(seen) == 5
        assert 1 <= len(held) <= 5
    finally:
        future.cancel()


# --- nacks, ends of streams, competing streams --------------------------------------------


def test_a_nack_is_redelivered_within_a_second(publisher, subscriber, topic, subscription):
    deliveries: list[tuple[float, bytes]] = []
    done = threading.Event()

    def callback(message: Any) -> None:
        deliveries.append((time.monotonic(), message.data))
        if len(deliveries) == 1:
            message.nack()
        else:
            message.ack()
            done.set()

    future = subscriber.subscribe(subscription, callback)
    try:
        publisher.publish(topic, b"again").result()
        assert done.wait(5)
    finally:
        future.cancel()
    (first, data1), (second, data2) = deliveries[:2]
    assert data1 == data2 == b"again"
    assert second - first < 1.0


def test_a_stream_ended_with_messages_outstanding_hands_them_on_within_5s(
    broker, publisher, subscriber, topic, subscription, raw
):
    publish_all(publisher, topic, 10)
    first = raw(subscription, stream_ack_deadline_seconds=600)
    assert len(first.wait_for(10)) == 10
    first.close()
    started = time.monotonic()
    got: set[bytes] = set()
    done = threading.Event()

    def callback(message: Any) -> None:
        got.add(message.data)
        message.ack()
        if len(got) == 10:
            done.set()

    future = subscriber.subscribe(subscription, callback)
    try:
        assert done.wait(5)
    finally:
        future.cancel()
    assert time.monotonic() - started < 5
    assert got == {f"{i:08d}".encode() for i in range(10)}


def test_two_streams_share_a_subscription(broker, publisher, subscriber, topic, subscription, raw):
    a = raw(subscription, max_outstanding_messages=10)
    b = raw(subscription, max_outstanding_messages=10)
    time.sleep(0.2)  # both attached before anything is published
    count = 200
    futures = [publisher.publish(topic, f"{i:08d}".encode()) for i in range(count)]
    for future in futures:
        future.result()
    deadline = time.monotonic() + 15
    while len(a.messages) + len(b.messages) < count and time.monotonic() < deadline:
        for stream in (a, b):
            ids = [m.ack_id for m in stream.messages[getattr(stream, "acked", 0) :]]
            if ids:
                subscriber.acknowledge(subscription=subscription, ack_ids=ids)
                stream.acked = getattr(stream, "acked", 0) + len(ids)  # type: ignore[attr-defined]
        time.sleep(0.01)
    data_a = [m.message.data for m in a.messages]
    data_b = [m.message.data for m in b.messages]
    assert data_a and data_b  # both took part
    assert not set(data_a) & set(data_b)  # each message to one of them
    assert sorted(data_a + data_b) == [f"{i:08d}".encode() for i in range(count)]


def test_acks_on_the_stream_and_across_streams_are_idempotent(
    broker, publisher, subscriber, topic, subscription, raw
):
    publish_all(publisher, topic, 4)
    a = raw(subscription)
    ack_ids = [m.ack_id for m in a.wait_for(4)]
    a.requests.put(Request(ack_ids=ack_ids[:2]))  # acks on the stream (older clients)
    a.requests.put(Request(modify_deadline_ack_ids=ack_ids[2:3], modify_deadline_seconds=[120]))
    deadline = time.monotonic() + 5
    while outstanding(broker, subscription) > 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert outstanding(broker, subscription) == 2
    a.close()
    b = raw(subscription)
    again = b.wait_for(2)
    time.sleep(0.3)
    assert sorted(m.message.data for m in b.messages) == [b"00000002", b"00000003"]
    # an ack id of the first stream still names its lease if nobody took it since
    subscriber.acknowledge(subscription=subscription, ack_ids=ack_ids)  # stale: no error
    subscriber.acknowledge(subscription=subscription, ack_ids=[m.ack_id for m in again])
    subscriber.acknowledge(subscription=subscription, ack_ids=[m.ack_id for m in again])
    assert outstanding(broker, subscription) == 0


# --- what the responses carry ---------------------------------------------------------------


def test_responses_carry_the_subscription_properties(publisher, subscriber, topic, name, raw):
    plain = subscriber.subscription_path(PROJECT, name + "-plain")
    both = subscriber.subscription_path(PROJECT, name + "-both")
    subscriber.create_subscription(name=plain, topic=topic)
    subscriber.create_subscription(
        request={
            "name": both,
            "topic": topic,
            "enable_message_ordering": True,
            "enable_exactly_once_delivery": True,
        }
    )
    publisher.publish(topic, b"p").result()
    for path, expected in ((plain, (False, False)), (both, (True, True))):
        stream = raw(path)
        assert stream.wait_for(1)
        properties = stream.responses[0].subscription_properties
        got = (properties.exactly_once_delivery_enabled, properties.message_ordering_enabled)
        assert got == expected


def test_a_ten_megabyte_message_goes_through_a_stream(publisher, topic, subscription, raw):
    body = b"x" * (10 * 1000 * 1000 - 100)
    publisher.publish(topic, body).result()
    publisher.publish(topic, body).result()
    stream = raw(subscription)
    got = stream.wait_for(2, timeout=20)
    assert [len(m.message.data) for m in got] == [len(body), len(body)]
    assert stream.error is None


def test_a_deleted_subscription_ends_its_streams_with_not_found(subscriber, subscription, raw):
    stream = raw(subscription)
    time.sleep(0.2)
    subscriber.delete_subscription(subscription=subscription)
    stream.reader.join(5)
    assert stream.error is not None
    assert stream.error.code() == grpc.StatusCode.NOT_FOUND


def test_bad_first_requests_get_google_errors(emulator_host, subscription, name, raw):
    missing = raw(subscription.rsplit("/", 1)[0] + "/no-such-" + name)
    missing.reader.join(5)
    assert missing.error is not None and missing.error.code() == grpc.StatusCode.NOT_FOUND
    short = raw(subscription, stream_ack_deadline_seconds=5)
    short.reader.join(5)
    assert short.error is not None and short.error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert short.error.details() == "stream_ack_deadline_seconds must be between 10 and 600 seconds"


def test_an_ordered_subscription_streams_each_key_in_order(emulator_host, subscriber, name):
    publisher = pubsub_v1.PublisherClient(
        publisher_options=pubsub_v1.types.PublisherOptions(enable_message_ordering=True)
    )
    try:
        topic = publisher.topic_path(PROJECT, name + "-ordered")
        publisher.create_topic(name=topic)
        path = subscriber.subscription_path(PROJECT, name + "-ordered")
        subscriber.create_subscription(
            request={"name": path, "topic": topic, "enable_message_ordering": True}
        )
        futures = [
            publisher.publish(topic, f"{key}-{i:03d}".encode(), ordering_key=key)
            for i in range(60)
            for key in ("a", "b")
        ]
        for future in futures:
            future.result()
    finally:
        publisher.stop()
    got: dict[str, list[bytes]] = {"a": [], "b": []}
    done = threading.Event()

    def callback(message: Any) -> None:
        got[message.ordering_key].append(message.data)
        message.ack()
        if sum(map(len, got.values())) == 120:
            done.set()

    future = subscriber.subscribe(path, callback)
    try:
        assert done.wait(15)
    finally:
        future.cancel()
    for key in ("a", "b"):
        assert got[key] == [f"{key}-{i:03d}".encode() for i in range(60)]

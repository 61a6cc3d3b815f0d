"""Malformed input against the Pub/Sub listener: random and mutated protobuf
bytes on every RPC (unary and streaming), unknown services and methods,
messages over the size limit, and raw garbage on the socket (HTTP/1.1, a
broken HTTP/2 preface, a valid preface then junk frames). The broker never
dies; a malformed request gets INVALID_ARGUMENT (never INTERNAL or
UNKNOWN, which would say the broker did not know what it was doing); an
unknown method UNIMPLEMENTED; resident memory stays within RSS_BOUND_MIB;
and a google-cloud-pubsub client publishing and pulling meanwhile keeps
working and loses nothing it was told was published."""

from __future__ import annotations

import os
import random
import socket
import time
from dataclasses import dataclass

import grpc
import pytest
from google.cloud import pubsub_v1

from dovecote.pubsub.methods import SERVICES
from tests.faults.fuzzing import SteadyLoop, Watch
from tests.faults.harness import SCALE, Broker, seeded

RSS_BOUND_MIB = 128  # as for the other listeners (see test_kafka_fuzz.py)
SECONDS = 10 * SCALE
PROJECT = "fuzz"
# What a malformed or nonsensical request may get. INTERNAL and UNKNOWN may not.
CLIENT_ERRORS = {
    grpc.StatusCode.OK,
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.ALREADY_EXISTS,
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.OUT_OF_RANGE,
    grpc.StatusCode.UNIMPLEMENTED,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.ABORTED,
    grpc.StatusCode.DEADLINE_EXCEEDED,  # a long pull with nothing to give
}
PATHS = [
    (f"/{service}/{method}", spec)
    for service, methods in SERVICES.items()
    for method, spec in methods.items()
]


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    broker = Broker(tmp_path_factory.mktemp("pubsub-fuzz") / "data").start()
    yield broker
    broker.stop()


@pytest.fixture(scope="module")
def clients(broker):
    os.environ["PUBSUB_EMULATOR_HOST"] = broker.addresses["pubsub"]
    publisher, subscriber = pubsub_v1.PublisherClient(), pubsub_v1.SubscriberClient()
    yield publisher, subscriber
    subscriber.close()


@pytest.fixture(scope="module")
def names(clients) -> tuple[str, str]:
    """A topic and subscription the fuzzed requests may name (and break)."""
    publisher, subscriber = clients
    topic = publisher.topic_path(PROJECT, "fuzz-topic")
    publisher.create_topic(name=topic)
    subscription = subscriber.subscription_path(PROJECT, "fuzz-sub")
    subscriber.create_subscription(name=subscription, topic=topic)
    return topic, subscription


def valid_requests(topic: str, subscription: str) -> dict[str, bytes]:
    """One well-formed request per RPC, to mutate."""
    out = {}
    for path, spec in PATHS:
        request = spec.request()
        for field_name, value in (
            ("topic", topic),
            ("subscription", subscription),
            ("name", topic if "Topic" in path else subscription),
            ("project", f"projects/{PROJECT}"),
            ("resource", topic),
        ):
            descriptor = request.DESCRIPTOR.fields_by_name.get(field_name)
            if descriptor is not None and descriptor.type == descriptor.TYPE_STRING:
                setattr(request, field_name, value)
        if path.endswith("/Publish"):
            request.messages.add(data=b"fuzz", attributes={"a": "b"})
        if path.endswith("/Pull"):
            request.max_messages = 5
        out[path] = request.SerializeToString()
    return out


def mutate(rng: random.Random, data: bytes) -> bytes:
    choice = rng.randrange(6)
    if choice == 0 or not data:
        return rng.randbytes(rng.randrange(1, 300))
    if choice == 1:
        return data[: rng.randrange(len(data))]  # truncated
    if choice == 2:
        raw = bytearray(data)
        for _ in range(rng.randrange(1, 5)):
            raw[rng.randrange(len(raw))] = rng.randrange(256)
        return bytes(raw)
    if choice == 3:
        return data + rng.randbytes(rng.randrange(1, 50))  # trailing junk
    if choice == 4:
        # a field of an unknown number, a huge length, or invalid UTF-8 in a string
        return data + rng.choice(
            [b"\xf8\xff\xff\xff\x0f\x01", b"\x0a\xff\xff\xff\xff\x0f", b"\x0a\x02\xff\xfe"]
        )
    return bytes(rng.randrange(256) for _ in range(rng.randrange(1, 40))) + data


@dataclass
class SteadyPubsub(SteadyLoop):
    """Publishes one message and pulls it back, over and over."""

    publisher: pubsub_v1.PublisherClient
    subscriber: pubsub_v1.SubscriberClient
    topic: str
    subscription: str

    def setup(self) -> None:
        self.publisher.create_topic(name=self.topic)
        self.subscriber.create_subscription(name=self.subscription, topic=self.topic)

    def round_trip(self, client: object, n: int) -> str | None:
        body = b"steady-%d" % n
        self.publisher.publish(self.topic, body).result(self.limit)
        deadline = time.monotonic() + self.limit
        while time.monotonic() < deadline:
            got = self.subscriber.pull(subscription=self.subscription, max_messages=10, timeout=5)
            if not got.received_messages:
                continue
            ids = [m.ack_id for m in got.received_messages]
            self.subscriber.acknowledge(subscription=self.subscription, ack_ids=ids)
            if body in [m.message.data for m in got.received_messages]:
                return None
        return "message not pulled back"


def call_raw(channel: grpc.Channel, path: str, spec, body: bytes) -> grpc.StatusCode:
    """``body`` as the request of ``path``; the status it got."""
    try:
        if spec.stream_stream:
            call = channel.stream_stream(path)
            for _ in call(iter([body, body]), timeout=2):
                pass
        else:
            channel.unary_unary(path)(body, timeout=2)
    except grpc.RpcError as err:
        return err.code()
    return grpc.StatusCode.OK


def test_malformed_protobufs_never_hurt_the_broker(broker, clients, names, fault_report):
    seed, rng = seeded()
    topic, subscription = names
    valid = valid_requests(topic, subscription)
    statuses: dict[str, int] = {}
    bad: list[str] = []
    publisher, subscriber = clients
    steady = SteadyPubsub(
        publisher,
        subscriber,
        publisher.topic_path(PROJECT, "steady"),
        subscriber.subscription_path(PROJECT, "steady"),
    )
    requests = 0
    with (
        grpc.insecure_channel(broker.addresses["pubsub"]) as channel,
        steady,
        Watch(broker) as watch,
    ):
        deadline = time.monotonic() + SECONDS
        while time.monotonic() < deadline:
            path, spec = rng.choice(PATHS)
            if "Delete" in path or "Detach" in path:
                continue  # keep the shared names alive; deletion is tested elsewhere
            body = mutate(rng, valid[path])
            code = call_raw(channel, path, spec, body)
            requests += 1
            statuses[code.name] = statuses.get(code.name, 0) + 1
            if code not in CLIENT_ERRORS:
                bad.append(f"{path} {code.name} {body[:40]!r}")
    alive = broker.settle()
    fault_report(
        "malformed Pub/Sub protobufs",
        runs=requests,
        acknowledged=steady.rounds,
        lost=len(steady.failures),
        crashes=broker.crashes,
        server_errors=len(bad),
        statuses=",".join(f"{k}:{v}" for k, v in sorted(statuses.items())),
        steady_p99_ms=round(steady.p99 * 1000),
        rss_growth_mib=round(watch.growth_mib, 1),
        seed=seed,
    )
    assert alive, broker.crash_logs[-1]
    assert not bad, bad[:5]
    assert not steady.failures, steady.failures[:3]
    assert steady.rounds > 5, "the steady client should have kept going"
    assert watch.growth_mib < RSS_BOUND_MIB, f"RSS grew by {watch.growth_mib:.0f} MiB"


def test_unknown_services_and_methods_are_unimplemented(broker):
    with grpc.insecure_channel(broker.addresses["pubsub"]) as channel:
        for path in (
            "/google.pubsub.v1.Publisher/NoSuchMethod",
            "/google.pubsub.v1.NoSuchService/Publish",
            "/x/y",
        ):
            with pytest.raises(grpc.RpcError) as caught:
                channel.unary_unary(path)(b"", timeout=5)
            assert caught.value.code() == grpc.StatusCode.UNIMPLEMENTED, path


def test_a_message_over_the_limit_is_refused_and_the_broker_serves_on(broker, clients, names):
    topic, _ = names
    big = bytes(21 * 1024 * 1024)
    with grpc.insecure_channel(broker.addresses["pubsub"]) as channel:
        with pytest.raises(grpc.RpcError) as caught:
            channel.unary_unary("/google.pubsub.v1.Publisher/Publish")(big, timeout=10)
        assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    publisher, _ = clients
    assert publisher.publish(topic, b"after").result(10)
    assert broker.check()


GARBAGE = [
    b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
    b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00" * 9,  # preface, then a zero frame header
    b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\xff\xff\xff\x04\x00\x00\x00\x00\x00" + b"x" * 100,
    b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n",  # a broken preface
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 64,  # a TLS hello
]


def test_garbage_on_the_socket_closes_that_connection_only(broker, clients, names, fault_report):
    seed, rng = seeded()
    host, port = broker.addresses["pubsub"].rsplit(":", 1)
    closed = 0
    for index in range(200):
        payload = (
            GARBAGE[index % len(GARBAGE)] if index < 50 else rng.randbytes(rng.randrange(1, 4096))
        )
        with socket.create_connection((host, int(port)), timeout=5) as sock:
            try:
                sock.sendall(payload)
                sock.settimeout(2)
                while sock.recv(65536):
                    pass
                closed += 1
            except (TimeoutError, ConnectionResetError, BrokenPipeError):
                closed += 1
    topic, _ = names
    publisher, _ = clients
    assert publisher.publish(topic, b"after garbage").result(10)
    alive = broker.settle()
    fault_report(
        "garbage on the Pub/Sub socket", runs=200, crashes=broker.crashes, closed=closed, seed=seed
    )
    assert alive, broker.crash_logs[-1]

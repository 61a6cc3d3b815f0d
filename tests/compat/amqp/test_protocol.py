"""The connection layer over raw sockets and pika: handshake, auth, heartbeats,
limits, malformed input, resource alarms."""

from __future__ import annotations

import socket
import struct
import time

import pika
import pytest
from pamqp import commands as C
from pamqp import frame as pamqp_frame
from pika.exceptions import ProbableAuthenticationError

from dovecote.amqp.codec import encode_method, encode_table

HEADER = b"AMQP\x00\x00\x09\x01"


class RawClient:
    """Just enough of a client to send arbitrary frames and read the answers."""

    def __init__(self, address: tuple[str, int]) -> None:
        self.sock = socket.create_connection(address, timeout=5)
        self.buffer = b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def method(self, channel: int, method) -> None:
        self.send(encode_method(channel, method))

    def read(self, timeout: float = 5.0):
        """The next frame as (channel, pamqp object), or None once the socket closes."""
        deadline = time.monotonic() + timeout
        while True:
            if len(self.buffer) >= 7:
                size = struct.unpack(">I", self.buffer[3:7])[0]
                if len(self.buffer) >= size + 8:
                    consumed, channel, value = pamqp_frame.unmarshal(self.buffer)
                    self.buffer = self.buffer[consumed:]
                    return channel, value
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                data = self.sock.recv(65536)
            except (ConnectionResetError, TimeoutError):
                return None
            if not data:
                return None
            self.buffer += data

    def handshake(
        self,
        *,
        heartbeat: int = 0,
        frame_max: int = 131072,
        mechanism="PLAIN",
        response: bytes = b"\x00guest\x00guest",
    ) -> None:
        self.send(HEADER)
        _, start = self.read()
        assert isinstance(start, C.Connection.Start)
        self.method(
            0,
            C.Connection.StartOk(
                {"capabilities": {"connection.blocked": True}}, mechanism, response
            ),
        )
        _, tune = self.read()
        assert isinstance(tune, C.Connection.Tune), tune
        self.method(0, C.Connection.TuneOk(tune.channel_max, frame_max, heartbeat))
        self.method(0, C.Connection.Open("/"))
        _, opened = self.read()
        assert isinstance(opened, C.Connection.OpenOk), opened

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def address(broker) -> tuple[str, int]:
    host, port = broker.broker.endpoint("amqp").host, broker.broker.endpoint("amqp").port
    return host, port


def test_server_properties_and_capabilities(connection):
    props = connection._impl.server_properties
    caps = props["capabilities"]
    for capability in (
        "publisher_confirms",
        "basic.nack",
        "consumer_cancel_notify",
        "exchange_exchange_bindings",
        "per_consumer_qos",
        "connection.blocked",
        "authentication_failure_close",
        "direct_reply_to",
    ):
        assert caps[capability] is True, capability
    assert props["product"] == b"Dovecote" or props["product"] == "Dovecote"


def test_tune_proposes_rabbitmq_defaults(address):
    client = RawClient(address)
    client.send(HEADER)
    _, start = client.read()
    assert start.mechanisms.split() == ["PLAIN", "AMQPLAIN"]
    client.method(0, C.Connection.StartOk({}, "PLAIN", b"\x00guest\x00guest"))
    _, tune = client.read()
    assert (tune.channel_max, tune.frame_max, tune.heartbeat) == (2047, 131072, 60)
    client.close()


def test_wrong_password_is_refused_with_403(url):
    bad = url.replace("guest:guest", "guest:nope")
    with pytest.raises(ProbableAuthenticationError) as info:
        pika.BlockingConnection(pika.URLParameters(bad))
    assert "ACCESS_REFUSED" in str(info.value)


def test_amqplain_login(address):
    table = encode_table({"LOGIN": "guest", "PASSWORD": "guest"})[4:]
    client = RawClient(address)
    client.handshake(mechanism="AMQPLAIN", response=table)
    client.close()
    bad = encode_table({"LOGIN": "guest", "PASSWORD": "wrong"})[4:]
    client = RawClient(address)
    client.send(HEADER)
    client.read()
    client.method(0, C.Connection.StartOk({}, "AMQPLAIN", bad))
    _, closed = client.read()
    assert isinstance(closed, C.Connection.Close) and closed.reply_code == 403
    assert client.read() is None  # and the socket goes
    client.close()


def test_unknown_vhost_is_not_allowed(url):
    with pytest.raises(pika.exceptions.AMQPConnectionError):
        pika.BlockingConnection(pika.URLParameters(url + "%2Felsewhere"))


def test_bad_protocol_header_gets_ours_back(address):
    client = RawClient(address)
    client.send(b"AMQP\x01\x01\x00\x0a")
    data = client.sock.recv(8)
    assert data == HEADER
    assert client.read() is None
    client.close()


def test_heartbeats_are_sent_and_a_silent_client_is_closed(address):
    client = RawClient(address)
    client.handshake(heartbeat=1)
    started = time.monotonic()
    received = b""
    client.sock.settimeout(5)
    while True:
        data = client.sock.recv(64)
        if not data:
            break
        received += data
    elapsed = time.monotonic() - started
    assert received and received == b"\x08\x00\x00\x00\x00\x00\x00\xce" * (len(received) // 8)
    assert 1.5 <= elapsed < 5, elapsed  # closed after two silent intervals
    client.close()


def test_heartbeats_keep_a_talking_client_alive(url):
    params = pika.URLParameters(url + "?heartbeat=1")
    connection = pika.BlockingConnection(params)
    connection.sleep(3.5)  # pika answers heartbeats while sleeping
    assert connection.is_open
    channel = connection.channel()
    channel.queue_declare("", exclusive=True)
    connection.close()


@pytest.mark.parametrize(
    ("frames", "code", "fatal"),
    [
        (b"\x01\x00\x01\x00\x00\x00\x05\x00\x14\x00\x0a\x00\xff", 501, True),  # bad frame end
        (b"\x03\x00\x01" + struct.pack(">I", 200_000) + b"x" * 200_000 + b"\xce", 501, True),
        (
            b"\x02\x00\x01\x00\x00\x00\x0e\x00\x3c\x00\x00" + b"\x00" * 8 + b"\x00\x00\xce",
            505,
            False,
        ),
        (b"\x01\x00\x01\x00\x00\x00\x04\x00\x63\x00\x01\xce", 503, False),  # unknown method
        (b"\x08\x00\x01\x00\x00\x00\x00\xce", 505, False),  # heartbeat off channel 0
        (  # queue.declare whose arguments table is cut short
            b"\x01\x00\x01\x00\x00\x00\x0f\x00\x32\x00\x0a\x00\x00\x01q\x00"
            b"\x00\x00\x00\x05\x01k\xce",
            502,
            False,
        ),
    ],
    ids=[
        "bad-frame-end",
        "frame-too-large",
        "header-without-method",
        "unknown-method",
        "heartbeat-on-channel",
        "bad-field-table",
    ],
)
def test_malformed_frames_close_that_connection_only(address, url, frames, code, fatal):
    bystander = pika.BlockingConnection(pika.URLParameters(url))
    bystander_channel = bystander.channel()
    client = RawClient(address)
    client.handshake()
    client.method(1, C.Channel.Open())
    assert isinstance(client.read()[1], C.Channel.OpenOk)
    client.send(frames)
    _, closed = client.read()
    assert isinstance(closed, C.Connection.Close), closed
    assert closed.reply_code == code, closed.reply_text
    if not fatal:
        client.method(0, C.Connection.CloseOk())
    assert client.read() is None
    client.close()
    queue = bystander_channel.queue_declare("", exclusive=True).method.queue
    bystander_channel.basic_publish("", queue, b"still here")
    assert bystander_channel.basic_get(queue, auto_ack=True)[2] == b"still here"
    bystander.close()


def test_channel_errors_on_the_wire(address):
    client = RawClient(address)
    client.handshake()
    client.method(3, C.Queue.Declare(queue="x"))  # channel never opened
    _, closed = client.read()
    assert (closed.reply_code, closed.reply_text) == (
        504,
        "CHANNEL_ERROR - expected 'channel.open'",
    )
    assert (closed.class_id, closed.method_id) == (50, 10)
    client.close()
    client = RawClient(address)
    client.handshake()
    client.method(1, C.Channel.Open())
    client.read()
    client.method(1, C.Channel.Open())
    _, closed = client.read()
    assert closed.reply_code == 504
    client.close()


def test_immediate_is_not_implemented(address):
    client = RawClient(address)
    client.handshake()
    client.method(1, C.Channel.Open())
    client.read()
    client.method(1, C.Basic.Publish(exchange="", routing_key="x", immediate=True))
    client.send(b"\x02\x00\x01\x00\x00\x00\x0e\x00\x3c\x00\x00" + b"\x00" * 8 + b"\x00\x00\xce")
    _, closed = client.read()
    assert (closed.reply_code, closed.reply_text) == (540, "NOT_IMPLEMENTED - immediate=true")
    client.close()


def test_frame_max_above_the_servers_is_refused(address):
    client = RawClient(address)
    client.send(HEADER)
    client.read()
    client.method(0, C.Connection.StartOk({}, "PLAIN", b"\x00guest\x00guest"))
    client.read()
    client.method(0, C.Connection.TuneOk(2047, 1 << 24, 0))
    _, closed = client.read()
    assert closed.reply_code == 530
    client.close()


def test_disk_alarm_blocks_publishers(broker, url, name):
    monitor = broker.broker.core.resources  # the core's alarms, which AMQP renders

    async def set_limit(limit: int) -> None:
        monitor.disk_free_limit = limit
        monitor.check()

    connection = pika.BlockingConnection(pika.URLParameters(url))
    events = []
    connection.add_on_connection_blocked_callback(lambda c, f: events.append(f.method.reason))
    connection.add_on_connection_unblocked_callback(lambda c, f: events.append("unblocked"))
    channel = connection.channel()
    channel.queue_declare(name)
    channel.basic_publish("", name, b"before")
    original = monitor.disk_free_limit
    broker.call(set_limit(1 << 62))  # more than any disk has free
    try:
        deadline = time.monotonic() + 5
        while not events and time.monotonic() < deadline:
            connection.process_data_events(time_limit=0.05)
        assert events == ["low on disk"]
        channel.basic_publish("", name, b"during")
        observer = pika.BlockingConnection(pika.URLParameters(url))
        time.sleep(0.3)
        observed = observer.channel()
        # The blocked publisher's message is not read while the alarm lasts.
        assert observed.queue_declare(name, passive=True).method.message_count == 1
    finally:
        broker.call(set_limit(original))
    deadline = time.monotonic() + 5
    while "unblocked" not in events and time.monotonic() < deadline:
        connection.process_data_events(time_limit=0.05)
    assert events == ["low on disk", "unblocked"]
    deadline = time.monotonic() + 5
    while observed.queue_declare(name, passive=True).method.message_count < 2:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    observed.queue_delete(name)
    observer.close()
    connection.close()


def _publish_frames(channel: int, queue: str, body: bytes) -> bytes:
    from dovecote.amqp.codec import EMPTY_PROPERTIES, encode_content_header, encode_frame

    return (
        encode_method(channel, C.Basic.Publish(exchange="", routing_key=queue))
        + encode_content_header(channel, len(body), EMPTY_PROPERTIES)
        + encode_frame(3, channel, body)
    )


def test_publishes_before_a_close_or_an_error_in_the_same_packet_are_kept(address, url, name):
    observer = pika.BlockingConnection(pika.URLParameters(url))
    observed = observer.channel()
    observed.queue_declare(name)
    client = RawClient(address)
    client.handshake()
    client.method(1, C.Channel.Open())
    client.read()
    # publish, then an ack of an unknown tag (a channel error), in one write
    client.send(
        _publish_frames(1, name, b"before-error") + encode_method(1, C.Basic.Ack(delivery_tag=7))
    )
    _, closed = client.read()
    assert isinstance(closed, C.Channel.Close) and closed.reply_code == 406
    client.method(1, C.Channel.CloseOk())
    client.method(2, C.Channel.Open())
    client.read()
    # publish, then connection.close, in one write
    client.send(
        _publish_frames(2, name, b"before-close")
        + encode_method(0, C.Connection.Close(200, "bye", 0, 0))
    )
    _, close_ok = client.read()
    assert isinstance(close_ok, C.Connection.CloseOk)
    client.close()
    got = [observed.basic_get(name, auto_ack=True)[2] for _ in range(3)]
    assert got == [b"before-error", b"before-close", None]
    observed.queue_delete(name)
    observer.close()


def test_unconfirmed_publishes_reach_other_connections_promptly(url, name):
    publisher = pika.BlockingConnection(pika.URLParameters(url))
    observer = pika.BlockingConnection(pika.URLParameters(url))
    try:
        channel = publisher.channel()
        channel.queue_declare(name)
        seen = observer.channel()
        for i in range(3):
            channel.basic_publish("", name, b"%d" % i)
            deadline = time.monotonic() + 2
            while seen.queue_declare(name, passive=True).method.message_count < i + 1:
                assert time.monotonic() < deadline
                time.sleep(0.002)
        seen.queue_delete(name)
    finally:
        publisher.close()
        observer.close()


def test_alarm_limits_come_from_the_config(tmp_path):
    """A broker configured with a disk limit above the free space blocks a
    connection as soon as it publishes (RabbitMQ spares connections that only consume)."""
    from dovecote.testing import BrokerThread
    from tests.compat.amqp.conftest import ONLY_AMQP

    with BrokerThread(tmp_path / "data", disk_free_limit_bytes=1 << 62, **ONLY_AMQP) as alarmed:
        connection = pika.BlockingConnection(pika.URLParameters(alarmed.amqp_url))
        reasons = []
        connection.add_on_connection_blocked_callback(lambda c, f: reasons.append(f.method.reason))
        channel = connection.channel()
        channel.queue_declare("", exclusive=True)  # consuming connections work as usual
        connection.process_data_events(time_limit=0.2)
        assert reasons == []
        channel.basic_publish("", "anywhere", b"x")
        deadline = time.monotonic() + 5
        while not reasons and time.monotonic() < deadline:
            connection.process_data_events(time_limit=0.05)
        assert reasons == ["low on disk"]
        # A blocked connection is not read, not even its connection.close (as
        # in RabbitMQ): leave it to the broker's shutdown.


def test_queue_names_outside_the_specs_character_set_are_served(channel, name):
    """RabbitMQ takes any UTF-8 queue name; building the declare-ok used to
    raise for names pamqp's validation refuses, closing the connection with
    541 (found by the AMQP fuzzer)."""
    queue = f"{name} über*queue?"
    declared = channel.queue_declare(queue).method
    assert (declared.queue, declared.message_count) == (queue, 0)
    channel.basic_publish("", queue, b"hi")
    assert channel.basic_get(queue, auto_ack=True)[2] == b"hi"
    assert channel.queue_declare(queue, passive=True).method.queue == queue
    channel.queue_delete(queue)


def test_a_message_that_stops_arriving_is_dropped_with_its_budget(tmp_path):
    """A publisher announcing a 1 MiB message and then going silent holds that
    much of the in-flight budget: after request_stall_timeout_ms it is
    disconnected and the budget is whole again."""
    from dovecote.testing import BrokerThread
    from tests.compat.amqp.conftest import ONLY_AMQP

    with BrokerThread(tmp_path / "data", request_stall_timeout_ms=300, **ONLY_AMQP) as running:
        host, port = running.amqp_url.rsplit("@", 1)[1].rstrip("/").rsplit(":", 1)
        client = RawClient((host, int(port)))
        client.handshake()
        client.method(1, C.Channel.Open())
        client.read()
        client.method(1, C.Basic.Publish(exchange="", routing_key="stalled"))
        client.send(
            b"\x02\x00\x01\x00\x00\x00\x0e\x00\x3c\x00\x00"
            + struct.pack(">Q", 1 << 20)
            + b"\x00\x00\xce"
            + b"\x03\x00\x01\x00\x00\x03\xe8"
            + b"x" * 1000
            + b"\xce"
        )
        memory = running.broker.core.memory
        deadline = time.monotonic() + 5
        while memory.used < 1 << 20 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert memory.used >= 1 << 20, "the announced message is charged"
        started = time.monotonic()
        assert client.read(timeout=5) is None, "the silent publisher is disconnected"
        assert 0.2 < time.monotonic() - started < 3
        deadline = time.monotonic() + 2
        while memory.used and time.monotonic() < deadline:
            time.sleep(0.01)
        assert memory.used == 0
        client.close()

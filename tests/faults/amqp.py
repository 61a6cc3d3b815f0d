"""What the AMQP fault scenarios share: pika connections that survive a broker
restart, a publisher with confirms that republishes what was not confirmed,
reading a queue back to the end, and a well-behaved client that must keep
working while others send garbage."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pika
import pika.exceptions

from tests.faults.crashloop import Worker
from tests.faults.fuzzing import SteadyLoop
from tests.faults.harness import Broker

# pika logs every refused connection attempt with a traceback; the restarts are ours.
logging.getLogger("pika").setLevel(logging.CRITICAL)

# What a broker going away (or refusing us while it restarts) looks like to pika.
GONE = (
    pika.exceptions.AMQPError,
    ConnectionError,
    OSError,
    AssertionError,  # pika asserts on a few paths when the socket dies mid-call
)
PERSISTENT = pika.BasicProperties(delivery_mode=pika.DeliveryMode.Persistent)


def parameters(broker: Broker, **extra: object) -> pika.URLParameters:
    params = pika.URLParameters(broker.amqp_url)
    params.connection_attempts = 1
    params.socket_timeout = 5
    params.stack_timeout = 10
    params.blocked_connection_timeout = extra.pop("blocked_connection_timeout", None)
    params.heartbeat = extra.pop("heartbeat", 0)
    for name, value in extra.items():
        setattr(params, name, value)
    return params


def connect(
    broker: Broker, stop: threading.Event | None = None, timeout: float = 60, **extra: object
) -> pika.BlockingConnection:
    """A pika connection, retried while the broker is down (for up to ``timeout``)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return pika.BlockingConnection(parameters(broker, **extra))
        except (*GONE, ValueError) as err:  # ValueError: pika's getpeername() on a reset socket
            if time.monotonic() > deadline or (stop is not None and stop.is_set()):
                raise ConnectionError(f"no connection to the broker: {err!r}") from err
            time.sleep(0.05)


def declare(broker: Broker, *queues: str, **arguments: object) -> None:
    connection = connect(broker)
    try:
        channel = connection.channel()
        for queue in queues:
            channel.queue_declare(queue, durable=True, arguments=arguments or None)
    finally:
        connection.close()


def read_queue(broker: Broker, queue: str, timeout: float = 60) -> list[bytes]:
    """Every message in ``queue``, in delivery order, consumed with acks: as
    many as the queue counts, then whatever else comes within 0.2 s."""
    connection = connect(broker)
    try:
        channel = connection.channel()
        expected = channel.queue_declare(queue, passive=True).method.message_count
        channel.basic_qos(prefetch_count=1000)
        bodies: list[bytes] = []
        deadline = time.monotonic() + timeout
        for method, _props, body in channel.consume(queue, inactivity_timeout=0.2):
            if method is None:
                if len(bodies) >= expected or time.monotonic() > deadline:
                    break
                continue
            bodies.append(body)
            if len(bodies) % 500 == 0 or len(bodies) >= expected:
                channel.basic_ack(method.delivery_tag, multiple=True)
        channel.cancel()
    finally:
        connection.close()
    return bodies


@dataclass
class ConfirmedPublisher(Worker):
    """Publishes numbered persistent messages to one durable queue with
    publisher confirms, one at a time, through broker deaths: a message
    whose confirm did not arrive (connection lost, nack) is sent again after
    reconnecting, so it may be stored twice (AMQP is at-least-once); one
    confirmed is never sent again."""

    broker: Broker
    queue: str
    confirmed: list[int] = field(default_factory=list)
    sends: dict[int, int] = field(default_factory=dict)  # n -> times sent
    nacks: int = 0
    reconnects: int = 0

    def _run(self) -> None:
        n = 0
        while not self.stop.is_set():
            try:
                connection = connect(self.broker, self.stop)
            except GONE:
                continue
            try:
                channel = connection.channel()
                channel.confirm_delivery()
                while not self.stop.is_set():
                    self.sends[n] = self.sends.get(n, 0) + 1
                    try:
                        channel.basic_publish("", self.queue, b"%d" % n, PERSISTENT)
                    except pika.exceptions.NackError:
                        self.nacks += 1
                        continue  # refused: send the same number again
                    self.confirmed.append(n)
                    n += 1
            except GONE:
                self.reconnects += 1
            except Exception as exc:  # anything else is a finding, not a restart
                self.errors.append(f"{type(exc).__name__}: {exc}")
                return
            finally:
                try:
                    if connection.is_open:
                        connection.close()
                except GONE:
                    pass


@dataclass
class SteadyAMQP(SteadyLoop):
    """Publishes one persistent message with confirms and gets it back, over
    and over, on its own queue."""

    broker: Broker
    queue: str

    def setup(self) -> None:
        declare(self.broker, self.queue)

    def connect(self) -> tuple[Any, Any]:
        connection = connect(self.broker, socket_timeout=self.limit)
        channel = connection.channel()
        channel.confirm_delivery()
        return connection, channel

    def disconnect(self, client: Any) -> None:
        connection, _ = client
        try:
            if connection.is_open:
                connection.close()
        except GONE:
            pass

    def round_trip(self, client: Any, n: int) -> str | None:
        _, channel = client
        body = b"steady-%d" % n
        channel.basic_publish("", self.queue, body, PERSISTENT)
        deadline = time.monotonic() + self.limit
        while time.monotonic() < deadline:
            method, _props, got = channel.basic_get(self.queue, auto_ack=True)
            if method is None:
                time.sleep(0.005)
                continue
            return None if got == body else f"got {got!r}, expected {body!r}"
        return "message not read back"


def wait_for(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True

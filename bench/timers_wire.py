"""TTL dead-lettering over the wire: pika against a running AMQP broker.

The same code runs against Dovecote and RabbitMQ, so the two figures are
comparable: ``idle`` idle queues are declared first (they must cost nothing),
then a queue with ``x-message-ttl`` that dead-letters through a fanout
exchange into a dead-letter queue with a consumer. Messages are published to
the TTL queue one by one, spread over time, each carrying its publish time
(``time.time_ns()``) in a header; the consumer (its own connection, its own
thread) takes the delay from that header to its arrival.
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from dataclasses import dataclass, field

import pika

#: The header carrying the publish time, in nanoseconds since the epoch, as text.
PUBLISHED = "bench-published-ns"


@dataclass
class WireTTL:
    """What one system did: the publish -> dead-letter delays, and how long setup took."""

    delays_ms: list[float] = field(default_factory=list)
    declare_s: float = 0.0
    sent: int = 0


def published_ns(headers: dict | None) -> int | None:
    """The publish time a message carries, whatever string type the client decoded."""
    value = (headers or {}).get(PUBLISHED)
    if value is None:
        return None
    if isinstance(value, bytes):
        value = value.decode()
    return int(value)


def declare_idle(channel, count: int, prefix: str) -> float:
    """``count`` empty, non-durable queues nobody uses; seconds it took."""
    started = time.perf_counter()
    for i in range(count):
        channel.queue_declare(f"{prefix}-idle-{i:05d}", durable=False)
    return time.perf_counter() - started


class DeadLetterConsumer(threading.Thread):
    """The dead-letter queue's consumer on its own connection and thread."""

    def __init__(self, url: str, queue: str, result: WireTTL) -> None:
        super().__init__(daemon=True, name="dlq-consumer")
        self.url, self.queue, self.result = url, queue, result
        self.ready = threading.Event()
        self.error: BaseException | None = None
        self._conn: pika.BlockingConnection | None = None
        self._channel = None

    def run(self) -> None:
        try:
            self._conn = pika.BlockingConnection(pika.URLParameters(self.url))
            self._channel = self._conn.channel()
            self._channel.basic_qos(prefetch_count=1000)

            def on_message(_ch, _method, props, _body) -> None:
                now = time.time_ns()
                sent = published_ns(props.headers)
                if sent is not None:
                    self.result.delays_ms.append((now - sent) / 1e6)

            self._channel.basic_consume(self.queue, on_message, auto_ack=True)
            self.ready.set()
            self._channel.start_consuming()
            self._conn.close()
        except BaseException as exc:  # reported by the caller, not lost in the thread
            self.error = exc
            self.ready.set()

    def stop(self) -> None:
        """Ask the consumer's own thread to stop consuming (pika is not thread-safe)."""
        conn, channel = self._conn, self._channel
        if conn is not None and channel is not None and conn.is_open:
            conn.add_callback_threadsafe(channel.stop_consuming)


def measure_ttl_wire(
    url: str,
    *,
    idle: int,
    messages: int,
    ttl_ms: int,
    spread_ms: float,
    persistent: bool = True,
    timeout: float = 60.0,
) -> WireTTL:
    """Declare the idle queues and the TTL/dead-letter pair, publish, collect the delays."""
    prefix = f"bench-{uuid.uuid4().hex[:6]}"
    ttl_queue, dlx, dlq = f"{prefix}-ttl", f"{prefix}-dlx", f"{prefix}-dlq"
    result = WireTTL()
    with pika.BlockingConnection(pika.URLParameters(url)) as conn:
        channel = conn.channel()
        result.declare_s = declare_idle(channel, idle, prefix)
        channel.exchange_declare(dlx, "fanout", durable=True)
        channel.queue_declare(dlq, durable=True)
        channel.queue_bind(dlq, dlx)
        channel.queue_declare(
            ttl_queue,
            durable=True,
            arguments={"x-message-ttl": ttl_ms, "x-dead-letter-exchange": dlx},
        )
        consumer = DeadLetterConsumer(url, dlq, result)
        consumer.start()
        if not consumer.ready.wait(30) or consumer.error:
            raise RuntimeError(f"dead-letter consumer did not start: {consumer.error!r}")
        mode = 2 if persistent else 1
        for _ in range(messages):
            props = pika.BasicProperties(
                delivery_mode=mode, headers={PUBLISHED: str(time.time_ns())}
            )
            channel.basic_publish("", ttl_queue, b"ttl", props)
            result.sent += 1
            # conn.sleep keeps the connection serviced (heartbeats) while waiting.
            conn.sleep(random.uniform(0, 2 * spread_ms) / 1000)
        deadline = time.monotonic() + ttl_ms / 1000 + timeout
        while len(result.delays_ms) < messages and time.monotonic() < deadline:
            conn.sleep(0.05)
        consumer.stop()
        consumer.join(10)
    if consumer.error:
        raise RuntimeError(f"dead-letter consumer failed: {consumer.error!r}")
    return result

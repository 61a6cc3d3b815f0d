"""The Kafka protocol through confluent-kafka (librdkafka): Dovecote and Tansu alike.

Producers batch as librdkafka does by default (linger 5 ms, up to 5
requests in flight), in every run including latency runs; records go round-robin over the
partitions by explicit partition number, so no key hashing is measured.
Readers ``assign()`` every partition at the beginning: no group join, no
commits, as a stream reader that tracks its own position.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence

import confluent_kafka
from confluent_kafka.admin import AdminClient, NewTopic

from bench.drivers import IDLE, Driver, Mode, OnValues, Producer

ACKS: dict[str, str] = {"durable": "all", "fire-and-forget": "0"}


class KafkaProducer(Producer):
    def __init__(self, bootstrap: str, destinations: Sequence[tuple[str, int]], mode: Mode):
        self.errors: list[object] = []
        self.destinations = list(destinations)
        self.next = 0
        self.client = confluent_kafka.Producer(
            {
                "bootstrap.servers": bootstrap,
                "acks": ACKS[mode],
                "linger.ms": 5,  # librdkafka's default, stated
                "batch.size": 1_000_000,
                "compression.type": "none",
                "queue.buffering.max.kbytes": 1_048_576,
                "queue.buffering.max.messages": 1_000_000,
                "delivery.report.only.error": True,
                "on_delivery": self._report,
            }
        )

    def _report(self, err: object, _msg: object) -> None:
        if err is not None:
            self.errors.append(err)

    def send(self, values: Sequence[bytes]) -> None:
        produce, destinations = self.client.produce, self.destinations
        n, i = len(destinations), self.next
        for value in values:
            topic, partition = destinations[i]
            for _ in range(10_000):  # bounded wait for room in librdkafka's queue
                try:
                    produce(topic, value, partition=partition)
                    break
                except BufferError:
                    self.client.poll(0.005)
            else:
                raise TimeoutError("librdkafka's queue stayed full for 50 s")
            i = i + 1 if i + 1 < n else 0
        self.next = i
        self.client.poll(0)

    def flush(self, timeout: float) -> None:
        left = self.client.flush(timeout)
        if left:
            raise TimeoutError(f"{left} records not delivered after {timeout}s")
        if self.errors:
            raise RuntimeError(f"{len(self.errors)} produce errors, e.g. {self.errors[0]}")

    def close(self) -> None:
        self.client.flush(5)
        self.client.close()


class KafkaDriver(Driver):
    batch = 1000

    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap
        self.admin = AdminClient({"bootstrap.servers": bootstrap})
        self._meta: confluent_kafka.Consumer | None = None

    def create(self, stream: str, partitions: int) -> None:
        self.create_many([stream], partitions)

    def create_many(self, streams: Sequence[str], partitions: int, timeout: float = 120) -> None:
        """Create topics in requests of up to 100, then wait until metadata shows them all."""
        deadline = time.monotonic() + timeout
        for i in range(0, len(streams), 100):
            futures = self.admin.create_topics(
                [NewTopic(s, partitions, 1) for s in streams[i : i + 100]],
                request_timeout=timeout,
            )
            for future in futures.values():
                future.result(max(1.0, deadline - time.monotonic()))
        wanted = set(streams)
        while time.monotonic() < deadline:
            listed = self.admin.list_topics(timeout=10).topics
            if all(len(listed[s].partitions) == partitions for s in wanted if s in listed) and (
                wanted <= listed.keys()
            ):
                return
            time.sleep(0.05)
        raise TimeoutError(f"topics not visible in metadata after {timeout}s")

    def drop(self, stream: str, partitions: int) -> None:
        for future in self.admin.delete_topics([stream], request_timeout=60).values():
            future.result(60)

    def producer_to(self, destinations: Sequence[tuple[str, int]], mode: Mode) -> Producer:
        return KafkaProducer(self.bootstrap, destinations, mode)

    def _consumer(self) -> confluent_kafka.Consumer:
        return confluent_kafka.Consumer(
            {
                "bootstrap.servers": self.bootstrap,
                "group.id": f"bench-{uuid.uuid4().hex[:8]}",  # never joined: assign() only
                "enable.auto.commit": False,
                "fetch.wait.max.ms": 100,
                "fetch.max.bytes": 52_428_800,
                "max.partition.fetch.bytes": 10_485_760,
                "queued.max.messages.kbytes": 262_144,
            }
        )

    def read(
        self,
        stream: str,
        partitions: int,
        count: int,
        timeout: float,
        on_values: OnValues | None = None,
        ready: Callable[[], None] | None = None,
    ) -> int:
        consumer = self._consumer()
        try:
            consumer.list_topics(stream, timeout=10)  # connected, metadata known
            if ready is not None:
                ready()
            consumer.assign(
                [
                    # Offset 0, not OFFSET_BEGINNING: librdkafka resolves that with a
                    # ListOffsets round that costs 0.5 s (its retry backoff) against
                    # any broker, and every stream here starts at 0.
                    confluent_kafka.TopicPartition(stream, p, 0)
                    for p in range(partitions)
                ]
            )
            messages: list = []
            got, last = 0, 0.0
            deadline = time.monotonic() + timeout
            while True:
                values = [m.value() for m in messages if m.error() is None]
                got += len(values)
                if values and on_values is not None:
                    on_values(values)
                now = time.monotonic()
                if values:
                    last = now
                if got >= count or now >= deadline or (got and now - last > IDLE):
                    return got
                # consume(n, timeout) waits for n records or the timeout, which
                # would add up to the timeout to every latency: take what is
                # there, and block only for the next single record.
                messages = consumer.consume(10_000, 0)
                if not messages:
                    message = consumer.poll(0.1)
                    messages = [message] if message is not None else []
        finally:
            consumer.close()

    def stored(self, stream: str, partitions: int) -> int:
        if self._meta is None:
            self._meta = self._consumer()
        total = 0
        for p in range(partitions):
            low, high = self._meta.get_watermark_offsets(
                confluent_kafka.TopicPartition(stream, p), timeout=10, cached=False
            )
            total += high - low
        return total

    def close(self) -> None:
        if self._meta is not None:
            self._meta.close()
            self._meta = None

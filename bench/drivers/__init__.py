"""One small client adapter per protocol, so every workload drives every system alike.

A workload (bench/streams.py, bench/growth.py) only sees :class:`Driver`:
create a stream of N partitions, open producers that send batches of
records round-robin over the partitions, read a stream from its beginning,
and count what a stream holds. Each driver uses the system's own usual
client library (confluent-kafka, nats-py, redis-py) the way its users do.

``mode`` is what a producer waits for:

- ``durable``: the system's acknowledgement that the record is stored
  (Kafka acks=all, JetStream publish acks, Redis XADD replies);
- ``fire-and-forget``: nothing (Kafka acks=0, core NATS publish into the
  stream's subject); a run ends once the system holds every record.

What the acknowledgement promises depends on how the system was started
(bench/targets.py says it for each).
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Literal

Mode = Literal["durable", "fire-and-forget"]
MODES: tuple[Mode, ...] = ("durable", "fire-and-forget")

#: A reader that got records and then nothing for this long stops waiting.
IDLE = 3.0

#: Called with the values of the records a reader received, in arrival order.
OnValues = Callable[[Sequence[bytes]], None]


class Producer(ABC):
    """One client connection sending to one stream, records round-robin over its partitions."""

    @abstractmethod
    def send(self, values: Sequence[bytes]) -> None:
        """Hand ``values`` to the client; may return before they are acknowledged."""

    @abstractmethod
    def flush(self, timeout: float) -> None:
        """Wait until everything sent is acknowledged (durable) or transmitted (fire-and-forget)."""

    @abstractmethod
    def close(self) -> None:
        """Release the connection (after flush)."""


class Driver(ABC):
    """A client library connected to one running system."""

    #: Records per ``send`` call that suit this client (its pipeline depth).
    batch = 1000

    @abstractmethod
    def create(self, stream: str, partitions: int) -> None:
        """Create an empty stream (topic, streams, keys) of ``partitions`` partitions."""

    def create_many(self, streams: Sequence[str], partitions: int, timeout: float = 120) -> None:
        """Create many streams (drivers batch the requests where the protocol can)."""
        for stream in streams:
            self.create(stream, partitions)

    @abstractmethod
    def drop(self, stream: str, partitions: int) -> None:
        """Delete a stream and its data, so long runs do not pile up memory or disk."""

    def producer(self, stream: str, partitions: int, mode: Mode) -> Producer:
        """A new producer connection (the client's default batching, as users run it)."""
        return self.producer_to([(stream, p) for p in range(partitions)], mode)

    @abstractmethod
    def producer_to(self, destinations: Sequence[tuple[str, int]], mode: Mode) -> Producer:
        """A producer sending round-robin to these (stream, partition) pairs."""

    @abstractmethod
    def read(
        self,
        stream: str,
        partitions: int,
        count: int,
        timeout: float,
        on_values: OnValues | None = None,
        ready: Callable[[], None] | None = None,
    ) -> int:
        """Read ``stream`` from its beginning until ``count`` records or ``timeout`` seconds.

        Also stops once records were read and then none came for ``IDLE``
        seconds (records lost by a fire-and-forget producer never come).

        Calls ``ready()`` once the reader is connected and before it asks for
        any record: consume-only runs are timed from there, and end-to-end
        runs start producing then. Returns how many records were read.
        """

    @abstractmethod
    def stored(self, stream: str, partitions: int) -> int:
        """How many records the system holds (and would serve to readers) in ``stream``."""

    def wait_stored(
        self, stream: str, partitions: int, count: int, timeout: float, stall: float = 1.0
    ) -> int:
        """Poll :meth:`stored` until it reaches ``count``; return what it holds then.

        Gives up after ``timeout`` seconds, or sooner once the count has not
        grown for ``stall`` seconds: a fire-and-forget record can be lost, and
        waiting for it would only stretch the run.
        """
        deadline = time.monotonic() + timeout
        held, grew = -1, time.monotonic()
        pause = 0.005
        while True:
            now_held = self.stored(stream, partitions)
            now = time.monotonic()
            if now_held > held:
                held, grew = now_held, now
            if held >= count or now >= deadline or now - grew >= stall:
                return held
            time.sleep(pause)
            pause = min(pause * 2, 0.05)

    @abstractmethod
    def close(self) -> None:
        """Close every connection this driver still holds."""


def make_driver(kind: str, address: str) -> Driver:
    """The driver for ``kind`` ("kafka", "nats", "redis") talking to ``host:port``."""
    if kind == "kafka":
        from bench.drivers.kafka import KafkaDriver

        return KafkaDriver(address)
    if kind == "nats":
        from bench.drivers.nats import NatsDriver

        return NatsDriver(address)
    if kind == "redis":
        from bench.drivers.redis import RedisDriver

        return RedisDriver(address)
    raise ValueError(f"unknown driver {kind!r}")

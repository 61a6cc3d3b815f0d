"""Tools of the malformed-input scenarios: a watch on the broker process (alive,
resident memory), a well-behaved client that must keep working meanwhile,
byte-level mutations of real requests, and a sender that pushes frames at
the Kafka listener over many connections at once."""

from __future__ import annotations

import asyncio
import collections
import random
import struct
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

import confluent_kafka

from tests.faults.harness import Broker, create_topic

MiB = 1 << 20


class Watch:
    """Samples the broker's resident memory every 100 ms in a thread."""

    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        self.baseline = broker.rss()
        self.peak = self.baseline
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-watch", daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            rss = self.broker.rss() if self.broker.proc and self.broker.proc.poll() is None else 0
            self.peak = max(self.peak, rss)

    def __enter__(self) -> Watch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)

    @property
    def growth_mib(self) -> float:
        return (self.peak - self.baseline) / MiB


@dataclass(kw_only=True)
class SteadyLoop:
    """A well-behaved client in a thread: one round trip after another for as
    long as others misbehave. A round that fails, or takes longer than
    ``limit`` seconds, is a failure; after ``max_failures`` it stops.
    Subclasses say how to connect and what a round trip is."""

    limit: float = 10.0
    max_failures: int = 20
    rounds: int = 0
    failures: list[str] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def setup(self) -> None:
        """Before the thread starts (declare its queue or topic)."""

    def connect(self) -> object:
        """In the thread: the client the rounds use."""
        return None

    def disconnect(self, client: object) -> None:
        """In the thread, when it ends."""

    def round_trip(self, client: Any, n: int) -> str | None:
        """Round ``n``: None if it went well, else what went wrong."""
        raise NotImplementedError

    def __enter__(self) -> Self:
        self.setup()
        self._thread = threading.Thread(
            target=self._run, name=type(self).__name__.lower(), daemon=True
        )
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self.limit + 10)

    def _run(self) -> None:
        try:
            client = self.connect()
        except Exception as exc:  # a failure to report, whatever it is
            self.failures.append(f"connect: {type(exc).__name__}: {exc}")
            return
        try:
            while not self._stop.is_set() and len(self.failures) < self.max_failures:
                started = time.monotonic()
                try:
                    problem = self.round_trip(client, self.rounds)
                except Exception as exc:  # a failure to report, whatever it is
                    problem = f"{type(exc).__name__}: {exc}"
                elapsed = time.monotonic() - started
                if problem is None and elapsed > self.limit:
                    problem = f"round trip took {elapsed:.1f}s"
                if problem is not None:
                    self.failures.append(f"round {self.rounds}: {problem}")
                self.latencies.append(elapsed)
                self.rounds += 1
        finally:
            self.disconnect(client)

    @property
    def p99(self) -> float:
        ordered = sorted(self.latencies) or [0.0]
        return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


@dataclass
class SteadyClient(SteadyLoop):
    """Produces one record (acks=all) and reads it back through a consumer,
    over and over."""

    bootstrap: str
    topic: str

    def setup(self) -> None:
        create_topic(self.bootstrap, self.topic, 1)

    def connect(self) -> tuple[Any, Any]:
        quiet = {"bootstrap.servers": self.bootstrap, "log_level": 0}
        producer = confluent_kafka.Producer(quiet | {"acks": "all", "linger.ms": 0})
        consumer = confluent_kafka.Consumer(
            quiet | {"group.id": "steady", "enable.auto.commit": False, "fetch.wait.max.ms": 50}
        )
        consumer.assign([confluent_kafka.TopicPartition(self.topic, 0, 0)])
        return producer, consumer

    def disconnect(self, client: Any) -> None:
        client[1].close()

    def round_trip(self, client: Any, n: int) -> str | None:
        producer, consumer = client
        value = b"steady-%d" % n
        errors: list[object] = []
        producer.produce(self.topic, value, on_delivery=lambda err, _m: errors.append(err))
        if producer.flush(self.limit) != 0:
            return "produce not acknowledged"
        if errors != [None]:
            return f"produce failed: {errors}"
        deadline = time.monotonic() + self.limit
        while time.monotonic() < deadline:
            msg = consumer.poll(0.1)
            if msg is None:
                continue
            if msg.error():
                return f"consume failed: {msg.error()}"
            if msg.value() == value:
                return None
        return "record not read back"


# --- mutations ---------------------------------------------------------------------------

INTERESTING32 = [0, 1, -1, 0x7F, 0x80, 0xFF, 0x7FFF, 0x8000, 0xFFFF, 0x7FFFFFFF, -0x80000000]
INTERESTING_VARINTS = [
    b"\x00",
    b"\x01",
    b"\x7f",
    b"\xff\x7f",
    b"\xff\xff\xff\x7f",
    b"\xff\xff\xff\xff\x0f",
]


def mutate(frame: bytes, rng: random.Random, fix_length: bool = True) -> bytes:
    """One to four byte-level mutations of a size-prefixed request frame; the
    size prefix is kept right (so the body decoder sees it) unless told not to."""
    body = bytearray(frame[4:])
    for _ in range(rng.randint(1, 4)):
        if not body:
            body += rng.randbytes(rng.randint(1, 16))
        kind = rng.randrange(8)
        at = rng.randrange(len(body))
        if kind == 0:  # flip bits
            body[at] ^= 1 << rng.randrange(8)
        elif kind == 1:  # a random byte
            body[at] = rng.randrange(256)
        elif kind == 2:  # an interesting 32-bit value (array and string lengths)
            body[at : at + 4] = struct.pack(">i", rng.choice(INTERESTING32))
        elif kind == 3:  # an interesting varint (compact lengths of flexible versions)
            body[at : at + 1] = rng.choice(INTERESTING_VARINTS)
        elif kind == 4:  # cut
            del body[at:]
        elif kind == 5:  # delete a run
            del body[at : at + rng.randint(1, 8)]
        elif kind == 6:  # insert random bytes
            body[at:at] = rng.randbytes(rng.randint(1, 8))
        else:  # duplicate a run
            end = min(len(body), at + rng.randint(1, 32))
            body[at:at] = body[at:end]
    size = len(body) if fix_length else struct.unpack_from(">i", frame)[0]
    return struct.pack(">i", size) + bytes(body)


# --- sending ----------------------------------------------------------------------------


@dataclass
class Sent:
    """What a fuzzing run sent, and the last frames (to name a culprit)."""

    frames: int = 0
    connections: int = 0
    answered: int = 0
    closed_by_broker: int = 0
    refused: int = 0
    recent: collections.deque[bytes] = field(default_factory=lambda: collections.deque(maxlen=64))


async def _one_connection(
    address: tuple[str, int], frames: list[bytes], sent: Sent, read_for: float
) -> None:
    try:
        reader, writer = await asyncio.open_connection(*address)
    except OSError:
        sent.refused += 1
        await asyncio.sleep(0.05)
        return
    sent.connections += 1
    try:
        for frame in frames:
            sent.recent.append(frame)
            writer.write(frame)
            sent.frames += 1
        await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()  # the broker sees the end at once instead of waiting for more
        deadline = time.monotonic() + read_for
        while (remaining := deadline - time.monotonic()) > 0:
            data = await asyncio.wait_for(reader.read(65536), remaining)
            if not data:
                sent.closed_by_broker += 1
                break
            sent.answered += 1
    except (OSError, TimeoutError):
        pass
    finally:
        writer.close()
        try:
            await writer.wait_closed()
        except OSError:
            pass


def blast(
    address: str,
    batches: Iterator[list[bytes]],
    seconds: float,
    *,
    concurrency: int = 8,
    read_for: float = 0.3,
    alive: Callable[[], bool] = lambda: True,
) -> Sent:
    """Send each batch of frames on its own connection, ``concurrency`` at a
    time, until ``seconds`` pass, the batches run out or ``alive()`` is false."""
    host, port = address.rsplit(":", 1)
    target = (host, int(port))
    sent = Sent()

    async def worker(deadline: float) -> None:
        while time.monotonic() < deadline and alive():
            batch = next(batches, None)
            if batch is None:
                return
            await _one_connection(target, batch, sent, read_for)

    async def main() -> None:
        deadline = time.monotonic() + seconds
        await asyncio.gather(*(worker(deadline) for _ in range(concurrency)))

    asyncio.run(main())
    return sent


@dataclass
class Crash:
    """A broker death during fuzzing: what its log said and which frame did it."""

    log: str
    recent: list[bytes]
    culprit: bytes | None = None

    @property
    def signature(self) -> str:
        """The line of the log that names the failure (e.g. kio's allocation abort)."""
        for line in self.log.splitlines():
            if "memory allocation of" in line or "panicked" in line or "Error" in line:
                return line.strip()[:200]
        return self.log.strip().splitlines()[-1][:200] if self.log.strip() else "no log"


def fuzz_with_restarts(
    broker: Broker,
    batches: Iterator[list[bytes]],
    seconds: float,
    *,
    concurrency: int = 8,
    max_crashes: int = 5,
) -> tuple[Sent, list[Crash]]:
    """:func:`blast` for ``seconds``; when the broker dies, note the crash,
    restart it on the same ports and carry on (so one run counts every crash
    it can find, up to ``max_crashes``)."""
    total = Sent()
    crashes: list[Crash] = []
    deadline = time.monotonic() + seconds
    while (remaining := deadline - time.monotonic()) > 0 and len(crashes) < max_crashes:
        sent = blast(
            broker.kafka_bootstrap, batches, remaining, concurrency=concurrency, alive=broker.check
        )
        for name in ("frames", "connections", "answered", "closed_by_broker", "refused"):
            setattr(total, name, getattr(total, name) + getattr(sent, name))
        total.recent.extend(sent.recent)
        if not broker.settle():
            crashes.append(Crash(broker.crash_logs[-1], list(sent.recent)))
            broker.start()
    return total, crashes


def find_culprit(frames: list[bytes], scratch: Path) -> bytes | None:
    """Replay ``frames`` one per connection against a scratch broker; the
    first that kills it, or None."""
    broker = Broker(scratch).start()
    try:
        for data in reversed(frames):
            blast(broker.kafka_bootstrap, iter([[data]]), 5, concurrency=1, read_for=0.5)
            if not broker.settle(0.2):
                return data
    finally:
        broker.stop()
    return None

"""NATS JetStream through nats-py: one stream per partition, read by ordered consumers.

A JetStream stream is one ordered log, so "N partitions" is N streams
(``<name>_<p>`` capturing subject ``<name>.<p>``). Durable producers use
``publish_async`` (acknowledged publishes, up to 4000 outstanding, the
client's default); fire-and-forget producers use a core NATS publish to the
stream's subject, which the stream stores without answering. Readers are
ordered push consumers (no acks), JetStream's way to replay a stream.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

import nats
from nats.js.api import StorageType

from bench.drivers import IDLE, Driver, Mode, OnValues, Producer
from bench.drivers._loop import LoopThread

TIMEOUT = 30.0


def _stream(name: str, p: int) -> str:
    return f"{name}_{p}"


def _subject(name: str, p: int) -> str:
    return f"{name}.{p}"


class NatsProducer(Producer):
    def __init__(
        self, driver: NatsDriver, destinations: Sequence[tuple[str, int]], mode: Mode
    ) -> None:
        self.loop = driver.loop
        self.url = driver.url
        self.subjects = [_subject(stream, p) for stream, p in destinations]
        self.mode = mode
        self.next = 0
        self.errors: list[BaseException] = []
        self.nc = self.loop.run(nats.connect(self.url, max_reconnect_attempts=0))
        self.js = self.nc.jetstream(timeout=TIMEOUT)

    def _done(self, future: asyncio.Future) -> None:
        if not future.cancelled() and future.exception() is not None:
            self.errors.append(future.exception())

    async def _send(self, values: Sequence[bytes]) -> None:
        subjects, n, p = self.subjects, len(self.subjects), self.next
        if self.mode == "durable":
            publish = self.js.publish_async
            for value in values:
                (await publish(subjects[p], value)).add_done_callback(self._done)
                p = p + 1 if p + 1 < n else 0
        else:
            publish = self.nc.publish
            for value in values:
                await publish(subjects[p], value)
                p = p + 1 if p + 1 < n else 0
        self.next = p

    def send(self, values: Sequence[bytes]) -> None:
        self.loop.run(self._send(values))

    async def _flush(self, timeout: float) -> None:
        if self.mode == "durable":
            await asyncio.wait_for(self.js.publish_async_completed(), timeout)
        await self.nc.flush(timeout)

    def flush(self, timeout: float) -> None:
        self.loop.run(self._flush(timeout), timeout + 5)
        if self.errors:
            raise RuntimeError(f"{len(self.errors)} publish errors, e.g. {self.errors[0]!r}")

    def close(self) -> None:
        self.loop.run(self.nc.close(), 10)


class NatsDriver(Driver):
    batch = 1000

    def __init__(self, address: str) -> None:
        self.url = f"nats://{address}"
        self.loop = LoopThread("nats-client")
        self.nc = self.loop.run(nats.connect(self.url, max_reconnect_attempts=0))
        self.js = self.nc.jetstream(timeout=TIMEOUT)

    async def _create(self, stream: str, partitions: int) -> None:
        for p in range(partitions):
            await self.js.add_stream(
                name=_stream(stream, p), subjects=[_subject(stream, p)], storage=StorageType.FILE
            )

    def create(self, stream: str, partitions: int) -> None:
        self.loop.run(self._create(stream, partitions))

    def create_many(self, streams: Sequence[str], partitions: int, timeout: float = 120) -> None:
        async def create_all() -> None:
            for s in streams:
                await self._create(s, partitions)

        self.loop.run(create_all(), timeout)

    def drop(self, stream: str, partitions: int) -> None:
        async def drop_all() -> None:
            for p in range(partitions):
                await self.js.delete_stream(_stream(stream, p))

        self.loop.run(drop_all())

    def producer_to(self, destinations: Sequence[tuple[str, int]], mode: Mode) -> Producer:
        return NatsProducer(self, destinations, mode)

    async def _read(
        self,
        stream: str,
        partitions: int,
        count: int,
        timeout: float,
        on_values: OnValues | None,
        ready: Callable[[], None] | None,
    ) -> int:
        got, last = 0, 0.0
        done = asyncio.Event()
        clock = asyncio.get_running_loop().time

        async def on_message(msg) -> None:
            nonlocal got, last
            got += 1
            last = clock()
            if on_values is not None:
                on_values((msg.data,))
            if got >= count:
                done.set()

        nc = await nats.connect(self.url, max_reconnect_attempts=0)
        try:
            if ready is not None:
                ready()
            js = nc.jetstream(timeout=TIMEOUT)
            for p in range(partitions):
                await js.subscribe(
                    _subject(stream, p),
                    stream=_stream(stream, p),
                    ordered_consumer=True,
                    cb=on_message,
                )
            deadline = clock() + timeout
            while not done.is_set() and clock() < deadline:
                if got and clock() - last > IDLE:
                    break
                try:
                    await asyncio.wait_for(done.wait(), 0.1)
                except TimeoutError:
                    pass
            return got
        finally:
            await nc.close()

    def read(
        self,
        stream: str,
        partitions: int,
        count: int,
        timeout: float,
        on_values: OnValues | None = None,
        ready: Callable[[], None] | None = None,
    ) -> int:
        return self.loop.run(
            self._read(stream, partitions, count, timeout, on_values, ready), timeout + 30
        )

    async def _stored(self, stream: str, partitions: int) -> int:
        total = 0
        for p in range(partitions):
            total += (await self.js.stream_info(_stream(stream, p))).state.messages
        return total

    def stored(self, stream: str, partitions: int) -> int:
        return self.loop.run(self._stored(stream, partitions))

    def close(self) -> None:
        try:
            self.loop.run(self.nc.close(), 10)
        finally:
            self.loop.stop()

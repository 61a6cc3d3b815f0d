"""Redis Streams through redis-py: one stream key per partition, XADD and XREAD.

Producers send each batch as one pipeline of XADDs (no MULTI), one pipeline
in flight per connection, on redis-py's asyncio client so that several
connections overlap as they would in several application processes.
Redis answers XADD after its AOF fsync under ``appendfsync always`` (the
``redis-durable`` peer) and at once without persistence, so the producer is
the same in both modes and the server's configuration makes the difference.
Readers use XREAD (no consumer group), Redis's way to replay a stream.
"""

from __future__ import annotations

import concurrent.futures
import time
from collections.abc import Callable, Sequence

import redis
import redis.asyncio

from bench.drivers import IDLE, Driver, Mode, OnValues, Producer
from bench.drivers._loop import LoopThread

FIELD = b"v"


def _key(name: str, p: int) -> str:
    return f"{name}:{p}"


class RedisProducer(Producer):
    def __init__(self, driver: RedisDriver, destinations: Sequence[tuple[str, int]]) -> None:
        self.loop = driver.loop
        self.keys = [_key(stream, p) for stream, p in destinations]
        self.next = 0
        self.client = redis.asyncio.Redis(
            host=driver.host, port=driver.port, single_connection_client=True
        )
        self.pending: concurrent.futures.Future[None] | None = None

    async def _pipeline(self, keys: list[str], values: Sequence[bytes]) -> None:
        pipe = self.client.pipeline(transaction=False)
        for key, value in zip(keys, values, strict=True):
            pipe.xadd(key, {FIELD: value})
        await pipe.execute()

    def send(self, values: Sequence[bytes]) -> None:
        self.flush(120)  # one pipeline in flight per connection
        n, p = len(self.keys), self.next
        keys = [self.keys[(p + i) % n] for i in range(len(values))]
        self.next = (p + len(values)) % n
        self.pending = self.loop.submit(self._pipeline(keys, values))

    def flush(self, timeout: float) -> None:
        if self.pending is not None:
            pending, self.pending = self.pending, None
            pending.result(timeout)

    def close(self) -> None:
        self.loop.run(self.client.aclose(), 10)


class RedisDriver(Driver):
    batch = 1000

    def __init__(self, address: str) -> None:
        host, _, port = address.rpartition(":")
        self.host, self.port = host, int(port)
        self.loop = LoopThread("redis-client")
        self.sync = redis.Redis(host=self.host, port=self.port, socket_timeout=60)

    def create(self, stream: str, partitions: int) -> None:
        """Nothing to create: XADD creates a stream key."""

    def create_many(self, streams: Sequence[str], partitions: int, timeout: float = 120) -> None:
        """Nothing to create: XADD creates a stream key."""

    def drop(self, stream: str, partitions: int) -> None:
        self.sync.delete(*(_key(stream, p) for p in range(partitions)))

    def producer_to(self, destinations: Sequence[tuple[str, int]], mode: Mode) -> Producer:
        return RedisProducer(self, destinations)

    def read(
        self,
        stream: str,
        partitions: int,
        count: int,
        timeout: float,
        on_values: OnValues | None = None,
        ready: Callable[[], None] | None = None,
    ) -> int:
        client = redis.Redis(host=self.host, port=self.port, socket_timeout=timeout + 10)
        try:
            positions: dict[str, bytes | str] = {_key(stream, p): "0" for p in range(partitions)}
            client.ping()
            if ready is not None:
                ready()
            got, last = 0, 0.0
            deadline = time.monotonic() + timeout
            while True:
                reply = client.xread(positions, count=10_000, block=100)
                for key, entries in reply or ():
                    if not entries:
                        continue
                    positions[key.decode()] = entries[-1][0]
                    got += len(entries)
                    if on_values is not None:
                        on_values([fields[FIELD] for _id, fields in entries])
                now = time.monotonic()
                if reply:
                    last = now
                if got >= count or now >= deadline or (got and now - last > IDLE):
                    return got
        finally:
            client.close()

    def stored(self, stream: str, partitions: int) -> int:
        return sum(self.sync.xlen(_key(stream, p)) for p in range(partitions))

    def close(self) -> None:
        try:
            self.sync.close()
        finally:
            self.loop.stop()

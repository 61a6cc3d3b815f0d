"""Timers of the queue core: how late TTL and lease expiry fire.

    python -m bench.timers [--idle 10000] [--messages 200] [--ttl-ms 300]
                           [--lease-ms 300] [--spread-ms 20] [--base-dir DIR]

An in-process broker core on a temporary directory with ``--idle`` idle
queues (they must cost nothing: a queue with nothing due has no timer), and:

- ``ttl``: a queue with a ``--ttl-ms`` message TTL dead-lettering into a
  queue ``ttl-dlq`` that nobody but the measuring consumer reads. Messages
  are published one by one, ``--spread-ms`` apart on average (jittered), with
  no consumer on the TTL queue. For each message: the time from publish to
  its arrival in the dead-letter queue, and how late that is (arrival - due,
  due = publish + TTL); and how late the timer itself fired (when the
  subscription handed the record to its dead-letter handler: the arrival
  also includes the durable append to the dead-letter queue, an fsync).
- ``lease``: a queue with a ``--lease-ms`` lease (visibility timeout). Each
  message is pulled as soon as it arrives and never acknowledged; the time
  from that pull until the same consumer gets it again is measured, and how
  late that is (minus the lease).

Prints p50/p99/max of each. The goal (issue 12): a 300 ms TTL dead-letters
within 350 ms at p99 with 10,000 idle queues, i.e. at most 50 ms late.

The tails are dominated by what else stops the event loop: a loaded machine,
and Python's full garbage collections, which walk every object of the 10,000
queues (100-250 ms each here). ``--freeze-gc`` moves the objects that exist
after the idle queues are declared out of the collector's way (``gc.freeze``),
as a broker could after loading its catalog, to show the timers without them.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import random
import shutil
import tempfile
import time
from pathlib import Path

from dovecote.core.broker import BrokerCore
from dovecote.core.config import BrokerConfig
from dovecote.core.queues import QueueArgs
from dovecote.storage.batch import Record


def percentiles(samples: list[float]) -> str:
    if not samples:
        return "no samples"
    ordered = sorted(samples)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    return f"p50 {at(0.5):7.1f} ms   p99 {at(0.99):7.1f} ms   max {ordered[-1]:7.1f} ms"


async def declare_idle(core: BrokerCore, count: int) -> float:
    started = time.perf_counter()
    for i in range(count):
        await core.queues.declare_queue(f"idle-{i:05d}", durable=False, args=QueueArgs())
    return time.perf_counter() - started


async def measure_ttl(core: BrokerCore, messages: int, ttl_ms: int, spread_ms: float):
    await core.queues.declare_queue("ttl-dlq", args=QueueArgs())
    await core.queues.declare_queue(
        "ttl", args=QueueArgs(message_ttl_ms=ttl_ms, dead_letter_queue="ttl-dlq")
    )
    dlq = core.queues.get_queue("ttl-dlq").subscription
    totals: list[float] = []
    late: list[float] = []
    fired: list[float] = []
    source = core.queues.get_queue("ttl").subscription
    handler = source.on_dead_letter
    assert handler is not None

    async def timed_handler(record: Record, reason: str) -> None:
        fired.append(time.time() * 1000 - (record.timestamp + ttl_ms))
        await handler(record, reason)

    source.on_dead_letter = timed_handler

    async def consume() -> None:
        while len(totals) < messages:
            got = dlq.pull(1000, "bench")
            now_ms = time.time() * 1000
            for d in got:
                published_ms = float(d.record.value or b"0")
                totals.append(now_ms - published_ms)
                late.append(now_ms - (published_ms + ttl_ms))
            if got:
                dlq.ack([d.token for d in got])
            else:
                await dlq.wait(5)

    consumer = asyncio.create_task(consume())
    for _ in range(messages):
        now_ms = time.time() * 1000
        record = Record(b"%.3f" % now_ms, timestamp=int(now_ms))
        await core.queues.enqueue(["ttl"], [record])
        await asyncio.sleep(random.uniform(0, 2 * spread_ms) / 1000)
    await asyncio.wait_for(consumer, timeout=30 + ttl_ms / 1000)
    return totals, late, fired


async def measure_lease(core: BrokerCore, messages: int, lease_ms: int, spread_ms: float):
    await core.queues.declare_queue("leased", args=QueueArgs(lease_ms=lease_ms))
    sub = core.queues.get_queue("leased").subscription
    first: dict[int, float] = {}
    totals: list[float] = []
    late: list[float] = []

    async def consume() -> None:
        while len(totals) < messages:
            got = sub.pull(1000, "bench")
            now = time.monotonic()
            done = []
            for d in got:
                if d.count == 1:
                    first[d.offset] = now
                else:
                    held_ms = (now - first[d.offset]) * 1000
                    totals.append(held_ms)
                    late.append(held_ms - lease_ms)
                    done.append(d.token)
            if done:
                sub.ack(done)
            if not got:
                await sub.wait(5)

    consumer = asyncio.create_task(consume())
    for i in range(messages):
        await core.queues.enqueue(["leased"], [Record(b"%d" % i)])
        await asyncio.sleep(random.uniform(0, 2 * spread_ms) / 1000)
    await asyncio.wait_for(consumer, timeout=30 + lease_ms / 1000)
    return totals, late


async def loop_lag(samples: list[float], period: float = 0.005) -> None:
    """How late a plain asyncio sleep wakes: the floor under every timer
    (machine load, garbage collection, other work on the loop)."""
    while True:
        started = time.monotonic()
        await asyncio.sleep(period)
        samples.append((time.monotonic() - started - period) * 1000)


async def main(args: argparse.Namespace) -> None:
    base = Path(tempfile.mkdtemp(prefix="bench-timers-", dir=args.base_dir))
    try:
        core = BrokerCore(BrokerConfig.load(env={}, overrides={"data_dir": base}))
        await core.start()
        try:
            took = await declare_idle(core, args.idle)
            print(f"{args.idle} idle queues declared in {took:.1f} s")
            if args.freeze_gc:
                gc.collect()
                gc.freeze()
                print("gc.freeze(): the objects of the idle queues are not collected again")
            lag: list[float] = []
            prober = asyncio.create_task(loop_lag(lag))
            totals, late, fired = await measure_ttl(
                core, args.messages, args.ttl_ms, args.spread_ms
            )
            print(f"TTL {args.ttl_ms} ms, {len(totals)} messages dead-lettered")
            print(f"  publish -> dead-letter queue: {percentiles(totals)}")
            print(f"  late (arrival after due):     {percentiles(late)}")
            print(f"  timer late (handler called):  {percentiles(fired)}")
            totals, late = await measure_lease(core, args.messages, args.lease_ms, args.spread_ms)
            print(f"lease {args.lease_ms} ms, {len(totals)} messages redelivered")
            print(f"  pull -> redelivery:           {percentiles(totals)}")
            print(f"  late (after the deadline):    {percentiles(late)}")
            prober.cancel()
            print(f"event loop lag (5 ms sleeps):   {percentiles(lag)}")
        finally:
            await core.stop()
    finally:
        shutil.rmtree(base, ignore_errors=True)


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.timers", description=__doc__)
    parser.add_argument("--idle", type=int, default=10_000, help="idle queues present")
    parser.add_argument("--messages", type=int, default=200)
    parser.add_argument("--ttl-ms", type=int, default=300)
    parser.add_argument("--lease-ms", type=int, default=300)
    parser.add_argument("--spread-ms", type=float, default=20, help="mean gap between publishes")
    parser.add_argument("--base-dir", default=None, help="where the temporary data dir goes")
    parser.add_argument(
        "--freeze-gc", action="store_true", help="gc.freeze() after declaring the idle queues"
    )
    return parser.parse_args(argv)


if __name__ == "__main__":
    asyncio.run(main(parse()))

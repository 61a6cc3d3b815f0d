"""How cost grows with topics and with connections: Dovecote vs its peers, durable produce.

    python -m bench.growth [--quick] [--systems ...] [--repeats 3]

- topics: 1 KiB records round-robin over N topics of one partition (N
  JetStream streams, N Redis keys), one producer connection, N = 1, 10, 100,
  1000. Creating the N topics is timed too. Topics of earlier points stay,
  so the memory figure at N includes the topics of the smaller points.
- connections: the same records over N producer connections to one topic
  of 8 partitions, N = 1, 10, 100, each connection sending in turn.

Each point: records/s (median of repeats, min..max), the broker's CPU per
record and its resident memory after the point. Results go to
bench/results/growth.json.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

from bench.common import Result, append_results, summarize
from bench.drivers import Driver, Producer, make_driver
from bench.peers import PeerInfo
from bench.procstat import CpuMeter, broker_pids, rss_bytes
from bench.streams import new_stream
from bench.targets import Target, select

COMMAND = "python -m bench.growth " + " ".join(sys.argv[1:])
SIZE = 1024
PARTITIONS = 8  # of the one topic the connections share


@dataclass(frozen=True)
class Plan:
    topics: tuple[int, ...]
    connections: tuple[int, ...]
    records: int
    seconds: float
    repeats: int


FULL = Plan((1, 10, 100, 1000), (1, 10, 100), records=40_000, seconds=1.0, repeats=3)
QUICK = Plan((1, 100), (1, 10), records=5_000, seconds=0.5, repeats=1)


def send_all(
    producers: list[Producer], value: bytes, count: int, seconds: float, batch: int
) -> int:
    """Send up to ``count`` records, each connection a batch in turn; flush all; return sent."""
    batch = max(1, min(batch, count // len(producers)))
    values = [value] * batch
    sent = 0
    cap = time.perf_counter() + seconds
    while sent < count and time.perf_counter() < cap:
        for producer in producers:
            producer.send(values)
            sent += batch
    for producer in producers:
        producer.flush(120)
    return sent


def measure(
    driver: Driver, pids: list[int], producers: list[Producer], plan: Plan
) -> tuple[list[float], list[float]]:
    """Repeats of one point: (records/s, broker µs per record)."""
    value = os.urandom(SIZE)
    send_all(producers, value, len(producers), 10, 1)  # connect every producer, untimed
    rates, cpu_us = [], []
    for _ in range(plan.repeats):
        with CpuMeter(pids) as cpu:
            start = time.perf_counter()
            sent = send_all(producers, value, plan.records, plan.seconds, driver.batch)
            elapsed = time.perf_counter() - start
        rates.append(sent / elapsed)
        cpu_us.append(cpu.seconds * 1e6 / sent)
    return rates, cpu_us


def _result(name: str, target: Target, info: PeerInfo, n: int, rates, cpu_us, pids, **extra):
    return Result.from_stats(
        name,
        target.system,
        summarize(rates),
        "rec/s",
        COMMAND,
        n=n,
        mode=target.mode,
        size=SIZE,
        cpu_us_per_record=summarize(cpu_us).median,
        rss_mib=rss_bytes(pids) / (1 << 20),
        setting=target.setting,
        version=info.version,
        **extra,
    )


def run_target(target: Target, plan: Plan, log: Callable[[str], None]) -> list[Result]:
    results = []
    with target.start() as info:
        driver = make_driver(target.driver, info.address)
        pids = broker_pids(info)
        try:
            for n in plan.topics:
                streams = [new_stream(f"g{n}") for _ in range(n)]
                start = time.perf_counter()
                driver.create_many(streams, 1)
                create_s = time.perf_counter() - start
                producer = driver.producer_to([(s, 0) for s in streams], target.mode)
                try:
                    rates, cpu_us = measure(driver, pids, [producer], plan)
                finally:
                    producer.close()
                r = _result(
                    "growth topics", target, info, n, rates, cpu_us, pids, create_s=create_s
                )
                results.append(r)
                log(_line(target, f"{n:>5} topics", r))
            stream = new_stream("conn")
            driver.create(stream, PARTITIONS)
            for n in plan.connections:
                producers = [driver.producer(stream, PARTITIONS, target.mode) for _ in range(n)]
                try:
                    rates, cpu_us = measure(driver, pids, producers, plan)
                finally:
                    for producer in producers:
                        producer.close()
                r = _result("growth connections", target, info, n, rates, cpu_us, pids)
                results.append(r)
                log(_line(target, f"{n:>5} connections", r))
        finally:
            driver.close()
    return results


def _line(target: Target, what: str, r: Result) -> str:
    extra = f"  created in {r.params['create_s']:.2f}s" if "create_s" in r.params else ""
    return (
        f"{target.system:<9} {what:<17} {r.figure:>10,.0f} rec/s "
        f"[{r.spread['min']:,.0f}..{r.spread['max']:,.0f}]  "
        f"broker {r.params['cpu_us_per_record']:6.1f} us/rec  {r.params['rss_mib']:7.0f} MiB{extra}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.growth",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--systems", nargs="+", help="default: all (dovecote tansu nats redis)")
    parser.add_argument("--repeats", type=int)
    parser.add_argument("--out", default="growth.json", help="results file (bench/results/)")
    args = parser.parse_args(argv)
    sys.setswitchinterval(0.0005)  # see bench/streams.py
    plan = QUICK if args.quick else FULL
    if args.repeats:
        plan = Plan(plan.topics, plan.connections, plan.records, plan.seconds, args.repeats)
    results = []
    for target in select(args.systems, ["durable"]):
        results += run_target(target, plan, print)
    print(f"{len(results)} results appended to {append_results(results, args.out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

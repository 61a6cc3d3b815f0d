"""Kafka protocol throughput and latency: Dovecote vs Tansu, one run, same client.

    python -m bench.kafka [--records 100000] [--size 1024] [--repeats 3]

With confluent-kafka (librdkafka) for every system: produce 1 KiB records
with acks=1 and acks=all, then consume them all from offset 0; MB/s as the
median of repeats (min-max), and produce latency p50/p99 at a fixed rate
(librdkafka's own per-message latency: from produce() to the broker's ack).
Dovecote runs with durable storage (flush=ack: every acknowledged batch is
fsynced) and, for reference, flush=never; Tansu keeps everything in memory.
"""

from __future__ import annotations

import argparse
import os
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path

import confluent_kafka
from confluent_kafka.admin import AdminClient, NewTopic

from bench.common import Result, append_results, latency_percentiles, summarize
from bench.peers import PeerInfo
from bench.peers.dovecote import dovecote
from bench.peers.tansu import tansu

MB = 1_000_000
COMMAND = "python -m bench.kafka"


def create_topic(bootstrap: str, name: str, partitions: int = 1) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(name, partitions, 1)])[name].result(30)
    deadline = time.monotonic() + 10
    while name not in admin.list_topics(timeout=10).topics and time.monotonic() < deadline:
        time.sleep(0.1)


def produce(
    bootstrap: str, topic: str, count: int, size: int, acks: str
) -> tuple[float, list[float]]:
    """Seconds to produce ``count`` records and have them all acknowledged."""
    producer = confluent_kafka.Producer(
        {
            "bootstrap.servers": bootstrap,
            "acks": acks,
            "linger.ms": 5,
            "batch.size": 1_000_000,
            "compression.type": "none",
            "queue.buffering.max.kbytes": 1_048_576,
            "queue.buffering.max.messages": 1_000_000,
        }
    )
    payload = os.urandom(size)
    latencies: list[float] = []
    errors: list[object] = []

    def report(err, msg) -> None:
        if err is not None:
            errors.append(err)
        else:
            latencies.append(msg.latency())

    started = time.perf_counter()
    for i in range(count):
        while True:
            try:
                producer.produce(topic, payload, b"%d" % (i % 1000), on_delivery=report)
                break
            except BufferError:
                producer.poll(0.005)
        if i % 1000 == 0:
            producer.poll(0)
    assert producer.flush(120) == 0
    elapsed = time.perf_counter() - started
    if errors:
        raise RuntimeError(f"{len(errors)} produce errors, e.g. {errors[0]}")
    return elapsed, latencies


def consume(bootstrap: str, topic: str, count: int) -> float:
    """Seconds to read ``count`` records from offset 0 of partition 0."""
    consumer = confluent_kafka.Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"bench-{uuid.uuid4().hex[:6]}",
            "enable.auto.commit": False,
            "fetch.max.bytes": 52_428_800,
            "max.partition.fetch.bytes": 10_485_760,
            "queued.max.messages.kbytes": 1_048_576,
        }
    )
    consumer.assign([confluent_kafka.TopicPartition(topic, 0, 0)])
    got = 0
    started = time.perf_counter()
    while got < count:
        for message in consumer.consume(10_000, 1.0):
            if message.error() is None:
                got += 1
    elapsed = time.perf_counter() - started
    consumer.close()
    return elapsed


def fixed_rate_latency(
    bootstrap: str, topic: str, rate: int, seconds: float, size: int, acks: str
) -> list[float]:
    producer = confluent_kafka.Producer(
        {"bootstrap.servers": bootstrap, "acks": acks, "linger.ms": 0}
    )
    payload = os.urandom(size)
    latencies: list[float] = []
    interval = 1 / rate
    next_at = time.perf_counter()
    end = next_at + seconds
    while next_at < end:
        producer.produce(
            topic, payload, on_delivery=lambda err, msg: latencies.append(msg.latency())
        )
        producer.poll(0)
        next_at += interval
        delay = next_at - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
    producer.flush(30)
    return latencies


def systems() -> Iterator[tuple[str, Callable[[], AbstractContextManager[PeerInfo]]]]:
    yield "dovecote (flush=ack, durable)", lambda: dovecote(protocol="kafka", flush="ack")
    yield "dovecote (flush=never)", lambda: dovecote(protocol="kafka", flush="never")
    yield "tansu (memory)", tansu


def run(count: int, size: int, repeats: int, rate: int) -> list[Result]:
    results: list[Result] = []
    for label, starter in systems():
        with starter() as peer:
            bootstrap = f"{peer.host}:{peer.port}"
            figures: dict[str, list[float]] = {
                "produce acks=1": [],
                "produce acks=all": [],
                "consume": [],
            }
            produce_lat: list[float] = []
            for _ in range(repeats):
                for acks in ("1", "all"):
                    topic = f"bench-{uuid.uuid4().hex[:8]}"
                    create_topic(bootstrap, topic)
                    elapsed, _ = produce(bootstrap, topic, count, size, acks)
                    figures[f"produce acks={acks}"].append(count * size / elapsed / MB)
                figures["consume"].append(count * size / consume(bootstrap, topic, count) / MB)
            topic = f"lat-{uuid.uuid4().hex[:8]}"
            create_topic(bootstrap, topic)
            produce_lat = fixed_rate_latency(bootstrap, topic, rate, 5, size, "all")
            for name, samples in figures.items():
                stats = summarize(samples)
                results.append(
                    Result.from_stats(
                        f"kafka {name}",
                        label,
                        stats,
                        "MB/s",
                        COMMAND,
                        records=count,
                        size=size,
                        version=peer.version,
                    )
                )
            lat = latency_percentiles(int(s * 1e9) for s in produce_lat).as_ms()
            for q in ("p50", "p99"):
                results.append(
                    Result(
                        name=f"kafka produce latency {q} (acks=all, {rate}/s)",
                        system=label,
                        figure=lat[q],
                        unit="ms",
                        repeats=1,
                        spread={},
                        command=COMMAND,
                        params={"rate": rate, "samples": len(produce_lat)},
                    )
                )
    return results


def report(results: list[Result]) -> str:
    names = list(dict.fromkeys(r.name for r in results))
    systems_ = list(dict.fromkeys(r.system for r in results))
    peer = systems_[-1]
    by = {(r.name, r.system): r for r in results}
    header = "| figure | " + " | ".join(systems_) + f" | Dovecote durable / {peer} |"
    lines = [header, "|---" * (len(systems_) + 2) + "|"]
    for name in names:
        cells = []
        for system in systems_:
            r = by.get((name, system))
            if r is None:
                cells.append("-")
            elif r.spread:
                cells.append(
                    f"{r.figure:,.1f} {r.unit} ({r.spread['min']:,.1f}-{r.spread['max']:,.1f})"
                )
            else:
                cells.append(f"{r.figure:,.2f} {r.unit}")
        durable, other = by.get((name, systems_[0])), by.get((name, peer))
        if durable and other and other.figure:
            ratio = durable.figure / other.figure
            cells.append(f"{ratio:.2f}" + (" (lower is better)" if durable.unit == "ms" else ""))
        else:
            cells.append("-")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rate", type=int, default=2000, help="records/s for the latency run")
    parser.add_argument("--json", type=Path, default=Path("bench/results/kafka.json"))
    args = parser.parse_args()
    results = run(args.records, args.size, args.repeats, args.rate)
    append_results(results, args.json)
    print(report(results))


if __name__ == "__main__":
    main()

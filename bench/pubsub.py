"""Pub/Sub: google-cloud-pubsub against Dovecote's Pub/Sub listener and Google's emulator.

    python -m bench.pubsub [--messages 30000] [--large-messages 3000] [--clients 2]
                           [--sizes 1024 100 65536] [--rates 100 500] [--latency-seconds 8]
                           [--max-seconds 10] [--systems dovecote emulator] [--base-dir DIR]

Each system is started in turn as its own process on a free 127.0.0.1 port
(Dovecote: ``dovecote serve`` with only the Pub/Sub listener, ``--flush
ack``; the emulator: ``cloud-pubsub-emulator --host=127.0.0.1 --port=N``,
from the Debian package google-cloud-cli-pubsub-emulator) and gets, from the
same client code (bench/pubsub_load.py, ``PUBSUB_EMULATOR_HOST`` pointed at
it), for each message size (1 KiB, 100 B, 64 KiB):

- publish: ``--messages`` messages (``--large-messages`` of 64 KiB) from
  ``--clients`` processes, each a PublisherClient batching up to 1,000
  messages, 1 MB or 10 ms per request (with publisher flow control: at most
  10,000 messages or 32 MiB outstanding), every future waited for;
- raw publish: ``RAW_FACTOR`` times as many messages from ``--clients`` processes, each
  sending Publish requests built and serialized once (1,000 messages or
  1 MB a request, four calls in flight) over a plain gRPC channel: the
  PublisherClient costs ~30 us of client CPU a message, which on 2 cores
  caps both systems near the same figure; this phase shows what each
  broker takes;
- pull: the same messages, pulled by ``--clients`` processes each with
  ``SubscriberClient.subscribe`` (StreamingPull) and ``FlowControl(
  max_messages=1000)``, the callback acking each; until all are received.

Then end-to-end latency at each of ``--rates``: that many 1 KiB messages
a second for ``--latency-seconds`` from one unbatched publisher
(max_messages=1, so the client's batching adds no wait), received by a
subscriber in its own process; the publish() call's time to the
callback's (both CLOCK_MONOTONIC). At 500 msg/s the unbatched Python
publisher alone costs most of a CPU here, so a low rate is measured too:
the issue's goal is checked at each.

Each throughput phase stops after ``--max-seconds`` even if unfinished
(marked short). Messages per second count from the phase's start to its
last message (publish: the last future resolved; pull: the last callback).
The broker's CPU time (bench/procstat.py; for the emulator, its JVM) and
the client processes' own CPU time are given per message, with how many
CPUs each kept busy: on this 2-core machine the Python clients can be what
limits both systems. Durability differs: Dovecote answers a publish after
the records are fsynced; the emulator keeps everything in memory.

A system that cannot be started (the emulator not installed, no JVM) is
reported as unavailable with the reason; the other's figures are still
recorded. Results go to bench/results/pubsub.json; ``python -m bench
--report-only`` puts them in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
import uuid
from collections.abc import Iterator
from typing import Any

from bench.common import Result, append_results, latency_percentiles
from bench.peers import PeerInfo
from bench.peers._proc import PeerStartError
from bench.peers.dovecote import dovecote
from bench.peers.pubsub_emulator import pubsub_emulator
from bench.procstat import broker_pids, cpu_seconds
from bench.pubsub_load import PROJECT, Batching, Latency, Task, measure_latency, serve, use_host
from bench.sqs_load import ClientPool, Phase, combine, split

SYSTEMS = ("dovecote", "emulator")
#: The goals of issue 14, as the report checks them.
GOAL_RATIO = 2.0  # Dovecote's messages/s at least 2x the emulator's, on each throughput
RAW_FACTOR = 5  # messages of the raw publish phase per message of the others
SIZES = (1024, 100, 65536)
LARGE = 65536  # sizes from here on use --large-messages

#: How each system is run, and what its answer to a publish promises.
SETTINGS = {
    "dovecote": (
        "`dovecote serve`, only the Pub/Sub listener, `--flush ack` (the default)",
        "publish answered after the records are fsynced (group commit)",
    ),
    "emulator": (
        "`cloud-pubsub-emulator` (Google's, Java, one JVM)",
        "publish answered when the message is in the JVM's memory; nothing on disk",
    ),
}


def start(system: str, base_dir: str | None) -> contextlib.AbstractContextManager[PeerInfo]:
    if system == "dovecote":
        return dovecote(protocol="pubsub", flush="ack", base_dir=base_dir)
    return pubsub_emulator(base_dir=base_dir)


@contextlib.contextmanager
def admin(host: str) -> Iterator[tuple[Any, Any]]:
    """A publisher and a subscriber client in this process, for topics and subscriptions."""
    use_host(host)
    from google.cloud import pubsub_v1

    publisher, subscriber = pubsub_v1.PublisherClient(), pubsub_v1.SubscriberClient()
    try:
        yield publisher, subscriber
    finally:
        publisher.stop()
        subscriber.close()


def new_pair(clients: tuple[Any, Any], prefix: str) -> tuple[str, str]:
    """A fresh topic with one subscription (made before anything is published to it)."""
    publisher, subscriber = clients
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    topic = publisher.create_topic(name=publisher.topic_path(PROJECT, name)).name
    sub = subscriber.create_subscription(
        name=subscriber.subscription_path(PROJECT, name), topic=topic, ack_deadline_seconds=60
    ).name
    return topic, sub


def drop_pair(clients: tuple[Any, Any], topic: str, sub: str) -> None:
    """Delete them, so the next size starts on an empty system (the emulator keeps all in RAM)."""
    publisher, subscriber = clients
    with contextlib.suppress(Exception):
        subscriber.delete_subscription(subscription=sub, timeout=30)
    with contextlib.suppress(Exception):
        publisher.delete_topic(topic=topic, timeout=30)


def run_phase(
    pool: ClientPool, kind: str, host: str, path: str, messages: int, size: int,
    args: argparse.Namespace, pids: list[int],
) -> Phase:  # fmt: skip
    """One phase over the pool: publish ``messages`` to a topic, or pull them all."""
    shares = split(messages, pool.size) if kind == "publish" else [messages] * pool.size
    tasks = [Task(kind, host, path, share, size, args.max_seconds, Batching()) for share in shares]
    pool.prepare(tasks)
    before = cpu_seconds(pids)
    started, reports = pool.go(timeout=args.max_seconds + 90)
    broker = cpu_seconds(pids) - before
    return combine(kind, messages, started, reports, broker)


def show(system: str, size: int, phase: Phase) -> None:
    short = "" if phase.complete else f"  SHORT: {phase.messages:,} of {phase.target:,}"
    print(
        f"{system}: {phase.kind:<7} {size:>6} B {phase.rate:9,.0f} msg/s  {phase.messages:,} "
        f"msgs in {phase.seconds:.2f}s; broker {phase.broker_us:7.1f} us/msg "
        f"({phase.cores(phase.broker_cpu_s):.2f} CPUs), clients {phase.client_us:7.1f} us/msg "
        f"({phase.cores(phase.client_cpu_s):.2f} CPUs){short}",
        flush=True,
    )
    if phase.duplicates:
        print(f"   {phase.duplicates} deliveries of messages already received in this phase")
    if phase.errors:
        print(f"   {phase.errors} failed calls")
    for text in phase.error_texts:
        print(f"   error: {text}")


def phase_result(
    system: str, size: int, phase: Phase, common: dict[str, Any], command: str
) -> Result:
    return Result(
        name=f"pubsub.{phase.kind}",
        system=system,
        figure=phase.rate,
        unit="msg/s",
        repeats=1,
        spread={},
        command=command,
        params={
            **common,
            "size": size,
            "mib_s": round(phase.rate * size / 2**20, 2),
            "messages": phase.messages,
            "duplicates": phase.duplicates,
            "target": phase.target,
            "seconds": round(phase.seconds, 3),
            "complete": phase.complete,
            "broker_us_per_msg": round(phase.broker_us, 2),
            "client_us_per_msg": round(phase.client_us, 2),
            "broker_cpus": round(phase.cores(phase.broker_cpu_s), 2),
            "client_cpus": round(phase.cores(phase.client_cpu_s), 2),
            "errors": phase.errors,
            "error_texts": list(phase.error_texts),
        },
    )


def latency_result(
    system: str, run: Latency, broker_cpu_s: float, common: dict[str, Any], command: str
) -> Result:
    """The p99 (ms, publish() call to callback) as the figure; the rest in params."""
    received = len(run.latencies_ns)
    params: dict[str, Any] = {
        **common,
        "published": run.published,
        "count": received,
        "lost": run.lost,
        "late_ms": round(run.late_ns / 1e6, 3),
        "broker_us_per_msg": round(1e6 * broker_cpu_s / received, 2) if received else 0.0,
        "broker_cpus": round(broker_cpu_s / run.seconds, 2) if run.seconds else 0.0,
        "client_cpus": round(run.client_cpu_s / run.seconds, 2) if run.seconds else 0.0,
        "error_texts": run.error_texts,
    }
    figure = 0.0
    if received:
        ms = latency_percentiles(run.latencies_ns).as_ms()
        params.update({k: round(v, 3) for k, v in ms.items()})
        figure = ms["p99"]
    return Result("pubsub.latency", system, figure, "ms", 1, {}, command, params)


def measure(
    system: str, info: PeerInfo, pool: ClientPool, args: argparse.Namespace, command: str
) -> list[Result]:
    """Publish and pull at every size, then the fixed-rate latency, against one system."""
    pids = broker_pids(info)
    setting, promise = SETTINGS[system]
    common = {
        "version": info.version,
        "clients": pool.size,
        "batch": Batching().max_messages,
        "batch_bytes": Batching().max_bytes,
        "batch_latency_ms": Batching().max_latency_s * 1000,
        "flow_messages": 1000,
        "max_seconds": args.max_seconds,
        "setting": setting,
        "promise": promise,
        "startup_s": round(info.startup_s, 2),
        "load_1min": round(os.getloadavg()[0], 2),  # other work on the machine skews figures
    }
    results = []
    with admin(info.address) as clients:
        for size in args.sizes:
            count = args.large_messages if size >= LARGE else args.messages
            topic, sub = new_pair(clients, f"bench-{size}")
            phase = run_phase(pool, "publish", info.address, topic, count, size, args, pids)
            show(system, size, phase)
            results.append(phase_result(system, size, phase, common, command))
            if phase.messages:
                phase = run_phase(pool, "pull", info.address, sub, phase.messages, size, args, pids)
                show(system, size, phase)
                results.append(phase_result(system, size, phase, common, command))
            drop_pair(clients, topic, sub)
            topic, sub = new_pair(clients, f"bench-raw-{size}")
            raw = count * RAW_FACTOR  # a pre-built request costs the client little: more of them
            phase = run_phase(pool, "rawpublish", info.address, topic, raw, size, args, pids)
            show(system, size, phase)
            results.append(phase_result(system, size, phase, common, command))
            drop_pair(clients, topic, sub)
        for rate in args.rates:
            results.append(latency(system, info, clients, rate, args, pids, common, command))
    return results


def latency(
    system: str, info: PeerInfo, clients: tuple[Any, Any], rate: float,
    args: argparse.Namespace, pids: list[int], common: dict[str, Any], command: str,
) -> Result:  # fmt: skip
    """End-to-end latency at one fixed rate, on a fresh topic and subscription."""
    topic, sub = new_pair(clients, "bench-latency")
    before = cpu_seconds(pids)
    run = measure_latency(info.address, topic, sub, rate, args.latency_seconds, 1024)
    broker = cpu_seconds(pids) - before
    drop_pair(clients, topic, sub)
    extra = {"rate": rate, "latency_seconds": args.latency_seconds, "size": 1024}
    r = latency_result(system, run, broker, {**common, **extra}, command)
    if r.params["count"]:
        print(
            f"{system}: end-to-end at {rate:g} msg/s over {r.params['count']:,} messages: "
            f"p50 {r.params['p50']:.2f} ms p99 {r.params['p99']:.2f} ms max "
            f"{r.params['max']:.2f} ms; broker {r.params['broker_us_per_msg']:.1f} us/msg "
            f"({r.params['broker_cpus']:.2f} CPUs), clients {r.params['client_cpus']:.2f} CPUs; "
            f"publisher at worst {r.params['late_ms']:.1f} ms behind schedule",
            flush=True,
        )
    for text in run.error_texts:
        print(f"   latency error: {text}")
    if run.lost:
        print(f"   {run.lost} messages published but not received")
    return r


def unavailable(system: str, reason: str, command: str) -> Result:
    """The record of a system that could not be measured, with why (shown in the report)."""
    return Result("pubsub.unavailable", system, 0.0, "", 0, {}, command, {"reason": reason})


def summary(results: list[Result]) -> None:
    """Dovecote / emulator for every figure, against the issue's goals."""
    by = {(r.name, r.system, r.params.get("size")): r for r in results}
    for name in ("pubsub.publish", "pubsub.rawpublish", "pubsub.pull"):
        for size in dict.fromkeys(r.params.get("size") for r in results if r.name == name):
            mine, theirs = by.get((name, "dovecote", size)), by.get((name, "emulator", size))
            if mine and theirs and theirs.figure:
                x = mine.figure / theirs.figure
                verdict = "meets" if x >= GOAL_RATIO else "misses"
                print(f"{name} {size} B: Dovecote / emulator = {x:.2f}x ({verdict} >= 2x)")
    lat = {(r.system, r.params["rate"]): r for r in results if r.name == "pubsub.latency"}
    for rate in dict.fromkeys(rate for _, rate in lat):
        mine, theirs = lat.get(("dovecote", rate)), lat.get(("emulator", rate))
        if mine and theirs and mine.params["count"] and theirs.params["count"]:
            verdict = "meets" if mine.figure <= theirs.figure else "misses"
            print(
                f"pubsub.latency at {rate:g} msg/s: p99 Dovecote {mine.figure:.2f} ms, emulator "
                f"{theirs.figure:.2f} ms ({verdict} <= the emulator's)"
            )


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    command = "python -m bench.pubsub " + " ".join(sys.argv[1:] if argv is None else argv)
    command = command.strip()
    results: list[Result] = []
    started = time.monotonic()
    pool = ClientPool(args.clients, serve=serve, name="pubsub-client")
    try:
        for system in args.systems:
            try:
                with start(system, args.base_dir) as info:
                    print(
                        f"{system}: {info.version} on {info.address} (up in "
                        f"{info.startup_s:.1f}s; load average {os.getloadavg()[0]:.2f} on "
                        f"{os.cpu_count()} CPUs)",
                        flush=True,
                    )
                    results += measure(system, info, pool, args, command)
            except (FileNotFoundError, PeerStartError) as exc:
                reason = str(exc).splitlines()[0]
                print(f"{system}: unavailable: {reason}", flush=True)
                results.append(unavailable(system, reason, command))
    finally:
        pool.close()
    summary(results)
    path = append_results(results, "pubsub.json")
    print(f"{len(results)} results appended to {path} in {time.monotonic() - started:.0f}s")
    return 0


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.pubsub",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--messages", type=int, default=30_000, help="per size below 64 KiB")
    parser.add_argument("--large-messages", type=int, default=3_000, help="of 64 KiB")
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES), help="bytes")
    parser.add_argument("--clients", type=int, default=2, help="client processes")
    parser.add_argument(
        "--rates", type=float, nargs="+", default=[100.0, 500.0], help="latency: msg/s, each"
    )
    parser.add_argument("--latency-seconds", type=float, default=8.0, help="at each rate")
    parser.add_argument(
        "--max-seconds", type=float, default=10.0, help="cap on each throughput phase"
    )
    parser.add_argument("--systems", nargs="+", choices=SYSTEMS, default=list(SYSTEMS))
    parser.add_argument("--base-dir", default=None, help="where the brokers' data dirs go")
    args = parser.parse_args(argv)
    if (
        min(args.messages, args.large_messages, args.clients, *args.sizes) < 1
        or min(args.rates) <= 0
    ):
        parser.error("counts, sizes, --clients and --rates must be positive")
    return args


if __name__ == "__main__":
    sys.exit(main())

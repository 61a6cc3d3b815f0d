"""Log/stream workloads: Dovecote (Kafka protocol) vs Tansu, NATS JetStream and Redis Streams.

    python -m bench.streams [--quick] [--systems dovecote tansu nats redis]
                            [--modes durable fire-and-forget] [--repeats 3]

In one run, for every system in each mode (bench/targets.py):

- produce-only: 1 KiB and 100 B records, 1 and 8 partitions, as fast as the
  client goes (records round-robin over partitions); timed until the last
  acknowledgement (durable) or until the system holds every record
  (fire-and-forget);
- consume-only: the records just produced, read from the beginning (after
  durable produce runs only: reading does not depend on how they came in);
- end-to-end: producer and reader (a separate process) at once, timed from
  the first send to the last record read;
- latency: end-to-end at one fixed rate for every system of a mode, half the
  lowest end-to-end maximum measured in this run (so every system runs at no
  more than half its capacity, all under the same load); p50/p99/p999 from
  send to read, the first half second of each run left out as warm-up.
  Send times are the schedule's, so a producer that falls behind shows it.

Runs stop at a record count or a time cap, whichever comes first. Each
figure is the median of ``--repeats`` runs (spread min..max), with the
broker's CPU time per record. Results go to bench/results/streams.json.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from bench.common import Result, append_results, latency_percentiles, summarize
from bench.drivers import Driver, Producer, make_driver
from bench.peers import PeerInfo
from bench.procstat import CpuMeter, broker_pids
from bench.reader import ReaderProcess, stamped
from bench.targets import Target, select

KIB = 1024
MB = 1_000_000
COMMAND = "python -m bench.streams " + " ".join(sys.argv[1:])


@dataclass(frozen=True)
class Plan:
    """How much each run does; ``--quick`` is a smaller plan."""

    records: dict[int, int]  # record size -> records per run (upper bound)
    seconds: float  # time cap of one produce run
    repeats: int
    configs: tuple[tuple[int, int], ...]  # (record size, partitions) for produce/consume
    e2e_configs: tuple[tuple[int, int], ...]
    latency_config: tuple[int, int]
    latency_seconds: float
    warmup_seconds: float = 0.5


FULL = Plan(
    records={KIB: 100_000, 100: 300_000},
    seconds=1.0,
    repeats=3,
    configs=((KIB, 1), (KIB, 8), (100, 1), (100, 8)),
    e2e_configs=((KIB, 1), (100, 1)),
    latency_config=(KIB, 1),
    latency_seconds=2.5,
)
QUICK = Plan(
    records={KIB: 20_000, 100: 50_000},
    seconds=0.5,
    repeats=1,
    configs=((KIB, 1), (100, 8)),
    e2e_configs=((KIB, 1),),
    latency_config=(KIB, 1),
    latency_seconds=1.5,
)


@dataclass
class Samples:
    """Repeats of one figure: rates (records/s) and broker CPU µs per record."""

    rates: list[float] = field(default_factory=list)
    cpu_us: list[float] = field(default_factory=list)
    short: int = 0  # runs that ended before every record was stored or read
    kept: list[float] = field(default_factory=list)  # fire-and-forget: fraction stored

    def add(self, records: int, seconds: float, cpu_s: float, complete: bool = True) -> None:
        self.rates.append(records / seconds if seconds > 0 else 0.0)
        self.cpu_us.append(cpu_s * 1e6 / records if records else 0.0)
        self.short += not complete


def new_stream(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def produce_for(
    producer: Producer, value: bytes, count: int, seconds: float, batch: int
) -> tuple[int, float]:
    """Send up to ``count`` copies of ``value`` within about ``seconds``; then flush.

    Returns (records sent, seconds from the first send to the flush's end).
    """
    values = [value] * batch
    sent = 0
    start = time.perf_counter()
    cap = start + seconds
    while sent < count and time.perf_counter() < cap:
        n = min(batch, count - sent)
        producer.send(values if n == batch else values[:n])
        sent += n
    producer.flush(120)
    return sent, time.perf_counter() - start


class Runner:
    """Runs the workloads against one started target and collects samples."""

    def __init__(self, target: Target, info: PeerInfo, plan: Plan) -> None:
        self.target, self.info, self.plan = target, info, plan
        self.driver: Driver = make_driver(target.driver, info.address)
        self.pids = broker_pids(info)

    def close(self) -> None:
        self.driver.close()

    def warm_up(self) -> None:
        """One small untimed produce and read: connections, JIT-free caches, file creation."""
        stream = new_stream("warm")
        self.driver.create(stream, 1)
        producer = self.driver.producer(stream, 1, self.target.mode)
        try:
            sent, _ = produce_for(producer, os.urandom(KIB), 5000, 1.0, self.driver.batch)
        finally:
            producer.close()
        self.driver.wait_stored(stream, 1, sent, 10)
        self.driver.read(stream, 1, sent, 10)
        self.driver.drop(stream, 1)

    def produce_consume(self, size: int, partitions: int, read: bool) -> tuple[Samples, Samples]:
        produce, consume = Samples(), Samples()
        value = os.urandom(size)
        for _ in range(self.plan.repeats):
            stream = new_stream("pc")
            self.driver.create(stream, partitions)
            producer = self.driver.producer(stream, partitions, self.target.mode)
            try:
                with CpuMeter(self.pids) as cpu:
                    start = time.perf_counter()
                    sent, _ = produce_for(
                        producer,
                        value,
                        self.plan.records[size],
                        self.plan.seconds,
                        self.driver.batch,
                    )
                    held = sent
                    if self.target.mode == "fire-and-forget":
                        held = self.driver.wait_stored(stream, partitions, sent, 30)
                        produce.kept.append(held / sent if sent else 1.0)
                    elapsed = time.perf_counter() - start
            finally:
                producer.close()
            produce.add(sent, elapsed, cpu.seconds, held >= sent)
            if read:
                # Timed from the moment the reader is connected and positioned.
                started: list[float] = []

                def mark(started: list[float] = started) -> None:
                    started.append(time.perf_counter())

                with CpuMeter(self.pids) as cpu:
                    got = self.driver.read(stream, partitions, held, 60, None, mark)
                    elapsed = time.perf_counter() - started[0]
                consume.add(got, elapsed, cpu.seconds, got >= held)
            self.driver.drop(stream, partitions)
        return produce, consume

    def end_to_end(self, reader: ReaderProcess, size: int, partitions: int, count: int) -> Samples:
        samples = Samples()
        pad = os.urandom(size - 16)
        batch = self.driver.batch
        for _ in range(self.plan.repeats):
            stream = new_stream("e2e")
            self.driver.create(stream, partitions)
            producer = self.driver.producer(stream, partitions, self.target.mode)
            try:
                reader.start(stream, partitions, count, timeout=60)
                with CpuMeter(self.pids) as cpu:
                    start = time.monotonic_ns()
                    for first in range(0, count, batch):
                        now = time.monotonic_ns()
                        n = min(batch, count - first)
                        producer.send([stamped(first + i, now, pad) for i in range(n)])
                    producer.flush(120)
                    result = reader.result()
            finally:
                producer.close()
            elapsed = (result.last_ns - start) / 1e9 if result.count else float("inf")
            samples.add(result.count, elapsed, cpu.seconds, result.count >= count)
            self.driver.drop(stream, partitions)
        return samples

    def latency(
        self, reader: ReaderProcess, size: int, partitions: int, rate: float
    ) -> tuple[list[dict[str, float]], int, int]:
        """Runs at ``rate`` records/s; per run p50/p99/p999/max in ms; total samples; short runs."""
        plan = self.plan
        total = max(1, int(rate * plan.latency_seconds))
        warmup = int(rate * plan.warmup_seconds)
        interval_ns = 1e9 / rate
        pad = os.urandom(size - 16)
        runs: list[dict[str, float]] = []
        samples = short = 0
        for _ in range(plan.repeats):
            stream = new_stream("lat")
            self.driver.create(stream, partitions)
            producer = self.driver.producer(stream, partitions, self.target.mode)
            try:
                reader.start(stream, partitions, total, plan.latency_seconds * 3 + 30, warmup)
                sent = 0
                start = time.monotonic_ns()
                cap = start + int((plan.latency_seconds * 3 + 10) * 1e9)
                while sent < total:
                    now = time.monotonic_ns()
                    if now > cap:
                        break
                    due = min(total, int((now - start) / interval_ns) + 1)
                    if due > sent:
                        producer.send(
                            [
                                stamped(seq, start + int(seq * interval_ns), pad)
                                for seq in range(sent, due)
                            ]
                        )
                        sent = due
                    else:
                        # Always sleep (never spin): the nats and redis clients run in
                        # another thread of this process and need the interpreter lock.
                        wait = start + sent * interval_ns - time.monotonic_ns()
                        time.sleep(min(max(wait, 20_000), 1_000_000) / 1e9)
                producer.flush(60)
                result = reader.result()
            finally:
                producer.close()
            self.driver.drop(stream, partitions)
            short += result.count < total
            if len(result.latencies_ns):
                runs.append(latency_percentiles(result.latencies_ns).as_ms())
                samples += len(result.latencies_ns)
        return runs, samples, short


def _result(
    name: str, target: Target, info: PeerInfo, samples: Samples, size: int, partitions: int, **extra
) -> Result:
    stats = summarize(samples.rates)
    return Result.from_stats(
        name,
        target.system,
        stats,
        "rec/s",
        COMMAND,
        mode=target.mode,
        size=size,
        partitions=partitions,
        mb_s=stats.median * size / MB,
        cpu_us_per_record=summarize(samples.cpu_us).median if samples.cpu_us else None,
        short_runs=samples.short,
        kept=min(samples.kept) if samples.kept else None,
        setting=target.setting,
        version=info.version,
        **extra,
    )


def throughput_phase(
    target: Target, plan: Plan, log: Callable[[str], None]
) -> tuple[list[Result], dict[tuple[int, int], float]]:
    """Produce, consume and end-to-end runs against one target; also returns e2e maxima."""
    results: list[Result] = []
    maxima: dict[tuple[int, int], float] = {}
    with target.start() as info:
        runner = Runner(target, info, plan)
        try:
            runner.warm_up()
            produce_rates: dict[tuple[int, int], float] = {}
            for size, partitions in plan.configs:
                read = target.mode == "durable"
                produce, consume = runner.produce_consume(size, partitions, read)
                results.append(_result("produce", target, info, produce, size, partitions))
                produce_rates[(size, partitions)] = summarize(produce.rates).median
                log(_line(target, "produce", size, partitions, produce))
                if read:
                    results.append(_result("consume", target, info, consume, size, partitions))
                    log(_line(target, "consume", size, partitions, consume))
            with ReaderProcess(target.driver, info.address) as reader:
                for size, partitions in plan.e2e_configs:
                    # As many records as the producer alone sent in one capped run.
                    known = produce_rates.get((size, partitions), 0.0) * plan.seconds
                    count = int(min(plan.records[size], max(known, 1000)))
                    e2e = runner.end_to_end(reader, size, partitions, count)
                    results.append(
                        _result("end-to-end", target, info, e2e, size, partitions, records=count)
                    )
                    maxima[(size, partitions)] = summarize(e2e.rates).median
                    log(_line(target, "end-to-end", size, partitions, e2e))
        finally:
            runner.close()
    return results, maxima


def latency_phase(
    target: Target, plan: Plan, rate: float, basis: str, log: Callable[[str], None]
) -> list[Result]:
    size, partitions = plan.latency_config
    with target.start() as info:
        runner = Runner(target, info, plan)
        try:
            runner.warm_up()
            with ReaderProcess(target.driver, info.address) as reader:
                runs, count, short = runner.latency(reader, size, partitions, rate)
        finally:
            runner.close()
    results = []
    for q in ("p50", "p99", "p999"):
        if not runs:
            continue
        stats = summarize(run[q] for run in runs)
        results.append(
            Result.from_stats(
                f"latency {q}",
                target.system,
                stats,
                "ms",
                COMMAND,
                mode=target.mode,
                size=size,
                partitions=partitions,
                rate=rate,
                rate_basis=basis,
                samples=count,
                short_runs=short,
                setting=target.setting,
                version=info.version,
            )
        )
    if results:
        log(
            f"{target.key:<28} latency @{rate:,.0f}/s  "
            + "  ".join(f"{r.name.split()[1]} {r.figure:.2f} ms" for r in results)
            + (f"  ({short} short runs)" if short else "")
        )
    return results


def _line(target: Target, name: str, size: int, partitions: int, s: Samples) -> str:
    st = summarize(s.rates)
    cpu = summarize(s.cpu_us).median if s.cpu_us else 0
    flag = f"  ({s.short} short runs)" if s.short else ""
    return (
        f"{target.key:<28} {name:<10} {size:>5}B x{partitions}  {st.median:>10,.0f} rec/s "
        f"[{st.min:,.0f}..{st.max:,.0f}]  {st.median * size / MB:7.1f} MB/s  "
        f"broker {cpu:6.1f} us/rec{flag}"
    )


def run(targets: list[Target], plan: Plan, log: Callable[[str], None] = print) -> list[Result]:
    results: list[Result] = []
    maxima: dict[str, dict[str, float]] = {}
    for target in targets:
        found, target_max = throughput_phase(target, plan, log)
        results += found
        if plan.latency_config in target_max:
            maxima.setdefault(target.mode, {})[target.system] = target_max[plan.latency_config]
    for target in targets:
        group = maxima.get(target.mode, {})
        if not group:
            continue
        slowest = min(group, key=group.__getitem__)
        rate = max(100.0, 0.5 * group[slowest])
        basis = f"half of {slowest}'s end-to-end maximum ({group[slowest]:,.0f}/s)"
        results += latency_phase(target, plan, rate, basis, log)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.streams",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="small smoke-run plan")
    parser.add_argument("--systems", nargs="+", help="default: all (dovecote tansu nats redis)")
    parser.add_argument("--modes", nargs="+", choices=["durable", "fire-and-forget"])
    parser.add_argument("--repeats", type=int, help="override the plan's repeats")
    parser.add_argument("--out", default="streams.json", help="results file (bench/results/)")
    args = parser.parse_args(argv)
    # The asyncio clients' thread and the main thread share one interpreter
    # lock; hand it over every 0.5 ms rather than 5 ms.
    sys.setswitchinterval(0.0005)
    plan = QUICK if args.quick else FULL
    if args.repeats:
        plan = replace(plan, repeats=args.repeats)
    targets = select(args.systems, args.modes)
    results = run(targets, plan)
    path = append_results(results, args.out)
    print(f"{len(results)} results appended to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

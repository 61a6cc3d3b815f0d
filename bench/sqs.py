"""SQS: boto3 against Dovecote's AWS listener and moto_server, the same code for both.

    python -m bench.sqs [--messages 20000] [--clients 4] [--threads 2]
                        [--rounds 500] [--max-seconds 10] [--systems dovecote moto]
                        [--base-dir DIR] [--profile]

Each system is started in turn as its own process on a free 127.0.0.1 port
(Dovecote: ``dovecote serve --aws ... --flush ack``; moto: ``python -m
moto.server``) and gets, from the same boto3 code (bench/sqs_load.py):

- send: ``--messages`` 1 KiB bodies with ``send_message_batch`` (10 per call)
  from ``--clients`` processes x ``--threads`` threads, one boto3 client each;
- receive+delete: ``receive_message(MaxNumberOfMessages=10,
  WaitTimeSeconds=1)`` then ``delete_message_batch`` from the same clients
  until every message sent is deleted;
- latency: ``--rounds`` rounds of one ``send_message`` to an empty queue while
  a receiver process already waits in ``receive_message(WaitTimeSeconds=20)``;
  the latency is the receive's return minus the send's start (and, also
  recorded, minus the send's return).

Each phase stops after ``--max-seconds`` even if unfinished (moto's send
slows down as its queue grows); such a phase is marked short. Messages per
second count from the phase's start to its last call that moved messages.
The broker's CPU time (bench/procstat.py) and the client processes' own CPU
time are read around each phase and given per message, with how many CPUs
each kept busy: on a small machine the boto3 clients can be what limits
both systems.

Durability differs: Dovecote answers a send after the records are fsynced
(its default flush policy, ``--flush ack``); moto keeps everything in memory.

Results go to bench/results/sqs.json; ``python -m bench --report-only`` puts
them in docs/benchmarks.md. ``--profile`` then runs Dovecote's two phases
once more under py-spy and prints where the broker's time went (not stored
as figures: the sampler slows the broker).
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

from bench.common import RESULTS_DIR, RUN_ID, Result, append_results, latency_percentiles
from bench.peers import PeerInfo
from bench.peers.dovecote import dovecote
from bench.peers.moto_server import moto
from bench.procstat import broker_pids, cpu_seconds
from bench.sqs_load import (
    BATCH,
    ClientPool,
    Latency,
    Phase,
    Task,
    combine,
    measure_latency,
    split,
    sqs_client,
)

SYSTEMS = ("dovecote", "moto")
#: The goals of issue 13, as the report checks them.
GOAL_RATIO = 10.0  # Dovecote's messages/s at least 10x moto_server's
GOAL_BROKER_US = 30.0  # broker CPU per message with batches of 10
GOAL_P99_MS = 5.0  # long-polled receive after a send
SIZE = 1024

#: How each system is run, and what its answer to a send promises.
SETTINGS = {
    "dovecote": (
        "`dovecote serve --aws`, `--flush ack` (the default)",
        "send answered after the records are fsynced (group commit)",
    ),
    "moto": (
        "`python -m moto.server` (Werkzeug, threaded)",
        "send answered when the message is in the server's memory; nothing on disk",
    ),
}


def start(system: str, base_dir: str | None) -> contextlib.AbstractContextManager[PeerInfo]:
    if system == "dovecote":
        return dovecote(protocol="aws", flush="ack", base_dir=base_dir)
    return moto(base_dir=base_dir)


def run_phase(
    pool: ClientPool, kind: str, endpoint: str, url: str, args: argparse.Namespace, pids: list[int]
) -> Phase:
    """One phase over the pool: send this run's messages, or receive+delete them all."""
    shares = split(args.messages, pool.size) if kind == "send" else [args.messages] * pool.size
    tasks = [
        Task(kind, endpoint, url, share, args.threads, args.max_seconds, SIZE) for share in shares
    ]
    pool.prepare(tasks)
    before = cpu_seconds(pids)
    started, reports = pool.go(timeout=args.max_seconds + 90)
    broker = cpu_seconds(pids) - before
    return combine(kind, args.messages, started, reports, broker)


def show(system: str, phase: Phase) -> None:
    short = "" if phase.complete else f"  SHORT: {phase.messages:,} of {phase.target:,}"
    print(
        f"{system}: {phase.kind:<8} {phase.rate:9,.0f} msg/s  {phase.messages:,} msgs in "
        f"{phase.seconds:.2f}s; broker {phase.broker_us:7.1f} us/msg "
        f"({phase.cores(phase.broker_cpu_s):.2f} CPUs), clients {phase.client_us:7.1f} us/msg "
        f"({phase.cores(phase.client_cpu_s):.2f} CPUs){short}",
        flush=True,
    )
    if phase.duplicates:
        print(f"   {phase.duplicates} deliveries of messages already received in this phase")
    if phase.errors or phase.failed_entries:
        print(f"   {phase.errors} failed calls, {phase.failed_entries} failed entries")
    for text in phase.error_texts:
        print(f"   error: {text}")


def phase_result(system: str, phase: Phase, common: dict[str, Any], command: str) -> Result:
    name = "sqs.send" if phase.kind == "send" else "sqs.receive"
    return Result(
        name=name,
        system=system,
        figure=phase.rate,
        unit="msg/s",
        repeats=1,
        spread={},
        command=command,
        params={
            **common,
            "messages": phase.messages,
            "duplicates": phase.duplicates,
            "target": phase.target,
            "seconds": round(phase.seconds, 3),
            "complete": phase.complete,
            "broker_us_per_msg": round(phase.broker_us, 2),
            "client_us_per_msg": round(phase.client_us, 2),
            "broker_cpus": round(phase.cores(phase.broker_cpu_s), 2),
            "client_cpus": round(phase.cores(phase.client_cpu_s), 2),
            "calls": phase.calls,
            "errors": phase.errors,
            "failed_entries": phase.failed_entries,
            "error_texts": list(phase.error_texts),
        },
    )


def latency_result(system: str, run: Latency, common: dict[str, Any], command: str) -> Result:
    """The p99 (ms, from the send's start) as the figure; the rest in params."""
    params: dict[str, Any] = {
        **common,
        "rounds": run.rounds,
        "count": len(run.from_start_ns),
        "lost": run.lost,
        "error_texts": run.error_texts,
    }
    figure = 0.0
    if run.from_start_ns:
        start = latency_percentiles(run.from_start_ns).as_ms()
        ret = latency_percentiles(run.from_return_ns).as_ms()
        params.update({k: round(v, 3) for k, v in start.items() if k != "p999"})
        params.update({f"after_return_{k}": round(ret[k], 3) for k in ("p50", "p99")})
        figure = start["p99"]
    return Result("sqs.latency", system, figure, "ms", 1, {}, command, params)


def new_queue(client: Any, prefix: str) -> str:
    return client.create_queue(QueueName=f"{prefix}-{uuid.uuid4().hex[:8]}")["QueueUrl"]


def measure(
    system: str, info: PeerInfo, pool: ClientPool, args: argparse.Namespace, command: str
) -> list[Result]:
    """Both throughput phases and the latency rounds against one running system."""
    endpoint = f"http://{info.address}"
    pids = broker_pids(info)
    admin = sqs_client(endpoint)
    setting, promise = SETTINGS[system]
    common = {
        "version": info.version,
        "clients": pool.size,
        "threads": args.threads,
        "batch": BATCH,
        "size": SIZE,
        "max_seconds": args.max_seconds,
        "setting": setting,
        "promise": promise,
        "load_1min": round(os.getloadavg()[0], 2),  # other work on the machine skews figures
    }
    url = new_queue(admin, "bench-throughput")
    results = []
    for kind in ("send", "receive"):
        phase = run_phase(pool, kind, endpoint, url, args, pids)
        show(system, phase)
        results.append(phase_result(system, phase, common, command))
        if kind == "send":
            args = argparse.Namespace(**{**vars(args), "messages": phase.messages})
    run = measure_latency(
        endpoint, new_queue(admin, "bench-latency"), args.rounds, args.gap_ms / 1000, 30
    )
    r = latency_result(system, run, {**common, "gap_ms": args.gap_ms}, command)
    if r.params["count"]:
        print(
            f"{system}: long-poll latency over {r.params['count']} rounds: from send start "
            f"p50 {r.params['p50']:.2f} ms p99 {r.params['p99']:.2f} ms max "
            f"{r.params['max']:.2f} ms; from send return p50 "
            f"{r.params['after_return_p50']:.2f} ms p99 {r.params['after_return_p99']:.2f} ms",
            flush=True,
        )
    for text in run.error_texts:
        print(f"   latency error: {text}")
    if run.lost:
        print(f"   {run.lost} rounds lost (no arrival within 25 s)")
    results.append(r)
    return results


def profile_dovecote(pool: ClientPool, args: argparse.Namespace) -> None:
    """Dovecote's send and receive phases once more, under py-spy; print the hot spots."""
    from bench.profile import aggregate, record

    out = RESULTS_DIR / f"profile-{RUN_ID}-sqs.txt"
    out.parent.mkdir(parents=True, exist_ok=True)
    with start("dovecote", args.base_dir) as info:
        endpoint = f"http://{info.address}"
        url = new_queue(sqs_client(endpoint), "bench-profile")
        pids = broker_pids(info)

        def work() -> None:
            for kind in ("send", "receive"):
                show("dovecote (py-spy)", run_phase(pool, kind, endpoint, url, args, pids))

        record(pids[0], out, work)
    samples, own, total = aggregate(out.read_text().splitlines() if out.exists() else [])
    print(f"py-spy: {samples} samples -> {out}")
    for kind, counter in (("self", own), ("total", total)):
        for frame, count in counter.most_common(15):
            print(f"   {kind:<5} {100 * count / max(samples, 1):5.1f}%  {frame}")


@contextlib.contextmanager
def _pool(processes: int) -> Iterator[ClientPool]:
    pool = ClientPool(processes)
    try:
        yield pool
    finally:
        pool.close()


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    command = "python -m bench.sqs " + " ".join(sys.argv[1:] if argv is None else argv)
    command = command.strip()
    results: list[Result] = []
    started = time.monotonic()
    with _pool(args.clients) as pool:
        for system in args.systems:
            with start(system, args.base_dir) as info:
                print(
                    f"{system}: {info.version} on {info.address} (up in {info.startup_s:.1f}s; "
                    f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs)"
                )
                results += measure(system, info, pool, args, command)
        if args.profile:
            profile_dovecote(pool, args)
    by = {(r.name, r.system): r for r in results}
    for name in ("sqs.send", "sqs.receive"):
        mine, theirs = by.get((name, "dovecote")), by.get((name, "moto"))
        if mine and theirs and theirs.figure:
            verdict = "meets" if mine.figure >= GOAL_RATIO * theirs.figure else "misses"
            print(
                f"{name}: Dovecote / moto = {mine.figure / theirs.figure:.1f}x "
                f"({verdict} >= {GOAL_RATIO:.0f}x)"
            )
        if mine:
            us = mine.params["broker_us_per_msg"]
            verdict = "meets" if us <= GOAL_BROKER_US else "misses"
            print(f"{name}: Dovecote broker {us:.1f} us/msg ({verdict} <= {GOAL_BROKER_US:.0f})")
    lat = by.get(("sqs.latency", "dovecote"))
    if lat and lat.params["count"]:
        verdict = "meets" if lat.figure <= GOAL_P99_MS else "misses"
        print(f"sqs.latency: Dovecote p99 {lat.figure:.2f} ms ({verdict} <= {GOAL_P99_MS:.0f} ms)")
    path = append_results(results, "sqs.json")
    print(f"{len(results)} results appended to {path} in {time.monotonic() - started:.0f}s")
    return 0


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.sqs",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--messages", type=int, default=20_000, help="messages per system")
    parser.add_argument("--clients", type=int, default=4, help="client processes")
    parser.add_argument("--threads", type=int, default=2, help="threads (boto3 clients) each")
    parser.add_argument("--rounds", type=int, default=500, help="latency rounds")
    parser.add_argument(
        "--gap-ms", type=float, default=2.0, help="pause between the poll starting and the send"
    )
    parser.add_argument(
        "--max-seconds", type=float, default=10.0, help="cap on each throughput phase"
    )
    parser.add_argument("--systems", nargs="+", choices=SYSTEMS, default=list(SYSTEMS))
    parser.add_argument("--base-dir", default=None, help="where the brokers' data dirs go")
    parser.add_argument(
        "--profile", action="store_true", help="then py-spy Dovecote's phases and print hot spots"
    )
    args = parser.parse_args(argv)
    if args.messages < 1 or args.clients < 1 or args.threads < 1:
        parser.error("--messages, --clients and --threads must be at least 1")
    return args


if __name__ == "__main__":
    sys.exit(main())

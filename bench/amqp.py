"""AMQP 0-9-1: Dovecote against RabbitMQ, same client code, same run.

    python -m bench.amqp [--messages 20000] [--size 256] [--repeats 5] [--window 500]
                         [--clients pika aio-pika] [--systems dovecote rabbitmq]
                         [--base-dir DIR] [--no-docs]

Workloads, each with pika and with aio-pika, against each system in turn:

- ``publish-transient``: non-persistent messages to a durable queue, no
  confirms; timed from the first publish until the broker reports all of them
  in the queue (so client-side buffering does not count).
- ``publish-confirm``: persistent messages with publisher confirms, pipelined
  with up to ``--window`` unconfirmed messages (pika SelectConnection /
  aio-pika); timed until the last confirm. Each message's publish->confirm
  latency is recorded; p50/p99 are over all repeats.
- ``consume``: a queue pre-filled with persistent messages, consumed with
  prefetch 1000 and one basic.ack per message; timed from basic.consume to
  the last delivery.

Both brokers run side by side and take turns run by run, so drifting machine
noise hits them alike. Each figure is the median msgs/s of ``--repeats`` runs
(spread min..max) after one warm-up round. Results go to ``bench/results/amqp.json`` and, unless
``--no-docs``, to the "## AMQP vs RabbitMQ" section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import platform
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import aio_pika
import pika

from bench.common import (
    RUN_ID,
    Result,
    append_results,
    latency_percentiles,
    summarize,
)
from bench.peers import PeerInfo, peer
from bench.peers._proc import _proc_stat, descendants

DOCS = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"
SECTION = "## AMQP vs RabbitMQ"
WORKLOADS = ("publish-transient", "publish-confirm", "consume")
CLIENTS = ("pika", "aio-pika")
SYSTEMS = ("dovecote", "rabbitmq")
TIMEOUT = 120.0


@dataclass
class Params:
    messages: int
    size: int
    window: int
    prefetch: int = 1000

    @property
    def body(self) -> bytes:
        return os.urandom(self.size)


@dataclass
class Run:
    rate: float
    latencies_ns: list[int] = field(default_factory=list)
    cpu_s: float = 0.0  # the broker's CPU time (all its processes) during the run


# --- helpers -------------------------------------------------------------------


def broker_cpu_seconds(info: PeerInfo) -> float:
    """User+system CPU used so far by the broker's processes (and their threads)."""
    pids = set(info.pgids)
    for pid in info.pgids:
        pids.update(p.pid for p in descendants(pid))
    ticks = 0
    for pid in pids:
        row = _proc_stat(pid)
        if row is not None:
            ticks += int(row[11]) + int(row[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


def url_of(info: PeerInfo) -> str:
    return f"amqp://guest:guest@{info.host}:{info.port}/"


def fresh_queue(url: str) -> str:
    name = f"bench-{uuid.uuid4().hex[:8]}"
    with pika.BlockingConnection(pika.URLParameters(url)) as conn:
        conn.channel().queue_declare(name, durable=True)
    return name


def drop_queue(url: str, name: str) -> None:
    with pika.BlockingConnection(pika.URLParameters(url)) as conn:
        conn.channel().queue_delete(name)


def wait_count(channel, queue: str, count: int, deadline: float) -> None:
    while channel.queue_declare(queue, passive=True).method.message_count < count:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{queue} did not reach {count} messages")
        time.sleep(0.002)


def fill(url: str, queue: str, p: Params) -> None:
    """Put ``p.messages`` persistent messages in ``queue`` (not timed)."""
    body = p.body
    props = pika.BasicProperties(delivery_mode=2)
    with pika.BlockingConnection(pika.URLParameters(url)) as conn:
        channel = conn.channel()
        for _ in range(p.messages):
            channel.basic_publish("", queue, body, props)
        wait_count(channel, queue, p.messages, time.monotonic() + TIMEOUT)


# --- pika ------------------------------------------------------------------------


def pika_publish_transient(url: str, queue: str, p: Params) -> Run:
    body = p.body
    props = pika.BasicProperties(delivery_mode=1)
    with pika.BlockingConnection(pika.URLParameters(url)) as conn:
        channel = conn.channel()
        start = time.perf_counter()
        for _ in range(p.messages):
            channel.basic_publish("", queue, body, props)
        wait_count(channel, queue, p.messages, time.monotonic() + TIMEOUT)
        return Run(p.messages / (time.perf_counter() - start))


def pika_publish_confirm(url: str, queue: str, p: Params) -> Run:
    """SelectConnection with a window of unconfirmed persistent publishes."""
    body = p.body
    props = pika.BasicProperties(delivery_mode=2)
    sent_at: dict[int, int] = {}
    latencies: list[int] = []
    state = {"sent": 0, "done": 0, "lowest": 1, "start": 0.0, "end": 0.0, "error": None}
    holder: dict[str, object] = {}

    def publish_more() -> None:
        channel = holder["channel"]
        while state["sent"] < p.messages and state["sent"] - state["done"] < p.window:
            state["sent"] += 1
            sent_at[state["sent"]] = time.perf_counter_ns()
            channel.basic_publish("", queue, body, props)

    def on_confirm(frame) -> None:
        method = frame.method
        if isinstance(method, pika.spec.Basic.Nack):
            state["error"] = f"nack for {method.delivery_tag}"
        now = time.perf_counter_ns()
        tags = (
            range(state["lowest"], method.delivery_tag + 1)
            if method.multiple
            else [method.delivery_tag]
        )
        for tag in tags:
            started = sent_at.pop(tag, None)
            if started is not None:
                latencies.append(now - started)
                state["done"] += 1
        while state["lowest"] not in sent_at and state["lowest"] <= state["sent"]:
            state["lowest"] += 1
        if state["done"] >= p.messages:
            state["end"] = time.perf_counter()
            holder["connection"].close()
        else:
            publish_more()

    def on_channel(channel) -> None:
        holder["channel"] = channel

        def confirmed_on(_frame) -> None:
            state["start"] = time.perf_counter()
            publish_more()

        channel.confirm_delivery(on_confirm, callback=confirmed_on)

    def on_open(connection) -> None:
        connection.channel(on_open_callback=on_channel)

    def on_failed(_connection, error) -> None:
        state["error"] = repr(error)
        _connection.ioloop.stop()

    def on_closed(connection, _reason) -> None:
        connection.ioloop.stop()

    connection = pika.SelectConnection(
        pika.URLParameters(url),
        on_open_callback=on_open,
        on_open_error_callback=on_failed,
        on_close_callback=on_closed,
    )
    holder["connection"] = connection
    timer = connection.ioloop.call_later(TIMEOUT, connection.ioloop.stop)
    connection.ioloop.start()
    connection.ioloop.remove_timeout(timer)
    if state["error"] or not state["end"]:
        raise RuntimeError(f"confirmed publish failed: {state['error'] or 'timed out'}")
    return Run(p.messages / (state["end"] - state["start"]), latencies)


def pika_consume(url: str, queue: str, p: Params) -> Run:
    with pika.BlockingConnection(pika.URLParameters(url)) as conn:
        channel = conn.channel()
        channel.basic_qos(prefetch_count=p.prefetch)
        count = 0

        def on_message(ch, method, _props, _body) -> None:
            nonlocal count
            ch.basic_ack(method.delivery_tag)
            count += 1
            if count == p.messages:
                ch.stop_consuming()

        start = time.perf_counter()
        channel.basic_consume(queue, on_message)
        channel.start_consuming()
        return Run(p.messages / (time.perf_counter() - start))


# --- aio-pika ----------------------------------------------------------------------


async def _aio_publish_transient(url: str, queue: str, p: Params) -> Run:
    body = p.body
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel(publisher_confirms=False)
        exchange = channel.default_exchange
        start = time.perf_counter()
        for _ in range(p.messages):
            await exchange.publish(aio_pika.Message(body), routing_key=queue)
        deadline = time.monotonic() + TIMEOUT
        while (
            await channel.declare_queue(queue, passive=True)
        ).declaration_result.message_count < p.messages:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{queue} did not fill")
            await asyncio.sleep(0.002)
        return Run(p.messages / (time.perf_counter() - start))


async def _aio_publish_confirm(url: str, queue: str, p: Params) -> Run:
    body = p.body
    latencies: list[int] = []
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        exchange = channel.default_exchange
        window = asyncio.Semaphore(p.window)

        async def one() -> None:
            started = time.perf_counter_ns()
            try:
                await exchange.publish(
                    aio_pika.Message(body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                    routing_key=queue,
                )
            finally:
                window.release()
            latencies.append(time.perf_counter_ns() - started)

        start = time.perf_counter()
        tasks = []
        for _ in range(p.messages):
            await window.acquire()
            tasks.append(asyncio.ensure_future(one()))
        await asyncio.gather(*tasks)
        return Run(p.messages / (time.perf_counter() - start), latencies)


async def _aio_consume(url: str, queue: str, p: Params) -> Run:
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=p.prefetch)
        target = await channel.get_queue(queue, ensure=False)
        done = asyncio.get_running_loop().create_future()
        count = 0

        async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            nonlocal count
            await message.ack()
            count += 1
            if count == p.messages and not done.done():
                done.set_result(time.perf_counter())

        start = time.perf_counter()
        await target.consume(on_message)
        end = await asyncio.wait_for(done, TIMEOUT)
        return Run(p.messages / (end - start))


def aio(fn: Callable) -> Callable[[str, str, Params], Run]:
    def run(url: str, queue: str, p: Params) -> Run:
        return asyncio.run(asyncio.wait_for(fn(url, queue, p), TIMEOUT * 2))

    return run


RUNNERS: dict[tuple[str, str], Callable[[str, str, Params], Run]] = {
    ("publish-transient", "pika"): pika_publish_transient,
    ("publish-confirm", "pika"): pika_publish_confirm,
    ("consume", "pika"): pika_consume,
    ("publish-transient", "aio-pika"): aio(_aio_publish_transient),
    ("publish-confirm", "aio-pika"): aio(_aio_publish_confirm),
    ("consume", "aio-pika"): aio(_aio_consume),
}


# --- driver --------------------------------------------------------------------------


@dataclass
class Figure:
    system: str
    version: str
    workload: str
    client: str
    rates: list[float]
    latencies_ns: list[int]
    cpu_us_per_msg: list[float]


def one_run(info: PeerInfo, workload: str, client: str, p: Params) -> Run:
    """One timed run on a fresh queue (the consume queue is filled first, untimed)."""
    url = url_of(info)
    queue = fresh_queue(url)
    try:
        if workload == "consume":
            fill(url, queue, p)
        before = broker_cpu_seconds(info)
        run = RUNNERS[(workload, client)](url, queue, p)
        run.cpu_s = broker_cpu_seconds(info) - before
    finally:
        drop_queue(url, queue)
    return run


def measure(infos: list[PeerInfo], args: argparse.Namespace, p: Params) -> list[Figure]:
    """Every workload x client; the systems take turns run by run (ABAB...), so
    drifting machine noise hits them alike."""
    figures = []
    for workload in args.workloads:
        for client in args.clients:
            runs: dict[str, list[Run]] = {info.name: [] for info in infos}
            for attempt in range(args.repeats + 1):  # the first round is a warm-up
                for info in infos:
                    run = one_run(info, workload, client, p)
                    if attempt:
                        runs[info.name].append(run)
            for info in infos:
                done = runs[info.name]
                rates = [r.rate for r in done]
                cpu = [r.cpu_s * 1e6 / p.messages for r in done]
                latencies = [ns for r in done for ns in r.latencies_ns]
                stats = summarize(rates)
                print(
                    f"  {info.name:<9} {workload:<18} {client:<9} {stats.median:>9.0f} msg/s "
                    f"[{stats.min:.0f}..{stats.max:.0f}]  broker CPU "
                    f"{summarize(cpu).median:.0f} us/msg",
                    flush=True,
                )
                figures.append(
                    Figure(info.name, info.version, workload, client, rates, latencies, cpu)
                )
    return figures


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def report(figures: list[Figure], args: argparse.Namespace, p: Params, command: str) -> str:
    by = {(f.system, f.workload, f.client): f for f in figures}
    versions = {f.system: f.version for f in figures}
    lines = [
        SECTION,
        "",
        f"Measured {time.strftime('%Y-%m-%d')} (run `{RUN_ID}`) on {os.cpu_count()} CPUs "
        f"({cpu_model()}), Linux {platform.release()}, Python {platform.python_version()}; "
        f"broker and client on the same machine over loopback.",
        "",
        "```sh",
        command,
        "```",
        "",
        f"{p.messages} messages of {p.size} bytes per run; the brokers run side by side and "
        f"take turns run by run; median of {args.repeats} runs after one warm-up round, "
        f"[min..max]. Systems: "
        + "; ".join(f"{name}: {version}" for name, version in versions.items())
        + ". Both keep the defaults: a confirm for a persistent message on a durable queue "
        "comes after the data is on disk (Dovecote: group-commit fdatasync; RabbitMQ: its "
        "batched fsync).",
        "",
        "| workload | client | Dovecote msg/s | RabbitMQ msg/s | Dovecote/RabbitMQ "
        "| broker CPU µs/msg (Dovecote / RabbitMQ) |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for workload in args.workloads:
        for client in args.clients:
            mine = by.get(("dovecote", workload, client))
            theirs = by.get(("rabbitmq", workload, client))
            cells = []
            for fig in (mine, theirs):
                if fig is None:
                    cells.append("-")
                else:
                    s = summarize(fig.rates)
                    cells.append(f"{s.median:,.0f} [{s.min:,.0f}..{s.max:,.0f}]")
            ratio = "-"
            if mine and theirs:
                ratio = f"{summarize(mine.rates).median / summarize(theirs.rates).median:.2f}x"
            cpu = " / ".join(
                f"{summarize(fig.cpu_us_per_msg).median:.0f}" if fig else "-"
                for fig in (mine, theirs)
            )
            lines.append(f"| {workload} | {client} | {cells[0]} | {cells[1]} | {ratio} | {cpu} |")
    lines += [
        "",
        f"Publish->confirm latency (persistent, window of {p.window} unconfirmed), "
        "over all measured runs:",
        "",
        "| client | system | p50 ms | p99 ms |",
        "|---|---|---:|---:|",
    ]
    for client in args.clients:
        for system in args.systems:
            fig = by.get((system, "publish-confirm", client))
            if fig is None or not fig.latencies_ns:
                continue
            lat = latency_percentiles(fig.latencies_ns).as_ms()
            lines.append(f"| {client} | {system} | {lat['p50']:.2f} | {lat['p99']:.2f} |")
    lines += ["", NOTES.rstrip("\n")]
    return "\n".join(lines) + "\n"


NOTES = """\
How to read this. Every workload here runs one client connection, and the
Python client (pika or aio-pika) uses a whole CPU: it is the bottleneck for
both brokers, so the msg/s ratios mostly say which broker leaves the client
more room on a 2-CPU box, and they move by 10-30% between runs. The broker
CPU column (user + system time of the broker's processes and threads, fsync
included, per message) is the less noisy measure of each broker's own cost;
RabbitMQ's includes the Erlang schedulers' busy-waiting. Latencies follow
Little's law: with 500 confirms outstanding, p50 is about 500 / rate.

Where Dovecote's time goes (py-spy on the broker, these workloads):
publishing one message per packet (pika BlockingConnection, aio-pika) costs
a socket read, frame decoding and property checks (~15 us), building and
appending the record batch (pwritev, ~20 us); unconfirmed runs linger 1 ms
so consecutive packets share one append. The rest is fsync: a durable queue
only shows messages to consumers after the group commit, so even transient
messages cause fsync rounds (system time in the fsync threads), and with
confirms and a slow client each round carries few messages. Consuming with
one ack per packet costs a read and ack bookkeeping per ack; deliveries are
pulled and written in bursts (consumers are topped up once 1/8 of their
prefetch is free) and acks are settled in the core every 10 ms. Reading
records back (varint decoding of the record batches) is the largest single
cost of a delivery.
"""


def write_docs(section: str) -> None:
    text = DOCS.read_text() if DOCS.exists() else "# Benchmarks\n"
    start = text.find(SECTION)
    if start >= 0:
        end = text.find("\n## ", start + len(SECTION))
        text = text[:start] + section + ("" if end < 0 else text[end + 1 :])
    else:
        text = text.rstrip("\n") + "\n\n" + section
    DOCS.write_text(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.amqp", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--messages", type=int, default=20000)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--window", type=int, default=500)
    parser.add_argument("--clients", nargs="+", choices=CLIENTS, default=list(CLIENTS))
    parser.add_argument("--systems", nargs="+", choices=SYSTEMS, default=list(SYSTEMS))
    parser.add_argument("--workloads", nargs="+", choices=WORKLOADS, default=list(WORKLOADS))
    parser.add_argument("--base-dir", help="where the brokers' data dirs go (default: $TMPDIR)")
    parser.add_argument("--no-docs", action="store_true", help="do not touch docs/benchmarks.md")
    args = parser.parse_args(argv)
    p = Params(args.messages, args.size, args.window)
    command = "python -m bench.amqp " + " ".join(sys.argv[1:] if argv is None else argv)
    with contextlib.ExitStack() as stack:
        infos = []
        for system in args.systems:
            info = stack.enter_context(peer(system, base_dir=args.base_dir))
            print(f"{info.name}: {info.version} on {info.address} (up in {info.startup_s:.1f}s)")
            infos.append(info)
        figures = measure(infos, args, p)
    results = []
    for fig in figures:
        params = {
            "workload": fig.workload,
            "client": fig.client,
            "messages": p.messages,
            "size": p.size,
            "window": p.window,
            "version": fig.version,
        }
        if fig.latencies_ns:
            lat = latency_percentiles(fig.latencies_ns)
            params["confirm_latency_ms"] = lat.as_ms()
        results.append(
            Result.from_stats(
                f"amqp.{fig.workload}.{fig.client}",
                fig.system,
                summarize(fig.rates),
                "msg/s",
                command,
                **params,
            )
        )
    path = append_results(results, "amqp.json")
    section = report(figures, args, p, command.strip())
    print()
    print(section)
    print(f"results appended to {path}")
    if not args.no_docs:
        write_docs(section)
        print(f"wrote the '{SECTION}' section of {DOCS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

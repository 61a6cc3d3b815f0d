"""SQS load for bench/sqs.py: boto3 from several client processes, and long-poll latency.

The same code runs against every system. boto3 costs a millisecond or more
of client CPU per call, so one Python process cannot load a broker that is
much quicker than that: :class:`ClientPool` keeps a few client processes
(each with a few threads, one boto3 client per thread) alive for the whole
run, prepares them (clients made, connections opened) before a phase
starts, then starts them together and collects what each did, including its
own CPU time, so a report can say whether the clients were the bottleneck.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

#: The credentials and region every client uses (both systems accept any keys).
CREDENTIALS = {"aws_access_key_id": "x", "aws_secret_access_key": "x", "region_name": "us-east-1"}
BATCH = 10  # SQS's maximum entries per batch call
MAX_ERRORS_KEPT = 5


def sqs_client(endpoint: str, pool: int = 10) -> Any:
    """A boto3 SQS client for ``endpoint``: no retries, so a failure shows as it is."""
    import boto3
    from botocore.config import Config

    config = Config(retries={"max_attempts": 1}, max_pool_connections=pool, read_timeout=60)
    return boto3.session.Session().client(
        "sqs", endpoint_url=endpoint, config=config, **CREDENTIALS
    )


def body(size: int) -> str:
    """A message body of ``size`` ASCII characters (random hex, so nothing compresses it)."""
    return os.urandom(size // 2 + 1).hex()[:size]


def split(total: int, parts: int) -> list[int]:
    """``total`` spread over ``parts`` as evenly as possible (the first ones get the rest)."""
    base, rest = divmod(total, parts)
    return [base + (1 if i < rest else 0) for i in range(parts)]


# --- one phase in one process -----------------------------------------------------------


@dataclass(frozen=True)
class Task:
    """What every client process does in one phase.

    ``kind`` "send": this process sends ``messages`` bodies of ``size``
    bytes in batches of ten. "receive": every process receives and deletes
    until the shared counter reaches ``messages`` (the total). No new call
    starts after ``max_seconds``.
    """

    kind: str
    endpoint: str
    queue_url: str
    messages: int
    threads: int
    max_seconds: float
    size: int = 1024
    wait_seconds: int = 1


@dataclass
class Tally:
    """What one client process did in one phase (times are time.monotonic(), system-wide)."""

    messages: int = 0  # sent, or received and deleted (each delivery counts)
    calls: int = 0
    failed_entries: int = 0
    errors: int = 0
    error_texts: list[str] = field(default_factory=list)
    finished: float = 0.0  # when its last call that moved messages returned
    cpu_s: float = 0.0  # this process's CPU time (all threads) during the phase
    ids: list[str] = field(default_factory=list)  # MessageIds received, to find repeats

    def note_error(self, exc: BaseException) -> None:
        self.errors += 1
        text = f"{type(exc).__name__}: {exc}"
        if len(self.error_texts) < MAX_ERRORS_KEPT and text not in self.error_texts:
            self.error_texts.append(text)

    def add(self, other: Tally) -> None:
        self.messages += other.messages
        self.ids += other.ids
        self.calls += other.calls
        self.failed_entries += other.failed_entries
        self.errors += other.errors
        for text in other.error_texts:
            if len(self.error_texts) < MAX_ERRORS_KEPT and text not in self.error_texts:
                self.error_texts.append(text)
        self.finished = max(self.finished, other.finished)


def _send(client: Any, task: Task, count: int, deadline: float, report: Tally) -> None:
    payload = body(task.size)
    left = count
    while left > 0 and time.monotonic() < deadline:
        n = min(BATCH, left)
        entries = [{"Id": str(i), "MessageBody": payload} for i in range(n)]
        try:
            reply = client.send_message_batch(QueueUrl=task.queue_url, Entries=entries)
        except Exception as exc:  # counted and shown, the phase goes on
            report.note_error(exc)
            continue
        report.calls += 1
        report.messages += len(reply.get("Successful", ()))
        report.failed_entries += len(reply.get("Failed", ()))
        report.finished = time.monotonic()
        left -= n


def _receive(client: Any, task: Task, counter: Any, deadline: float, report: Tally) -> None:
    while counter.value < task.messages and time.monotonic() < deadline:
        try:
            got = client.receive_message(
                QueueUrl=task.queue_url,
                MaxNumberOfMessages=BATCH,
                WaitTimeSeconds=task.wait_seconds,
            ).get("Messages", [])
            report.calls += 1
            if not got:
                continue
            entries = [
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(got)
            ]
            reply = client.delete_message_batch(QueueUrl=task.queue_url, Entries=entries)
        except Exception as exc:
            report.note_error(exc)
            continue
        report.calls += 1
        report.failed_entries += len(reply.get("Failed", ()))
        report.messages += len(got)
        report.ids += [m["MessageId"] for m in got]
        with counter.get_lock():
            counter.value += len(got)
        report.finished = time.monotonic()


def run_threads(clients: Sequence[Any], task: Task, counter: Any, started: float) -> Tally:
    """Run ``task`` on one thread per client from ``started``; their reports summed."""
    deadline = started + task.max_seconds
    shares = split(task.messages, len(clients))
    reports = [Tally() for _ in clients]
    threads = []
    for i, client in enumerate(clients):
        if task.kind == "send":
            args: tuple = (client, task, shares[i], deadline, reports[i])
            target = _send
        else:
            args = (client, task, counter, deadline, reports[i])
            target = _receive
        threads.append(threading.Thread(target=target, args=args, daemon=True))
    cpu = time.process_time()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    total = Tally()
    for r in reports:
        total.add(r)
    total.cpu_s = time.process_time() - cpu
    return total


def _serve(conn: Connection, counter: Any) -> None:
    """A client process: prepare clients for a task, run it on "go", report; until None."""
    clients: dict[tuple[str, int], Any] = {}
    while True:
        try:
            task = conn.recv()
        except EOFError:
            return
        if task is None:
            return
        try:
            mine = []
            for i in range(task.threads):
                key = (task.endpoint, i)
                if key not in clients:
                    clients[key] = sqs_client(task.endpoint)
                    clients[key].list_queues(MaxResults=1)  # connect before the clock runs
                mine.append(clients[key])
            conn.send("ready")
            started = conn.recv()
            conn.send(run_threads(mine, task, counter, started))
        except Exception as exc:
            report = Tally()
            report.note_error(exc)
            conn.send(report)


class ClientPool:
    """``processes`` client processes (spawned, so no state is inherited) for every phase.

    ``serve`` is what each process runs: it takes a task, answers "ready"
    (or a failed :class:`Tally`), waits for the start time, answers with its
    Tally; until it gets None. The SQS one by default; bench/pubsub_load.py
    passes its own.
    """

    def __init__(self, processes: int, serve: Any = None, name: str = "sqs-client") -> None:
        ctx = multiprocessing.get_context("spawn")
        self.counter = ctx.Value("q", 0)
        self._conns: list[Connection] = []
        self._procs = []
        for i in range(processes):
            mine, theirs = ctx.Pipe()
            proc = ctx.Process(
                target=serve or _serve,
                args=(theirs, self.counter),
                name=f"{name}-{i}",
                daemon=True,
            )
            proc.start()
            theirs.close()
            self._conns.append(mine)
            self._procs.append(proc)

    @property
    def size(self) -> int:
        return len(self._conns)

    def prepare(self, tasks: Sequence[Task], timeout: float = 60.0) -> None:
        """Hand each process its task and wait until all have their clients connected."""
        self.counter.value = 0
        for conn, task in zip(self._conns, tasks, strict=True):
            conn.send(task)
        for conn in self._conns:
            if not conn.poll(timeout):
                raise TimeoutError("a client process did not get ready")
            answer = conn.recv()
            if answer != "ready":  # it failed while preparing and sent its report
                raise RuntimeError(f"client process failed to prepare: {answer.error_texts}")

    def go(self, timeout: float) -> tuple[float, list[Tally]]:
        """Start the prepared phase everywhere; (start time, each process's report)."""
        started = time.monotonic()
        for conn in self._conns:
            conn.send(started)
        reports = []
        for conn in self._conns:
            if not conn.poll(timeout):
                raise TimeoutError(f"a client process did not finish within {timeout:.0f}s")
            reports.append(conn.recv())
        return started, reports

    def close(self) -> None:
        for conn in self._conns:
            try:
                conn.send(None)
            except OSError:
                pass
        for proc in self._procs:
            proc.join(5)
            if proc.is_alive():
                proc.kill()
                proc.join(5)

    def __enter__(self) -> ClientPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --- what a phase gave ---------------------------------------------------------------------


@dataclass(frozen=True)
class Phase:
    """One phase over all client processes: the rate and what it cost on each side."""

    kind: str
    target: int  # messages the phase was asked to move
    messages: int  # distinct messages it moved
    seconds: float  # from the start to the last call that moved messages
    client_cpu_s: float
    broker_cpu_s: float
    calls: int
    failed_entries: int
    errors: int
    error_texts: tuple[str, ...]
    duplicates: int = 0  # deliveries of a message already received in this phase

    @property
    def rate(self) -> float:
        return self.messages / self.seconds if self.seconds > 0 else 0.0

    @property
    def complete(self) -> bool:
        return self.messages >= self.target and not self.errors and not self.failed_entries

    def per_message_us(self, cpu_s: float) -> float:
        return 1e6 * cpu_s / self.messages if self.messages else 0.0

    @property
    def broker_us(self) -> float:
        return self.per_message_us(self.broker_cpu_s)

    @property
    def client_us(self) -> float:
        return self.per_message_us(self.client_cpu_s)

    def cores(self, cpu_s: float) -> float:
        """How many CPUs ``cpu_s`` kept busy over the phase."""
        return cpu_s / self.seconds if self.seconds > 0 else 0.0


def combine(
    kind: str, target: int, started: float, reports: Sequence[Tally], broker_cpu_s: float
) -> Phase:
    """One :class:`Phase` from every process's report of it."""
    total = Tally()
    for r in reports:
        total.add(r)
    duplicates = len(total.ids) - len(set(total.ids))
    return Phase(
        kind=kind,
        target=target,
        messages=total.messages - duplicates,
        duplicates=duplicates,
        seconds=max(total.finished - started, 0.0),
        client_cpu_s=sum(r.cpu_s for r in reports),
        broker_cpu_s=broker_cpu_s,
        calls=total.calls,
        failed_entries=total.failed_entries,
        errors=total.errors,
        error_texts=tuple(total.error_texts),
    )


# --- long-poll latency ------------------------------------------------------------------------

#: The body that tells the long-polling process to stop.
STOP = "bench-stop"


@dataclass
class Latency:
    """Per round: a waiting long poll's return minus the send's start, and minus its return."""

    from_start_ns: list[int] = field(default_factory=list)
    from_return_ns: list[int] = field(default_factory=list)
    rounds: int = 0
    lost: int = 0  # rounds whose message did not come back within the wait
    error_texts: list[str] = field(default_factory=list)


def _long_poll(conn: Connection, endpoint: str, queue_url: str) -> None:
    """The receiving process: says "waiting", blocks in receive_message(WaitTimeSeconds=20),
    stamps each arrival (perf_counter_ns is CLOCK_MONOTONIC, the same clock in every
    process), deletes it; until the STOP body arrives or the pipe closes."""
    try:
        client = sqs_client(endpoint)
        client.list_queues(MaxResults=1)  # connect before the first round
        while True:
            conn.send(("waiting", 0, ""))
            got = client.receive_message(
                QueueUrl=queue_url, MaxNumberOfMessages=1, WaitTimeSeconds=20
            ).get("Messages", [])
            now = time.perf_counter_ns()
            for m in got:
                conn.send(("arrived", now, m["Body"]))
                client.delete_message(QueueUrl=queue_url, ReceiptHandle=m["ReceiptHandle"])
                if m["Body"] == STOP:
                    return
    except (BrokenPipeError, EOFError):
        return
    except Exception as exc:  # shown by the measuring side
        conn.send(("error", 0, f"{type(exc).__name__}: {exc}"))


def _await_event(conn: Connection, kind: str, timeout: float, tag: str = "") -> tuple[int, str]:
    """The next ``kind`` event from the receiving process (arrivals of other bodies skipped)."""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0 or not conn.poll(left):
            raise TimeoutError(f"no {kind!r} from the receiving process within {timeout:.0f}s")
        event, stamp, text = conn.recv()
        if event == "error":
            raise RuntimeError(text)
        if event == kind and (not tag or text == tag):
            return stamp, text


def measure_latency(
    endpoint: str, queue_url: str, rounds: int, gap_s: float, max_seconds: float
) -> Latency:
    """``rounds`` of: a receiver already waiting in a long poll, one send_message, its arrival.

    The receiver is its own process, so its boto3 work and the sender's do not
    share a GIL. Before each send the sender waits until the receiver is about
    to call receive_message, then ``gap_s`` more so the poll has reached the
    server.
    """
    result = Latency()
    sender = sqs_client(endpoint)
    sender.list_queues(MaxResults=1)  # connect before the clock runs
    ctx = multiprocessing.get_context("spawn")
    conn, theirs = ctx.Pipe()
    receiver = ctx.Process(
        target=_long_poll, args=(theirs, endpoint, queue_url), name="sqs-long-poll", daemon=True
    )
    receiver.start()
    theirs.close()
    deadline = time.monotonic() + max_seconds
    try:
        _await_event(conn, "waiting", 60)  # the process has started and connected
        for i in range(rounds):
            if time.monotonic() > deadline:
                break
            time.sleep(gap_s)
            tag = f"round-{i}"
            sent = time.perf_counter_ns()
            sender.send_message(QueueUrl=queue_url, MessageBody=tag)
            returned = time.perf_counter_ns()
            result.rounds += 1
            try:
                arrived, _ = _await_event(conn, "arrived", 25, tag)
            except TimeoutError:
                result.lost += 1
                continue
            result.from_start_ns.append(arrived - sent)
            result.from_return_ns.append(arrived - returned)
            _await_event(conn, "waiting", 25)
    except (TimeoutError, RuntimeError, OSError) as exc:
        result.error_texts.append(f"{type(exc).__name__}: {exc}")
    finally:
        if receiver.is_alive():
            try:
                sender.send_message(QueueUrl=queue_url, MessageBody=STOP)
            except Exception as exc:
                result.error_texts.append(f"stopping the receiver: {exc}")
        receiver.join(25)
        if receiver.is_alive():
            receiver.kill()
            receiver.join(5)
        conn.close()
    return result

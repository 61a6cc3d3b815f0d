"""Ten thousand SQS long polls held open at once (ReceiveMessage with
WaitTimeSeconds=20, on ten queues), sent by raw asyncio connections, while
a boto3 client sends, receives and deletes on a queue of its own.

What must hold: the active client is never starved (each round trip under
ROUND_TRIP_LIMIT, p99 reported and under P99_LIMIT: a held poll costs a
waiter on its queue, not work per loop turn); memory per held poll is
reported and bounded; one message sent to a queue with a thousand waiting
pollers wakes exactly one of them, promptly; and once the pollers close
their connections and the broker has closed its ends (its open files fall
back), their polls are gone: a message sent afterwards is receivable at
once (a departed client's poll must not lease it for the visibility
timeout).

Open files: every poll is a socket here and in the broker. The soft limit
of RLIMIT_NOFILE is raised to the hard limit in this process before the
broker starts (the child inherits it); if that allows fewer than POLLS
connections, the test holds as many as it can and reports the number.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import threading
import time
from dataclasses import dataclass, field

from tests.faults.fuzzing import MiB
from tests.faults.harness import Broker, wait_until
from tests.faults.sqs import create_queue, sqs_client

POLLS = 10_000
QUEUES = 10
SPARE_FILES = 1000  # for the broker's own files and the clients' sockets
ROUND_TRIP_LIMIT = 5.0
P99_LIMIT = 1.0
WAKE_LIMIT = 1.0
KIB_PER_POLL_LIMIT = 64
ACTIVE_S = 3.0


def raise_open_files() -> int:
    """Raise this process's soft RLIMIT_NOFILE to its hard limit; the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = max(soft, 1 << 20)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        return hard
    except (ValueError, OSError):
        return soft


@dataclass
class Answer:
    queue: int
    at: float
    messages: int


@dataclass
class Pollers:
    """Raw HTTP connections, one long poll each, run by an event loop in a
    thread: open them, see who is answered, close them all."""

    address: tuple[str, int]
    urls: list[str]
    answers: list[Answer] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    held: int = 0
    loop: asyncio.AbstractEventLoop = field(default_factory=asyncio.new_event_loop)
    _writers: list[asyncio.StreamWriter] = field(default_factory=list)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._thread = threading.Thread(target=self.loop.run_forever, name="pollers", daemon=True)
        self._thread.start()

    def _run(self, coro, timeout: float = 120):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def open(self, count: int) -> None:
        self._run(self._open(count))

    async def _open(self, count: int) -> None:
        gate = asyncio.Semaphore(200)  # connects in flight at once (the listen backlog)

        async def one(index: int) -> None:
            async with gate:
                queue = index % len(self.urls)
                body = json.dumps(
                    {"QueueUrl": self.urls[queue], "WaitTimeSeconds": 20, "MaxNumberOfMessages": 1}
                ).encode()
                try:
                    reader, writer = await asyncio.open_connection(*self.address)
                except OSError as err:
                    self.errors.append(f"connect: {err}")
                    return
                writer.write(
                    b"POST / HTTP/1.1\r\nHost: poll\r\nX-Amz-Target: AmazonSQS.ReceiveMessage\r\n"
                    b"Content-Type: application/x-amz-json-1.0\r\nContent-Length: %d\r\n\r\n"
                    % len(body)
                    + body
                )
                self._writers.append(writer)
                self.held += 1
            self._tasks.append(asyncio.ensure_future(self._await_answer(queue, reader)))

        await asyncio.gather(*(one(i) for i in range(count)))

    async def _await_answer(self, queue: int, reader: asyncio.StreamReader) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
            body = json.loads(await reader.readexactly(length))
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
            return  # closed (by us, at the end)
        if not head.startswith(b"HTTP/1.1 200 "):
            self.errors.append(f"poll answered {head[:40]!r}")
        self.answers.append(Answer(queue, time.monotonic(), len(body.get("Messages", []))))

    def close(self) -> None:
        async def close_all() -> None:
            for writer in self._writers:
                writer.transport.abort()
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)

        self._run(close_all())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)


def round_trips(client, url: str, seconds: float) -> list[float]:
    """Send one message, receive it, delete it, for ``seconds``: each round trip's time."""
    out: list[float] = []
    deadline = time.monotonic() + seconds
    n = 0
    while time.monotonic() < deadline:
        started = time.monotonic()
        client.send_message(QueueUrl=url, MessageBody=f"rt-{n}")
        got: list = []
        while not got and time.monotonic() - started < ROUND_TRIP_LIMIT:
            got = client.receive_message(QueueUrl=url, WaitTimeSeconds=1).get("Messages", [])
        assert got and got[0]["Body"] == f"rt-{n}", f"round trip {n} starved or wrong: {got}"
        client.delete_message(QueueUrl=url, ReceiptHandle=got[0]["ReceiptHandle"])
        out.append(time.monotonic() - started)
        n += 1
    return out


def p99(values: list[float]) -> float:
    ordered = sorted(values) or [0.0]
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def open_files(broker: Broker) -> int:
    return len(os.listdir(f"/proc/{broker.pid}/fd"))


def stable_rss(broker: Broker) -> int:
    """The broker's RSS once it stops changing by more than 1 MiB per 200 ms."""
    last = broker.rss()
    for _ in range(25):
        time.sleep(0.2)
        now = broker.rss()
        if abs(now - last) < MiB:
            return now
        last = now
    return last


def test_ten_thousand_long_polls_do_not_starve_an_active_client(tmp_path, fault_report):
    limit = raise_open_files()
    polls = min(POLLS, limit - SPARE_FILES)
    broker = Broker(tmp_path / "data").start()
    pollers: Pollers | None = None
    try:
        client = sqs_client(broker.aws_endpoint, read_timeout=30)
        active = create_queue(broker, "active")
        urls = [create_queue(broker, f"poll-{q}") for q in range(QUEUES)]
        round_trips(client, active, 0.5)  # warm up
        alone = round_trips(client, active, ACTIVE_S / 2)

        before = stable_rss(broker)
        files_before = open_files(broker)
        host, port = broker.addresses["aws"].rsplit(":", 1)
        pollers = Pollers((host, int(port)), urls)
        opening = time.monotonic()
        pollers.open(polls)
        open_s = time.monotonic() - opening
        held_rss = stable_rss(broker)
        loaded = round_trips(client, active, ACTIVE_S)
        early = len(pollers.answers)  # none: nothing was sent, and 20 s have not passed

        sent = time.monotonic()
        client.send_message(QueueUrl=urls[0], MessageBody="wake")
        wait_until(lambda: any(a.messages for a in pollers.answers), WAKE_LIMIT * 5, "a wake")
        time.sleep(0.5)  # a second wake would show by now
        woken = [a for a in pollers.answers if a.messages]
        wake_s = woken[0].at - sent
        held_s = time.monotonic() - opening

        poll_errors = pollers.errors
        pollers.close()
        pollers = None
        # The broker has seen the pollers go once it has closed their sockets.
        closing = time.monotonic()
        wait_until(lambda: open_files(broker) < files_before + 50, 30, "the polls to be closed")
        close_s = time.monotonic() - closing
        late = time.monotonic()
        client.send_message(QueueUrl=urls[1], MessageBody="after")
        got = client.receive_message(QueueUrl=urls[1], WaitTimeSeconds=0).get("Messages", [])
        after_s = time.monotonic() - late
        freed_rss = stable_rss(broker)
        alive = broker.settle(0.1)
    finally:
        if pollers is not None:
            pollers.close()
        broker.stop()

    kib_per_poll = (held_rss - before) / 1024 / polls
    fault_report(
        f"{polls} SQS long polls held",
        runs=1,
        crashes=broker.crashes,
        polls=polls,
        open_files_limit=limit,
        open_s=round(open_s, 1),
        p99_alone_ms=round(p99(alone) * 1000),
        p99_loaded_ms=round(p99(loaded) * 1000),
        round_trips_loaded=len(loaded),
        kib_per_poll=round(kib_per_poll, 1),
        rss_held_mib=round(held_rss / MiB),
        rss_freed_mib=round(freed_rss / MiB),
        wake_ms=round(wake_s * 1000),
        woken=len(woken),
        close_ms=round(close_s * 1000),
        receive_after_close_ms=round(after_s * 1000),
        held_s=round(held_s, 1),
    )
    assert alive and broker.crashes == 0
    assert not poll_errors, poll_errors[:5]
    assert early == 0 or held_s > 20, f"{early} polls answered before any send"
    assert polls >= min(POLLS, 1000), f"only {polls} open files allowed"
    assert len(woken) == 1 and woken[0].queue == 0, f"one send woke {woken}"
    assert wake_s < WAKE_LIMIT, f"the woken poller answered after {wake_s:.2f}s"
    assert p99(loaded) < P99_LIMIT, f"active p99 {p99(loaded):.2f}s with {polls} polls held"
    assert kib_per_poll < KIB_PER_POLL_LIMIT, f"{kib_per_poll:.0f} KiB per held poll"
    assert [m["Body"] for m in got] == ["after"], "a closed poller's poll took the message"

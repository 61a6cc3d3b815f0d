"""Pub/Sub load for bench/pubsub.py: google-cloud-pubsub from several client processes.

The same client code runs against every system; ``PUBSUB_EMULATOR_HOST``
(read when a client is made) points it at one. The Python client costs tens
of microseconds of CPU per message on the publishing and the receiving side,
so one process can cap a quick broker: the pool of client processes from
bench/sqs_load.py (:class:`~bench.sqs_load.ClientPool`) runs them here too,
each with its clients made and connected before a phase starts, and each
reports its own CPU time, so a report can say who was the bottleneck.

Throughput phases: ``publish`` (PublisherClient with batching, every future
waited for) and ``pull`` (SubscriberClient.subscribe with flow control, the
callback acks; until the processes together have received the total).
Latency: messages at a fixed rate from this process, received by a
subscriber in its own process; the publish() call's time to the callback's.
"""

from __future__ import annotations

import collections
import logging
import multiprocessing
import os
import threading
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

from bench.sqs_load import MAX_ERRORS_KEPT, Tally

PROJECT = "bench"
SENT_NS = "sent_ns"  # attribute: perf_counter_ns() at the publish() call (CLOCK_MONOTONIC)
WARM = "warm"  # attribute of the latency phase's warm-up messages


def use_host(host: str) -> None:
    """Point every client made from now on in this process at ``host``."""
    os.environ["PUBSUB_EMULATOR_HOST"] = host


@dataclass(frozen=True)
class Batching:
    """PublisherClient settings: batches, and publisher flow control (blocks when exceeded)."""

    max_messages: int = 1000
    max_bytes: int = 1_000_000  # the client's default; Pub/Sub's limit per request is 10 MB
    max_latency_s: float = 0.01
    outstanding_messages: int = 10_000
    outstanding_bytes: int = 32 * 1024 * 1024


def publisher_client(batching: Batching) -> Any:
    from google.cloud import pubsub_v1
    from google.cloud.pubsub_v1.types import (
        BatchSettings,
        LimitExceededBehavior,
        PublisherOptions,
        PublishFlowControl,
    )

    return pubsub_v1.PublisherClient(
        batch_settings=BatchSettings(
            max_bytes=batching.max_bytes,
            max_latency=batching.max_latency_s,
            max_messages=batching.max_messages,
        ),
        publisher_options=PublisherOptions(
            flow_control=PublishFlowControl(
                message_limit=batching.outstanding_messages,
                byte_limit=batching.outstanding_bytes,
                limit_exceeded_behavior=LimitExceededBehavior.BLOCK,
            )
        ),
    )


@dataclass(frozen=True)
class Task:
    """What every client process does in one phase.

    ``kind`` "publish": publish ``messages`` messages of ``size`` bytes to
    the topic ``path``. "pull": subscribe to the subscription ``path`` and
    ack until the processes together have received ``messages`` (the
    total). No new publish, and no wait for more messages, after
    ``max_seconds``.
    """

    kind: str
    host: str
    path: str
    messages: int
    size: int
    max_seconds: float
    batching: Batching = Batching()
    flow_messages: int = 1000  # the subscriber's FlowControl(max_messages=...)


def _publish(client: Any, task: Task, deadline: float, report: Tally) -> None:
    payload = os.urandom(task.size)  # random, so nothing on the way compresses it
    futures = []
    for _ in range(task.messages):
        if time.monotonic() >= deadline:
            break
        futures.append(client.publish(task.path, payload))
    report.calls = len(futures)
    for future in futures:
        try:
            future.result(timeout=max(deadline - time.monotonic(), 0) + 30)
        except Exception as exc:  # counted and shown, the phase goes on
            report.note_error(exc)
            continue
        report.messages += 1
    if report.messages:
        report.finished = time.monotonic()  # when the last future had resolved


RAW_IN_FLIGHT = 4  # Publish calls each raw publisher keeps going at once
PUBLISH_METHOD = "/google.pubsub.v1.Publisher/Publish"


class RawPublisher:
    """Publish requests built and serialized once, sent as bytes over a plain
    gRPC channel: a load generator that costs the client a few microseconds
    per request, not 30 per message as PublisherClient does, so the figure is
    what the broker can take. Same batching as :class:`Batching` (1,000
    messages or 1 MB a request), and the same requests for every system."""

    def __init__(self, host: str) -> None:
        import grpc

        self.channel = grpc.insecure_channel(
            host,
            options=[("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", -1)],
        )
        self.call = self.channel.unary_unary(PUBLISH_METHOD)

    def close(self) -> None:
        self.channel.close()


def _publish_raw(client: RawPublisher, task: Task, deadline: float, report: Tally) -> None:
    from google.pubsub_v1 import types

    batching = task.batching
    per = max(1, min(batching.max_messages, batching.max_bytes // max(task.size, 1)))
    payload = os.urandom(task.size)

    def request(count: int) -> bytes:
        pb = types.PublishRequest.pb()(topic=task.path)
        for _ in range(count):
            pb.messages.add(data=payload)
        return pb.SerializeToString()

    full = request(per)
    remaining = task.messages
    in_flight: collections.deque[tuple[Any, int]] = collections.deque()
    while remaining > 0 or in_flight:
        while remaining > 0 and len(in_flight) < RAW_IN_FLIGHT and time.monotonic() < deadline:
            count = min(per, remaining)
            body = full if count == per else request(count)
            in_flight.append((client.call.future(body, timeout=60), count))
            remaining -= count
            report.calls += 1
        if not in_flight:
            break
        future, count = in_flight.popleft()
        try:
            future.result()
        except Exception as exc:  # counted and shown, the phase goes on
            report.note_error(exc)
            continue
        report.messages += count
        report.finished = time.monotonic()


def _pull(client: Any, task: Task, counter: Any, deadline: float, report: Tally) -> None:
    from google.cloud.pubsub_v1.types import FlowControl

    lock = threading.Lock()
    enough = threading.Event()

    def callback(message: Any) -> None:
        message.ack()
        now = time.monotonic()
        with lock:
            report.messages += 1
            report.ids.append(message.message_id)
            report.finished = now
        with counter.get_lock():
            counter.value += 1
            if counter.value >= task.messages:
                enough.set()

    future = client.subscribe(
        task.path, callback, flow_control=FlowControl(max_messages=task.flow_messages)
    )
    while counter.value < task.messages and time.monotonic() < deadline:
        enough.wait(0.005)
    future.cancel()
    try:
        future.result(timeout=10)
    except Exception as exc:
        if type(exc).__name__ not in ("CancelledError",):
            report.note_error(exc)
    report.calls = 1


def subscriber_client(host: str) -> Any:
    """A SubscriberClient for ``host`` whose channel takes responses of any size.

    With PUBSUB_EMULATOR_HOST the client makes a plain
    ``grpc.insecure_channel`` whose default cap on a received message is
    4 MiB, while its channel to Google's service has none. Google's emulator
    packs 100 messages into a StreamingPull response, so a 64 KiB backlog
    (6.5 MB a response) never reaches a default client: the stream fails
    and is reopened forever. The benchmark gives both systems the uncapped
    channel the client uses against the real service.
    """
    import grpc
    from google.cloud import pubsub_v1
    from google.pubsub_v1.services.subscriber.transports import SubscriberGrpcTransport

    channel = grpc.insecure_channel(host, options=[("grpc.max_receive_message_length", -1)])
    return pubsub_v1.SubscriberClient(transport=SubscriberGrpcTransport(channel=channel))


class StreamErrors(logging.Handler):
    """The subscriber's reopened-stream errors (logged at DEBUG, never raised), kept for
    the report: a stream that fails and reopens forever otherwise shows only as 0 msg/s."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.texts: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        wanted = "stream error" in text and "Locally cancelled" not in text
        if wanted and len(self.texts) < MAX_ERRORS_KEPT and text not in self.texts:
            self.texts.append(text)

    @classmethod
    def install(cls) -> StreamErrors:
        handler = cls()
        logger = logging.getLogger("subscriber-streams")
        logger.setLevel(logging.DEBUG)
        logger.propagate = False
        logger.addHandler(handler)
        return handler


def _quiet_closed_channels() -> None:
    """A stream thread left by a cancelled subscribe logs a traceback when its client's
    channel is closed under it (:func:`_close`); that end is expected, so drop only it."""

    def keep(record: logging.LogRecord) -> bool:
        return "Channel closed" not in record.getMessage()

    logging.getLogger("google.api_core.bidi").addFilter(keep)


def _close(client: Any) -> None:
    """Close a client and its channel, so a stream it left reopening stops (and stops
    logging errors that the next system's phase would be blamed for)."""
    try:
        client.stop() if hasattr(client, "stop") else client.close()
    except Exception:  # a client of a system that is gone may fail to flush: nothing to keep
        pass


def _client_for(clients: dict[tuple, Any], task: Task) -> Any:
    """This process's client for the task, made (and connected) once per host and kind."""
    key = (task.kind, task.host, task.batching)
    for old in [k for k in clients if k[1] != task.host]:  # a system that has been stopped
        _close(clients.pop(old))
    if key not in clients:
        use_host(task.host)
        if task.kind == "publish":
            clients[key] = publisher_client(task.batching)
        elif task.kind == "rawpublish":
            clients[key] = RawPublisher(task.host)
        else:
            clients[key] = subscriber_client(task.host)
    client = clients[key]
    if task.kind == "rawpublish":
        import grpc

        grpc.channel_ready_future(client.channel).result(
            timeout=30
        )  # connect before the clock runs
    elif task.kind == "publish":
        client.get_topic(topic=task.path)  # connect before the clock runs
    else:
        client.get_subscription(subscription=task.path)
    return client


def serve(conn: Connection, counter: Any) -> None:
    """A client process for :class:`~bench.sqs_load.ClientPool`: a task, "ready", the
    start time, its :class:`Tally`; until None."""
    clients: dict[tuple, Any] = {}
    stream_errors = StreamErrors.install()
    _quiet_closed_channels()
    while True:
        try:
            task = conn.recv()
        except EOFError:
            return
        if task is None:
            return
        try:
            client = _client_for(clients, task)
            conn.send("ready")
            started = conn.recv()
            report = Tally()
            cpu = time.process_time()
            deadline = started + task.max_seconds
            if task.kind == "publish":
                _publish(client, task, deadline, report)
            elif task.kind == "rawpublish":
                _publish_raw(client, task, deadline, report)
            else:
                stream_errors.texts.clear()
                _pull(client, task, counter, deadline, report)
                for text in stream_errors.texts:
                    report.note_error(RuntimeError(text))
            report.cpu_s = time.process_time() - cpu
            conn.send(report)
        except Exception as exc:
            report = Tally()
            report.note_error(exc)
            conn.send(report)


# --- end-to-end latency at a fixed rate ----------------------------------------------------


@dataclass
class Latency:
    """Per message: the callback's time minus the publish() call's time."""

    latencies_ns: list[int] = field(default_factory=list)
    published: int = 0
    lost: int = 0  # published but not received within the wait
    late_ns: int = 0  # how far the publisher fell behind its schedule, at worst
    seconds: float = 0.0  # from the first publish to the last
    client_cpu_s: float = 0.0  # the publishing and the receiving process
    error_texts: list[str] = field(default_factory=list)


def _receive(conn: Connection, host: str, subscription: str) -> None:
    """The receiving process: stamps each message at its callback, acks it; says "warm" at
    the first warm-up message; on "stop", sends its latencies and CPU time and ends."""
    try:
        use_host(host)
        from google.cloud import pubsub_v1

        client = pubsub_v1.SubscriberClient()
        client.get_subscription(subscription=subscription)
        latencies: list[int] = []
        warm = threading.Event()
        lock = threading.Lock()

        def callback(message: Any) -> None:
            now = time.perf_counter_ns()
            message.ack()
            if WARM in message.attributes:
                if not warm.is_set():
                    warm.set()
                    conn.send(("warm", 0))
                return
            with lock:
                latencies.append(now - int(message.attributes[SENT_NS]))

        cpu = time.process_time()
        future = client.subscribe(subscription, callback)
        while not conn.poll(0.05):
            if future.done():
                future.result()  # raises what stopped the stream
        conn.recv()
        future.cancel()
        with lock:
            conn.send(("done", (list(latencies), time.process_time() - cpu)))
    except (BrokenPipeError, EOFError):
        return
    except Exception as exc:
        conn.send(("error", f"{type(exc).__name__}: {exc}"))


def _await(conn: Connection, kind: str, timeout: float) -> Any:
    if not conn.poll(timeout):
        raise TimeoutError(f"no {kind!r} from the receiving process within {timeout:.0f}s")
    event, value = conn.recv()
    if event == "error":
        raise RuntimeError(value)
    if event != kind:
        raise RuntimeError(f"expected {kind!r} from the receiving process, got {event!r}")
    return value


def measure_latency(
    host: str, topic: str, subscription: str, rate: float, seconds: float, size: int
) -> Latency:
    """``rate`` messages a second for ``seconds`` from here; each one's publish() call to
    its callback in a subscriber process (its own GIL). Unbatched publishes
    (max_messages=1), so the client's batching does not add its wait."""
    result = Latency()
    use_host(host)
    publisher = publisher_client(Batching(max_messages=1, max_latency_s=0.001))
    publisher.get_topic(topic=topic)
    ctx = multiprocessing.get_context("spawn")
    conn, theirs = ctx.Pipe()
    receiver = ctx.Process(
        target=_receive, args=(theirs, host, subscription), name="pubsub-latency", daemon=True
    )
    receiver.start()
    theirs.close()
    payload = os.urandom(size)
    try:
        # Warm-up messages until the receiver's stream delivers one.
        deadline = time.monotonic() + 60
        while not conn.poll(0.2):
            if time.monotonic() > deadline or not receiver.is_alive():
                raise TimeoutError("the receiving process got no warm-up message within 60s")
            publisher.publish(topic, b"warm", **{WARM: "1"}).result(timeout=10)
        _await(conn, "warm", 1)
        time.sleep(0.5)  # let the other warm-up messages drain
        cpu = time.process_time()
        total = int(rate * seconds)
        futures = []
        start = time.perf_counter_ns()
        for i in range(total):
            due = start + int(i * 1e9 / rate)
            if (wait := due - time.perf_counter_ns()) > 0:
                time.sleep(wait / 1e9)
            now = time.perf_counter_ns()
            result.late_ns = max(result.late_ns, now - due)
            futures.append(publisher.publish(topic, payload, **{SENT_NS: str(now)}))
        result.seconds = (time.perf_counter_ns() - start) / 1e9
        for future in futures:
            try:
                future.result(timeout=30)
                result.published += 1
            except Exception as exc:
                if len(result.error_texts) < 5:
                    result.error_texts.append(f"publish: {type(exc).__name__}: {exc}")
        result.client_cpu_s = time.process_time() - cpu
        time.sleep(1.0)  # the last ones' way through; a later arrival counts as lost
        conn.send("stop")
        latencies, receiver_cpu = _await(conn, "done", 30)
        result.latencies_ns = latencies
        result.client_cpu_s += receiver_cpu
        result.lost = max(result.published - len(latencies), 0)
    except (TimeoutError, RuntimeError, OSError, EOFError) as exc:
        result.error_texts.append(f"{type(exc).__name__}: {exc}")
    finally:
        publisher.stop()
        receiver.join(15)
        if receiver.is_alive():
            receiver.kill()
            receiver.join(5)
        conn.close()
    return result

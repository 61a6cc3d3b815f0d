"""Crash loop: an idempotent confluent-kafka producer (acks=all) writes
numbered records to three partitions while a consumer group commits as it
goes, and the broker is killed with SIGKILL at random moments and restarted
on the same ports. Every acknowledged record must be readable exactly once,
at the offset it was acknowledged with, in production order per partition;
after every restart each committed offset is at least the last commit the
broker acknowledged before it died."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import confluent_kafka

from tests.faults.harness import Broker, create_topic, read_topic, scaled, seeded

TOPIC = "crash-loop"
GROUP = "crash-loop-group"
PARTITIONS = 3
KILLS = scaled(20)
RATE = 5_000  # records per second offered to the producer


@dataclass
class Progress:
    """What the clients saw acknowledged, shared between their threads."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    acked: dict[int, tuple[int, int]] = field(default_factory=dict)  # n -> (partition, offset)
    failed: list[str] = field(default_factory=list)
    committed: dict[int, int] = field(default_factory=dict)  # partition -> offset acked
    commits: int = 0
    consumed: int = 0
    stop: threading.Event = field(default_factory=threading.Event)


def produce(
    bootstrap: str, progress: Progress
) -> tuple[confluent_kafka.Producer, threading.Thread]:
    producer = confluent_kafka.Producer(
        {
            "bootstrap.servers": bootstrap,
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 5,
            "message.timeout.ms": 300_000,  # outlive every restart
            "reconnect.backoff.ms": 50,
            "reconnect.backoff.max.ms": 300,
            "retry.backoff.ms": 50,
            "log_level": 0,  # the kills make librdkafka complain on every restart
        }
    )

    def delivered(err, msg) -> None:
        n = int(msg.value())
        with progress.lock:
            if err is None:
                progress.acked[n] = (msg.partition(), msg.offset())
            else:
                progress.failed.append(f"{n}: {err}")

    def run() -> None:
        n = 0
        started = time.monotonic()
        while not progress.stop.is_set():
            due = int((time.monotonic() - started) * RATE)
            while n < due and len(producer) < 50_000:
                producer.produce(TOPIC, b"%d" % n, partition=n % PARTITIONS, on_delivery=delivered)
                n += 1
            producer.poll(0.01)

    thread = threading.Thread(target=run, name="producer", daemon=True)
    thread.start()
    return producer, thread


def consume_and_commit(bootstrap: str, progress: Progress) -> threading.Thread:
    """A group member that commits synchronously every 200 ms what it has consumed."""

    def run() -> None:
        consumer = confluent_kafka.Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": GROUP,
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "session.timeout.ms": 6000,
                "heartbeat.interval.ms": 500,
                "reconnect.backoff.ms": 50,
                "reconnect.backoff.max.ms": 300,
                "log_level": 0,
            }
        )
        consumer.subscribe([TOPIC])
        pending: dict[int, int] = {}
        last_commit = time.monotonic()
        try:
            while not progress.stop.is_set():
                for msg in consumer.consume(1000, 0.1):
                    if not msg.error():
                        pending[msg.partition()] = msg.offset() + 1
                        progress.consumed += 1
                if pending and time.monotonic() - last_commit > 0.2:
                    last_commit = time.monotonic()
                    offsets = [
                        confluent_kafka.TopicPartition(TOPIC, p, o) for p, o in pending.items()
                    ]
                    try:
                        result = consumer.commit(offsets=offsets, asynchronous=False)
                    except confluent_kafka.KafkaException:
                        continue  # broker down or group rebalancing: not acknowledged
                    with progress.lock:
                        progress.commits += 1
                        for tp in result or []:
                            if tp.error is None and tp.offset >= 0:
                                old = progress.committed.get(tp.partition, -1)
                                progress.committed[tp.partition] = max(old, tp.offset)
                    pending.clear()
        finally:
            consumer.close()

    thread = threading.Thread(target=run, name="consumer", daemon=True)
    thread.start()
    return thread


def committed_offsets(bootstrap: str) -> dict[int, int]:
    """The group's committed offsets as the broker reports them now."""
    checker = confluent_kafka.Consumer(
        {"bootstrap.servers": bootstrap, "group.id": GROUP, "enable.auto.commit": False}
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                tps = [confluent_kafka.TopicPartition(TOPIC, p) for p in range(PARTITIONS)]
                return {tp.partition: tp.offset for tp in checker.committed(tps, timeout=10)}
            except confluent_kafka.KafkaException:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
    finally:
        checker.close()


def test_sigkill_loop_with_idempotent_producer_and_group_commits(tmp_path, fault_report):
    seed, rng = seeded()
    broker = Broker(tmp_path / "data").start()
    progress = Progress()
    behind: list[str] = []
    try:
        create_topic(broker.kafka_bootstrap, TOPIC, PARTITIONS)
        producer, producing = produce(broker.kafka_bootstrap, progress)
        consumer = consume_and_commit(broker.kafka_bootstrap, progress)
        for kill in range(KILLS):
            # Random moments: sometimes right after start (groups still loading,
            # clients reconnecting), mostly in the middle of steady traffic.
            time.sleep(rng.uniform(0, 0.3) if rng.random() < 0.3 else rng.uniform(0.5, 2.5))
            if not broker.check():
                broker.start()  # a crash: counted, and the loop goes on
                continue
            with progress.lock:
                before = dict(progress.committed)
            broker.kill()
            time.sleep(rng.uniform(0, 0.3))
            broker.start()
            now = committed_offsets(broker.kafka_bootstrap)
            for partition, offset in before.items():
                if now.get(partition, -1) < offset:
                    behind.append(
                        f"after kill {kill + 1}: partition {partition} committed "
                        f"{now.get(partition)} < acknowledged {offset}"
                    )
        time.sleep(1)
        progress.stop.set()
        producing.join(10)
        consumer.join(30)
        unflushed = producer.flush(120)
        broker.check()
        stored = read_topic(broker.kafka_bootstrap, TOPIC, PARTITIONS)
    finally:
        progress.stop.set()
        broker.stop()

    at = {(c.partition, c.offset): int(c.value) for c in stored}
    lost = sorted(n for n, where in progress.acked.items() if at.get(where) != n)
    seen: dict[int, int] = {}
    for c in stored:
        seen[int(c.value)] = seen.get(int(c.value), 0) + 1
    duplicates = sum(count - 1 for count in seen.values())
    disorder = []
    for partition in range(PARTITIONS):
        values = [int(c.value) for c in stored if c.partition == partition]
        if values != sorted(values):
            disorder.append(partition)
    fault_report(
        "crash loop (Kafka, SIGKILL)",
        runs=KILLS,
        acknowledged=len(progress.acked),
        lost=len(lost),
        duplicates=duplicates,
        crashes=broker.crashes,
        kills=broker.kills,
        commits_acked=progress.commits,
        commits_behind=len(behind),
        stored_not_acked=len(seen) - len(progress.acked.keys() & seen.keys()),
        seed=seed,
    )
    assert broker.crashes == 0, f"seed {seed}: broker died on its own:\n" + "\n".join(
        broker.crash_logs
    )
    assert unflushed == 0 and not progress.failed, (unflushed, progress.failed[:5])
    assert not lost, f"seed {seed}: {len(lost)} acknowledged records lost, e.g. {lost[:10]}"
    assert duplicates == 0, f"seed {seed}: {duplicates} duplicates"
    assert not disorder, f"seed {seed}: partitions out of production order: {disorder}"
    assert not behind, f"seed {seed}: " + "; ".join(behind[:5])
    assert len(progress.acked) > KILLS * 500, "the producer should have made progress"
    assert progress.commits > KILLS, "the consumer should have committed throughout"

"""Disk full: the broker's data directory is a small tmpfs the test mounts.

Producers fill it: they get KAFKA_STORAGE_ERROR for what did not fit, never
a silent loss; the broker keeps serving reads, metadata, group commits (as a
retriable error) and its admin API; it survives SIGKILL and restarts on the
full disk; and producing works again once space returns, first by deleting
a filler file, then by growing the tmpfs. At the end every acknowledged
record is there exactly once.

The tmpfs (``small_disk``, see tests/faults/disk.py) must be mountable:
without root the test fails rather than skip quietly.
"""

from __future__ import annotations

import urllib.request

import confluent_kafka
from confluent_kafka.admin import AdminClient, NewTopic

from tests.faults.disk import SIZE_MB, free_bytes, grow, top_off
from tests.faults.harness import Broker, create_topic, read_topic

TOPIC = "full"
PARTITIONS = 2
FILLER_MB = 1
VALUE = b"." * 200


class Producer:
    """A confluent-kafka producer (acks=all) that keeps what was acknowledged
    and what failed, by error name."""

    def __init__(self, bootstrap: str, **config: object) -> None:
        self.producer = confluent_kafka.Producer(
            {"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5, "log_level": 0} | config
        )
        self.acked: dict[bytes, tuple[int, int]] = {}
        self.errors: dict[str, int] = {}
        self.n = 0

    def _delivered(self, err, msg) -> None:
        if err is None:
            self.acked[msg.key()] = (msg.partition(), msg.offset())
        else:
            self.errors[err.name()] = self.errors.get(err.name(), 0) + 1

    def send(self, count: int, tag: str, timeout: float = 60) -> None:
        for _ in range(count):
            key = f"{tag}-{self.n}".encode()
            self.producer.produce(
                TOPIC, VALUE, key, partition=self.n % PARTITIONS, on_delivery=self._delivered
            )
            self.n += 1
            self.producer.poll(0)
        assert self.producer.flush(timeout) == 0, "records still in flight"

    def until_refused(self, tag: str, limit: int = 200) -> None:
        """Send in rounds until the broker refuses some (the disk is full)."""
        for _ in range(limit):
            before = sum(self.errors.values())
            self.send(500, tag)
            if sum(self.errors.values()) > before:
                return
        raise AssertionError("the disk never filled up")


def http_ok(broker: Broker, path: str = "/v1/health") -> bool:
    with urllib.request.urlopen(broker.http + path, timeout=10) as response:
        return response.status == 200


def commit_answer(bootstrap: str) -> str:
    """What a group commit gets now: 'ok' or the error's name (never a hang-up)."""
    consumer = confluent_kafka.Consumer(
        {"bootstrap.servers": bootstrap, "group.id": "full-group", "log_level": 0}
    )
    try:
        consumer.commit(offsets=[confluent_kafka.TopicPartition(TOPIC, 0, 1)], asynchronous=False)
        return "ok"
    except confluent_kafka.KafkaException as err:
        return err.args[0].name()
    finally:
        consumer.close()


def test_disk_full_refuses_writes_keeps_reads_and_recovers(small_disk, fault_report):
    data = small_disk
    filler = data / "filler"
    filler.write_bytes(b"\0" * (FILLER_MB << 20))
    broker = Broker(data).start()
    crashes = 0
    try:
        create_topic(broker.kafka_bootstrap, TOPIC, PARTITIONS, **{"segment.bytes": "262144"})
        plain = Producer(broker.kafka_bootstrap, retries=0)
        plain.until_refused("a")
        assert set(plain.errors) == {"KAFKA_STORAGE_ERROR"}, plain.errors
        top_off(data / "top-off")
        assert free_bytes(data) == 0

        # Full: reads, metadata, the admin API and group commits still answer.
        stored = read_topic(broker.kafka_bootstrap, TOPIC, PARTITIONS)
        assert {c.key for c in stored} == set(plain.acked)
        assert http_ok(broker) and http_ok(broker, "/metrics")
        admin = AdminClient({"bootstrap.servers": broker.kafka_bootstrap})
        assert TOPIC in admin.list_topics(timeout=10).topics
        committed = commit_answer(broker.kafka_bootstrap)
        assert committed in ("NOT_COORDINATOR", "_TIMED_OUT"), committed
        try:
            admin.create_topics([NewTopic("while-full", 1, 1)])["while-full"].result(15)
        except confluent_kafka.KafkaException as err:
            assert err.args[0].name() == "KAFKA_STORAGE_ERROR", err
        assert broker.check()
        log = broker.log_path.read_text()
        assert "No space left on device" in log, broker.log_tail()

        # An idempotent producer's records wait through the full disk, and
        # through a SIGKILL and a restart on the full disk.
        idempotent = Producer(
            broker.kafka_bootstrap,
            **{
                "enable.idempotence": True,
                "message.timeout.ms": 120_000,
                "reconnect.backoff.max.ms": 300,
                "retry.backoff.ms": 100,
            },
        )
        for _ in range(200):
            key = f"i-{idempotent.n}".encode()
            idempotent.producer.produce(
                TOPIC,
                VALUE,
                key,
                partition=idempotent.n % PARTITIONS,
                on_delivery=idempotent._delivered,
            )
            idempotent.n += 1
        idempotent.producer.poll(1)
        broker.kill()
        broker.start()
        stored = read_topic(broker.kafka_bootstrap, TOPIC, PARTITIONS)
        assert set(plain.acked) <= {c.key for c in stored}

        # Space returns: the filler goes.
        filler.unlink()
        (data / "top-off").unlink()
        assert idempotent.producer.flush(60) == 0
        assert not idempotent.errors, idempotent.errors
        refused = sum(plain.errors.values())
        plain.send(500, "b")
        assert sum(plain.errors.values()) == refused, plain.errors

        # Full again; then the tmpfs grows.
        plain.until_refused("c")
        grow(data, SIZE_MB * 2)
        refused = sum(plain.errors.values())
        plain.send(2000, "d")
        assert sum(plain.errors.values()) == refused, plain.errors

        broker.check()
        assert broker.stop() == 0, broker.log_tail()
        broker.start()
        stored = read_topic(broker.kafka_bootstrap, TOPIC, PARTITIONS)
    finally:
        broker.stop()
        crashes = broker.crashes

    at = {(c.partition, c.offset): c.key for c in stored}
    acked = plain.acked | idempotent.acked
    lost = [key for key, where in acked.items() if at.get(where) != key]
    keys = [c.key for c in stored]
    duplicates = len(keys) - len(set(keys))
    fault_report(
        "disk full (tmpfs)",
        runs=1,
        acknowledged=len(acked),
        lost=len(lost),
        duplicates=duplicates,
        crashes=crashes,
        refused=sum(plain.errors.values()),
        refusals=",".join(sorted(plain.errors)),
    )
    assert crashes == 0
    assert not lost, f"{len(lost)} acknowledged records lost, e.g. {lost[:5]}"
    assert duplicates == 0

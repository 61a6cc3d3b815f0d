"""Torn and corrupt data: a broker wrote a known set of records and was
stopped (SIGKILL, or SIGTERM and then its clean-shutdown marker removed);
the test truncates the last segment of a partition, flips bytes in it,
appends garbage after it and deletes index files, at seeded random places.
The broker must start, serve through a Kafka client every record of every
batch before the damage (and nothing the damage touched), log what it cut,
and take new records at the offset after the last one it kept."""

from __future__ import annotations

import random
import shutil
from dataclasses import dataclass
from pathlib import Path

import confluent_kafka
import pytest

from tests.faults.damage import damage, intact_prefix
from tests.faults.harness import Broker, create_topic, read_topic, scaled, seeded

TOPIC = "torn"
PARTITIONS = 2
RECORDS = 4000
RUNS = scaled(6)


@dataclass
class Template:
    data_dir: Path
    acked: dict[tuple[int, int], bytes]  # (partition, offset) -> value


@pytest.fixture(scope="module")
def templates(tmp_path_factory) -> dict[str, Template]:
    """One data directory left by SIGKILL, one by a clean stop, same records."""
    root = tmp_path_factory.mktemp("torn-template")
    broker = Broker(root / "killed").start()
    acked: dict[tuple[int, int], bytes] = {}
    try:
        create_topic(broker.kafka_bootstrap, TOPIC, PARTITIONS, **{"segment.bytes": "65536"})
        producer = confluent_kafka.Producer(
            {
                "bootstrap.servers": broker.kafka_bootstrap,
                "acks": "all",
                "linger.ms": 2,
                "batch.num.messages": 25,
            }
        )

        def delivered(err, msg) -> None:
            assert err is None, err
            acked[(msg.partition(), msg.offset())] = msg.value()

        for n in range(RECORDS):
            value = b"%05d:" % n + bytes(random.Random(n).randbytes(80))
            producer.produce(TOPIC, value, partition=n % PARTITIONS, on_delivery=delivered)
            if n % 500 == 0:
                producer.flush(30)
        assert producer.flush(30) == 0
    finally:
        broker.kill()
    shutil.copytree(root / "killed", root / "clean")
    clean = Broker(root / "clean").start()
    assert clean.stop() == 0
    return {
        "killed": Template(root / "killed", acked),
        "clean": Template(root / "clean", acked),
    }


def produce_one(bootstrap: str, partition: int) -> list[object]:
    """Offset (or error) of one new record."""
    producer = confluent_kafka.Producer({"bootstrap.servers": bootstrap})
    offsets: list[object] = []
    producer.produce(
        TOPIC,
        b"after",
        partition=partition,
        on_delivery=lambda err, msg: offsets.append(msg.offset() if err is None else err),
    )
    producer.flush(30)
    return offsets


def test_damaged_tails_are_cut_back_to_the_last_intact_batch(templates, tmp_path, fault_report):
    seed, rng = seeded()
    must_survive = lost = crashes = bytes_cut = records_cut = 0
    failures: list[str] = []
    for run in range(RUNS):
        template = templates[rng.choice(["killed", "clean"])]
        data_dir = tmp_path / f"run{run}" / "data"
        shutil.copytree(template.data_dir, data_dir)
        hurt = damage(data_dir, TOPIC, PARTITIONS, rng)
        kept = intact_prefix(hurt)
        segment_base = int(hurt.segment.stem)
        end = kept[-1].last_offset + 1 if kept else segment_base
        cut = hurt.size - (kept[-1].position + kept[-1].size if kept else 0)
        what = f"run {run} (seed {seed}), partition {hurt.partition}: {', '.join(hurt.steps)}"

        broker = Broker(data_dir)
        try:
            broker.start()
        except RuntimeError as err:
            crashes += 1
            failures.append(f"{what}: broker did not start: {err}")
            continue
        try:
            stored = {
                (c.partition, c.offset): c.value
                for c in read_topic(broker.kafka_bootstrap, TOPIC, PARTITIONS)
            }
            expected = {
                where: value
                for where, value in template.acked.items()
                if where[0] != hurt.partition or where[1] < end
            }
            must_survive += len(expected)
            missing = [w for w, v in expected.items() if stored.get(w) != v]
            extra = [w for w in stored if w not in expected]
            lost += len(missing)
            records_cut += len(template.acked) - len(expected)
            if missing or extra:
                failures.append(
                    f"{what}: {len(missing)} missing e.g. {missing[:3]}, served {extra[:3]}"
                )
            if cut:
                bytes_cut += cut
                line = f"cut {cut} bytes from the tail of {hurt.segment.name}"
                if line not in broker.log_path.read_text():
                    failures.append(f"{what}: no log line {line!r}:\n{broker.log_tail(10)}")
            offsets = produce_one(broker.kafka_bootstrap, hurt.partition)
            if offsets != [end]:
                failures.append(f"{what}: next record went to {offsets}, expected offset {end}")
        finally:
            broker.stop()
            crashes += broker.crashes

    fault_report(
        "torn and corrupt tails",
        runs=RUNS,
        acknowledged=must_survive,
        lost=lost,
        crashes=crashes,
        bytes_cut=bytes_cut,
        records_cut=records_cut,
        seed=seed,
    )
    assert not failures, "\n".join(failures)

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
from dataclasses import dataclass, field
from pathlib import Path

import confluent_kafka
import pytest

from dovecote.storage.batch import BatchInfo, scan_batches
from tests.faults.harness import Broker, create_topic, read_topic, scaled, seeded

TOPIC = "torn"
PARTITIONS = 2
RECORDS = 4000
RUNS = scaled(6)
UNCHECKED = range(12, 16)  # partitionLeaderEpoch: covered by no check in the format


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


@dataclass
class Damage:
    """What one run did to the last segment of one partition."""

    partition: int
    segment: Path
    before: list[BatchInfo]
    size: int = 0
    touched: set[int] = field(default_factory=set)
    steps: list[str] = field(default_factory=list)


def damage(data_dir: Path, rng: random.Random) -> Damage:
    partition = rng.randrange(PARTITIONS)
    directory = data_dir / "topics" / TOPIC / str(partition)
    segment = sorted(directory.glob("*.log"))[-1]
    raw = bytearray(segment.read_bytes())
    hurt = Damage(partition, segment, scan_batches(bytes(raw)))
    for _ in range(rng.randint(1, 3)):
        kind = rng.choice(["truncate", "flip", "flip-header", "garbage"])
        size = len(raw)
        near_end = rng.random() < 0.5
        position = size - 1 - rng.randrange(min(size, 400)) if near_end else rng.randrange(size)
        if kind == "truncate":
            del raw[position:]
            hurt.touched |= set(range(position, size))
        elif kind == "flip":
            raw[position] ^= rng.randint(1, 255)
            hurt.touched.add(position)
        elif kind == "flip-header":
            batch = rng.choice([b for b in hurt.before if b.position + 61 <= size])
            position = batch.position + rng.randrange(61)
            raw[position] ^= rng.randint(1, 255)
            hurt.touched.add(position)
        else:
            garbage = rng.choice(
                [bytes(rng.randrange(1, 300)), rng.randbytes(rng.randrange(1, 300))]
            )
            raw += garbage
            hurt.touched |= set(range(size, size + len(garbage)))
        hurt.steps.append(f"{kind}@{position}")
    segment.write_bytes(bytes(raw))
    hurt.size = len(raw)
    if rng.random() < 0.5:
        for index in data_dir.glob("topics/*/*/*index"):
            if rng.random() < 0.7:
                index.unlink()
                hurt.steps.append(f"rm {index.parent.name}/{index.name}")
    (data_dir / ".clean-shutdown").unlink(missing_ok=True)
    return hurt


def intact_prefix(hurt: Damage) -> list[BatchInfo]:
    """The batches before the first one the damage touched (a flip of the
    leader epoch alone leaves a batch intact)."""
    kept = []
    for info in hurt.before:
        span = range(info.position, info.position + info.size)
        harmful = [p for p in hurt.touched if p in span and p - info.position not in UNCHECKED]
        if harmful or info.position + info.size > hurt.size:
            break
        kept.append(info)
    return kept


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
        hurt = damage(data_dir, rng)
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

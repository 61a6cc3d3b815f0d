"""Torn and corrupt data read through an AMQP consumer: pika published a
known sequence of persistent messages to a durable queue (small segments),
the broker was stopped by SIGKILL, or by SIGTERM with its clean-shutdown
marker then removed, and the last segment of the queue's log is damaged as
in test_torn_tail.py. The broker must start, deliver to a pika consumer
every message of every batch before the damage, in order, and nothing the
damage touched, log what it cut, and store the next message right after the
last one it kept."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import confluent_kafka
import pytest
from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource

from tests.faults.amqp import PERSISTENT, connect, declare, read_queue
from tests.faults.damage import damage, intact_prefix
from tests.faults.harness import Broker, scaled, seeded

QUEUE = "torn-q"
MESSAGES = 2000
BURST = 25  # messages per write: the broker stores each read as one batch
RUNS = scaled(3)


@dataclass
class Template:
    data_dir: Path
    bodies: list[bytes]  # in publishing order = offset order


def body(n: int) -> bytes:
    return b"%05d:" % n + bytes((n * 7 + i) % 251 for i in range(80))


def publish(broker: Broker, bodies: list[bytes]) -> None:
    """Publish in bursts, then wait until all are stored and visible."""
    connection = connect(broker)
    try:
        channel = connection.channel()
        for n, data in enumerate(bodies):
            channel.basic_publish("", QUEUE, data, PERSISTENT)
            if n % BURST == BURST - 1:
                connection.process_data_events(0)
        channel.confirm_delivery()
        channel.basic_publish("", QUEUE, b"last", PERSISTENT)  # confirmed: all before are too
    finally:
        connection.close()


@pytest.fixture(scope="module")
def templates(tmp_path_factory) -> dict[str, Template]:
    """One data directory left by SIGKILL, one by a clean stop, same messages."""
    root = tmp_path_factory.mktemp("amqp-torn-template")
    broker = Broker(root / "killed", amqp=True).start()
    bodies = [body(n) for n in range(MESSAGES)]
    try:
        declare(broker, QUEUE)
        admin = AdminClient({"bootstrap.servers": broker.kafka_bootstrap})
        entry = ConfigEntry("segment.bytes", "65536", incremental_operation=AlterConfigOpType.SET)
        resource = ConfigResource(ConfigResource.Type.TOPIC, QUEUE, incremental_configs=[entry])
        admin.incremental_alter_configs([resource])[resource].result(30)
        publish(broker, bodies)
    finally:
        broker.kill()
    shutil.copytree(root / "killed", root / "clean")
    clean = Broker(root / "clean", amqp=True).start()
    assert clean.stop() == 0
    bodies.append(b"last")
    return {"killed": Template(root / "killed", bodies), "clean": Template(root / "clean", bodies)}


def log_end(broker: Broker) -> int:
    consumer = confluent_kafka.Consumer(
        {"bootstrap.servers": broker.kafka_bootstrap, "group.id": "torn-check"}
    )
    try:
        return consumer.get_watermark_offsets(confluent_kafka.TopicPartition(QUEUE, 0), 30)[1]
    finally:
        consumer.close()


def publish_confirmed(broker: Broker, data: bytes) -> None:
    connection = connect(broker)
    try:
        channel = connection.channel()
        channel.confirm_delivery()
        channel.basic_publish("", QUEUE, data, PERSISTENT)
    finally:
        connection.close()


def test_damaged_queue_tails_are_cut_back_and_consumed_through_pika(
    templates, tmp_path, fault_report
):
    seed, rng = seeded()
    must_survive = lost = crashes = bytes_cut = cut_messages = 0
    failures: list[str] = []
    for run in range(RUNS):
        template = templates[rng.choice(["killed", "clean"])]
        data_dir = tmp_path / f"run{run}" / "data"
        shutil.copytree(template.data_dir, data_dir)
        hurt = damage(data_dir, QUEUE, 1, rng)
        kept = intact_prefix(hurt)
        end = kept[-1].last_offset + 1 if kept else int(hurt.segment.stem)
        cut = hurt.size - (kept[-1].position + kept[-1].size if kept else 0)
        what = f"run {run} (seed {seed}): {', '.join(hurt.steps)}"

        broker = Broker(data_dir, amqp=True)
        try:
            broker.start()
        except RuntimeError as err:
            crashes += 1
            failures.append(f"{what}: broker did not start: {err}")
            continue
        try:
            got = read_queue(broker, QUEUE)
            expected = template.bodies[:end]
            must_survive += len(expected)
            cut_messages += len(template.bodies) - len(expected)
            missing = len(set(expected) - set(got))
            lost += missing
            if got != expected:
                first = next(
                    (i for i, (a, b) in enumerate(zip(got, expected, strict=False)) if a != b),
                    min(len(got), len(expected)),
                )
                failures.append(
                    f"{what}: consumed {len(got)} messages, expected the first {end}; "
                    f"first difference at {first}, {missing} missing"
                )
            if cut:
                bytes_cut += cut
                line = f"cut {cut} bytes from the tail of {hurt.segment.name}"
                if line not in broker.log_path.read_text():
                    failures.append(f"{what}: no log line {line!r}:\n{broker.log_tail(10)}")
            publish_confirmed(broker, b"after")
            if (after := log_end(broker)) != end + 1:
                failures.append(f"{what}: the next message went to {after - 1}, expected {end}")
            if read_queue(broker, QUEUE) != [b"after"]:
                failures.append(f"{what}: the next message was not delivered alone")
        finally:
            broker.stop()
            crashes += broker.crashes

    fault_report(
        "torn and corrupt tails (AMQP consumer)",
        runs=RUNS,
        acknowledged=must_survive,
        lost=lost,
        crashes=crashes,
        bytes_cut=bytes_cut,
        messages_cut=cut_messages,
        seed=seed,
    )
    assert not failures, "\n".join(failures)

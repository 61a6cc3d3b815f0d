"""A consumer-group member in its own process, so tests and benchmarks can SIGKILL it.

    python -m bench.kafka_member CLIENT BOOTSTRAP TOPIC GROUP [STRATEGY]

Prints one JSON line per event: {"assigned": [...]} whenever its assignment
changes, {"p": partition, "o": offset, "v": value} per record. Commits after
each batch. Runs until killed or until its stdin closes (then leaves cleanly).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

STOP = threading.Event()


def emit(obj: dict) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def watch_stdin() -> None:
    sys.stdin.read()
    STOP.set()


def run_confluent(bootstrap: str, topic: str, group: str, strategy: str) -> None:
    import confluent_kafka

    consumer = confluent_kafka.Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "client.id": f"confluent-{group}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "session.timeout.ms": 6000,
            "heartbeat.interval.ms": 500,
            "partition.assignment.strategy": strategy,
        }
    )
    owned: set[int] = set()

    def on_assign(c, partitions):
        owned.update(p.partition for p in partitions)
        emit({"assigned": sorted(owned), "added": sorted(p.partition for p in partitions)})
        if strategy == "cooperative-sticky":
            c.incremental_assign(partitions)

    def on_revoke(c, partitions):
        owned.difference_update(p.partition for p in partitions)
        emit({"assigned": sorted(owned), "revoked": sorted(p.partition for p in partitions)})
        if strategy == "cooperative-sticky":
            c.incremental_unassign(partitions)

    consumer.subscribe([topic], on_assign=on_assign, on_revoke=on_revoke)
    while not STOP.is_set():
        messages = consumer.consume(500, 0.2)
        for m in messages:
            if m.error() is None:
                emit(
                    {"p": m.partition(), "o": m.offset(), "v": m.value().decode(), "t": time.time()}
                )
        if messages:
            try:
                consumer.commit(asynchronous=False)
            except confluent_kafka.KafkaException as err:
                emit({"commit_error": str(err)})  # e.g. during a rebalance; retried next batch
    consumer.close()


def run_kafka_python(bootstrap: str, topic: str, group: str) -> None:
    import kafka
    import kafka.errors
    from kafka.consumer.subscription_state import ConsumerRebalanceListener
    from kafka.coordinator.assignors.roundrobin import RoundRobinPartitionAssignor

    consumer = kafka.KafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=group,
        client_id=f"kafka-python-{group}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        session_timeout_ms=6000,
        heartbeat_interval_ms=500,
        # The one strategy all three libraries share (aiokafka's default).
        partition_assignment_strategy=[RoundRobinPartitionAssignor],
    )

    class Listener(ConsumerRebalanceListener):
        def on_partitions_revoked(self, revoked):
            emit({"assigned": [], "revoked": sorted(tp.partition for tp in revoked)})

        def on_partitions_assigned(self, assigned):
            emit({"assigned": sorted(tp.partition for tp in assigned)})

    consumer.subscribe([topic], listener=Listener())
    while not STOP.is_set():
        batch = consumer.poll(timeout_ms=200, max_records=500)
        for messages in batch.values():
            for m in messages:
                emit({"p": m.partition, "o": m.offset, "v": m.value.decode()})
        if batch:
            try:
                consumer.commit()
            except kafka.errors.KafkaError as err:
                emit({"commit_error": str(err)})
    consumer.close()


def run_aiokafka(bootstrap: str, topic: str, group: str) -> None:
    import aiokafka
    import aiokafka.errors
    from aiokafka.abc import ConsumerRebalanceListener

    class Listener(ConsumerRebalanceListener):
        async def on_partitions_revoked(self, revoked):
            emit({"assigned": [], "revoked": sorted(tp.partition for tp in revoked)})

        async def on_partitions_assigned(self, assigned):
            emit({"assigned": sorted(tp.partition for tp in assigned)})

    async def main() -> None:
        consumer = aiokafka.AIOKafkaConsumer(
            bootstrap_servers=bootstrap,
            group_id=group,
            client_id=f"aiokafka-{group}",
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            session_timeout_ms=6000,
            heartbeat_interval_ms=500,
        )
        await consumer.start()
        consumer.subscribe([topic], listener=Listener())
        while not STOP.is_set():
            batch = await consumer.getmany(timeout_ms=200, max_records=500)
            for messages in batch.values():
                for m in messages:
                    emit({"p": m.partition, "o": m.offset, "v": m.value.decode()})
            if batch:
                try:
                    await consumer.commit()
                except aiokafka.errors.KafkaError as err:
                    emit({"commit_error": str(err)})
        await consumer.stop()

    asyncio.run(main())


class MemberProcess:
    """Runs this module as a child process and collects what it prints."""

    def __init__(
        self, client: str, bootstrap: str, topic: str, group: str, strategy: str = "roundrobin"
    ) -> None:
        self.client = client
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bench.kafka_member",
                client,
                bootstrap,
                topic,
                group,
                strategy,
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            cwd=ROOT,
            text=True,
        )
        self.events: list[dict] = []
        self.values: set[str] = set()
        self.assigned: list[int] = []
        self._thread = threading.Thread(target=self._pump, daemon=True)
        self._thread.start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            event = json.loads(line)
            self.events.append(event)
            if "v" in event:
                self.values.add(event["v"])
            if "assigned" in event:
                self.assigned = event["assigned"]

    def kill(self) -> None:
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def leave(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()


def main() -> None:
    client, bootstrap, topic, group = sys.argv[1:5]
    strategy = sys.argv[5] if len(sys.argv) > 5 else "roundrobin"
    threading.Thread(target=watch_stdin, daemon=True).start()
    emit({"started": client})
    if client == "confluent":
        run_confluent(bootstrap, topic, group, strategy)
    elif client == "kafka-python":
        run_kafka_python(bootstrap, topic, group)
    elif client == "aiokafka":
        run_aiokafka(bootstrap, topic, group)
    else:
        raise SystemExit(f"unknown client {client}")


if __name__ == "__main__":
    main()

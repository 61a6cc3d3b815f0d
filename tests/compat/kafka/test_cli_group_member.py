"""``dovecote consume --group`` is a real member of a Kafka consumer group:
it shares the group's partitions with a confluent-kafka consumer (range
assignment, as the Java and librdkafka consumers do it), commits with its
generation, and on leaving hands its partitions back."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request

import confluent_kafka
from confluent_kafka.admin import AdminClient, NewTopic

PARTITIONS = 4


def group_view(broker, group: str) -> dict:
    url = f"http://{broker.addresses['http']}/v1/groups/{group}"
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.load(response)


def owners(view: dict) -> dict[int, str]:
    return {r["partition"]: r["owner"]["client_id"] for r in view["offsets"] if r["owner"]}


def default_signals() -> None:
    """In the CLI's child before exec: signals as a shell would give them.
    A test run's process may have blocked or ignored some (libraries running
    earlier tests in it), and a child inherits both."""
    signal.pthread_sigmask(signal.SIG_SETMASK, set())
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.SIG_DFL)


def wait_for(predicate, timeout: float = 30.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


class KafkaMember(threading.Thread):
    """A confluent-kafka consumer polling in the background (a member must keep polling)."""

    def __init__(self, bootstrap: str, group: str, topic: str) -> None:
        super().__init__(daemon=True)
        self.consumer = confluent_kafka.Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": group,
                "client.id": "kafka-member",
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
                "partition.assignment.strategy": "range",
                "session.timeout.ms": 10_000,
                "heartbeat.interval.ms": 500,
            }
        )
        # What the rebalance callbacks (run inside poll, in this thread) said last.
        self.current: list[int] = []
        self.consumer.subscribe([topic], on_assign=self._assigned, on_revoke=self._revoked)
        self.partitions_seen: set[int] = set()
        self.stop = threading.Event()

    def _assigned(self, _consumer, partitions) -> None:
        self.current = sorted(tp.partition for tp in partitions)

    def _revoked(self, _consumer, _partitions) -> None:
        self.current = []

    def run(self) -> None:
        while not self.stop.is_set():
            message = self.consumer.poll(0.2)
            if message is not None and message.error() is None:
                self.partitions_seen.add(message.partition())

    def assigned(self) -> list[int]:
        return self.current

    def close(self) -> None:
        self.stop.set()
        self.join(10)
        self.consumer.close()


def test_cli_member_shares_partitions_with_a_kafka_consumer(broker, topic_name, tmp_path):
    group = f"g-{topic_name}"
    admin = AdminClient({"bootstrap.servers": broker.kafka_bootstrap})
    admin.create_topics([NewTopic(topic_name, PARTITIONS, 1)])[topic_name].result(30)
    producer = confluent_kafka.Producer({"bootstrap.servers": broker.kafka_bootstrap})
    for p in range(PARTITIONS):
        for i in range(25):
            producer.produce(topic_name, f"p{p}-{i}".encode(), partition=p)
    assert producer.flush(30) == 0

    member = KafkaMember(broker.kafka_bootstrap, group, topic_name)
    member.start()
    cli = None
    stderr = (tmp_path / "cli.stderr").open("w+")
    try:
        wait_for(lambda: member.assigned() == [0, 1, 2, 3], what="the Kafka consumer's assignment")
        env = dict(os.environ, DOVECOTE_ADMIN_URL=f"http://{broker.addresses['http']}")
        cli = subprocess.Popen(
            [
                *(sys.executable, "-m", "dovecote", "consume", topic_name, "--group", group),
                *("--from-beginning", "--follow", "--print-offset"),
            ],
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            env=env,
            preexec_fn=default_signals,
        )
        lines: list[str] = []
        reader = threading.Thread(target=lambda: lines.extend(cli.stdout), daemon=True)
        reader.start()

        # Range over two members: two partitions each, each partition one owner.
        def shared() -> bool:
            view = group_view(broker, group)
            return (
                view["state"] == "Stable"
                and len(view["members"]) == 2
                and sorted(owners(view)) == list(range(PARTITIONS))
                and len(set(owners(view).values())) == 2
            )

        wait_for(shared, what="a rebalance sharing the partitions")
        by_owner = owners(group_view(broker, group))
        cli_partitions = sorted(p for p, client in by_owner.items() if client == "dovecote-cli")
        assert len(cli_partitions) == 2
        wait_for(lambda: member.assigned() == sorted(set(range(PARTITIONS)) - set(cli_partitions)))

        # The CLI prints its partitions' records and commits them with its generation.
        wait_for(lambda: len(lines) >= 50, what="the CLI's records")
        printed = {int(line.split(":")[0]) for line in lines}
        assert printed == set(cli_partitions)
        wait_for(
            lambda: all(
                r["committed_offset"] == 25
                for r in group_view(broker, group)["offsets"]
                if r["partition"] in cli_partitions
            ),
            what="the CLI's commits",
        )

        # SIGTERM (SIGINT may be ignored in a test run's children): the CLI
        # leaves and the Kafka consumer gets everything back.
        cli.send_signal(signal.SIGTERM)
        try:
            cli.wait(30)
        except subprocess.TimeoutExpired:
            stderr.seek(0)
            raise AssertionError(
                f"the CLI did not exit on SIGTERM; stderr:\n{stderr.read()}"
            ) from None
        wait_for(lambda: member.assigned() == [0, 1, 2, 3], what="partitions handed back")
        assert len(group_view(broker, group)["members"]) == 1
    finally:
        if cli is not None and cli.poll() is None:
            cli.kill()
        stderr.close()
        member.close()


def test_cli_group_consume_refuses_partition_and_offset(broker, topic_name):
    env = dict(os.environ, DOVECOTE_ADMIN_URL=f"http://{broker.addresses['http']}")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "dovecote",
            "consume",
            topic_name,
            "--group",
            "g",
            "--partition",
            "0",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2 and "--partition" in result.stderr

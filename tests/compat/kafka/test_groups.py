"""Consumer groups through real clients: mixed libraries sharing partitions,
a member killed with SIGKILL, cooperative rebalancing, fan-out to two groups,
committed offsets across a broker restart."""

from __future__ import annotations

import time
import uuid

import confluent_kafka
import pytest
from confluent_kafka import TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from bench.kafka_member import MemberProcess as Member
from dovecote.testing import BrokerProcess


def wait_for(predicate, timeout: float, what) -> None:
    """``what`` is a description, or a callable giving one at the time of failure."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what() if callable(what) else what}")


def produce(bootstrap: str, topic: str, values: list[str]) -> None:
    producer = confluent_kafka.Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    for i, value in enumerate(values):
        producer.produce(topic, value.encode(), str(i).encode())
    assert producer.flush(30) == 0


def describe(bootstrap: str, group: str) -> dict[str, list[int]]:
    """Member id -> partitions, from DescribeGroups."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    described = admin.describe_consumer_groups([group])[group].result(30)
    return {
        m.member_id: sorted(tp.partition for tp in m.assignment.topic_partitions)
        for m in described.members
    }


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    data = tmp_path_factory.mktemp("groups") / "data"
    with BrokerProcess(data, listeners={"amqp": "off"}) as proc:
        yield proc


@pytest.fixture
def topic(broker):
    name = f"g-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": broker.kafka_bootstrap})
    admin.create_topics([NewTopic(name, 6, 1)])[name].result(30)
    return name


def balanced(bootstrap: str, group: str, members: int) -> bool:
    """The group has ``members`` members that own all six partitions, each
    partition exactly once, evenly spread (round-robin)."""
    try:
        assignment = describe(bootstrap, group)
    except Exception:
        return False
    owned = [p for parts in assignment.values() for p in parts]
    even = {len(parts) for parts in assignment.values()} == {6 // members}
    return len(assignment) == members and sorted(owned) == list(range(6)) and even


def test_three_libraries_share_six_partitions_and_survive_a_sigkill(broker, topic):
    group = f"mixed-{uuid.uuid4().hex[:6]}"
    first = [f"a{i}" for i in range(3000)]
    produce(broker.kafka_bootstrap, topic, first)
    members = [
        Member(c, broker.kafka_bootstrap, topic, group)
        for c in ("confluent", "aiokafka", "kafka-python")
    ]
    try:
        seen = lambda: set().union(*(m.values for m in members))  # noqa: E731
        wait_for(lambda: seen() >= set(first), 60, "every record consumed")
        wait_for(
            lambda: balanced(broker.kafka_bootstrap, group, 3),
            30,
            "three members, two partitions each",
        )
        assert sorted(len(p) for p in describe(broker.kafka_bootstrap, group).values()) == [2, 2, 2]
        # SIGKILL one member: after its session timeout its partitions move to the others.
        victim, survivors = members[1], [members[0], members[2]]
        killed_at = time.monotonic()
        victim.kill()
        second = [f"b{i}" for i in range(3000)]
        produce(broker.kafka_bootstrap, topic, second)
        wait_for(
            lambda: set().union(*(m.values for m in survivors)) >= set(second),
            60,
            "survivors took over",
        )
        wait_for(
            lambda: balanced(broker.kafka_bootstrap, group, 2),
            30,
            "two members own all six",
        )
        assert time.monotonic() - killed_at < 30
    finally:
        for m in members:
            m.leave()


def test_cooperative_sticky_moves_only_what_it_must(broker, topic):
    group = f"coop-{uuid.uuid4().hex[:6]}"
    produce(broker.kafka_bootstrap, topic, [f"c{i}" for i in range(600)])
    first = Member("confluent", broker.kafka_bootstrap, topic, group, "cooperative-sticky")
    second = None
    try:
        wait_for(lambda: first.assigned == list(range(6)), 30, "the first member owns all six")
        second = Member("confluent", broker.kafka_bootstrap, topic, group, "cooperative-sticky")
        wait_for(
            lambda: len(second.assigned) == 3 and len(first.assigned) == 3,
            40,
            lambda: (
                f"three each (first saw {[e for e in first.events if 'v' not in e]}, "
                f"second saw {[e for e in second.events if 'v' not in e]})"
            ),
        )
        revocations = [e["revoked"] for e in first.events if e.get("revoked")]
        # Incremental: the first member gave up some partitions, never all of them at once.
        assert revocations and all(len(r) < 6 for r in revocations)
        assert set(first.assigned).isdisjoint(second.assigned)
    finally:
        first.leave()
        if second is not None:
            second.leave()


def test_two_groups_each_get_every_record(broker, topic):
    values = [f"f{i}" for i in range(1000)]
    produce(broker.kafka_bootstrap, topic, values)
    a = Member("aiokafka", broker.kafka_bootstrap, topic, f"fan-a-{uuid.uuid4().hex[:6]}")
    b = Member("kafka-python", broker.kafka_bootstrap, topic, f"fan-b-{uuid.uuid4().hex[:6]}")
    try:
        wait_for(
            lambda: a.values >= set(values) and b.values >= set(values),
            60,
            "both groups read everything",
        )
    finally:
        a.leave()
        b.leave()


def test_committed_offsets_survive_a_broker_restart(tmp_path):
    broker = BrokerProcess(tmp_path / "data", listeners={"amqp": "off", "http": "off"}).start()
    try:
        admin = AdminClient({"bootstrap.servers": broker.kafka_bootstrap})
        admin.create_topics([NewTopic("committed", 1, 1)])["committed"].result(30)
        produce(broker.kafka_bootstrap, "committed", [f"r{i}" for i in range(100)])
        consumer = confluent_kafka.Consumer(
            {
                "bootstrap.servers": broker.kafka_bootstrap,
                "group.id": "keep",
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
            }
        )
        consumer.subscribe(["committed"])
        read = []
        while len(read) < 60:
            message = consumer.poll(10)
            assert message is not None and message.error() is None
            read.append(message)
        consumer.commit(message=read[59], asynchronous=False)
        consumer.close()
        broker.stop()
        broker.start()
        consumer = confluent_kafka.Consumer(
            {
                "bootstrap.servers": broker.kafka_bootstrap,
                "group.id": "keep",
                "auto.offset.reset": "earliest",
            }
        )
        [committed] = consumer.committed([TopicPartition("committed", 0)], timeout=10)
        assert committed.offset == 60
        consumer.subscribe(["committed"])
        message = consumer.poll(15)
        assert message is not None and message.offset() == 60 and message.value() == b"r60"
        consumer.close()
    finally:
        broker.stop()

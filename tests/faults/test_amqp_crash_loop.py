"""Crash loop through AMQP: pika publishers with publisher confirms write
numbered persistent messages to durable queues, and a consumer acks a
pre-filled queue one message at a time, while the broker is killed with
SIGKILL at random moments and restarted on the same ports.

What must hold, and why that much:

* Every confirmed message is in its queue afterwards, in publishing order.
  A confirm is sent after the group commit's fsync (flush.policy=ack).
* Duplicates are allowed only for messages the publisher sent twice: AMQP is
  at-least-once, and a message whose confirm was lost with the broker is
  published again. They are counted and reported.
* Every message of the consumed queue is delivered at least once, and an
  acked message comes back only if the kill caught its ack in transit. An
  ack has no reply in AMQP; the broker settles acks in the core within
  ``SETTLE_DELAY`` (10 ms) of reading them and writes the settlement to the
  subscription-state topic on the next loop turn (page cache, which SIGKILL
  does not lose; fsynced every 200 ms against power loss). So an ack sent
  more than ``ACK_WINDOW`` before a kill must not be undone by it; 1 s
  leaves room for a loaded two-core machine. Redeliveries are reported.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from tests.faults.amqp import GONE, PERSISTENT, ConfirmedPublisher, connect, declare, read_queue
from tests.faults.crashloop import Lives, Worker, assert_survived, kill_loop
from tests.faults.harness import Broker, scaled, seeded

PUBLISHED = ("crash-a", "crash-b")
ACKED = "crash-acks"
KILLS = scaled(20)
PREFILL = scaled(5000)
ACK_RATE = 150  # messages per second the consumer acks: it must outlast the kills
ACK_WINDOW = 1.0


@dataclass
class AckingConsumer(Worker):
    """Consumes ``queue`` with manual acks (prefetch 50), acking each message
    as it comes, through broker deaths; remembers when each ack was sent and
    to which life of the broker (the number of kills before its connection
    was made: an ack written to a connection whose broker is already dead
    leaves without an error, and was never received)."""

    broker: Broker
    queue: str
    kills: list[float]  # when the test killed the broker, appended before each kill
    deliveries: dict[int, int] = field(default_factory=dict)  # n -> times delivered
    acked_at: dict[int, tuple[float, int]] = field(default_factory=dict)  # n -> (when, life)
    back_after_ack: list[tuple[int, float, int]] = field(default_factory=list)

    def _run(self) -> None:
        started = time.monotonic()
        count = 0
        while not self.stop.is_set():
            life = len(self.kills)
            try:
                connection = connect(self.broker, self.stop)
            except GONE:
                continue
            try:
                channel = connection.channel()
                channel.basic_qos(prefetch_count=50)
                for method, _props, body in channel.consume(self.queue, inactivity_timeout=0.2):
                    if self.stop.is_set():
                        break
                    if method is None:
                        continue
                    n = int(body)
                    self.deliveries[n] = self.deliveries.get(n, 0) + 1
                    if n in self.acked_at:
                        self.back_after_ack.append((n, *self.acked_at[n]))
                    channel.basic_ack(method.delivery_tag)
                    self.acked_at[n] = (time.monotonic(), life)
                    count += 1
                    ahead = count / ACK_RATE - (time.monotonic() - started)
                    if ahead > 0:
                        time.sleep(ahead)
            except GONE:
                pass
            except Exception as exc:
                self.errors.append(f"{type(exc).__name__}: {exc}")
                return
            finally:
                try:
                    if connection.is_open:
                        connection.close()
                except GONE:
                    pass


def prefill(broker: Broker, count: int) -> None:
    """``count`` numbered persistent messages, visible (so fsynced) before the loop."""
    connection = connect(broker)
    try:
        channel = connection.channel()
        for n in range(count):
            channel.basic_publish("", ACKED, b"%d" % n, PERSISTENT)
        deadline = time.monotonic() + 60
        while channel.queue_declare(ACKED, passive=True).method.message_count < count:
            assert time.monotonic() < deadline, "prefill never became visible"
            time.sleep(0.05)
    finally:
        connection.close()


def in_order(values: list[int]) -> bool:
    """Publishing order, counting each number where it first appears."""
    seen: set[int] = set()
    last = -1
    for value in values:
        if value in seen:
            continue
        if value < last:
            return False
        seen.add(value)
        last = value
    return True


def test_sigkill_loop_with_confirmed_publishers_and_acking_consumer(tmp_path, fault_report):
    seed, rng = seeded()
    broker = Broker(tmp_path / "data", amqp=True).start()
    publishers = [ConfirmedPublisher(broker, queue) for queue in PUBLISHED]
    lives = Lives()
    kills = lives.kills
    consumer = AckingConsumer(broker, ACKED, kills)
    try:
        declare(broker, *PUBLISHED, ACKED)
        prefill(broker, PREFILL)
        for worker in [*publishers, consumer]:
            worker.start()
        kill_loop(broker, rng, KILLS, lives)
        time.sleep(0.5)
        for worker in [*publishers, consumer]:
            worker.join(30)
        broker.check()
        stored = {queue: [int(b) for b in read_queue(broker, queue)] for queue in PUBLISHED}
        rest = [int(b) for b in read_queue(broker, ACKED)]
    finally:
        for worker in [*publishers, consumer]:
            worker.stop.set()
        broker.stop()

    lost: list[str] = []
    duplicates = 0
    twice_never_sent_twice: list[str] = []
    disorder: list[str] = []
    for publisher in publishers:
        values = stored[publisher.queue]
        present = set(values)
        lost += [f"{publisher.queue}:{n}" for n in publisher.confirmed if n not in present]
        duplicates += len(values) - len(present)
        counts: dict[int, int] = {}
        for value in values:
            counts[value] = counts.get(value, 0) + 1
        twice_never_sent_twice += [
            f"{publisher.queue}:{n} x{c} (sent {publisher.sends.get(n, 0)})"
            for n, c in counts.items()
            if c > publisher.sends.get(n, 0)
        ]
        if not in_order(values):
            disorder.append(publisher.queue)
    never_delivered = sorted(set(range(PREFILL)) - consumer.deliveries.keys() - set(rest))
    redeliveries = sum(c - 1 for c in consumer.deliveries.values()) + len(
        set(rest) & consumer.deliveries.keys()
    )
    # How long before the end of its broker's life each undone ack was sent
    # (negative: sent to a broker already dead); an ack undone with no kill
    # after it is a failure whatever its age.
    ack_ages = [kills[life] - at for _n, at, life in consumer.back_after_ack if life < len(kills)]
    undone_without_kill = [n for n, _at, life in consumer.back_after_ack if life >= len(kills)]
    undone_acks = [age for age in ack_ages if age > ACK_WINDOW]
    confirmed = sum(len(p.confirmed) for p in publishers)
    fault_report(
        "crash loop (AMQP, SIGKILL)",
        runs=KILLS,
        acknowledged=confirmed + PREFILL,
        lost=len(lost) + len(never_delivered),
        duplicates=duplicates,
        crashes=broker.crashes,
        kills=broker.kills,
        republished=sum(sum(p.sends.values()) - len(p.sends) for p in publishers),
        nacks=sum(p.nacks for p in publishers),
        acks_sent=len(consumer.acked_at),
        redeliveries=redeliveries,
        acked_then_redelivered=len(consumer.back_after_ack),
        ack_to_kill_max_ms=round(max(ack_ages, default=0) * 1000),
        seed=seed,
    )
    assert_survived(broker, [*publishers, consumer], seed)
    assert not lost, f"seed {seed}: {len(lost)} confirmed messages lost, e.g. {lost[:10]}"
    assert not never_delivered, f"seed {seed}: never delivered: {never_delivered[:10]}"
    assert not twice_never_sent_twice, f"seed {seed}: {twice_never_sent_twice[:10]}"
    assert not disorder, f"seed {seed}: queues out of publishing order: {disorder}"
    assert not undone_without_kill, (
        f"seed {seed}: acks undone with no kill: {undone_without_kill[:10]}"
    )
    assert not undone_acks, (
        f"seed {seed}: {len(undone_acks)} acks sent more than {ACK_WINDOW}s before a kill "
        f"were undone by it (oldest {max(undone_acks):.2f}s)"
    )
    assert confirmed > KILLS * 20, "the publishers should have made progress"
    assert len(consumer.acked_at) > KILLS * 20, "the consumer should have acked throughout"

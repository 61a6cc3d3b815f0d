"""Crash loop through SQS: boto3 senders put numbered bodies with
SendMessageBatch to a standard queue and to a FIFO queue (a few message
groups, explicit deduplication ids), and receivers long-poll each queue and
delete what they got with DeleteMessageBatch, while the broker is killed
with SIGKILL at random moments and restarted on the same port.

What must hold, and why that much:

* Every message whose send was answered 200 was received or is still in its
  queue afterwards. SendMessage(Batch) answers after the group commit's fsync.
* Stored duplicates (one body under two message ids) only for standard-queue
  messages the sender sent twice: a batch whose answer was lost with the
  broker is sent again. In the FIFO queue there are none: a repeat carries
  the same deduplication id, and the core's dedup window survives restarts
  (its ids are logged before their records: a kill right after the append
  used to lose them, and the resend was stored twice).
* FIFO order: per message group, the bodies received (and then left in the
  queue), counting each where it first appears, are in sending order. A
  redelivery after a restart starts again at the group's oldest undeleted
  message.
* A DeleteMessageBatch answered 200 settles the leases in the core at once
  and writes the settlement to the subscription-state topic on the next loop
  turn (page cache, which SIGKILL does not lose; fsynced every 200 ms). So a
  delete sent more than ``ACK_WINDOW`` before a kill must not be undone by
  it (see test_amqp_crash_loop.py for the same reasoning). Only deletes made
  in the same broker life as their receive count: a restart drops every
  lease, and a handle from an earlier life deletes nothing (as AWS, where
  only the latest receive's handle is sure to delete). Redeliveries are
  reported.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError, EndpointConnectionError

from tests.faults.crashloop import (
    Lives,
    Worker,
    assert_settlements_kept,
    assert_survived,
    first_appearances,
    kill_loop,
)
from tests.faults.harness import Broker, scaled, seeded
from tests.faults.sqs import GONE, create_queue, drain, sqs_client

KILLS = scaled(20)
RATE = 400  # messages per second each sender offers: the receivers keep up
GROUPS = 4
VISIBILITY = "30"  # leases outlive the test: only a restart gives a message back
ACK_WINDOW = 1.0


def group_of(n: int) -> int:
    return n % GROUPS


@dataclass
class Sender(Worker):
    """Sends batches of ten numbered bodies, each batch again until it is
    answered (same bodies, same deduplication ids), so per group the order
    of first sends is the numbering."""

    broker: Broker
    url: str
    fifo: bool
    confirmed: set[int] = field(default_factory=set)
    sends: dict[int, int] = field(default_factory=dict)  # n -> attempts
    history: list[tuple[int, str, float]] = field(default_factory=list)  # first n, outcome, when

    def _entries(self, first: int) -> list[dict[str, Any]]:
        entries = []
        for n in range(first, first + 10):
            entry: dict[str, Any] = {"Id": str(n - first), "MessageBody": str(n)}
            if self.fifo:
                entry["MessageGroupId"] = f"g{group_of(n)}"
                entry["MessageDeduplicationId"] = f"d{n}"
            entries.append(entry)
        return entries

    def _sent(self, first: int) -> None:
        for n in range(first, first + 10):
            self.sends[n] = self.sends.get(n, 0) + 1

    def _run(self) -> None:
        client = sqs_client(self.broker.aws_endpoint, read_timeout=5)
        started = time.monotonic()
        first = 0
        while not self.stop.is_set():
            entries = self._entries(first)
            try:
                answer = client.send_message_batch(QueueUrl=self.url, Entries=entries)
            except EndpointConnectionError as exc:
                self.history.append((first, f"refused {str(exc)[-80:]}", time.monotonic()))
                time.sleep(0.02)  # not connected: nothing was sent
                continue
            except GONE as exc:
                self.history.append((first, type(exc).__name__, time.monotonic()))
                self._sent(first)
                time.sleep(0.02)
                continue  # the same batch again
            except ClientError as exc:
                self.errors.append(f"send: {exc}")
                return
            self._sent(first)
            retried = answer["ResponseMetadata"].get("RetryAttempts", 0)
            self.history.append((first, f"ok retried {retried}", time.monotonic()))
            if answer.get("Failed"):
                self.errors.append(f"send failed: {answer['Failed'][:2]}")
                return
            self.confirmed.update(range(first, first + 10))
            first += 10
            ahead = first / RATE - (time.monotonic() - started)
            if ahead > 0:
                time.sleep(ahead)


@dataclass
class Receiver(Worker):
    """Long-polls the queue and deletes each batch at once; remembers every
    receipt (body, message id) in order, and when each delete that must
    stick was answered, in which life of the broker (the number of kills
    before the request)."""

    broker: Broker
    url: str
    kills: list[float]  # when the test killed the broker, appended before each kill
    receipts: list[tuple[int, str]] = field(default_factory=list)
    when: list[float] = field(default_factory=list)
    # message id -> (when, life): by message, not body (a body sent twice is two messages)
    acked_at: dict[str, tuple[float, int]] = field(default_factory=dict)
    back_after_ack: list[tuple[int, float, int]] = field(default_factory=list)
    stale_deletes: int = 0  # answered, but for a receive of an earlier life

    def _run(self) -> None:
        client = sqs_client(self.broker.aws_endpoint, read_timeout=5)
        while not self.stop.is_set():
            life = len(self.kills)
            try:
                got = client.receive_message(
                    QueueUrl=self.url, MaxNumberOfMessages=10, WaitTimeSeconds=1
                ).get("Messages", [])
            except GONE:
                time.sleep(0.02)
                continue
            except ClientError as exc:
                self.errors.append(f"receive: {exc}")
                return
            for message in got:
                n = int(message["Body"])
                message_id = message["MessageId"]
                if message_id in self.acked_at:
                    self.back_after_ack.append((n, *self.acked_at[message_id]))
                    del self.acked_at[message_id]  # counted once; a later delete may stick
                self.receipts.append((n, message["MessageId"]))
                self.when.append(time.monotonic())
            if not got:
                continue
            deleting = len(self.kills)
            try:
                answer = client.delete_message_batch(
                    QueueUrl=self.url,
                    Entries=[
                        {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                        for i, m in enumerate(got)
                    ],
                )
            except GONE:
                continue  # not deleted, or maybe: either way it may come back
            except ClientError as exc:
                self.errors.append(f"delete: {exc}")
                return
            if answer.get("Failed"):
                self.errors.append(f"delete failed: {answer['Failed'][:2]}")
                return
            if deleting != life:
                self.stale_deletes += len(got)
                continue
            now = time.monotonic()
            for message in got:
                self.acked_at[message["MessageId"]] = (now, life)


def check_queue(
    name: str, sender: Sender, receiver: Receiver, rest: list[dict[str, Any]], kills: list[float]
) -> dict[str, Any]:
    """What happened to one queue: lost, stored twice (and whether it was sent
    twice), out of group order, deletes undone."""
    remaining = [(int(m["Body"]), m["MessageId"]) for m in rest]
    every = receiver.receipts + remaining
    ids: dict[int, set[str]] = {}
    for n, message_id in every:
        ids.setdefault(n, set()).add(message_id)
    lost = sorted(sender.confirmed - ids.keys())
    stored_twice = {n: len(found) for n, found in ids.items() if len(found) > 1}
    never_sent_twice = [
        f"{name}:{n} x{c} (sent {sender.sends.get(n, 0)})"
        for n, c in stored_twice.items()
        if c > sender.sends.get(n, 0)
    ]
    disorder = []
    if sender.fifo:
        for g in range(GROUPS):
            order = first_appearances([n for n, _ in every if group_of(n) == g])
            if order != sorted(order):
                disorder.append(f"{name}: group g{g} out of order")
    back = list(receiver.back_after_ack)
    back += [(n, *receiver.acked_at[i]) for n, i in remaining if i in receiver.acked_at]
    ages = [kills[life] - at for _n, at, life in back if life < len(kills)]
    return {
        "lost": lost,
        "stored_twice": stored_twice,
        "never_sent_twice": never_sent_twice,
        "disorder": disorder,
        "undone_without_kill": [n for n, _at, life in back if life >= len(kills)],
        "undone_acks": [age for age in ages if age > ACK_WINDOW],
        "ack_ages": ages,
        "redeliveries": len(every) - len(ids) - sum(c - 1 for c in stored_twice.values()),
        "resent": sum(c - 1 for c in sender.sends.values()),
    }


def explain(culprit: str, senders: list[Sender], receivers: list[Receiver], kills: list[float]):
    """What the sender and receiver saw of one body, times from the first kill."""
    name, n = culprit.split()[0].split(":")
    index = 0 if name == "standard" else 1
    first = int(n) - int(n) % 10
    t0 = kills[0] if kills else 0
    sends = [(f, o, round(t - t0, 3)) for f, o, t in senders[index].history if f == first]
    receiver = receivers[index]
    seen = [
        (r, round(t - t0, 3))
        for r, t in zip(receiver.receipts, receiver.when, strict=True)
        if r[0] == int(n)
    ]
    return f"sends {sends[-8:]}; kills {[round(k - t0, 3) for k in kills]}; receipts {seen}"


def test_sigkill_loop_with_sqs_senders_and_receivers(tmp_path, fault_report):
    seed, rng = seeded()
    broker = Broker(tmp_path / "data").start()
    lives = Lives()
    kills = lives.kills
    standard = create_queue(broker, "crash-std", VisibilityTimeout=VISIBILITY)
    fifo = create_queue(broker, "crash.fifo", FifoQueue="true", VisibilityTimeout=VISIBILITY)
    senders = [Sender(broker, standard, False), Sender(broker, fifo, True)]
    receivers = [Receiver(broker, standard, kills), Receiver(broker, fifo, kills)]
    workers: list[Worker] = [*senders, *receivers]
    try:
        for worker in workers:
            worker.start()
        started = time.monotonic()
        kill_loop(broker, rng, KILLS, lives)
        time.sleep(0.5)
        for worker in workers:
            worker.join(30)
        loop_s = time.monotonic() - started
        # A clean restart drops the leases still held: what is left is deliverable.
        broker.check()
        broker.stop()
        broker.start()
        client = sqs_client(broker.aws_endpoint)
        rest = {url: drain(client, url) for url in (standard, fifo)}
    finally:
        for worker in workers:
            worker.stop.set()
        broker.stop()

    found = {
        name: check_queue(name, sender, receiver, rest[sender.url], kills)
        for name, sender, receiver in zip(("standard", "fifo"), senders, receivers, strict=True)
    }
    confirmed = sum(len(s.confirmed) for s in senders)
    lost = [f"{name}:{n}" for name, f in found.items() for n in f["lost"]]
    ages = [age for f in found.values() for age in f["ack_ages"]]
    fault_report(
        "crash loop (SQS, SIGKILL)",
        runs=KILLS,
        acknowledged=confirmed,
        lost=len(lost),
        duplicates=sum(len(f["stored_twice"]) for f in found.values()),
        crashes=broker.crashes,
        kills=broker.kills,
        loop_s=round(loop_s, 1),
        restart_s_mean=round(sum(lives.restarts) / max(1, len(lives.restarts)), 2),
        resent=sum(f["resent"] for f in found.values()),
        fifo_resent=found["fifo"]["resent"],
        fifo_duplicates=len(found["fifo"]["stored_twice"]),
        receipts=sum(len(r.receipts) for r in receivers),
        redeliveries=sum(f["redeliveries"] for f in found.values()),
        acked_then_redelivered=len(ages),
        stale_deletes=sum(r.stale_deletes for r in receivers),
        left_in_queues=sum(len(r) for r in rest.values()),
        ack_to_kill_max_ms=round(max(ages, default=0) * 1000),
        seed=seed,
    )
    assert_survived(broker, workers, seed)
    assert not lost, f"seed {seed}: {len(lost)} sent messages lost, e.g. {lost[:10]}"
    twice = [x for f in found.values() for x in f["never_sent_twice"]]
    assert not twice, f"seed {seed}: stored twice but sent once: {twice[:10]}; " + explain(
        twice[0], senders, receivers, kills
    )
    disorder = [x for f in found.values() for x in f["disorder"]]
    assert not disorder, f"seed {seed}: {disorder}"
    assert_settlements_kept(found.values(), seed, ACK_WINDOW, "deletes")
    assert confirmed > KILLS * 50, "the senders should have made progress"
    assert all(len(r.receipts) > KILLS * 20 for r in receivers), "receivers should have worked"
    fifo_twice = list(found["fifo"]["stored_twice"])
    assert not fifo_twice, (
        f"seed {seed}: FIFO resends inside the dedup window stored twice: {fifo_twice[:10]}; "
        + explain(f"fifo:{fifo_twice[0]}", senders, receivers, kills)
    )

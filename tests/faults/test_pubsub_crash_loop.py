"""Crash loop through Pub/Sub: a publisher puts numbered messages (32
ordering keys) to one topic in batches of ten, and a google-cloud-pubsub
streaming subscriber on each of three subscriptions (plain, exactly-once,
ordered) acks every message as it comes, while the broker is killed with
SIGKILL at random moments and restarted on the same port. Then a clean
restart, and what is left is pulled.

What must hold, and why that much:

* Every message whose Publish was answered was received, or is still
  there, on every subscription. Publish answers after the group commit's
  fsync.
* One body under two message ids only if it was sent twice: a batch whose
  answer was lost with the broker is sent again (Pub/Sub is at-least-once
  on publish; the client cannot name a resend).
* Plain and ordered subscriptions: an Acknowledge settles the leases in
  the core at once and writes the settlement to the subscription-state
  topic on the next loop turn (page cache, which SIGKILL does not lose;
  fsynced every 200 ms). So an ack made more than ``ACK_WINDOW`` before a
  kill must not be undone by it (the reasoning of test_amqp_crash_loop.py),
  and one made in the last life more than ``ACK_WINDOW`` before the
  subscribers closed not by the clean restart (the client drops the acks
  it has not sent when it closes).
  Only acks made in the life of the broker that delivered the message
  count: a restart drops every lease, and an ack id of an earlier life
  settles nothing. The client gives no answer to a plain ack; the test
  counts from the moment it called ``ack()``. Which life delivered a
  message is read from its ack id, not from when the callback ran: the
  client keeps messages it could not yet hand out across reconnects, and
  runs them (with ack ids the broker no longer knows) in a later life. An
  ack id's attempt number counts up from a random 48-bit start in each
  life (``core/tokens.py``), so the ack ids of one life form one cluster;
  a cluster belongs to the life of its first callback, and where two
  clusters claim one life neither counts.
* Exactly-once subscription: an ack whose ``ack_with_response()`` future
  succeeded is never undone, whatever the kill: the broker answers it only
  once it is durable (``SubscriptionStore.sync()``). An ack id of an earlier
  life must fail (PERMANENT_FAILURE_INVALID_ACK_ID), not succeed. The client
  tracks ack futures only when the stream's ``subscription_properties``
  say exactly-once; otherwise every future succeeds at once, before the ack
  is even sent. While the broker does not say so, the check is recorded,
  reported, and the test is an expected failure if it finds redeliveries.
* Ordered subscription: per ordering key, the bodies received (and then
  left), counting each where it first appears, are in publishing order.
* The streaming subscribers reconnect by themselves after each restart;
  how long that takes is reported (see tests/faults/pubsub.py for the
  channel settings without which each kill costs them about 10 s).
"""

from __future__ import annotations

import itertools
import statistics
import time
from dataclasses import dataclass, field
from typing import Any

from google.api_core import exceptions
from google.cloud import pubsub_v1
from google.pubsub_v1 import types

from dovecote.core.tokens import DeliveryToken
from tests.faults.crashloop import (
    Lives,
    Worker,
    assert_settlements_kept,
    assert_survived,
    first_appearances,
    kill_loop,
)
from tests.faults.harness import Broker, scaled, seeded
from tests.faults.pubsub import (
    GONE,
    PROJECT,
    drain,
    never_sent,
    publish_batch,
    publisher_client,
    subscriber_client,
)

KILLS = scaled(20)
RATE = 200  # messages per second offered: the three subscribers keep up
# The Python client runs keyed messages one at a time per key on every
# subscription, ordered or not (Google sends ordering_key to all; the Go
# client checks the subscription, python does not): a key's next message
# waits until the previous one's ack has gone out, so spread over many keys.
KEYS = 32
BATCH = 10
ACK_WINDOW = 1.0
CATCH_UP_S = 12.0  # after the loop, the subscribers may take this long to see everything
SETTLE_S = 1.0  # and then the last acks this long to go out before the clean stop
# Messages a stream may hold (the broker honours it per stream): small, so a
# message reaches the callback soon after it was sent, but above RATE: a
# stream at its limit waits for the next second (streaming.py sleeps up to
# STREAM_IDLE_S, and an ack wakes it only on an ordered subscription), so
# it carries at most this many messages a second.
OUTSTANDING = 300
SAME_LIFE = 1 << 20  # attempt numbers closer than this come from one life


def key_of(n: int) -> str:
    return f"k{n % KEYS}"


@dataclass(kw_only=True)
class Publisher(Worker):
    """Publishes batches of numbered messages, each batch again until it is
    answered (same bodies), so per ordering key the order of first sends is
    the numbering."""

    address: str
    topic: str
    confirmed: set[int] = field(default_factory=set)
    sends: dict[int, int] = field(default_factory=dict)  # n -> attempts that may have arrived
    refused: int = 0

    def _run(self) -> None:
        client = publisher_client(self.address)
        started = time.monotonic()
        first = 0
        while not self.stop.is_set():
            batch = range(first, first + BATCH)
            messages = [types.PubsubMessage(data=b"%d" % n, ordering_key=key_of(n)) for n in batch]
            try:
                publish_batch(client, self.topic, messages)
            except GONE as exc:
                if never_sent(exc):
                    self.refused += 1
                else:
                    for n in batch:
                        self.sends[n] = self.sends.get(n, 0) + 1
                time.sleep(0.02)
                continue  # the same batch again
            except exceptions.GoogleAPICallError as exc:
                self.errors.append(f"publish: {exc}")
                return
            for n in batch:
                self.sends[n] = self.sends.get(n, 0) + 1
            self.confirmed.update(batch)
            first += BATCH
            ahead = first / RATE - (time.monotonic() - started)
            if ahead > 0:
                time.sleep(ahead)


@dataclass
class Receipt:
    n: int
    message_id: str
    attempt: int  # from the ack id: which life of the broker delivered it
    key: str
    received: float
    acked: float | None = None  # when ack() was called, or its future succeeded
    ack_failed: str | None = None


@dataclass(kw_only=True)
class Receiver(Worker):
    """A streaming subscriber (``SubscriberClient.subscribe``) that records
    every message and acks it at once; on the exactly-once subscription
    through ``ack_with_response()``, an ack counting only once its future
    succeeded. If the client gives up (its future finishes), it subscribes
    again and counts that."""

    address: str
    subscription: str
    exactly_once: bool = False
    receipts: list[Receipt] = field(default_factory=list)
    best_effort_acks: int = 0  # futures already done when returned: not tracked
    resubscribes: int = 0

    def _callback(self, message: Any) -> None:
        receipt = Receipt(
            int(message.data),
            message.message_id,
            DeliveryToken.parse(message.ack_id).attempt,
            message.ordering_key,
            time.monotonic(),
        )
        self.receipts.append(receipt)
        if not self.exactly_once:
            message.ack()
            receipt.acked = time.monotonic()
            return
        future = message.ack_with_response()
        if future.done():
            self.best_effort_acks += 1

        def settled(done: Any) -> None:
            error = done.exception()
            if error is None:
                receipt.acked = time.monotonic()
            else:
                receipt.ack_failed = f"{type(error).__name__}: {error}"

        future.add_done_callback(settled)

    def _run(self) -> None:
        client = subscriber_client(self.address)
        try:
            while not self.stop.is_set():
                future = client.subscribe(
                    self.subscription,
                    self._callback,
                    flow_control=pubsub_v1.types.FlowControl(max_messages=OUTSTANDING),
                )
                while not self.stop.is_set() and not future.done():
                    self.stop.wait(0.05)
                if future.done():
                    self.resubscribes += 1
                    continue
                future.cancel()
                try:
                    future.result(timeout=10)
                except Exception as exc:  # a cancelled future raises; anything else is noted
                    if not isinstance(exc, exceptions.Cancelled | TimeoutError):
                        self.errors.append(f"closing {self.subscription}: {exc!r}")
        finally:
            client.close()

    def caught_up(self, confirmed: set[int]) -> bool:
        """Every confirmed message reached the callback at least once."""
        return confirmed <= {r.n for r in self.receipts}


def create(address: str, topic: str, subscriptions: dict[str, dict[str, bool]]) -> None:
    publisher, subscriber = publisher_client(address), subscriber_client(address)
    try:
        publisher.create_topic(name=topic)
        for name, settings in subscriptions.items():
            subscriber.create_subscription(request={"name": name, "topic": topic, **settings})
    finally:
        subscriber.close()


def check_subscription(
    publisher: Publisher,
    receiver: Receiver,
    rest: list[Any],
    lives: Lives,
    closed: float,
    ordered: bool,
) -> dict[str, Any]:
    """What happened on one subscription: lost, stored twice (and whether it
    was sent twice), out of key order, acks undone (and how long before the
    kill they were made)."""
    left = [(int(m.data), m.message_id) for m in rest]
    every = [(r.n, r.message_id) for r in receipts_in_order(receiver)] + left
    ids: dict[int, set[str]] = {}
    for n, message_id in every:
        ids.setdefault(n, set()).add(message_id)
    stored_twice = {n: len(found) for n, found in ids.items() if len(found) > 1}
    disorder = []
    if ordered:
        for k in range(KEYS):
            order = first_appearances([n for n, _ in every if n % KEYS == k])
            if order != sorted(order):
                disorder.append(f"k{k}: {first_out_of_order(order)}")
    undone = undone_acks(receiver, {i for _n, i in left}, lives, closed)
    return {
        "lost": sorted(publisher.confirmed - ids.keys()),
        "stored_twice": stored_twice,
        "never_sent_twice": [
            f"{n} x{c} (sent {publisher.sends.get(n, 0)})"
            for n, c in stored_twice.items()
            if c > publisher.sends.get(n, 0)
        ],
        "disorder": disorder,
        "redeliveries": len(every) - len(ids) - sum(c - 1 for c in stored_twice.values()),
        "acks": sum(r.acked is not None for r in receiver.receipts),
        "ack_failures": sum(r.ack_failed is not None for r in receiver.receipts),
        **undone,
    }


def receipts_in_order(receiver: Receiver) -> list[Receipt]:
    return sorted(receiver.receipts, key=lambda r: r.received)


def first_out_of_order(order: list[int]) -> str:
    for before, after in itertools.pairwise(order):
        if after < before:
            return f"{after} after {before}"
    return ""


def undone_acks(receiver: Receiver, left: set[str], lives: Lives, closed: float) -> dict[str, Any]:
    """Acks that a later delivery (streamed, or left for the drain) undid.
    Exactly-once: every ack whose future succeeded counts. Otherwise an ack
    counts if it was made in the life that delivered the message; its age is
    how long before that life's kill it was made."""
    lives_of = delivering_lives(receiver.receipts, lives)
    later: dict[str, int] = {}  # message id -> deliveries after the one at hand
    undone_once: list[int] = []
    ages: list[float] = []
    without_kill: list[int] = []
    for receipt in reversed(receipts_in_order(receiver)):
        comes_back = later.get(receipt.message_id, 0) or receipt.message_id in left
        later[receipt.message_id] = later.get(receipt.message_id, 0) + 1
        if receipt.acked is None or not comes_back:
            continue
        if receiver.exactly_once:
            undone_once.append(receipt.n)
            continue
        life = lives_of.get(receipt.attempt)
        if life is None or lives.serving(receipt.acked) != life:
            continue  # an ack id of an earlier life settles nothing
        age = lives.age_at_kill(life, receipt.acked)
        if age is not None:
            ages.append(age)
        elif closed - receipt.acked > ACK_WINDOW:
            without_kill.append(receipt.n)
        # else: made just before the subscribers closed, and the client
        # drops the acks it has not sent yet when it closes (they are best
        # effort): that is no kill, but no fault of the broker either.
    return {
        "undone_once": sorted(undone_once),
        "undone_without_kill": sorted(without_kill),
        "ack_ages": ages,
        "undone_acks": [age for age in ages if age > ACK_WINDOW],
    }


def delivering_lives(receipts: list[Receipt], lives: Lives) -> dict[int, int]:
    """attempt -> the life of the broker that delivered it, for the attempts
    whose life is sure (see the module docstring)."""
    clusters: list[list[Receipt]] = []
    for receipt in sorted(receipts, key=lambda r: r.attempt):
        if clusters and receipt.attempt - clusters[-1][-1].attempt < SAME_LIFE:
            clusters[-1].append(receipt)
        else:
            clusters.append([receipt])
    claims: dict[int, list[list[Receipt]]] = {}
    for cluster in clusters:
        life = lives.serving(min(r.received for r in cluster))
        if life is not None:
            claims.setdefault(life, []).append(cluster)
    return {r.attempt: life for life, found in claims.items() if len(found) == 1 for r in found[0]}


def reconnect_delays(receiver: Receiver, lives: Lives) -> list[float]:
    """Per restart, how long after the broker was ready its first message
    reached this subscriber (lives with nothing received are left out)."""
    firsts: dict[int, float] = {}
    for receipt in receiver.receipts:
        life = lives.serving(receipt.received)
        if life is not None and life > 0:
            firsts[life] = min(firsts.get(life, receipt.received), receipt.received)
    return [when - lives.ups[life] for life, when in firsts.items()]


def test_sigkill_loop_with_pubsub_publisher_and_streaming_subscribers(tmp_path, fault_report):
    seed, rng = seeded()
    broker = Broker(tmp_path / "data").start()
    address = broker.addresses["pubsub"]
    topic = f"projects/{PROJECT}/topics/crash"
    names = {
        "plain": f"projects/{PROJECT}/subscriptions/crash-plain",
        "once": f"projects/{PROJECT}/subscriptions/crash-once",
        "ordered": f"projects/{PROJECT}/subscriptions/crash-ordered",
    }
    create(
        address,
        topic,
        {
            names["plain"]: {},
            names["once"]: {"enable_exactly_once_delivery": True},
            names["ordered"]: {"enable_message_ordering": True},
        },
    )
    lives = Lives()
    publisher = Publisher(address=address, topic=topic)
    receivers = {
        role: Receiver(address=address, subscription=name, exactly_once=role == "once")
        for role, name in names.items()
    }
    workers: list[Worker] = [publisher, *receivers.values()]
    try:
        for worker in workers:
            worker.start()
        started = time.monotonic()
        kill_loop(broker, rng, KILLS, lives)
        time.sleep(0.5)
        publisher.join(30)
        # The streams go on in the last life: what they get is checked with
        # no kill to excuse it. What they do not reach is drained below.
        deadline = time.monotonic() + CATCH_UP_S
        while time.monotonic() < deadline:
            if all(r.caught_up(publisher.confirmed) for r in receivers.values()):
                break
            time.sleep(0.2)
        time.sleep(SETTLE_S)
        closed = time.monotonic()
        for receiver in receivers.values():
            receiver.join(30)
        loop_s = time.monotonic() - started
        # A clean restart drops the leases still held: what is left is deliverable.
        broker.check()
        broker.stop()
        broker.start()
        client: pubsub_v1.SubscriberClient = subscriber_client(address)
        try:
            rest = {role: drain(client, name) for role, name in names.items()}
        finally:
            client.close()
    finally:
        for worker in workers:
            worker.stop.set()
        broker.stop()

    found = {
        role: check_subscription(
            publisher, receivers[role], rest[role], lives, closed, role == "ordered"
        )
        for role in names
    }
    lost = [f"{role}:{n}" for role, f in found.items() for n in f["lost"]]
    ages = [age for f in found.values() for age in f["ack_ages"]]
    delays = [d for r in receivers.values() for d in reconnect_delays(r, lives)]
    once = receivers["once"]
    exactly_once_advertised = once.best_effort_acks == 0 and found["once"]["acks"] > 0
    fault_report(
        "crash loop (Pub/Sub, SIGKILL)",
        runs=KILLS,
        acknowledged=len(publisher.confirmed),
        lost=len(lost),
        duplicates=len(found["plain"]["stored_twice"]),  # one topic: the same on each
        crashes=broker.crashes,
        kills=broker.kills,
        loop_s=round(loop_s, 1),
        restart_s_mean=round(statistics.fmean(lives.restarts or [0]), 2),
        resent=sum(c - 1 for c in publisher.sends.values()),
        receipts=sum(len(r.receipts) for r in receivers.values()),
        **{f"{role}_receipts": len(r.receipts) for role, r in receivers.items()},
        redeliveries=sum(f["redeliveries"] for f in found.values()),
        acked_then_redelivered=len(ages),
        ack_to_kill_max_ms=round(max(ages, default=0) * 1000),
        once_acks=found["once"]["acks"],
        once_ack_failures=found["once"]["ack_failures"],
        once_undone=len(found["once"]["undone_once"]),
        exactly_once_advertised=exactly_once_advertised,
        left=sum(len(r) for r in rest.values()),
        reconnect_ms_median=round(statistics.median(delays or [0]) * 1000),
        reconnect_ms_max=round(max(delays, default=0) * 1000),
        resubscribes=sum(r.resubscribes for r in receivers.values()),
        seed=seed,
    )
    assert_survived(broker, workers, seed)
    assert not lost, f"seed {seed}: {len(lost)} published messages lost, e.g. {lost[:10]}"
    twice = [f"{role}:{x}" for role, f in found.items() for x in f["never_sent_twice"]]
    assert not twice, f"seed {seed}: stored twice but sent once: {twice[:10]}"
    disorder = found["ordered"]["disorder"]
    assert not disorder, f"seed {seed}: ordering keys out of order: {disorder}"
    assert_settlements_kept(found.values(), seed, ACK_WINDOW)
    assert len(publisher.confirmed) > KILLS * 50, "the publisher should have made progress"
    for role, receiver in receivers.items():
        assert len(receiver.receipts) > KILLS * 10, f"the {role} subscriber should have worked"
    undone_once = found["once"]["undone_once"]
    assert exactly_once_advertised, "StreamingPull should tell the client it is exactly-once"
    assert not undone_once, (
        f"seed {seed}: {len(undone_once)} exactly-once acks that succeeded were undone, "
        f"e.g. {undone_once[:10]}"
    )

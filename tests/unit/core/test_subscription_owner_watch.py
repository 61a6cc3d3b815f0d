"""Hypothesis state machine: ``Subscription.watch_owner`` sees every lease of
the watched owner end, however it ends.

Pulls by the watched owner and another, acks, nacks, extends (0 included),
dead-lettering after a delivery limit, expiry on the fake clock and seeks: a
counter kept only from the callbacks (+1 per record pulled by the owner, -1
per lease reported ended, reset on a seek) always equals the leases the
subscription holds for that owner; and nothing is reported after unwatching.
"""

from __future__ import annotations

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import invariant, rule

from dovecote.core.clock import FakeClock
from dovecote.core.subscription_state import SubscriptionConfig
from dovecote.storage.batch import Record
from tests.unit.core.core_machine import CoreMachine

OWNERS = ("watched", "other")


class OwnerWatchMachine(CoreMachine):
    def __init__(self) -> None:
        self.clock = FakeClock()
        super().__init__("owner-watch-", self.clock)
        self.run(self.core.create_topic("q", 2))
        self.sub = self.call(
            self.core.open_subscription,
            "s",
            "q",
            SubscriptionConfig(lease_ms=1000, max_deliveries=3),
            on_dead_letter=self._dead,
        )
        self.count = 0
        self.bytes = 0
        self.unwatch = self.sub.watch_owner("watched", self._ended)
        self.watching = True
        self.held: list = []

    async def _dead(self, record, reason) -> None:
        pass

    def _ended(self, lease) -> None:
        assert self.watching, "reported after unwatch"
        if lease is None:
            self.count = self.bytes = 0
        else:
            assert lease.owner == "watched"
            self.count -= 1
            self.bytes -= len(lease.record.value or b"")

    @rule(n=st.integers(1, 10), size=st.integers(0, 50), partition=st.integers(0, 1))
    def publish(self, n, size, partition) -> None:
        part = self.core.get_topic("q").partitions[partition]
        records = [Record(b"v" * size, timestamp=self.clock.wall_ms()) for _ in range(n)]
        self.run(part.append_records(records))

    @rule(n=st.integers(1, 4), owner=st.sampled_from(OWNERS), lease_ms=st.integers(1, 1500))
    def pull(self, n, owner, lease_ms) -> None:
        got = self.call(self.sub.pull, n, owner, lease_ms)
        if owner == "watched" and self.watching:
            self.count += len(got)
            self.bytes += sum(len(d.record.value or b"") for d in got)
        self.held += [d.token for d in got]

    @rule(data=st.data(), how=st.sampled_from(["ack", "nack", "reject", "extend", "extend0"]))
    def settle(self, data, how) -> None:
        current = self.sub.leases_of("watched") + self.sub.leases_of("other")
        pool = current if current and data.draw(st.integers(0, 3)) else self.held  # or stale
        if not pool:
            return
        tokens = data.draw(st.lists(st.sampled_from(pool), min_size=1, max_size=4))
        if how == "ack":
            self.call(self.sub.ack, tokens)
        elif how == "nack":
            self.call(self.sub.nack, tokens)
        elif how == "reject":
            self.call(self.sub.nack, tokens, requeue=False)
        elif how == "extend":
            self.call(self.sub.extend, tokens, 2000)
        else:
            self.call(self.sub.extend, tokens, 0)

    @rule(owner=st.sampled_from(OWNERS))
    def release(self, owner) -> None:
        self.call(self.sub.release, owner)

    @rule(ms=st.integers(0, 1500))
    def advance(self, ms) -> None:
        self.run(self.clock.advance(ms / 1000))

    @rule(to_start=st.booleans())
    def seek(self, to_start) -> None:
        target = 0 if to_start else {p.index: p.high_watermark for p in self.sub.topic.partitions}
        self.call(self.sub.seek, target)

    @rule(roll=st.integers(0, 19))
    def stop_watching(self, roll) -> None:
        if self.watching and roll == 0:  # rarely: the rest of the run checks silence
            self.unwatch()
            self.watching = False

    @invariant()
    def counter_matches_the_leases(self) -> None:
        if not self.watching:
            return
        held = [
            lease
            for cursor in self.sub.cursors
            for lease in cursor.leased.values()
            if lease.owner == "watched"
        ]
        assert self.count == len(held)
        assert self.bytes == sum(len(lease.record.value or b"") for lease in held)


TestOwnerWatchMachine = OwnerWatchMachine.TestCase
TestOwnerWatchMachine.settings = settings(max_examples=60, stateful_step_count=40, deadline=None)

"""Hypothesis state machine: ordering keys against a model of message groups.

With ``ordered=True`` every delivery of a key is that key's lowest unsettled
record (in order, and redelivery in order after a nack or an expired lease),
at most one record per key is in flight, and a pull delivers one record of
every key that has nothing in flight (no key starves). Late acks of expired
leases are stale. Runs on a fake clock.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from pathlib import Path

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from dovecote.core.broker import BrokerCore
from dovecote.core.clock import FakeClock
from dovecote.core.config import BrokerConfig
from dovecote.core.subscription import SubscriptionConfig
from dovecote.core.tokens import DeliveryToken
from dovecote.storage.batch import Record

KEYS = [b"a", b"b", b"c"]
OWNERS = ["x", "y"]
LEASE_MS = 1000


class GroupsMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.dir = Path(tempfile.mkdtemp(prefix="groups-"))
        self.clock = FakeClock()
        self.core = BrokerCore(
            BrokerConfig.load(env={}, overrides={"data_dir": self.dir}), clock=self.clock
        )
        self.run(self.core.start())
        self.run(self.core.create_topic("q", 1))
        self.sub = self.core.open_subscription(
            "s", "q", SubscriptionConfig(ordered=True, lease_ms=LEASE_MS)
        )
        self.unsettled: dict[int, bytes] = {}  # offset -> key
        self.held: dict[int, tuple[str, DeliveryToken]] = {}  # offset -> owner, token
        self.expired: list[DeliveryToken] = []

    def run(self, coro):
        return self.loop.run_until_complete(coro)

    def call(self, fn, *args, **kwargs):
        async def inside():
            return fn(*args, **kwargs)

        return self.run(inside())

    def teardown(self) -> None:
        self.run(self.core.stop())
        self.loop.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def held_keys(self) -> set[bytes]:
        return {self.unsettled[o] for o in self.held}

    @rule(keys=st.lists(st.sampled_from(KEYS), min_size=1, max_size=4))
    def publish(self, keys: list[bytes]) -> None:
        partition = self.core.get_topic("q").partitions[0]
        for key in keys:
            result = self.run(partition.append_records([Record(key, key=key)]))
            self.unsettled[result.base_offset] = key

    @rule(owner=st.sampled_from(OWNERS), n=st.integers(1, 4))
    def pull(self, owner: str, n: int) -> None:
        free = {k for k in self.unsettled.values()} - self.held_keys()
        got = self.call(self.sub.pull, n, owner)
        assert len(got) == min(n, len(free)), "a key with nothing in flight starved"
        for d in got:
            key = d.record.key
            assert key in free, "two records of one key in flight"
            free.discard(key)
            lowest = min(o for o, k in self.unsettled.items() if k == key)
            assert d.offset == lowest, "out of order within a key"
            self.held[d.offset] = (owner, d.token)

    @rule(data=st.data())
    def ack(self, data) -> None:
        chosen = (
            data.draw(st.lists(st.sampled_from(sorted(self.held)), unique=True))
            if self.held
            else []
        )
        result = self.call(self.sub.ack, [self.held[o][1] for o in chosen])
        assert result.done == len(chosen) and result.stale == []
        for o in chosen:
            del self.held[o]
            del self.unsettled[o]

    @rule(data=st.data())
    def nack(self, data) -> None:
        chosen = (
            data.draw(st.lists(st.sampled_from(sorted(self.held)), unique=True))
            if self.held
            else []
        )
        result = self.call(self.sub.nack, [self.held[o][1] for o in chosen])
        assert result.done == len(chosen)
        for o in chosen:
            del self.held[o]

    @rule()
    def leases_expire(self) -> None:
        self.run(self.clock.advance(LEASE_MS / 1000))
        self.expired.extend(token for _, token in self.held.values())
        self.held.clear()

    @rule()
    def late_acks_are_stale(self) -> None:
        late = self.expired[-3:]
        result = self.call(self.sub.ack, late)
        assert result.done == 0 and len(result.stale) == len(late)

    @invariant()
    def counts_agree(self) -> None:
        assert self.sub.unacked_count() == len(self.held)
        assert self.sub.ready_count() == len(self.unsettled) - len(self.held)


TestGroupsMachine = GroupsMachine.TestCase
TestGroupsMachine.settings = settings(max_examples=40, stateful_step_count=30, deadline=None)

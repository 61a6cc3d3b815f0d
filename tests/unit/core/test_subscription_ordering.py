"""Hypothesis state machine: ordering keys against a model of message groups.

With ``ordered=True`` every delivery of a key is that key's lowest unsettled
record (in order, and redelivery in order after a nack or an expired lease),
at most one record per key is in flight (a ``group_batches`` pull may take several of a
key that was free, its lowest in order), and a pull delivers one record of
every key that has nothing in flight (no key starves), also when records of
a key expire (TTL) or are rejected on the way. Late acks of expired leases
are stale. Runs on a fake clock.
"""

from __future__ import annotations

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import invariant, rule

from dovecote.core.clock import FakeClock
from dovecote.core.headers import EXPIRES_AT
from dovecote.core.subscription_state import SubscriptionConfig
from dovecote.core.tokens import DeliveryToken
from dovecote.storage.batch import Record
from tests.unit.core.core_machine import CoreMachine

KEYS = [b"a", b"b"]
OWNERS = ["x", "y"]
LEASE_MS = 1000


class GroupsMachine(CoreMachine):
    def __init__(self) -> None:
        self.clock = FakeClock()
        super().__init__("groups-", self.clock)
        self.run(self.core.create_topic("q", 1))
        self.sub = self.call(
            self.core.open_subscription,
            "s",
            "q",
            SubscriptionConfig(ordered=True, lease_ms=LEASE_MS),
            on_dead_letter=self._dead,
        )
        self.unsettled: dict[int, bytes] = {}  # offset -> key
        self.expires: dict[int, int] = {}  # offset -> wall ms it expires at
        self.held: dict[int, tuple[str, DeliveryToken]] = {}  # offset -> owner, token
        self.deadline: dict[int, float] = {}  # offset -> when its lease ends
        self.expired: list[DeliveryToken] = []

    async def _dead(self, record, reason) -> None:
        assert record.offset not in self.held, "a leased record was dead-lettered"
        self.unsettled.pop(record.offset, None)

    async def after_call(self) -> None:
        await self.clock.advance(0)  # let dead-letter moves finish

    def held_keys(self) -> set[bytes]:
        return {self.unsettled[o] for o in self.held}

    @rule(
        keys=st.lists(st.sampled_from(KEYS), min_size=1, max_size=4),
        ttl=st.sampled_from([None, None, 100, 700]),
    )
    def publish(self, keys: list[bytes], ttl: int | None) -> None:
        partition = self.core.get_topic("q").partitions[0]
        now = self.clock.wall_ms()
        headers = [] if ttl is None else [(EXPIRES_AT, b"%d" % (now + ttl))]
        for key in keys:
            record = Record(key, key=key, headers=list(headers), timestamp=now)
            result = self.run(partition.append_records([record]))
            self.unsettled[result.base_offset] = key
            if ttl is not None:
                self.expires[result.base_offset] = now + ttl
        self.run(self.clock.advance(0))

    def live(self, key: bytes) -> list[int]:
        """Unsettled, unexpired records of ``key`` (expired ones are dead-lettered
        rather than delivered)."""
        now = self.clock.wall_ms()
        return sorted(
            o
            for o, k in self.unsettled.items()
            if k == key and (o in self.held or self.expires.get(o, now + 1) > now)
        )

    @rule(owner=st.sampled_from(OWNERS), n=st.integers(1, 4))
    def pull(self, owner: str, n: int) -> None:
        free = {k for k in self.unsettled.values() if self.live(k)} - self.held_keys()
        lowest = {k: self.live(k)[0] for k in free}
        got = self.call(self.sub.pull, n, owner)
        assert len(got) == min(n, len(free)), "a key with nothing in flight starved"
        for d in got:
            key = d.record.key
            assert key in free, "two records of one key in flight"
            free.discard(key)
            assert d.offset == lowest[key], "out of order within a key"
            self.held[d.offset] = (owner, d.token)
            self.deadline[d.offset] = self.clock.monotonic() + LEASE_MS / 1000

    @rule(owner=st.sampled_from(OWNERS), n=st.integers(1, 6))
    def pull_group_batch(self, owner: str, n: int) -> None:
        """SQS FIFO receives: a key free when the pull begins may give several
        records, its lowest ones in order; held keys give none."""
        free = {k for k in self.unsettled.values() if self.live(k)} - self.held_keys()
        available = {k: self.live(k) for k in free}
        total = sum(len(v) for v in available.values())
        got = self.call(self.sub.pull, n, owner, group_batches=True)
        assert len(got) == min(n, total), "a free record was left behind"
        taken: dict[bytes, list[int]] = {}
        for d in got:
            key = d.record.key
            assert key in free, "a record of a key in flight was delivered"
            taken.setdefault(key, []).append(d.offset)
            self.held[d.offset] = (owner, d.token)
            self.deadline[d.offset] = self.clock.monotonic() + LEASE_MS / 1000
        for key, offsets in taken.items():
            assert offsets == available[key][: len(offsets)], "out of order within a key"

    @rule(data=st.data())
    def ack(self, data) -> None:
        chosen = (
            data.draw(st.lists(st.sampled_from(sorted(self.held)), min_size=1, unique=True))
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
            data.draw(st.lists(st.sampled_from(sorted(self.held)), min_size=1, unique=True))
            if self.held
            else []
        )
        tokens = [self.held.pop(o)[1] for o in chosen]  # back before any expiry runs
        result = self.call(self.sub.nack, tokens)
        assert result.done == len(chosen)

    @rule(data=st.data())
    def reject(self, data) -> None:
        chosen = (
            data.draw(st.lists(st.sampled_from(sorted(self.held)), min_size=1, unique=True))
            if self.held
            else []
        )
        tokens = [self.held[o][1] for o in chosen]
        for o in chosen:
            del self.held[o]
        result = self.call(self.sub.nack, tokens, requeue=False)
        assert result.done == len(chosen)
        assert not set(chosen) & set(self.unsettled), "rejected records were not dead-lettered"

    @rule(ms=st.integers(1, 800))
    def time_passes(self, ms: int) -> None:
        self.advance(ms / 1000)

    @rule()
    def leases_expire(self) -> None:
        self.advance(LEASE_MS / 1000)

    def advance(self, seconds: float) -> None:
        until = self.clock.monotonic() + seconds
        for offset in [o for o in self.held if self.deadline[o] <= until]:
            self.expired.append(self.held.pop(offset)[1])
        self.run(self.clock.advance(seconds))

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
TestGroupsMachine.settings = settings(max_examples=100, stateful_step_count=30, deadline=None)

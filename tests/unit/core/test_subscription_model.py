"""Hypothesis state machine: a subscription against a model of a queue.

Every published record is ready, leased to one owner, or settled. A pull
returns the lowest ready offsets in order; delivery counts and the redelivered
flag follow every requeue, lease release and restart; nothing settled is ever
delivered again and nothing unsettled is lost, across clean restarts."""

from __future__ import annotations

import asyncio

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import invariant, rule

from dovecote.storage.batch import Record
from tests.unit.core.core_machine import CoreMachine

OWNERS = ["a", "b", "c"]


class QueueMachine(CoreMachine):
    def __init__(self) -> None:
        super().__init__("submodel-")
        self.run(self.core.create_topic("q", 1))
        self.sub = self.core.open_subscription("s", "q", on_dead_letter=self._dead)
        self.state: dict[int, object] = {}  # offset -> "ready" | owner | "settled"
        self.count: dict[int, int] = {}
        self.dead: list[int] = []
        self.dead_seen: list[int] = []

    async def _dead(self, record, reason):
        self.dead_seen.append(record.offset)

    def leased_by(self, owner):
        return sorted(o for o, s in self.state.items() if s == owner)

    @rule(n=st.integers(1, 5))
    def publish(self, n: int) -> None:
        partition = self.core.get_topic("q").partitions[0]
        for _ in range(n):
            result = self.run(partition.append_records([Record(b"v")]))
            self.state[result.base_offset] = "ready"
            self.count[result.base_offset] = 0

    @rule(owner=st.sampled_from(OWNERS), k=st.integers(1, 6))
    def pull(self, owner: str, k: int) -> None:
        got = self.call(self.sub.pull, k, owner)
        ready = sorted(o for o, s in self.state.items() if s == "ready")
        assert [d.offset for d in got] == ready[:k]
        for d in got:
            self.count[d.offset] += 1
            assert d.count == self.count[d.offset]
            assert d.redelivered == (self.count[d.offset] > 1)
            self.state[d.offset] = owner

    @rule(owner=st.sampled_from(OWNERS), data=st.data())
    def ack(self, owner: str, data) -> None:
        mine = self.leased_by(owner)
        chosen = data.draw(st.lists(st.sampled_from(mine), unique=True)) if mine else []
        assert self.call(self.sub.ack, [(0, o) for o in chosen]) == len(chosen)
        for o in chosen:
            self.state[o] = "settled"

    @rule(owner=st.sampled_from(OWNERS), data=st.data(), requeue=st.booleans())
    def nack(self, owner: str, data, requeue: bool) -> None:
        mine = self.leased_by(owner)
        chosen = data.draw(st.lists(st.sampled_from(mine), unique=True)) if mine else []
        assert self.call(self.sub.nack, [(0, o) for o in chosen], requeue=requeue) == len(chosen)
        for o in chosen:
            self.state[o] = "ready" if requeue else "settled"
            if not requeue:
                self.dead.append(o)

    @rule(owner=st.sampled_from(OWNERS))
    def release(self, owner: str) -> None:
        mine = self.leased_by(owner)
        assert self.call(self.sub.release, owner) == len(mine)
        for o in mine:
            self.state[o] = "ready"

    @rule()
    def acks_by_a_stranger_do_nothing(self) -> None:
        settled = [o for o, s in self.state.items() if s == "settled"][:3]
        assert self.call(self.sub.ack, [(0, o) for o in settled]) == 0

    @rule()
    def restart(self) -> None:
        self.run(asyncio.sleep(0))  # let pending dead-letter moves finish
        self.run(self.core.stop())
        self.core = self.start_core()
        self.sub = self.core.open_subscription("s", "q", on_dead_letter=self._dead)
        for o, s in self.state.items():
            if s in OWNERS:
                self.state[o] = "ready"  # leases do not survive; the delivery count does

    @invariant()
    def counts_agree(self) -> None:
        ready = sum(1 for s in self.state.values() if s == "ready")
        leased = sum(1 for s in self.state.values() if s in OWNERS)
        assert self.sub.ready_count() == ready
        assert self.sub.unacked_count() - self._dead_in_flight() == leased

    def _dead_in_flight(self) -> int:
        return sum(
            1 for c in self.sub.cursors for lease in c.leased.values() if lease.owner not in OWNERS
        )

    @invariant()
    def dead_letters_arrive(self) -> None:
        self.run(asyncio.sleep(0))
        self.run(asyncio.sleep(0))
        assert sorted(self.dead_seen) == sorted(self.dead)


TestQueueMachine = QueueMachine.TestCase
TestQueueMachine.settings = settings(max_examples=50, stateful_step_count=30, deadline=None)

"""Hypothesis state machine: a subscription's timers fire on time by themselves.

Whatever mix of leases, extensions, delayed nacks, delayed records and time
steps, once the fake clock has moved past a due time nothing is left overdue
(no lease past its deadline, no delayed record past its due time, no expired
record at a head), and the subscription holds at most one timer, armed no
later than the earliest thing due.
"""

from __future__ import annotations

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import invariant, rule

from dovecote.core.clock import FakeClock
from dovecote.core.headers import DELIVER_AT, EXPIRES_AT
from dovecote.core.subscription import NEVER
from dovecote.core.subscription_state import SubscriptionConfig
from dovecote.storage.batch import Record
from tests.unit.core.core_machine import CoreMachine


class TimersMachine(CoreMachine):
    def __init__(self) -> None:
        self.clock = FakeClock()
        super().__init__("timers-", self.clock)
        self.run(self.core.create_topic("q", 1))
        self.idle_timers = self.clock.pending()  # the broker's own loops
        self.dead: list[bytes | None] = []
        self.sub = self.call(  # inside the loop, as the broker opens them
            self.core.open_subscription,
            "s",
            "q",
            SubscriptionConfig(lease_ms=500),
            on_dead_letter=self._dead,
        )
        self.held: list = []

    async def _dead(self, record, reason) -> None:
        self.dead.append(record.value)

    @rule(
        delay=st.one_of(st.none(), st.integers(1, 1500)),
        ttl=st.one_of(st.none(), st.integers(1, 1500)),
    )
    def publish(self, delay, ttl) -> None:
        now = self.clock.wall_ms()
        headers = []
        if delay is not None:
            headers.append((DELIVER_AT, b"%d" % (now + delay)))
        if ttl is not None:
            headers.append((EXPIRES_AT, b"%d" % (now + ttl)))
        partition = self.core.get_topic("q").partitions[0]
        self.run(partition.append_records([Record(b"v", headers=headers, timestamp=now)]))
        self.run(self.clock.advance(0))

    @rule(n=st.integers(1, 3), lease_ms=st.integers(1, 1500))
    def pull(self, n, lease_ms) -> None:
        self.held += [d.token for d in self.call(self.sub.pull, n, "c", lease_ms)]

    @rule(data=st.data(), lease_ms=st.integers(0, 1500))
    def extend(self, data, lease_ms) -> None:
        if self.held:
            token = data.draw(st.sampled_from(self.held))
            self.call(self.sub.extend, [token], lease_ms)

    @rule(data=st.data(), delay_ms=st.integers(1, 1500))
    def nack_later(self, data, delay_ms) -> None:
        if self.held:
            token = data.draw(st.sampled_from(self.held))
            self.call(self.sub.nack, [token], delay_ms=delay_ms)

    @rule(ms=st.integers(0, 1200))
    def advance(self, ms) -> None:
        self.run(self.clock.advance(ms / 1000))

    @invariant()
    def nothing_overdue(self) -> None:
        now = self.clock.monotonic()
        now_ms = self.clock.wall_ms()
        earliest = NEVER
        for cursor in self.sub.cursors:
            for lease in cursor.leased.values():
                assert lease.deadline > now, "a lease outlived its deadline"
                earliest = min(earliest, lease.deadline)
            for due_ms, _ in cursor.delayed:
                assert due_ms > now_ms, "a delayed record was not released"
                earliest = min(earliest, now + (due_ms - now_ms) / 1000)
            head = self.call(self.sub._peek, 0, cursor)
            if head is not None:
                expiry = self.sub._expiry(head)
                assert expiry is None or expiry > now_ms, "an expired head was kept"
                if expiry is not None:
                    earliest = min(earliest, now + (expiry - now_ms) / 1000)
        assert self.clock.pending() <= self.idle_timers + 1, "more than one timer"
        if earliest != NEVER:
            when = self.sub._alarm.when
            assert when is not None and when <= earliest + 1e-6, "alarm armed too late"


TestTimersMachine = TimersMachine.TestCase
TestTimersMachine.settings = settings(max_examples=40, stateful_step_count=30, deadline=None)

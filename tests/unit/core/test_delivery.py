"""Push delivery in the core: credit, bursts, refill timing, writability,
priorities, single active consumer, exclusivity, server-side cancel.

Everything runs on a FakeClock against a fake source and fake sinks: no
sleeps (``settle`` only lets the event loop take turns).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dovecote.core.clock import FakeClock
from dovecote.core.delivery import (
    PULL_MAX,
    REFILL_DELAY,
    ConsumerRefused,
    ConsumerSet,
    CreditPool,
    PushConsumer,
)
from dovecote.core.subscription_state import Delivery
from dovecote.storage.batch import Record


async def settle(turns: int = 10) -> None:
    for _ in range(turns):
        await asyncio.sleep(0)


class FakeSource:
    """Records 0..n-1 leased in order; acks and waits as a Subscription's."""

    def __init__(self, count: int = 0) -> None:
        self.closed = False
        self.next = 0
        self.end = 0
        self.leased: dict[int, object] = {}
        self.acked: list[int] = []
        self.pulls = 0
        self.ready: list[int] = []  # requeued, lowest first
        self._waiters: list[asyncio.Future[None]] = []
        self._on_close: list[Callable[[], None]] = []
        self.add(count)

    def add(self, count: int) -> None:
        self.end += count
        self._wake()

    def pull(self, max_records: int, owner: object) -> list[Delivery]:
        self.pulls += 1
        out = []
        while (self.ready or self.next < self.end) and len(out) < max_records:
            if self.ready:
                offset = self.ready.pop(0)
            else:
                offset = self.next
                self.next += 1
            self.leased[offset] = owner
            out.append(Delivery(0, offset, Record(b"x" * 10, key=b"k"), 1))
        return out

    def ack(self, items: Iterable[tuple[int, int]]) -> int:
        done = 0
        for _partition, offset in items:
            if self.leased.pop(offset, None) is not None:
                self.acked.append(offset)
                done += 1
        return done

    def nack(self, items: Iterable[tuple[int, int]], *, requeue: bool = True) -> int:
        done = 0
        for _partition, offset in items:
            if self.leased.pop(offset, None) is not None:
                self.ready = sorted([*self.ready, offset])
                done += 1
        self._wake()
        return done

    async def wait(self, timeout: float) -> bool:
        future = asyncio.get_running_loop().create_future()
        self._waiters.append(future)
        await future
        return True

    def on_close(self, callback: Callable[[], None]) -> Callable[[], None]:
        self._on_close.append(callback)
        return lambda: self._on_close.remove(callback)

    def close(self) -> None:
        self.closed = True
        self._wake()
        for callback in list(self._on_close):
            callback()

    def _wake(self) -> None:
        waiters, self._waiters = self._waiters, []
        for future in waiters:
            if not future.done():
                future.set_result(None)


class FakeSink:
    def __init__(self, name: str = "sink", *, fail: bool = False) -> None:
        self.name = name
        self.bursts: list[list[int]] = []
        self.is_writable = True
        self.drained: asyncio.Future[None] | None = None
        self.cancels: list[BaseException | None] = []
        self.fail = fail

    def __repr__(self) -> str:
        return f"<FakeSink {self.name}>"

    @property
    def offsets(self) -> list[int]:
        return [o for burst in self.bursts for o in burst]

    def deliver(self, deliveries: list[Delivery]) -> None:
        if self.fail:
            raise RuntimeError("socket gone")
        self.bursts.append([d.offset for d in deliveries])

    def writable(self) -> bool:
        return self.is_writable

    def wait_writable(self) -> asyncio.Future[None]:
        if self.drained is None or self.drained.done():
            self.drained = asyncio.get_running_loop().create_future()
        return self.drained

    def drain(self) -> None:
        self.is_writable = True
        if self.drained is not None and not self.drained.done():
            self.drained.set_result(None)

    def cancelled(self, error: BaseException | None) -> None:
        self.cancels.append(error)


def give_back(consumer: PushConsumer, source: FakeSource, offsets: list[int]) -> None:
    """What an adapter does when its client acks: settle, return credit, refill."""
    source.ack([(0, o) for o in offsets])
    consumer.returned(len(offsets))
    consumer.refill()


def consumer(sink: FakeSink, **kw) -> PushConsumer:
    return PushConsumer(sink, owner=sink, **kw)


def test_bursts_are_capped_by_credit_and_resume_when_credit_returns():
    async def main():
        clock = FakeClock()
        source = FakeSource(25)
        group = ConsumerSet(source, clock, name="q")
        sink = FakeSink()
        c = consumer(sink, prefetch=10)
        group.attach(c)
        await settle()
        assert sink.bursts == [list(range(10))]  # one burst, one pull per step
        assert c.in_flight == 10 and c.credit() == 0
        give_back(c, source, list(range(10)))  # the whole window: at once
        await settle()
        assert sink.bursts[1] == list(range(10, 20))
        give_back(c, source, list(range(10, 20)))
        await settle()
        assert sink.bursts[2] == list(range(20, 25))
        source.add(3)  # new data wakes the idle loop
        await settle()
        assert sink.bursts[3] == [25, 26, 27]
        group.detach(c)

    asyncio.run(main())


def test_single_acks_are_topped_up_in_bursts_by_fraction_or_after_the_delay():
    async def main():
        clock = FakeClock()
        source = FakeSource(100)
        group = ConsumerSet(source, clock, name="q")
        sink = FakeSink()
        c = consumer(sink, prefetch=16)  # refill at 16 // 8 = 2 free
        group.attach(c)
        await settle()
        assert sink.offsets == list(range(16))
        give_back(c, source, [0])  # 1 free: below the fraction, a timer is armed
        await settle()
        assert len(sink.bursts) == 1
        await clock.advance(REFILL_DELAY - 0.001)
        assert len(sink.bursts) == 1
        await clock.advance(0.001)  # due: topped up with what is free
        assert sink.bursts[-1] == [16]
        give_back(c, source, [1, 2])  # 2 free at once: no timer
        await settle()
        assert sink.bursts[-1] == [17, 18]
        assert clock.pending() == 0
        give_back(c, source, [3])  # a timer, and what comes back meanwhile waits for it
        give_back(c, source, [4, 5])
        await settle()
        assert sink.bursts[-1] == [17, 18]
        await clock.advance(REFILL_DELAY)
        assert sink.bursts[-1] == [19, 20, 21]
        group.detach(c)

    asyncio.run(main())


def test_a_full_transport_pauses_delivery_until_it_drains():
    async def main():
        clock = FakeClock()
        source = FakeSource(5)
        group = ConsumerSet(source, clock, name="q")
        sink = FakeSink()
        sink.is_writable = False
        c = consumer(sink, prefetch=100)
        group.attach(c)
        await settle()
        assert sink.bursts == [] and source.pulls == 0
        sink.drain()
        await settle()
        assert sink.bursts == [[0, 1, 2, 3, 4]]
        group.detach(c)

    asyncio.run(main())


def test_auto_ack_consumers_settle_on_delivery_and_need_no_credit():
    async def main():
        clock = FakeClock()
        source = FakeSource(3000)
        group = ConsumerSet(source, clock, name="q")
        sink = FakeSink()
        c = consumer(sink, auto_ack=True)
        group.attach(c)
        await settle(30)
        assert sink.offsets == list(range(3000))
        assert source.acked == list(range(3000)) and not source.leased
        assert c.in_flight == 0 and c.credit() == PULL_MAX
        group.detach(c)

    asyncio.run(main())


def test_a_shared_pool_limits_consumers_together():
    async def main():
        clock = FakeClock()
        source = FakeSource(20)
        group = ConsumerSet(source, clock, name="q")
        a, b = FakeSink("a"), FakeSink("b")
        held: dict[int, PushConsumer] = {}
        pool = CreditPool(4, held.__len__)
        ca, cb = consumer(a, pool=pool), consumer(b, pool=pool)

        def track(c: PushConsumer, sink: FakeSink) -> None:
            deliver = sink.deliver

            def wrapped(deliveries: list[Delivery]) -> None:
                deliver(deliveries)
                held.update((d.offset, c) for d in deliveries)

            sink.deliver = wrapped  # type: ignore[method-assign]

        track(ca, a)
        track(cb, b)
        group.attach(ca)
        group.attach(cb)
        await settle()
        assert len(a.offsets) + len(b.offsets) == 4
        first = sorted(held)[:2]
        for offset in first:
            owner = held.pop(offset)
            give_back(owner, source, [offset])
        await settle()
        assert len(a.offsets) + len(b.offsets) == 6
        group.detach(ca)
        group.detach(cb)

    asyncio.run(main())


def test_higher_priority_consumers_are_served_first_lower_ones_when_they_are_blocked():
    async def main():
        clock = FakeClock()
        source = FakeSource(0)
        group = ConsumerSet(source, clock, name="q")
        low, high = FakeSink("low"), FakeSink("high")
        c_low = consumer(low, prefetch=5, priority=0)
        c_high = consumer(high, prefetch=5, priority=10)
        group.attach(c_low)
        group.attach(c_high)
        source.add(3)
        await settle()
        assert high.offsets == [0, 1, 2] and low.offsets == []
        source.add(4)  # high has 2 credits left: it takes 2, then is blocked
        await settle()
        assert high.offsets == [0, 1, 2, 3, 4] and low.offsets == [5, 6]
        give_back(c_high, source, [0, 1, 2, 3, 4])
        source.add(2)
        await settle()
        assert high.offsets[-2:] == [7, 8] and low.offsets == [5, 6]
        # A high-priority consumer that cannot take writes is blocked too.
        high.is_writable = False
        source.add(1)
        await settle()
        assert low.offsets == [5, 6, 9]
        group.detach(c_low)
        group.detach(c_high)

    asyncio.run(main())


def test_consumers_of_equal_priority_take_turns_burst_by_burst():
    async def main():
        clock = FakeClock()
        source = FakeSource(0)
        group = ConsumerSet(source, clock, name="q")
        sinks = [FakeSink(str(i)) for i in range(3)]
        consumers = [consumer(s, prefetch=1) for s in sinks]
        for c in consumers:
            group.attach(c)
        await settle()
        source.add(3)
        await settle()
        assert [s.offsets for s in sinks] == [[0], [1], [2]]
        for c, s in zip(consumers, sinks, strict=True):
            give_back(c, source, s.offsets)
        source.add(3)
        await settle()
        assert sorted(len(s.offsets) for s in sinks) == [2, 2, 2]
        for c in consumers:
            group.detach(c)

    asyncio.run(main())


def test_single_active_consumer_fails_over_in_attachment_order():
    async def main():
        clock = FakeClock()
        source = FakeSource(0)
        group = ConsumerSet(source, clock, single_active=True, name="q")
        sinks = [FakeSink(str(i)) for i in range(3)]
        consumers = [consumer(s, prefetch=10, priority=i) for i, s in enumerate(sinks)]
        for c in consumers:
            group.attach(c)
        source.add(4)
        await settle()
        # Only the first attached receives, whatever the priorities.
        assert [s.offsets for s in sinks] == [[0, 1, 2, 3], [], []]
        group.detach(consumers[0])
        source.add(2)
        await settle()
        assert sinks[1].offsets == [4, 5] and sinks[2].offsets == []
        # Even when the active one has no credit, the others wait.
        source.add(10)
        await settle()
        assert sinks[1].offsets == list(range(4, 14)) and sinks[2].offsets == []
        group.detach(consumers[1])
        await settle()
        assert sinks[2].offsets == [14, 15]
        group.detach(consumers[2])

    asyncio.run(main())


def test_an_exclusive_consumer_refuses_others_and_is_refused_next_to_others():
    async def main():
        clock = FakeClock()
        source = FakeSource(0)
        group = ConsumerSet(source, clock, name="q")
        first = consumer(FakeSink("a"), exclusive=True)
        group.attach(first)
        with pytest.raises(ConsumerRefused, match="in exclusive use"):
            group.attach(consumer(FakeSink("b")))
        with pytest.raises(ConsumerRefused):
            group.attach(consumer(FakeSink("c"), exclusive=True))
        assert group.consumers == [first]
        group.detach(first)
        plain = consumer(FakeSink("d"))
        group.attach(plain)
        with pytest.raises(ConsumerRefused):
            group.attach(consumer(FakeSink("e"), exclusive=True))
        assert group.consumers == [plain]
        group.detach(plain)
        assert len(group) == 0

    asyncio.run(main())


def test_a_closed_source_cancels_every_consumer_from_the_server_side():
    async def main():
        clock = FakeClock()
        source = FakeSource(0)
        group = ConsumerSet(source, clock, name="q")
        idle, blocked = FakeSink("idle"), FakeSink("blocked")
        c_idle = consumer(idle)
        c_blocked = consumer(blocked, prefetch=1)
        group.attach(c_idle)
        group.attach(c_blocked)
        await settle()
        source.close()
        await settle()
        assert idle.cancels == [None] and blocked.cancels == [None]
        assert group.consumers == []
        assert c_idle.dispatcher is None and c_blocked.dispatcher is None

    asyncio.run(main())


def test_a_failing_sink_is_dropped_and_told_why_the_others_go_on():
    async def main():
        clock = FakeClock()
        source = FakeSource(0)
        group = ConsumerSet(source, clock, name="q")
        bad, good = FakeSink("bad", fail=True), FakeSink("good")
        group.attach(consumer(bad, prefetch=1, priority=1))
        group.attach(consumer(good, prefetch=5))
        source.add(2)
        await settle()
        assert len(bad.cancels) == 1 and isinstance(bad.cancels[0], RuntimeError)
        assert [c.sink for c in group.consumers] == [good]
        assert good.offsets == [0, 1]  # the failed burst was given back
        group.detach(group.consumers[0])

    asyncio.run(main())


def test_the_loop_stops_with_the_last_consumer_and_starts_again():
    async def main():
        clock = FakeClock()
        source = FakeSource(2)
        group = ConsumerSet(source, clock, name="q")
        sink = FakeSink()
        c = consumer(sink, prefetch=1)
        group.attach(c)
        await settle()
        give_back(c, source, [0])  # below the window fraction? window 1: at once
        group.detach(c)
        await settle()
        assert sink.offsets == [0]
        assert source._on_close == [] and clock.pending() == 0
        again = FakeSink("again")
        group.attach(consumer(again, prefetch=1))
        await settle()
        assert again.offsets == [1]
        group.detach(group.consumers[0])

    asyncio.run(main())


# --- a property test over random schedules ----------------------------------------------


class CheckingSink(FakeSink):
    """Checks, at every burst, who the dispatcher should have chosen."""

    def __init__(self, name: str, world: World) -> None:
        super().__init__(name)
        self.world = world
        self.push: PushConsumer | None = None

    def deliver(self, deliveries: list[Delivery]) -> None:
        # Noted, not raised: the dispatcher treats a raising sink as a failed one.
        world = self.world
        me = self.push
        consumers = world.group.consumers
        if me not in consumers:
            world.violations.append(f"{me} is not attached")
        elif world.single_active and me is not consumers[0]:
            world.violations.append(f"{me} received but is not the active consumer")
        elif not world.single_active:
            for other in consumers:
                # a higher priority consumer may be passed over only when blocked
                if other.priority > me.priority and other.sink.writable() and other.credit() > 0:
                    world.violations.append(f"{me} received while {other} had credit")
        super().deliver(deliveries)
        world.delivered.extend(d.offset for d in deliveries)


class World:
    def __init__(self, single_active: bool) -> None:
        self.clock = FakeClock()
        self.source = FakeSource(0)
        self.single_active = single_active
        self.group = ConsumerSet(self.source, self.clock, single_active=single_active, name="q")
        self.delivered: list[int] = []
        self.violations: list[str] = []
        self.serial = 0

    def attach(self, priority: int, prefetch: int) -> None:
        self.serial += 1
        sink = CheckingSink(str(self.serial), self)
        push = consumer(sink, prefetch=prefetch, priority=priority)
        sink.push = push
        self.group.attach(push)

    def settle_some(self, index: int) -> None:
        consumers = self.group.consumers
        if not consumers:
            return
        c = consumers[index % len(consumers)]
        held = [o for o, owner in self.source.leased.items() if owner is c.sink]
        if held:
            give_back(c, self.source, held[: 1 + index % len(held)])

    def detach(self, index: int) -> None:
        consumers = self.group.consumers
        if consumers:
            c = consumers[index % len(consumers)]
            self.group.detach(c)
            held = [(0, o) for o, owner in self.source.leased.items() if owner is c.sink]
            self.source.nack(held)  # what an adapter does when its channel closes


ops = st.lists(
    st.one_of(
        st.tuples(st.just("attach"), st.integers(0, 3), st.integers(1, 4)),
        st.tuples(st.just("publish"), st.integers(1, 6), st.just(0)),
        st.tuples(st.just("settle"), st.integers(0, 20), st.just(0)),
        st.tuples(st.just("detach"), st.integers(0, 20), st.just(0)),
        st.tuples(st.just("block"), st.integers(0, 20), st.integers(0, 1)),
        st.tuples(st.just("wait"), st.just(0), st.just(0)),
    ),
    max_size=40,
)


@given(ops, st.booleans())
@settings(max_examples=150, deadline=None)
def test_random_schedules_keep_credit_priorities_and_single_activity(schedule, single_active):
    async def main():
        world = World(single_active)
        for op, a, b in schedule:
            if op == "attach":
                world.attach(a, b)
            elif op == "publish":
                world.source.add(a)
            elif op == "settle":
                world.settle_some(a)
            elif op == "detach":
                world.detach(a)
            elif op == "block":
                consumers = world.group.consumers
                if consumers:
                    sink = consumers[a % len(consumers)].sink
                    if b:
                        sink.is_writable = False
                    else:
                        sink.drain()
            else:
                await world.clock.advance(REFILL_DELAY)
            await settle()
            assert world.violations == []
            for c in world.group.consumers:
                assert 0 <= c.in_flight <= c.prefetch  # never more than its credit
                assert not c.sink.cancels
        # Every record went out at most once at a time (requeues come back later).
        outstanding = list(world.source.leased)
        assert len(outstanding) == len(set(outstanding))
        # Liveness: once everyone drains and settles, what is left reaches a consumer.
        for c in world.group.consumers:
            c.sink.drain()
        for _ in range(60):
            for i in range(len(world.group.consumers)):
                world.settle_some(i)
            await world.clock.advance(REFILL_DELAY)
            if world.source.next >= world.source.end and not world.source.ready:
                break
        if world.group.consumers:
            assert world.source.next >= world.source.end and not world.source.ready
        for c in list(world.group.consumers):
            world.group.detach(c)
        assert world.clock.pending() == 0

    asyncio.run(main())


def test_a_byte_window_stops_delivery_once_full_and_resumes_when_bytes_come_back():
    async def main():
        clock = FakeClock()
        source = FakeSource(100)  # bodies of 10 bytes
        group = ConsumerSet(source, clock, name="q")
        sink = FakeSink()
        c = consumer(sink, max_bytes=45)
        group.attach(c)
        await settle()
        # one record past the window: 45 bytes need 5 records of 10
        assert sink.offsets == [0, 1, 2, 3, 4]
        assert c.bytes_in_flight == 50 and c.credit() == 0
        source.ack([(0, 0)])
        c.returned(1, 10)  # 40 bytes out: room again
        c.refill()
        await clock.advance(REFILL_DELAY)
        assert sink.offsets == [0, 1, 2, 3, 4, 5]
        assert c.bytes_in_flight == 50
        group.detach(c)
        plain = consumer(FakeSink("plain"), prefetch=3)  # no byte window: bytes not counted
        group.attach(plain)
        await settle()
        assert plain.bytes_in_flight == 0 and plain.in_flight == 3
        group.detach(plain)

    asyncio.run(main())

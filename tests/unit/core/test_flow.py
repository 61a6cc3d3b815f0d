"""One connection's flow control (dovecote.core.flow), on a fake clock and a
fake connection: the in-flight budget share (reserved as bytes are held,
released as they are handled, paused while the budget is used up unless the
connection already holds some), the reading switch with its reasons, write
backpressure, and the stall watchdog."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dovecote.core.clock import FakeClock
from dovecote.core.flow import BUDGET, WRITE, Flow
from dovecote.core.memory import MemoryBudget

STALL = 30.0


class Owner:
    """Stands in for a listener's connection (FlowOwner)."""

    def __init__(self) -> None:
        self.paused = False
        self.pauses = 0
        self.resumes = 0
        self.granted = 0
        self.stalls: list[float] = []

    def pause_reading(self) -> None:
        assert not self.paused, "paused twice"
        self.paused = True
        self.pauses += 1

    def resume_reading(self) -> None:
        assert self.paused, "resumed while reading"
        self.paused = False
        self.resumes += 1

    def budget_granted(self) -> None:
        self.granted += 1

    def stalled(self, idle: float) -> None:
        self.stalls.append(idle)


def flow_for(budget: MemoryBudget, clock: FakeClock | None = None) -> tuple[Flow, Owner]:
    owner = Owner()
    return Flow(owner, budget, clock or FakeClock(), STALL), owner


# --- the budget share, settled after each read -------------------------------------


def test_reservation_follows_what_is_held():
    budget = MemoryBudget(100)
    conn, reading = flow_for(budget)
    conn.settle(40)
    assert (budget.used, conn.reserved, reading.paused) == (40, 40, False)
    conn.settle(70)
    assert budget.used == 70
    conn.settle(0)
    assert budget.used == 0 and conn.reserved == 0


def test_a_connection_holding_nothing_waits_while_the_budget_is_used_up():
    budget = MemoryBudget(100)
    first, _ = flow_for(budget)
    second, reading = flow_for(budget)
    first.settle(100)
    second.settle(30)
    assert reading.paused and second.reserved == 0 and budget.refusals == 1
    assert second.pauses == {BUDGET} and second.waiting
    second.settle(50)  # still waiting: nothing changes until the budget calls back
    assert budget.used == 100
    first.settle(0)
    assert not reading.paused and reading.resumes == 1 and reading.granted == 1
    assert second.reserved == 30 and budget.used == 30 and not second.waiting


def test_a_connection_holding_budget_takes_what_it_needs_to_finish():
    budget = MemoryBudget(100)
    other, _ = flow_for(budget)
    conn, reading = flow_for(budget)
    conn.settle(20)
    other.settle(100)
    conn.settle(50)  # e.g. a second message started on another channel
    assert not reading.paused and conn.reserved == 50 and budget.used == 150


def test_closing_gives_everything_back_and_cancels_a_wait():
    budget = MemoryBudget(100)
    first, _ = flow_for(budget)
    second, reading = flow_for(budget)
    first.settle(100)
    second.settle(10)
    second.close()
    first.close()
    assert budget.used == 0 and reading.paused  # never resumed: it is gone
    assert reading.granted == 0


# --- the budget share, reserved per request -----------------------------------------


def test_reserve_pauses_on_exhaustion_and_resumes_on_release():
    budget = MemoryBudget(100)
    other, _ = flow_for(budget)
    assert other.reserve(100)
    conn, reading = flow_for(budget)
    assert not conn.reserve(10)
    assert reading.paused and conn.waiting
    handed = other.hand_over()
    assert handed == 100 and other.reserved == 0 and budget.used == 100
    other.release(handed)  # the request it was reserved for is answered
    assert not reading.paused and reading.granted == 1 and conn.reserved == 10


# --- the reading switch --------------------------------------------------------------


def test_reading_resumes_only_when_the_last_reason_goes():
    flow, reading = flow_for(MemoryBudget(0))
    flow.pause("busy")
    flow.pause("alarm")
    flow.pause("busy")  # no second pause
    assert reading.pauses == 1
    flow.resume("busy")
    assert reading.paused
    flow.pause_while("alarm", False)
    assert not reading.paused and reading.resumes == 1
    flow.resume("alarm")  # not paused for it: nothing happens
    assert reading.resumes == 1


def test_write_backpressure_pauses_reading_and_holds_writers():
    async def scenario() -> None:
        flow, reading = flow_for(MemoryBudget(0))
        await flow.writable()  # not paused: returns at once
        flow.pause_writing()
        assert reading.paused and flow.pauses == {WRITE} and flow.writing_paused
        waiter = asyncio.ensure_future(flow.writable())
        await asyncio.sleep(0)
        assert not waiter.done()
        flow.resume_writing()
        await asyncio.wait_for(waiter, 1)
        assert not reading.paused and not flow.writing_paused
        flow.pause_writing()
        waiter = asyncio.ensure_future(flow.writable())
        await asyncio.sleep(0)
        flow.close()  # the connection went: writers are let go
        await asyncio.wait_for(waiter, 1)

    asyncio.run(scenario())


# --- the stall watchdog --------------------------------------------------------------


def test_the_watchdog_closes_a_stalled_half_request_after_the_timeout():
    async def scenario() -> None:
        clock = FakeClock()
        flow, owner = flow_for(MemoryBudget(1000), clock)
        flow.received()
        assert flow.reserve(500)  # a size prefix came; the body has not
        flow.watch()
        flow.watch()  # armed once
        assert clock.pending() == 1
        await clock.advance(STALL - 1)
        assert owner.stalls == []
        await clock.advance(1)
        assert owner.stalls == [pytest.approx(STALL)]
        assert clock.pending() == 0

    asyncio.run(scenario())


def test_the_watchdog_waits_while_the_client_keeps_sending():
    async def scenario() -> None:
        clock = FakeClock()
        flow, owner = flow_for(MemoryBudget(1000), clock)
        assert flow.reserve(500)
        flow.watch()
        for _ in range(5):
            await clock.advance(STALL / 2)
            flow.received()  # more of the body
        assert owner.stalls == []
        await clock.advance(STALL)
        assert len(owner.stalls) == 1

    asyncio.run(scenario())


def test_time_spent_not_reading_is_not_the_clients():
    async def scenario() -> None:
        clock = FakeClock()
        flow, owner = flow_for(MemoryBudget(1000), clock)
        assert flow.reserve(500)
        flow.watch()
        flow.pause("busy")  # e.g. a handler the connection awaits
        await clock.advance(3 * STALL)
        assert owner.stalls == []
        flow.resume("busy")  # the wait starts again from here
        await clock.advance(STALL - 1)
        assert owner.stalls == []
        await clock.advance(2)
        assert len(owner.stalls) == 1

    asyncio.run(scenario())


def test_the_watchdog_stops_once_nothing_is_held():
    async def scenario() -> None:
        clock = FakeClock()
        flow, owner = flow_for(MemoryBudget(1000), clock)
        flow.settle(500)
        flow.watch()
        flow.settle(0)  # the message was handled
        await clock.advance(2 * STALL)
        assert owner.stalls == [] and clock.pending() == 0
        flow.watch()  # nothing held: not armed
        assert clock.pending() == 0
        flow.settle(10)
        flow.watch()
        flow.close()
        await clock.advance(2 * STALL)
        assert owner.stalls == []

    asyncio.run(scenario())


# --- a property: the switch always follows the reasons, the budget always balances ---

REASONS = ("busy", "alarm", "mute")


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.tuples(st.just("pause"), st.integers(0, 2), st.sampled_from(REASONS)),
            st.tuples(st.just("resume"), st.integers(0, 2), st.sampled_from(REASONS)),
            st.tuples(st.just("write"), st.integers(0, 2), st.booleans()),
            st.tuples(st.just("settle"), st.integers(0, 2), st.integers(0, 150)),
            st.tuples(st.just("close"), st.integers(0, 2), st.none()),
        ),
        max_size=60,
    )
)
def test_reading_follows_the_reasons_and_the_budget_balances(steps):
    budget = MemoryBudget(100)
    flows = [flow_for(budget) for _ in range(3)]
    for op, index, arg in steps:
        flow, _ = flows[index]
        if op == "pause":
            flow.pause(arg)
        elif op == "resume":
            flow.resume(arg)
        elif op == "write":
            if arg:
                flow.pause_writing()
            else:
                flow.resume_writing()
        elif op == "settle":
            flow.settle(arg)
        else:
            flow.close()
        for each, each_owner in flows:
            if not each.closed:
                # reading is off exactly while some reason holds
                assert each_owner.paused == each.paused
                # waiting for budget is a reason to pause, and only then
                assert each.waiting == (BUDGET in each.pauses)
        assert budget.used == sum(each.reserved for each, _ in flows)
        # the soft limit: in use past the limit only by what a holder took to finish
        assert budget.waiting == sum(1 for each, _ in flows if each.waiting)
    for each, _ in flows:
        each.close()
    assert budget.used == 0 and budget.waiting == 0

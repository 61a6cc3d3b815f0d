"""An AMQP connection's share of the in-flight budget: reserved as messages
are held, released as they are handled, paused while the budget is used up
(unless it already holds some: then it must be able to finish)."""

from __future__ import annotations

from dovecote.amqp.admission import Admission
from dovecote.core.memory import MemoryBudget


class Reading:
    """Stands in for the transport's reading switch."""

    def __init__(self) -> None:
        self.paused = False
        self.resumes = 0

    def pause(self) -> None:
        self.paused = True

    def resume(self) -> None:
        self.paused = False
        self.resumes += 1


def admission(budget: MemoryBudget) -> tuple[Admission, Reading]:
    reading = Reading()
    return Admission(budget, reading.pause, reading.resume), reading


def test_reservation_follows_what_is_held():
    budget = MemoryBudget(100)
    conn, reading = admission(budget)
    conn.settle(40)
    assert (budget.used, conn.reserved, reading.paused) == (40, 40, False)
    conn.settle(70)
    assert budget.used == 70
    conn.settle(0)
    assert budget.used == 0 and conn.reserved == 0


def test_a_connection_holding_nothing_waits_while_the_budget_is_used_up():
    budget = MemoryBudget(100)
    first, _ = admission(budget)
    second, reading = admission(budget)
    first.settle(100)
    second.settle(30)
    assert reading.paused and second.reserved == 0 and budget.refusals == 1
    second.settle(50)  # still waiting: nothing changes until the budget calls back
    assert budget.used == 100
    first.settle(0)
    assert not reading.paused and reading.resumes == 1
    assert second.reserved == 30 and budget.used == 30


def test_a_connection_holding_budget_takes_what_it_needs_to_finish():
    budget = MemoryBudget(100)
    other, _ = admission(budget)
    conn, reading = admission(budget)
    conn.settle(20)
    other.settle(100)
    conn.settle(50)  # e.g. a second message started on another channel
    assert not reading.paused and conn.reserved == 50 and budget.used == 150


def test_closing_gives_everything_back_and_cancels_a_wait():
    budget = MemoryBudget(100)
    first, _ = admission(budget)
    second, reading = admission(budget)
    first.settle(100)
    second.settle(10)
    second.close()
    first.close()
    assert budget.used == 0 and reading.paused  # never resumed: it is gone

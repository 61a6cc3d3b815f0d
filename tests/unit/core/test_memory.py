"""The in-flight budget: admission as Kafka's memory pool (while anything is
left, even past the limit), waiters resumed in order, nothing leaked."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from dovecote.core.memory import MemoryBudget


def test_admits_while_room_is_left_even_past_the_limit():
    budget = MemoryBudget(100)
    assert budget.try_reserve(60)
    assert budget.try_reserve(60)  # 60 < 100 were used: admitted, now 120
    assert budget.used == 120 and budget.exhausted
    assert not budget.try_reserve(1)
    assert budget.refusals == 1


def test_a_request_larger_than_the_budget_passes_alone():
    budget = MemoryBudget(100)
    assert budget.try_reserve(500)
    assert not budget.try_reserve(1)
    budget.release(500)
    assert budget.try_reserve(1)


def test_waiters_are_resumed_in_order_as_bytes_come_back():
    budget = MemoryBudget(100)
    budget.try_reserve(100)
    order: list[str] = []
    budget.wait(30, lambda: order.append("a"))
    budget.wait(80, lambda: order.append("b"))
    budget.wait(10, lambda: order.append("c"))
    assert not budget.try_reserve(1), "nobody jumps the queue"
    budget.release(50)  # 50 used: a (80), b (160): exhausted
    assert order == ["a", "b"]
    budget.release(100)  # 60 used: c
    assert order == ["a", "b", "c"]
    assert budget.used == 70


def test_cancelled_waiters_are_skipped():
    budget = MemoryBudget(10)
    budget.try_reserve(10)
    called: list[str] = []
    gone = budget.wait(5, lambda: called.append("gone"))
    budget.wait(5, lambda: called.append("here"))
    budget.cancel(gone)
    budget.release(10)
    assert called == ["here"] and budget.used == 5


def test_unlimited_still_counts():
    budget = MemoryBudget(0)
    assert budget.try_reserve(1 << 40)
    assert budget.used == 1 << 40 and budget.peak == 1 << 40


@given(st.lists(st.tuples(st.booleans(), st.integers(1, 300)), max_size=60))
def test_never_more_than_limit_plus_one_request_and_nothing_leaks(steps):
    limit, biggest = 500, 300
    budget = MemoryBudget(limit)
    held: list[int] = []
    queued: list[int] = []

    def granted(size: int) -> None:
        held.append(size)

    for reserve, size in steps:
        if reserve:
            if budget.try_reserve(size):
                held.append(size)
            else:
                queued.append(size)
                budget.wait(size, lambda size=size: granted(size))
        elif held:
            budget.release(held.pop(0))
        assert budget.used == sum(held)
        assert budget.used < limit + biggest
    while held:
        budget.release(held.pop())
    assert budget.used == sum(held) == 0
    assert budget.waiting == 0


def test_take_reserves_past_the_limit_and_ahead_of_waiters():
    budget = MemoryBudget(100)
    budget.try_reserve(100)
    woken: list[str] = []
    budget.wait(10, lambda: woken.append("w"))
    budget.take(30)
    assert budget.used == 130 and budget.peak == 130 and not woken
    budget.release(130)
    assert woken == ["w"] and budget.used == 10

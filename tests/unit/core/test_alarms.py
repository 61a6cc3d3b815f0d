"""The broker's resource alarms (dovecote.core.alarms): raised and cleared as
the measures cross their limits, told to every subscriber, polled on the
injected clock."""

from __future__ import annotations

import asyncio

from dovecote.core.alarms import DISK, MEMORY, ResourceMonitor
from dovecote.core.clock import FakeClock


def monitor_for(tmp_path, clock=None, **limits) -> ResourceMonitor:
    settings = {"disk_free_limit": 0, "memory_limit": 1 << 50} | limits
    return ResourceMonitor(tmp_path, interval=1.0, clock=clock or FakeClock(), **settings)


def test_alarms_are_raised_and_cleared_and_told_on_change_only(tmp_path):
    monitor = monitor_for(tmp_path)
    seen: list[frozenset[str]] = []
    monitor.subscribe(seen.append)
    assert monitor.check() == frozenset() and seen == []
    monitor.disk_free_limit = 1 << 62  # more than any disk has free
    assert monitor.check() == {DISK}
    assert monitor.check() == {DISK}  # no change: nobody is told again
    monitor.memory_limit = 1
    assert monitor.check() == {DISK, MEMORY}
    monitor.disk_free_limit = 0
    monitor.memory_limit = 1 << 50
    monitor.check()
    assert seen == [{DISK}, {DISK, MEMORY}, frozenset()]
    assert monitor.alarms == frozenset()


def test_the_default_memory_limit_is_a_share_of_physical_memory(tmp_path):
    assert monitor_for(tmp_path, memory_limit=0).memory_limit > 0


def test_every_subscriber_is_told_until_it_unsubscribes(tmp_path):
    monitor = monitor_for(tmp_path)
    first: list[frozenset[str]] = []
    second: list[frozenset[str]] = []
    unsubscribe = monitor.subscribe(first.append)
    monitor.subscribe(second.append)

    def broken(_alarms: frozenset[str]) -> None:
        raise RuntimeError("a subscriber's failure is logged, the others are told")

    monitor.subscribe(broken)
    monitor.disk_free_limit = 1 << 62
    monitor.check()
    unsubscribe()
    unsubscribe()  # twice is harmless
    monitor.disk_free_limit = 0
    monitor.check()
    assert first == [{DISK}]
    assert second == [{DISK}, frozenset()]


def test_the_monitor_polls_on_the_clock(tmp_path):
    async def scenario() -> None:
        clock = FakeClock()
        monitor = monitor_for(tmp_path, clock)
        seen: list[frozenset[str]] = []
        monitor.subscribe(seen.append)
        monitor.start()
        assert clock.pending() == 1
        monitor.disk_free_limit = 1 << 62
        await clock.advance(0.5)
        assert seen == []  # not measured yet
        await clock.advance(0.5)
        assert seen == [{DISK}]
        monitor.disk_free_limit = 0
        await clock.advance(1.0)
        assert seen == [{DISK}, frozenset()]
        monitor.close()
        assert clock.pending() == 0
        monitor.disk_free_limit = 1 << 62
        await clock.advance(5.0)
        assert seen == [{DISK}, frozenset()]  # stopped

    asyncio.run(scenario())

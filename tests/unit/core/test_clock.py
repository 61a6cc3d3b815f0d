"""The fake clock and the alarm, on which every timing test stands."""

import asyncio

from dovecote.core.clock import Alarm, FakeClock, SystemClock


def test_fake_clock_fires_timers_in_due_order_at_their_time():
    async def main():
        clock = FakeClock()
        start = clock.monotonic()
        seen = []
        clock.call_at(start + 2, lambda: seen.append(("b", clock.monotonic() - start)))
        clock.call_at(start + 1, lambda: seen.append(("a", clock.monotonic() - start)))
        cancelled = clock.call_at(start + 1.5, lambda: seen.append(("x", 0)))
        cancelled.cancel()
        await clock.advance(1.5)
        assert seen == [("a", 1.0)]
        await clock.advance(10)
        assert seen == [("a", 1.0), ("b", 2.0)]
        assert clock.monotonic() - start == 11.5
        assert clock.pending() == 0

    asyncio.run(main())


def test_fake_clock_wall_time_follows_monotonic():
    async def main():
        clock = FakeClock(wall_ms=5_000)
        await clock.advance(0.25)
        assert clock.wall_ms() == 5_250

    asyncio.run(main())


def test_fake_sleep_wakes_only_when_time_moves():
    async def main():
        clock = FakeClock()
        task = asyncio.create_task(clock.sleep(3))
        await clock.advance(2.9)
        assert not task.done()
        await clock.advance(0.1)
        assert task.done()

    asyncio.run(main())


def test_alarm_keeps_the_earliest_time_and_fires_once():
    async def main():
        clock = FakeClock()
        fired = []
        alarm = Alarm(clock, lambda: fired.append(clock.monotonic()))
        now = clock.monotonic()
        alarm.arm(now + 5)
        alarm.arm(now + 2)
        alarm.arm(now + 3)  # later than pending: ignored
        assert alarm.when == now + 2
        await clock.advance(10)
        assert fired == [now + 2]
        assert alarm.when is None
        alarm.arm(clock.monotonic() + 1)
        alarm.cancel()
        await clock.advance(5)
        assert fired == [now + 2]

    asyncio.run(main())


def test_system_clock_alarm_fires_on_the_loop():
    async def main():
        clock = SystemClock()
        done = asyncio.get_running_loop().create_future()
        Alarm(clock, lambda: done.set_result(clock.monotonic())).arm(clock.monotonic() + 0.01)
        assert await asyncio.wait_for(done, 1) > 0

    asyncio.run(main())


def test_system_clock_never_runs_a_timer_before_its_time():
    """uvloop rounds to the millisecond and can wake a timer early: the
    callback must still see monotonic() >= when."""
    import uvloop

    async def main():
        clock = SystemClock()
        lateness = []
        for _ in range(50):
            done = asyncio.get_running_loop().create_future()
            when = clock.monotonic() + 0.0013
            clock.call_at(when, lambda w=when, d=done: d.set_result(clock.monotonic() - w))
            lateness.append(await asyncio.wait_for(done, 1))
        assert min(lateness) >= 0

    uvloop.run(main())

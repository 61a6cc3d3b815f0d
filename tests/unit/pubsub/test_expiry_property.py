"""Property test of Expiry against a model: whatever mix of watch, touch,
forget and time passing, a name expires exactly when ttl has passed since
its last activity, once, and nothing stays armed when nothing is watched."""

from __future__ import annotations

import asyncio

from hypothesis import given, settings
from hypothesis import strategies as st

from dovecote.core.clock import FakeClock
from dovecote.pubsub.expiration import Expiry

NAMES = ["a", "b", "c"]
steps = st.lists(
    st.one_of(
        st.tuples(st.just("watch"), st.sampled_from(NAMES), st.integers(1, 50)),
        st.tuples(st.just("touch"), st.sampled_from(NAMES), st.just(0)),
        st.tuples(st.just("forget"), st.sampled_from(NAMES), st.just(0)),
        st.tuples(st.just("advance"), st.just(""), st.integers(1, 40)),
    ),
    max_size=40,
)


@settings(max_examples=150, deadline=None)
@given(steps)
def test_expiry_matches_the_model(program) -> None:
    async def run() -> None:
        clock = FakeClock()
        expired: list[tuple[str, float]] = []

        async def on_expired(name: str) -> None:
            expired.append((name, clock.monotonic()))

        expiry = Expiry(clock, on_expired)
        model: dict[str, tuple[float, float]] = {}  # name -> (last, ttl)
        want: list[tuple[str, float]] = []
        for op, name, value in program:
            now = clock.monotonic()
            if op == "watch":
                expiry.watch(name, value)
                model[name] = (now, value)
            elif op == "touch":
                expiry.touch(name)
                if name in model:
                    model[name] = (now, model[name][1])
            elif op == "forget":
                expiry.forget(name)
                model.pop(name, None)
            else:
                end = now + value
                due = sorted((last + ttl, n) for n, (last, ttl) in model.items())
                for when, n in due:
                    if when <= end:
                        want.append((n, when))
                        del model[n]
                await clock.advance(value)
                # Each at its deadline, neither early nor late.
                assert sorted(expired) == sorted(want)
        if not model:
            assert clock.pending() == 0

    asyncio.run(run())

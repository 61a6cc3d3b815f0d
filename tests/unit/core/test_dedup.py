"""The deduplication window against a model: an id is a duplicate exactly when
it was accepted (and not abandoned) less than the window ago, and a duplicate
names where the original was stored."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from dovecote.core.dedup import DedupWindow, Duplicate

WINDOW = 1000
IDS = st.sampled_from(["a", "b", "c", "d"])
STEP = st.one_of(
    st.tuples(st.just("accept"), st.lists(IDS, min_size=1, max_size=4)),
    st.tuples(st.just("abandon"), st.lists(IDS, max_size=2)),
    st.tuples(st.just("wait"), st.integers(0, 700)),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(STEP, max_size=40))
def test_window_matches_model(steps):
    window = DedupWindow("w", WINDOW)
    model: dict[str, tuple[int, int | None]] = {}  # id -> accepted at, offset (None pending)
    now = 0
    next_offset = 0
    recorded: list[tuple[str, list[tuple[str, int, int, int]]]] = []
    window._on_record = lambda name, entries: recorded.append((name, entries))
    for kind, arg in steps:
        if kind == "wait":
            now += arg
            continue
        if kind == "abandon":
            window.abandon(arg)
            for message_id in arg:
                if message_id in model and model[message_id][1] is None:
                    del model[message_id]
            continue
        for message_id in list(model):
            if model[message_id][0] + WINDOW <= now:
                del model[message_id]
        answers = window.accept_ids(arg, now)
        fresh = []
        for message_id, answer in zip(arg, answers, strict=True):
            if message_id in model:
                accepted, offset = model[message_id]
                assert answer == Duplicate(None if offset is None else 0, offset, accepted), (
                    message_id
                )
            else:
                assert answer is None
                model[message_id] = (now, None)
                fresh.append(message_id)
        # store half the accepted ones; the rest stay pending until abandoned
        stored = fresh[: (len(fresh) + 1) // 2]
        if stored:
            offsets = list(range(next_offset, next_offset + len(stored)))
            next_offset += len(stored)
            window.record(stored, [(0, o) for o in offsets])
            for message_id, offset in zip(stored, offsets, strict=True):
                model[message_id] = (model[message_id][0], offset)
            assert recorded[-1] == (
                "w",
                [(i, model[i][0], 0, o) for i, o in zip(stored, offsets, strict=True)],
            )
    assert {i for i, *_ in window.durable_entries()} <= set(model)

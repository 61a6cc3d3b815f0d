"""Kafka's consumer protocol bytes and the range/roundrobin assignors, checked
against bytes written out from the protocol's definition and against the
assignors' defining properties."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dovecote.core.consumer_protocol import (
    ProtocolError,
    assign,
    decode_assignment,
    decode_subscription,
    encode_assignment,
    encode_subscription,
)


def test_bytes_are_the_consumer_protocol_v0():
    # version 0, 2 topics ("a", "b"), user data null
    subscription = b"\x00\x00\x00\x00\x00\x02\x00\x01a\x00\x01b\xff\xff\xff\xff"
    assert encode_subscription(["b", "a"]) == subscription
    assert decode_subscription(subscription) == ["a", "b"]
    # v1+ appends fields (owned partitions, generation, rack): the topics still read
    assert decode_subscription(subscription + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x05") == [
        "a",
        "b",
    ]
    assignment = (
        b"\x00\x00"
        b"\x00\x00\x00\x02"
        b"\x00\x01a"
        b"\x00\x00\x00\x02"
        b"\x00\x00\x00\x00"
        b"\x00\x00\x00\x02"
        b"\x00\x01b"
        b"\x00\x00\x00\x01"
        b"\x00\x00\x00\x01"
        b"\xff\xff\xff\xff"
    )
    assert encode_assignment({"b": [1], "a": [2, 0]}) == assignment
    assert decode_assignment(assignment) == {"a": [0, 2], "b": [1]}
    assert decode_assignment(b"") == {}
    with pytest.raises(ProtocolError):
        decode_assignment(assignment[:9])


def test_range_gives_consecutive_runs_with_the_extra_to_the_first():
    plan = assign("range", {"m1": ["t"], "m2": ["t"], "m3": ["t"]}, lambda _t: 7)
    assert plan == {"m1": {"t": [0, 1, 2]}, "m2": {"t": [3, 4]}, "m3": {"t": [5, 6]}}


members = st.dictionaries(
    st.text("abcdef", min_size=1, max_size=4),
    st.lists(st.sampled_from(["x", "y", "z"]), min_size=1, max_size=3, unique=True),
    min_size=1,
    max_size=6,
)


@given(members, st.sampled_from(["range", "roundrobin"]), st.integers(0, 12))
def test_every_partition_goes_to_exactly_one_subscribed_member(subs, protocol, count):
    counts = {"x": count, "y": count // 2 + 1, "z": 3}
    plan = assign(protocol, subs, counts.__getitem__)
    for topic in {t for ts in subs.values() for t in ts}:
        owners = [(member, p) for member, parts in plan.items() for p in parts.get(topic, [])]
        assert sorted(p for _, p in owners) == list(range(counts[topic]))
        assert all(topic in subs[member] for member, _ in owners)
        shares = [len(plan[m].get(topic, [])) for m in subs if topic in subs[m]]
        if protocol == "range":
            assert max(shares) - min(shares) <= 1

"""Hypothesis strategies for AMQP values that pamqp can also encode (for cross-checks)."""

from __future__ import annotations

import datetime
import decimal
import string

from hypothesis import strategies as st

NAME_ALPHABET = string.ascii_letters + string.digits + "-_.:"

names = st.text(NAME_ALPHABET, max_size=40)  # exchange/queue names pamqp's regex accepts
shortstrs = st.text(max_size=60).filter(lambda s: len(s.encode()) <= 255)
longstrs = st.text(max_size=200)
table_keys = st.text(max_size=20).filter(lambda s: 0 < len(s.encode()) <= 128)

# Values pamqp and this codec encode to the same bytes (no floats: pamqp narrows them to 'f').
scalar_values = st.one_of(
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    st.text(max_size=30),
    st.none(),
    st.binary(max_size=20).map(bytearray),
    st.datetimes(
        min_value=datetime.datetime(1970, 1, 2),
        max_value=datetime.datetime(2100, 1, 1),
    ).map(lambda d: d.replace(microsecond=0, tzinfo=datetime.UTC)),
    st.decimals(
        allow_nan=False, allow_infinity=False, places=3, min_value=-(10**5), max_value=10**5
    ),
)


def _sorted_dict(d: dict) -> dict:
    return dict(sorted(d.items()))


field_values = st.recursive(
    scalar_values,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(table_keys, children, max_size=4).map(_sorted_dict),
    ),
    max_leaves=12,
)
tables = st.dictionaries(table_keys, field_values, max_size=6).map(_sorted_dict)


def normalize(value):
    """Map decoded values to comparable ones (Timestamp/datetime -> int seconds)."""
    from dovecote.amqp.codec import Timestamp

    if isinstance(value, Timestamp):
        return int(value)
    if isinstance(value, datetime.datetime):
        return int(value.timestamp())
    if isinstance(value, dict):
        return {k: normalize(v) for k, v in value.items()}
    if isinstance(value, list):
        return [normalize(v) for v in value]
    if isinstance(value, decimal.Decimal):
        return value.normalize()
    return value

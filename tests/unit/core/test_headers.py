"""The neutral record headers: typed values round-trip through their text form,
reserved names stay out of the application view."""

from __future__ import annotations

import decimal

from hypothesis import given
from hypothesis import strategies as st

from dovecote.core import headers as H

scalars = st.one_of(
    *(
        st.integers(low, high).map(lambda v, t=tag: H.TypedValue(t, v))
        for tag, (low, high) in H.INT_TAGS.items()
    ),
    st.floats(allow_nan=False).map(lambda v: H.TypedValue("float64", v)),
    st.booleans().map(lambda v: H.TypedValue(H.BOOL, v)),
    st.decimals(allow_nan=False, allow_infinity=False).map(lambda v: H.TypedValue(H.DECIMAL, v)),
    st.integers(0, 2**64 - 1).map(lambda v: H.TypedValue(H.SECONDS, v)),
    st.binary(max_size=16).map(lambda v: H.TypedValue(H.BYTES, v)),
    st.binary(max_size=16).map(lambda v: H.TypedValue(H.STRING, v)),
)
elements = st.recursive(
    st.one_of(st.none(), st.text(max_size=10), scalars),
    lambda children: st.one_of(
        st.lists(children, max_size=3).map(lambda v: H.TypedValue(H.ARRAY, v)),
        st.dictionaries(st.text(max_size=5), children, max_size=3).map(
            lambda v: H.TypedValue(H.TABLE, v)
        ),
    ),
    max_leaves=10,
)
typed = st.one_of(
    scalars,
    st.lists(elements, max_size=3).map(lambda v: H.TypedValue(H.ARRAY, v)),
    st.dictionaries(st.text(max_size=5), elements, max_size=3).map(
        lambda v: H.TypedValue(H.TABLE, v)
    ),
)


def _same(a: object, b: object) -> bool:
    """Equal, and of the same decimal exponent where decimals are compared."""
    if isinstance(a, H.TypedValue) and isinstance(b, H.TypedValue):
        return a.tag == b.tag and _same(a.value, b.value)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, decimal.Decimal):
        return isinstance(b, decimal.Decimal) and a.as_tuple() == b.as_tuple()
    return type(a) is type(b) and a == b


@given(typed)
def test_typed_values_round_trip_through_their_text(value: H.TypedValue):
    raw = H.encode_typed(value)
    assert _same(H.decode_typed(value.tag, raw), value)


def test_text_forms_are_readable():
    assert H.encode_typed(H.TypedValue("int8", -5)) == b"-5"
    assert H.encode_typed(H.TypedValue(H.BOOL, True)) == b"true"
    assert H.encode_typed(H.TypedValue(H.DECIMAL, decimal.Decimal("12.50"))) == b"12.50"
    assert H.encode_typed(H.TypedValue("float64", 0.1)) == b"0.1"
    table = H.TypedValue(H.TABLE, {"a": "x", "b": H.TypedValue(H.BYTES, b"\xff"), "c": None})
    assert H.encode_typed(table) == b'{"a":"x","b":{"bytes":"/w=="},"c":null}'


def test_application_headers_leave_out_reserved_names():
    H.reserve_prefix("test-adapter.")
    assert H.is_reserved("test-adapter.state") and H.is_reserved("dovecote.anything")
    headers = [
        ("h", b"v"),
        ("raw", b"\xff"),
        ("n", b"7"),
        ("null", None),
        ("test-adapter.state", b"x"),
        ("dovecote.expires-at", b"1"),
        (H.TYPES, b'{"n":"uint16"}'),
        ("h", b"last"),
    ]
    assert H.application_headers(headers) == {"h": "last", "raw": b"\xff", "n": 7, "null": None}


def test_types_header_is_compact_json():
    assert H.types_header({"a": "int8"}) == (H.TYPES, b'{"a":"int8"}')
    assert H.read_types(H.types_header({"a": "int8", "b": "table"})[1]) == {
        "a": "int8",
        "b": "table",
    }
    assert H.read_types(b"[1]") == {} and H.read_types(None) == {}

"""Property blocks: pamqp parity, lazy/selective reads, lossless edits, garbage -> 502."""

from __future__ import annotations

import datetime
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pamqp import commands as C
from pamqp import header

from dovecote.amqp.codec import (
    EMPTY_PROPERTIES,
    PROPERTY_NAMES,
    REMOVE,
    ROUTING_FIELDS,
    FrameError,
    Properties,
    SyntaxError_,
    Typed,
    check_properties,
    encode_properties,
    properties_from_pamqp,
    read_properties,
    split_content_header,
    update_headers,
    update_properties,
)
from tests.unit.amqp.strategies import normalize, tables

nonempty = st.text(min_size=1, max_size=30).filter(lambda s: len(s.encode()) <= 255)
pamqp_properties = st.builds(
    C.Basic.Properties,
    content_type=st.none() | nonempty,
    content_encoding=st.none() | nonempty,
    headers=st.none() | tables,
    delivery_mode=st.none() | st.sampled_from([1, 2]),
    priority=st.none() | st.integers(0, 255),
    correlation_id=st.none() | nonempty,
    reply_to=st.none() | nonempty,
    expiration=st.none() | st.integers(0, 10**9).map(str),
    message_id=st.none() | nonempty,
    timestamp=st.none()
    | st.integers(1, 2**32 - 1).map(lambda s: datetime.datetime.fromtimestamp(s, datetime.UTC)),
    message_type=st.none() | nonempty,
    user_id=st.none() | nonempty,
    app_id=st.none() | nonempty,
)


def as_dict(props: C.Basic.Properties) -> dict:
    out = {}
    for name in PROPERTY_NAMES:
        value = getattr(props, name)
        if value is not None and value != "":
            out[name] = normalize(value)
    return out


@settings(max_examples=150)
@given(pamqp_properties)
def test_block_matches_pamqp_both_ways(props):
    block = props.marshal()
    assert properties_from_pamqp(props) == block
    check_properties(block)
    assert normalize(read_properties(block)) == as_dict(props)
    view = Properties(block)
    assert normalize(dict(view)) == as_dict(props)
    assert view.to_pamqp() == C.Basic.Properties(**{**dict(view)} | _ts(view))


def _ts(view):
    ts = view.timestamp
    return {} if ts is None else {"timestamp": datetime.datetime.fromtimestamp(ts, datetime.UTC)}


def test_every_property_and_field_type_in_one_block():
    headers = {
        "t": True, "b": Typed("b", -1), "B": Typed("B", 255), "s": Typed("s", -2),
        "u": Typed("u", 2), "I": Typed("I", -3), "i": Typed("i", 3), "l": Typed("l", 4),
        "f": Typed("f", 1.5), "d": 2.25, "D": Typed("D", "3.14"), "S": "str",
        "x": bytearray(b"\x00\x01"), "A": [1, [2]], "T": Typed("T", 1_700_000_000),
        "F": {"nested": {"deeper": "yes"}}, "V": None,
    }  # fmt: skip
    block = encode_properties(
        content_type="application/json", content_encoding="gzip", headers=headers,
        delivery_mode=2, priority=9, correlation_id="c", reply_to="r", expiration="60000",
        message_id="m", timestamp=1_700_000_000, message_type="t", user_id="guest",
        app_id="a", cluster_id="",
    )  # fmt: skip
    check_properties(block)
    values = read_properties(block)
    assert values["headers"]["B"] == 255 and values["headers"]["f"] == 1.5
    assert values["headers"]["T"] == 1_700_000_000
    assert values["cluster_id"] == ""  # an empty shortstr stays present (pamqp drops it)
    assert values["timestamp"] == 1_700_000_000
    assert set(values) == set(PROPERTY_NAMES)
    theirs = header.ContentHeader()  # pamqp reads what we wrote
    theirs.unmarshal(struct.pack(">HHQ", 60, 0, 0) + block)
    assert theirs.properties.priority == 9 and theirs.properties.headers["F"]["nested"]


def test_read_only_wanted_fields():
    block = encode_properties(delivery_mode=2, headers={"x-delay": 5}, message_id="id")
    assert read_properties(block, ("delivery_mode", "priority")) == {"delivery_mode": 2}
    assert read_properties(block, ROUTING_FIELDS) == {
        "delivery_mode": 2, "headers": {"x-delay": 5}, "message_id": "id",
    }  # fmt: skip
    assert read_properties(EMPTY_PROPERTIES) == {}


def test_properties_view_is_lazy_and_mapping_like():
    block = encode_properties(priority=3, headers={"a": 1})
    view = Properties(block)
    assert view.priority == 3 and view["priority"] == 3
    assert view.delivery_mode is None and "delivery_mode" not in view
    assert view.get("headers") == {"a": 1}
    assert list(view) == ["headers", "priority"] and len(view) == 2
    with pytest.raises(KeyError):
        view["expiration"]
    assert Properties(EMPTY_PROPERTIES).priority is None


def test_update_properties_copies_untouched_bytes():
    headers_raw = encode_properties(headers={"k": Typed("l", 1)})[2:]
    block = encode_properties(headers={"k": Typed("l", 1)}, priority=1, expiration="10")
    updated = update_properties(block, priority=None, delivery_mode=2, message_id="new")
    assert read_properties(updated) == {
        "headers": {"k": 1}, "delivery_mode": 2, "expiration": "10", "message_id": "new",
    }  # fmt: skip
    assert headers_raw in updated  # the 'l'-typed entry was not re-encoded as 'b'
    assert update_properties(EMPTY_PROPERTIES, priority=4) == encode_properties(priority=4)
    with pytest.raises(TypeError):
        update_properties(block, bogus=1)


def test_update_headers_adds_x_death_without_touching_other_entries():
    block = encode_properties(headers={"keep": Typed("I", 7)}, delivery_mode=2)
    death = [{"count": 1, "reason": "expired", "queue": "q", "exchange": "",
              "routing-keys": ["q"], "time": Typed("T", 1_700_000_000)}]  # fmt: skip
    updated = update_headers(block, {"x-death": death})
    values = read_properties(updated)
    assert values["delivery_mode"] == 2
    assert values["headers"]["keep"] == 7 and b"\x04keepI\x00\x00\x00\x07" in updated
    assert values["headers"]["x-death"][0]["reason"] == "expired"
    removed = update_headers(updated, {"x-death": REMOVE})
    assert read_properties(removed)["headers"] == {"keep": 7}
    created = update_headers(EMPTY_PROPERTIES, {"x-delay": 100})
    assert read_properties(created) == {"headers": {"x-delay": 100}}
    assert update_headers(EMPTY_PROPERTIES, {"gone": REMOVE}) == EMPTY_PROPERTIES


def test_split_content_header():
    payload = struct.pack(">HHQ", 60, 0, 42) + EMPTY_PROPERTIES
    assert split_content_header(payload) == (60, 0, 42, EMPTY_PROPERTIES)
    with pytest.raises(FrameError):
        split_content_header(payload[:13])


def test_multiple_flag_words_are_accepted_when_the_extra_ones_are_empty():
    block = struct.pack(">HH", 0x1000 | 1, 0) + b"\x02"
    assert read_properties(block) == {"delivery_mode": 2}


@pytest.mark.parametrize(
    "block",
    [
        b"",
        b"\x00",
        b"\x00\x02",  # bit 1 names no property
        b"\x00\x01",  # continuation without the next word
        b"\x00\x01\x80\x00",  # a property in a second flag word
        b"\x80\x00",  # content_type missing
        b"\x80\x00\x05ab",  # content_type truncated
        b"\x80\x00\x02\xff\xfe",  # content_type not UTF-8
        b"\x20\x00\x00\x00\x00\x05\x01",  # headers overrun
        b"\x20\x00\x00\x00\x00\x03\x01kZ",  # headers: unknown type
        b"\x00\x40\x00\x00",  # timestamp truncated
        b"\x10\x00\x02\x00",  # trailing byte
    ],
)
def test_garbage_blocks_are_502(block):
    with pytest.raises(SyntaxError_) as info:
        check_properties(block)
    assert info.value.reply_code == 502


@settings(max_examples=400)
@given(st.binary(max_size=40))
def test_random_blocks_raise_only_502_and_check_implies_readable(block):
    try:
        check_properties(block)
    except SyntaxError_:
        return
    read_properties(block)
    dict(Properties(block))


def test_encode_properties_validates_values():
    with pytest.raises(ValueError):
        encode_properties(priority=256)
    with pytest.raises(ValueError):
        encode_properties(message_id="x" * 256)
    with pytest.raises(TypeError):
        encode_properties(headers=[1])
    with pytest.raises(TypeError):
        encode_properties(type="x")  # pamqp's name is message_type
    stamp = datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC)
    assert read_properties(encode_properties(timestamp=stamp))["timestamp"] == int(
        stamp.timestamp()
    )


def test_to_pamqp_keeps_out_of_range_timestamps_as_int():
    assert Properties(encode_properties(timestamp=2**63)).to_pamqp().timestamp == 2**63

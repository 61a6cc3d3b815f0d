"""SQS/SNS message attributes as record headers and back, for records of any protocol."""

from __future__ import annotations

import decimal
import json
import re
import uuid
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dovecote.amqp.codec.properties import encode_properties
from dovecote.amqp.codec.records import record_headers_for_publish
from dovecote.amqp.codec.tables import Typed
from dovecote.aws.digests import md5_of_message_attributes
from dovecote.aws.records import (
    DATA_TYPES,
    SENDER_ID,
    TRACE_HEADER,
    SqsMeta,
    attributes_to_headers,
    headers_to_attributes,
    message_id_of,
    new_message_id,
    read_sqs_headers,
    sqs_headers,
)
from dovecote.core import headers as H
from dovecote.core.dead_letters import with_death
from dovecote.storage.batch import Record


def _s(value: str, data_type: str = "String") -> dict[str, Any]:
    return {"DataType": data_type, "StringValue": value}


def _b(value: bytes, data_type: str = "Binary") -> dict[str, Any]:
    return {"DataType": data_type, "BinaryValue": value}


# --- SQS -> headers ---------------------------------------------------------------------


def test_plain_types_become_text_and_tags() -> None:
    headers = attributes_to_headers(
        {"s": _s("héllo"), "n": _s("-12.50", "Number"), "b": _b(b"\x00\xff")}
    )
    assert headers == [
        ("s", "héllo".encode()),
        ("n", b"-12.50"),
        ("b", b"\x00\xff"),
        (H.TYPES, b'{"n":"number","b":"bytes"}'),
    ]
    assert H.application_headers(headers) == {"s": "héllo", "n": "-12.50", "b": b"\x00\xff"}


def test_only_strings_need_no_bookkeeping() -> None:
    assert attributes_to_headers({"a": _s("1"), "b": _s("2")}) == [("a", b"1"), ("b", b"2")]
    assert attributes_to_headers(None) == []
    assert attributes_to_headers({}) == []


def test_custom_labels_are_kept_by_header_name() -> None:
    headers = attributes_to_headers(
        {
            "f": _s("1.5", "Number.float"),
            "t": _s("x", "String.trace"),
            "img": _b(b"\x89PNG", "Binary.png"),
            "arr": _s('["a", 1, true]', "String.Array"),
        }
    )
    labels = json.loads(H.find(headers, DATA_TYPES) or b"")
    assert labels == {
        "f": "Number.float",
        "t": "String.trace",
        "img": "Binary.png",
        "arr": "String.Array",
    }
    assert H.read_types(H.find(headers, H.TYPES)) == {"f": "number", "img": "bytes"}
    # String.Array stays its JSON text, untagged: other protocols read the text sent.
    assert H.find(headers, "arr") == b'["a", 1, true]'
    assert DATA_TYPES.startswith(H.reserved_prefixes())  # sqs. is reserved
    assert "arr" in H.application_headers(headers) and DATA_TYPES not in H.application_headers(
        headers
    )


@pytest.mark.parametrize("name", ["message-id", "ordering-key", "deduplication-id", "dovecote.x"])
def test_attributes_named_like_broker_headers_are_escaped(name: str) -> None:
    attrs = {name: _s("mine")}
    headers = attributes_to_headers(attrs)
    assert headers == [("sqs.attr." + name, b"mine")]
    assert H.application_headers(headers) == {}
    assert headers_to_attributes(headers, ["All"]) == attrs


# --- headers -> SQS ---------------------------------------------------------------------


def test_records_from_amqp_typed_headers() -> None:
    block = encode_properties(
        {
            "content_type": "application/json",
            "correlation_id": "c-1",
            "message_id": "amqp-id",
            "delivery_mode": 2,
            "headers": {
                "text": "plain",
                "i8": Typed("b", -3),
                "u32": Typed("i", 7),
                "i64": 1 << 40,
                "f": Typed("d", 0.25),
                "nan": Typed("d", float("nan")),
                "flag": True,
                "raw": bytearray(b"\xff\x00"),
                "tbl": {"k": Typed("l", 1)},
                "arr": ["x", Typed("l", 2)],
                "void": None,
            },
        }
    )
    headers = record_headers_for_publish(block)
    attrs = headers_to_attributes(headers, ["All"])
    assert "message-id" not in attrs  # shown as MessageId
    assert attrs["content-type"] == _s("application/json")
    assert attrs["correlation-id"] == _s("c-1")
    assert attrs["delivery-mode"] == _s("2")
    assert attrs["text"] == _s("plain")
    assert attrs["i8"] == _s("-3", "Number")
    assert attrs["u32"] == _s("7", "Number")
    assert attrs["i64"] == _s(str(1 << 40), "Number")
    assert attrs["f"] == _s("0.25", "Number")
    assert attrs["nan"] == _s("nan")  # SQS has no Number for nan
    assert attrs["flag"] == _s("true")
    assert attrs["raw"] == _b(b"\xff\x00")
    assert json.loads(attrs["tbl"]["StringValue"]) == {"k": {"int64": "1"}}
    assert attrs["tbl"]["DataType"] == "String"
    assert json.loads(attrs["arr"]["StringValue"]) == ["x", {"int64": "2"}]
    assert "void" not in attrs  # null headers are skipped
    assert not any(name.startswith(("amqp.", "dovecote.")) for name in attrs)
    assert md5_of_message_attributes(attrs)  # every entry is digestible


def test_kafka_headers_untagged() -> None:
    headers = [("trace", b"abc"), ("blob", b"\xc3\x28"), ("ctl", b"a\x00b"), ("null", None)]
    assert headers_to_attributes(headers, ["All"]) == {
        "trace": _s("abc"),
        "blob": _b(b"\xc3\x28"),  # not UTF-8
        "ctl": _b(b"a\x00b"),  # text SQS would refuse in a String
    }


def test_string_tag_and_decimal_timestamp() -> None:
    headers = [
        ("s", b"\xff"),
        ("d", b"12.50"),
        ("t", b"1700000000"),
        H.types_header({"s": "string", "d": "decimal", "t": "timestamp"}),
    ]
    assert headers_to_attributes(headers, ["All"]) == {
        "s": _b(b"\xff"),
        "d": _s("12.50", "Number"),
        "t": _s("1700000000", "Number"),
    }


def test_label_must_agree_with_the_value() -> None:
    # A label whose base no longer fits the header (an app rewrote it) is dropped.
    headers = [("x", b"\xff"), (DATA_TYPES, b'{"x":"String.note"}')]
    assert headers_to_attributes(headers, ["All"]) == {"x": _b(b"\xff")}
    assert headers_to_attributes([("x", b"1"), (DATA_TYPES, b"not json")], ["All"]) == {
        "x": _s("1")
    }


def test_last_header_of_a_name_wins() -> None:
    assert headers_to_attributes([("a", b"1"), ("a", b"2")], ["a"]) == {"a": _s("2")}


def test_sqs_bookkeeping_is_not_an_attribute() -> None:
    headers = [
        *sqs_headers(
            "id",
            group_id="g",
            dedup_id="d",
            trace_header="Root=1",
            sender_id="AID",
            delay_until_ms=5,
        ),
        ("app", b"v"),
    ]
    assert headers_to_attributes(headers, ["All"]) == {"app": _s("v")}


def test_values_that_do_not_parse_as_their_tag_are_untagged() -> None:
    """As the core reads them (plain text, else bytes): a Kafka application can
    write any bytes under any tag. A bool tag over non-UTF-8 bytes used to
    fail the whole ReceiveMessage."""
    headers = [
        ("bool", b"\xff"),
        ("int", b"hello"),
        ("big", b"99999999999999999999"),
        ("neg-ts", b"-5"),
        ("num", b"1.5.6"),
        ("table", b'{"a":"\x01"}'),
        ("ok", b"-7"),
        H.types_header(
            {
                "bool": "bool",
                "int": "int64",
                "big": "int64",
                "neg-ts": "timestamp",
                "num": "number",
                "table": "table",
                "ok": "int8",
            }
        ),
    ]
    assert headers_to_attributes(headers, ["All"]) == {
        "bool": _b(b"\xff"),
        "int": _s("hello"),
        "big": _s("99999999999999999999"),
        "neg-ts": _s("-5"),
        "num": _s("1.5.6"),
        "table": _b(b'{"a":"\x01"}'),
        "ok": _s("-7", "Number"),
    }
    assert H.application_headers(headers)["int"] == "hello"  # what the core sees too


_XML_SAFE = re.compile("[\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]*")


@settings(max_examples=300)
@given(
    values=st.lists(
        st.tuples(st.sampled_from("abcd"), st.one_of(st.none(), st.binary(max_size=12))),
        max_size=6,
    ),
    tags=st.dictionaries(st.sampled_from("abcd"), st.sampled_from(sorted(H.TAGS))),
)
def test_any_headers_give_valid_attributes(
    values: list[tuple[str, bytes | None]], tags: dict[str, str]
) -> None:
    """Whatever a Kafka producer stored: a Number is a finite number, a String
    is text SQS can carry, and the digest can be computed."""
    attrs = headers_to_attributes([*values, H.types_header(tags)], ["All"])
    for attr in attrs.values():
        if attr["DataType"] == "Number":
            assert decimal.Decimal(attr["StringValue"]).is_finite()
        elif attr["DataType"] == "String":
            assert _XML_SAFE.fullmatch(attr["StringValue"])
        else:
            assert attr["DataType"] == "Binary"
    md5_of_message_attributes(attrs)


# --- wanted names ----------------------------------------------------------------------

_HEADERS = [("a.b", b"1"), ("a.c", b"2"), ("ab", b"3"), ("z", b"4")]


@pytest.mark.parametrize(
    ("wanted", "names"),
    [
        (None, set()),
        ([], set()),
        (["All"], {"a.b", "a.c", "ab", "z"}),
        ([".*"], {"a.b", "a.c", "ab", "z"}),
        (["a.*"], {"a.b", "a.c"}),
        (["z", "a.b"], {"z", "a.b"}),
        (["a.*", "z"], {"a.b", "a.c", "z"}),
        (["missing"], set()),
        (["z", "All"], {"a.b", "a.c", "ab", "z"}),
    ],
)
def test_wanted_names(wanted: list[str] | None, names: set[str]) -> None:
    assert set(headers_to_attributes(_HEADERS, wanted)) == names


# --- round trips ------------------------------------------------------------------------

_NAME = st.from_regex(r"[A-Za-z0-9_\-][A-Za-z0-9_\-.]{0,20}", fullmatch=True).filter(
    lambda n: not n.endswith(".") and ".." not in n
)
_XML_TEXT = st.text(
    st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")) | st.sampled_from("\t\n\r"),
    min_size=1,
    max_size=30,
)
_LABEL = st.one_of(st.just(""), st.from_regex(r"\.[A-Za-z0-9_.\-]{1,10}", fullmatch=True))
_NUMBER = st.one_of(
    st.integers(-(10**30), 10**30).map(str),
    st.decimals(allow_nan=False, allow_infinity=False, places=4).map(str),
)


@st.composite
def _attribute(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(["String", "Number", "Binary", "String.Array"]))
    if kind == "String.Array":
        return _s(json.dumps(draw(st.lists(st.text(max_size=5), max_size=3))), kind)
    label = draw(_LABEL)
    if kind == "Binary":
        return _b(draw(st.binary(min_size=1, max_size=30)), kind + label)
    value = draw(_NUMBER if kind == "Number" else _XML_TEXT)
    return _s(value, kind + label)


_ATTRIBUTES = st.dictionaries(_NAME, _attribute(), max_size=10)


@settings(max_examples=300)
@given(attrs=_ATTRIBUTES)
def test_sqs_to_headers_to_sqs_is_exact(attrs: dict[str, dict[str, Any]]) -> None:
    headers = attributes_to_headers(attrs)
    assert headers_to_attributes(headers, ["All"]) == attrs
    assert md5_of_message_attributes(
        headers_to_attributes(headers, [".*"])
    ) == md5_of_message_attributes(attrs)
    if all(a["DataType"] in ("String", "Number", "Binary") for a in attrs.values()):
        assert H.find(headers, DATA_TYPES) is None


@settings(max_examples=100)
@given(attrs=_ATTRIBUTES, data=st.data())
def test_wanted_is_a_subset_of_all(attrs: dict[str, dict[str, Any]], data: st.DataObject) -> None:
    headers = attributes_to_headers(attrs)
    chosen = data.draw(st.lists(st.sampled_from(sorted(attrs)), max_size=3)) if attrs else []
    got = headers_to_attributes(headers, chosen)
    assert got == {name: attrs[name] for name in chosen}


@settings(max_examples=100)
@given(attrs=_ATTRIBUTES)
def test_headers_exchange_sees_sqs_values(attrs: dict[str, dict[str, Any]]) -> None:
    seen = H.application_headers(attributes_to_headers(attrs))
    for name, attr in attrs.items():
        if H.is_reserved(name) or name in ("message-id", "ordering-key", "deduplication-id"):
            assert name not in seen
        elif attr["DataType"].startswith("Binary"):
            assert seen[name] == attr["BinaryValue"]
        elif attr["DataType"].startswith("Number"):
            assert str(seen[name]) == attr["StringValue"]
        else:
            assert seen[name] == attr["StringValue"]


# --- message ids and system headers ----------------------------------------------------


def test_message_id_from_header() -> None:
    record = Record(b"x", headers=[(H.MESSAGE_ID, b"abc")], offset=4)
    assert message_id_of(record, "q") == "abc"


def test_message_id_that_is_not_text_is_derived() -> None:
    """An id with replacement characters would name no message: derive one,
    the same one ReceiveMessage reports."""
    record = Record(b"x", headers=[(H.MESSAGE_ID, b"\xfe")], offset=4)
    assert message_id_of(record, "q") == message_id_of(Record(b"y", offset=4), "q")
    assert read_sqs_headers(record.headers).message_id is None
    assert read_sqs_headers([(H.MESSAGE_ID, b"")]).message_id is None
    last = [(H.MESSAGE_ID, b"first"), (H.MESSAGE_ID, b"second")]
    assert message_id_of(Record(b"x", headers=last), "q") == "second"
    assert read_sqs_headers(last).message_id == "second"


def test_derived_message_id_is_stable_and_distinct() -> None:
    first = message_id_of(Record(b"x", offset=7), "q")
    assert first == message_id_of(Record(b"other", offset=7), "q")  # same place, same id
    assert uuid.UUID(first).version == 5
    others = {
        message_id_of(Record(b"x", offset=8), "q"),
        message_id_of(Record(b"x", offset=7), "r"),
        message_id_of(Record(b"x", offset=7), "q", partition=1),
    }
    assert first not in others and len(others) == 3
    assert message_id_of(Record(b"x", headers=[(H.MESSAGE_ID, b"\xff")], offset=7), "q") == first


def test_new_message_id_is_random_uuid() -> None:
    a, b = new_message_id(), new_message_id()
    assert a != b and uuid.UUID(a).version == 4


def test_sqs_headers_layout() -> None:
    assert sqs_headers(
        "m",
        group_id="g",
        dedup_id="d",
        trace_header="Root=1-x",
        sender_id="AIDA",
        delay_until_ms=1_700_000_000_123,
    ) == [
        (H.MESSAGE_ID, b"m"),
        (H.ORDERING_KEY, b"g"),
        (H.DEDUPLICATION_ID, b"d"),
        (TRACE_HEADER, b"Root=1-x"),
        (SENDER_ID, b"AIDA"),
        (H.DELIVER_AT, b"1700000000123"),
    ]
    assert sqs_headers(
        "m", group_id=None, dedup_id=None, trace_header=None, sender_id=None, delay_until_ms=None
    ) == [(H.MESSAGE_ID, b"m")]


def test_read_sqs_headers_round_trip_and_dead_letter_source() -> None:
    headers = sqs_headers(
        "m", group_id="g", dedup_id="d", trace_header="t", sender_id="s", delay_until_ms=None
    )
    headers = with_death(headers, "source-a", "delivery_limit", "", "source-a", now=1)
    headers = with_death(headers, "source-b", "delivery_limit", "", "source-b", now=2)
    assert read_sqs_headers(headers) == SqsMeta("m", "g", "d", "t", "s", "source-b")
    assert read_sqs_headers([]) == SqsMeta()
    assert read_sqs_headers([(H.DEATHS, b"garbage")]).dead_letter_source is None


def test_types_header_matches_the_cores_encoding() -> None:
    attrs = {"ñ": _s("1", "Number"), "b": _b(b"x")}
    for _ in range(2):  # the second time from the cache
        headers = attributes_to_headers(attrs)
        assert headers[-1] == H.types_header({"ñ": "number", "b": "bytes"})
        assert headers_to_attributes(headers, ["All"]) == attrs

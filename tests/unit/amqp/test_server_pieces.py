"""Unit tests of the AMQP server's pure parts: record mapping, SASL, confirms."""

from __future__ import annotations

import json
import time

import pytest

from dovecote.amqp.auth import AuthError, Users, parse_response
from dovecote.amqp.codec import (
    EMPTY_PROPERTIES,
    FrameReader,
    Timestamp,
    encode_properties,
    encode_table,
    read_properties,
)
from dovecote.amqp.mapping import (
    NO_PROPS,
    PERSISTENT,
    delivery_fields,
    parse_expiration,
    publish_props,
    publish_record,
)
from dovecote.amqp.publish import ACK, NACK, Confirms
from dovecote.core.dead_letters import with_death
from dovecote.core.headers import DEATHS, EXCHANGE_HEADER, EXPIRES_AT, application_headers
from dovecote.storage.batch import Record

# --- mapping -------------------------------------------------------------------------


def test_publish_props_fast_paths_and_full_read():
    assert publish_props(EMPTY_PROPERTIES) is NO_PROPS
    assert publish_props(encode_properties(delivery_mode=2)) is PERSISTENT
    assert publish_props(encode_properties(delivery_mode=1)) is NO_PROPS
    assert publish_props(encode_properties(content_type="text/plain")) is NO_PROPS
    assert publish_props(encode_properties(headers={"a": 1})).has_headers
    block = encode_properties(
        content_type="x",
        delivery_mode=2,
        priority=7,
        reply_to="amq.rabbitmq.reply-to",
        expiration="1500",
        user_id="bob",
    )
    props = publish_props(block)
    assert props.persistent and props.priority == 7 and props.expiration == "1500"
    assert (props.reply_to, props.user_id, props.has_headers) == (
        "amq.rabbitmq.reply-to",
        "bob",
        False,
    )
    assert publish_props(bytes(block)) is props  # cached per distinct block


def test_parse_expiration_like_rabbitmq():
    assert parse_expiration("0") == 0 and parse_expiration("60000") == 60000
    with pytest.raises(ValueError, match="no_integer"):
        parse_expiration("soon")
    with pytest.raises(ValueError, match=r"\{value_negative,-5\}"):
        parse_expiration("-5")


def test_publish_record_and_delivery_fields_round_trip():
    block = encode_properties(delivery_mode=2)
    default = publish_record(b"body", b"rk", block, b"", None)
    assert default.headers == [("amqp.properties", block)]
    assert delivery_fields(default) == (block, b"", b"rk")
    routed = publish_record(b"body", b"rk", block, b"logs", 123)
    assert routed.headers[1:] == [(EXCHANGE_HEADER, b"logs"), (EXPIRES_AT, b"123")]
    assert delivery_fields(routed) == (block, b"logs", b"rk")
    # Records stored by older versions named the exchange "amqp.exchange".
    old = Record(b"body", key=b"rk", headers=[("amqp.properties", block), ("amqp.exchange", b"x")])
    assert delivery_fields(old) == (block, b"x", b"rk")


def test_foreign_records_get_properties_and_a_safe_routing_key():
    record = Record(b"v", key=b"\xff\xfe", headers=[("trace", b"t1"), (EXPIRES_AT, b"1")])
    record.timestamp = 1_700_000_000_000
    block, exchange, key = delivery_fields(record)
    assert exchange == b"" and key == b""  # not UTF-8: no routing key
    assert read_properties(block) == {"headers": {"trace": "t1"}, "timestamp": 1_700_000_000}


def test_dead_letter_history_renders_as_x_death():
    block = encode_properties(headers={"app": "x"}, expiration="100")
    headers = [("amqp.properties", block), (EXCHANGE_HEADER, b"orders")]
    headers = with_death(headers, "work", "expired", "orders", "eu")
    headers = with_death(headers, "retry", "rejected", "dlx", "eu")
    headers = with_death(headers, "work", "expired", "orders", "eu")
    record = Record(b"v", key=b"eu", headers=headers)
    rendered, _exchange, _key = delivery_fields(record)
    props = read_properties(rendered)
    assert "expiration" not in props
    table = props["headers"]
    assert table["app"] == "x"
    deaths = table["x-death"]
    assert [(d["queue"], d["reason"], d["count"]) for d in deaths] == [
        ("work", "expired", 2),
        ("retry", "rejected", 1),
    ]
    assert isinstance(deaths[0]["time"], Timestamp)
    assert abs(int(deaths[0]["time"]) - time.time()) < 60
    assert deaths[0]["routing-keys"] == ["eu"] and deaths[0]["exchange"] == "orders"
    assert deaths[0]["original-expiration"] == "100"  # the first death's entry keeps it
    assert (
        table["x-first-death-queue"],
        table["x-first-death-reason"],
        table["x-first-death-exchange"],
    ) == ("work", "expired", "orders")
    stored = json.loads(dict(headers)[DEATHS])
    assert [d.get("first", False) for d in stored] == [True, False]


def test_headers_exchange_view_of_stored_records():
    """The core's view (no AMQP hook): the table's entries, typed, and foreign headers."""
    block = encode_properties(headers={"format": "pdf", "n": 3})
    stored = publish_record(b"", b"", block, b"", None)
    assert application_headers(stored.headers) == {"format": "pdf", "n": 3}
    foreign = Record(b"", headers=[("format", b"pdf"), (EXPIRES_AT, b"1"), ("amqp.x", b"")])
    assert application_headers(foreign.headers) == {"format": "pdf"}


# --- SASL ------------------------------------------------------------------------------


def test_plain_and_amqplain_responses():
    assert parse_response("PLAIN", b"\x00guest\x00secret") == ("guest", "secret")
    assert parse_response("PLAIN", "admin\x00guest\x00secret") == ("guest", "secret")
    table = encode_table({"LOGIN": "app", "PASSWORD": "pw"})[4:]
    assert parse_response("AMQPLAIN", table) == ("app", "pw")
    for mechanism, response in [
        ("PLAIN", b"guest"),
        ("AMQPLAIN", b"\x05LOGIN"),
        ("AMQPLAIN", encode_table({"LOGIN": "x"})[4:]),
        ("EXTERNAL", b""),
    ]:
        with pytest.raises(AuthError):
            parse_response(mechanism, response)


def test_users_and_loopback_only_guest():
    users = Users.from_config("guest:guest, app:s3cret:with:colons", "guest")
    assert users.passwords == {"guest": "guest", "app": "s3cret:with:colons"}
    assert users.authenticate("PLAIN", b"\x00guest\x00guest", "127.0.0.1") == "guest"
    assert users.authenticate("PLAIN", b"\x00guest\x00guest", "::1") == "guest"
    assert users.authenticate("PLAIN", b"\x00app\x00s3cret:with:colons", "10.1.2.3") == "app"
    with pytest.raises(AuthError, match="localhost"):
        users.authenticate("PLAIN", b"\x00guest\x00guest", "10.1.2.3")
    with pytest.raises(AuthError):
        users.authenticate("PLAIN", b"\x00app\x00wrong", "127.0.0.1")
    with pytest.raises(AuthError):
        users.authenticate("PLAIN", b"\x00nobody\x00x", "127.0.0.1")
    with pytest.raises(ValueError):
        Users.from_config("no-password", "")


# --- confirms --------------------------------------------------------------------------


def decode(frames: list[bytes]) -> list[tuple[str, int, bool]]:
    reader = FrameReader(expect_protocol_header=False)
    out = []
    for event in reader.feed(b"".join(frames)):
        method = event.method
        out.append((method.name, method.delivery_tag, method.multiple))
    return out


def test_confirms_coalesce_in_order_and_nack_runs():
    confirms = Confirms()
    first = confirms.add(3)  # 1..3
    confirms.add(2, ACK)  # 4..5
    third = confirms.add(1)  # 6
    confirms.add(4, NACK)  # 7..10
    confirms.add(1, ACK)  # 11
    assert decode(confirms.frames(1)) == []  # 1..3 still pending: nothing may jump ahead
    first[1] = ACK
    assert decode(confirms.frames(1)) == [("Basic.Ack", 5, True)]
    third[1] = ACK
    assert decode(confirms.frames(1)) == [
        ("Basic.Ack", 6, True),
        ("Basic.Nack", 10, True),
        ("Basic.Ack", 11, True),
    ]
    assert not confirms.ready() and confirms.seq == 11

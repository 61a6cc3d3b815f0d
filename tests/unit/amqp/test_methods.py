"""Every method the broker uses: byte-identical to pamqp, and decoded strictly."""

from __future__ import annotations

import struct
import warnings

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pamqp import commands as C
from pamqp import frame

from dovecote.amqp.codec import (
    CommandInvalid,
    FrameError,
    SyntaxError_,
    decode_method,
    encode_method,
)
from dovecote.amqp.codec.methods import SPECS, encode_method_payload
from tests.unit.amqp.strategies import longstrs, names, normalize, shortstrs, tables

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

NAME_FIELDS = {"exchange", "queue", "destination", "source"}
FIXED_BY_TYPE = {
    "octet": st.integers(0, 255),
    "short": st.integers(0, 65535),
    "long": st.integers(0, 2**32 - 1),
    "longlong": st.integers(0, 2**63 - 1),
    "bit": st.booleans(),
    "longstr": longstrs,
    "table": tables,
}


# Deprecated arguments pamqp pins to a single value: leave them at their default.
PINNED = {
    "ticket",
    "insist",
    "capabilities",
    "known_hosts",
    "out_of_band",
    "channel_id",
    "cluster_id",
}


def strategy(cls, name):
    kind = cls.amqp_type(name)
    if kind == "shortstr":
        return names if name in NAME_FIELDS else shortstrs
    return FIXED_BY_TYPE[kind]


def build(cls, data):
    kwargs = {
        name: data.draw(strategy(cls, name), label=name)
        for name in cls.__slots__
        if name not in PINNED
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return cls(**kwargs)


METHODS = sorted((spec.cls for spec in SPECS.values()), key=lambda c: c.index)
BROKER_CLASSES = {"Connection", "Channel", "Exchange", "Queue", "Basic", "Confirm", "Tx"}


def test_spec_table_covers_the_broker_classes():
    assert {cls.name.split(".")[0] for cls in METHODS} == BROKER_CLASSES
    assert len(METHODS) == len(C.INDEX_MAPPING)


@pytest.mark.parametrize("cls", METHODS, ids=lambda c: c.name)
@settings(max_examples=15, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(data=st.data())
def test_method_matches_pamqp(cls, data):
    method = build(cls, data)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference = frame.marshal(method, 5)
    assert encode_method(5, method) == reference
    payload = reference[7:-1]
    ours = decode_method(payload, 5)
    _consumed, _channel, theirs = frame.unmarshal(reference)
    assert type(ours) is cls
    for name in cls.__slots__:
        expected = normalize(getattr(theirs, name))
        got = normalize(getattr(ours, name))
        if cls.amqp_type(name) == "table" and not got:
            assert not expected
        else:
            assert got == expected, name


def test_defaults_encode_like_pamqp():
    for cls in METHODS:
        method = cls()
        try:
            reference = frame.marshal(method, 0)
        except TypeError:  # pamqp cannot marshal a None shortstr; we send it empty
            reference = None
        ours = encode_method(0, method)
        assert reference is None or ours == reference, cls.name
        assert type(decode_method(ours[7:-1])) is cls


def test_encoder_skips_pamqp_name_validation():
    # RabbitMQ accepts any UTF-8 queue name; pamqp's regex would refuse this one.
    method = object.__new__(C.Queue.DeclareOk)
    method.queue, method.message_count, method.consumer_count = "q-ü", 1, 2
    with pytest.raises(ValueError):
        C.Queue.DeclareOk("q-ü", 1, 2)
    payload = encode_method_payload(method)
    assert decode_method(payload).queue == "q-ü"


def test_fast_paths_decode_correctly():
    publish = decode_method(encode_method_payload(C.Basic.Publish(0, "ex", "rk", True, False)))
    assert (publish.exchange, publish.routing_key, publish.mandatory, publish.immediate) == (
        "ex",
        "rk",
        True,
        False,
    )
    ack = decode_method(encode_method_payload(C.Basic.Ack(2**64 - 1, True)))
    assert (ack.delivery_tag, ack.multiple) == (2**64 - 1, True)
    nack = decode_method(encode_method_payload(C.Basic.Nack(3, False, True)))
    assert (nack.delivery_tag, nack.multiple, nack.requeue) == (3, False, True)
    reject = decode_method(encode_method_payload(C.Basic.Reject(4, False)))
    assert (reject.delivery_tag, reject.requeue) == (4, False)


@pytest.mark.parametrize(
    "method",
    [
        C.Basic.Publish(0, "ex", "rk"),
        C.Basic.Ack(1),
        C.Basic.Nack(1),
        C.Basic.Reject(1),
        C.Queue.Declare(queue="q", arguments={"x-max-length": 5}),
        C.Basic.Qos(0, 10),
    ],
    ids=lambda m: m.name,
)
def test_truncated_or_padded_arguments_are_502(method):
    payload = encode_method_payload(method)
    for cut in range(4, len(payload)):
        with pytest.raises(SyntaxError_) as info:
            decode_method(payload[:cut], 3)
        assert (info.value.channel, info.value.class_id) == (3, method.index >> 16)
        assert info.value.method_id == method.index & 0xFFFF
    with pytest.raises(SyntaxError_, match=r"unexpected bytes|wrong length"):
        decode_method(payload + b"\x00", 3)


def test_bad_utf8_shortstr_is_502():
    payload = struct.pack(">IHB", C.Basic.Publish.index, 0, 2) + b"\xff\xfe" + b"\x00\x00"
    with pytest.raises(SyntaxError_):
        decode_method(payload)
    payload = (
        struct.pack(">IHB", C.Queue.Bind.index, 0, 1) + b"\xff" + b"\x00\x00\x00\x00\x00\x00\x00"
    )
    with pytest.raises(SyntaxError_):
        decode_method(payload)


def test_unknown_method_is_503():
    with pytest.raises(CommandInvalid) as info:
        decode_method(struct.pack(">HH", 60, 99), 1)
    assert (info.value.reply_code, info.value.class_id, info.value.method_id) == (503, 60, 99)
    with pytest.raises(FrameError):  # no room for the ids: RabbitMQ calls that a frame error
        decode_method(b"\x00\x3c", 1)


def test_binary_longstr_decodes_as_bytes():
    method = C.Connection.StartOk(mechanism="PLAIN", response="x")
    payload = encode_method_payload(method).replace(b"\x00\x00\x00\x01x", b"\x00\x00\x00\x01\xff")
    assert decode_method(payload).response == b"\xff"


@settings(max_examples=400)
@given(st.sampled_from(sorted(SPECS)), st.binary(max_size=40))
def test_random_arguments_only_raise_codec_errors(index, args):
    try:
        decode_method(struct.pack(">I", index) + args)
    except SyntaxError_:
        pass

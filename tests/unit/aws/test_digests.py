"""SQS digests against vectors other SQS implementations pin (moto, SQS MD5 validators) and by hand."""

from __future__ import annotations

import hashlib
import random
import struct
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dovecote.aws.digests import (
    md5_of_body,
    md5_of_message_attributes,
    md5_of_message_system_attributes,
)


def _string(value: str, data_type: str = "String") -> dict[str, str]:
    return {"DataType": data_type, "StringValue": value}


def test_body_is_md5_of_utf8() -> None:
    assert md5_of_body("") == "d41d8cd98f00b204e9800998ecf8427e"
    assert md5_of_body("abc") == "900150983cd24fb0d6963f7d28e17f72"  # RFC 1321 test suite
    assert md5_of_body("é") == hashlib.md5("é".encode()).hexdigest()


def test_aws_documented_example_single_attribute() -> None:
    # Pinned by the sqs-md5-validator tests (the SellerName attribute of AWS's docs).
    digest = md5_of_message_attributes({"SellerName": _string("Example Store")})
    assert digest == "cd28f3b68aeee4b2eac9c66f2f694b58"


def test_aws_documented_example_several_attributes() -> None:
    attrs = {
        "City": _string("Any City"),
        "PostalCode": _string("99065"),
        "Region": _string("WA"),
        "SellerName": _string("Example Store"),
    }
    assert md5_of_message_attributes(attrs) == "66d793da93becb551e41562575418975"


def test_number_attributes_as_aws_returned_them() -> None:
    # Digests moto's SQS tests pin as what SQS answers (localstack pins the first too).
    cases = [
        ("timestamp", "1493147359900", "235c5c510d26fb653d073faed50ae77c"),
        ("timestamp", "1493147359901", "994258b45346a2cc3f9cbb611aa7af30"),
        ("SOME_Valid.attribute-Name", "1493147359900", "36655e7e9d7c0e8479fa3f3f42247ae7"),
    ]
    for name, value, digest in cases:
        assert md5_of_message_attributes({name: _string(value, "Number")}) == digest


def _by_hand(name: bytes, data_type: bytes, transport: int, value: bytes) -> bytes:
    def lp(b: bytes) -> bytes:
        return struct.pack(">I", len(b)) + b

    return lp(name) + lp(data_type) + bytes([transport]) + lp(value)


def test_binary_uses_transport_type_2_and_raw_bytes() -> None:
    value = b"\x00\xffbin"
    expected = hashlib.md5(_by_hand(b"blob", b"Binary", 2, value)).hexdigest()
    assert (
        md5_of_message_attributes({"blob": {"DataType": "Binary", "BinaryValue": value}})
        == expected
    )


def test_custom_types_follow_their_base_transport() -> None:
    attrs = {
        "a": _string("3.14", "Number.float"),
        "b": {"DataType": "Binary.gif", "BinaryValue": b"GIF89a"},
        "c": _string("x", "String.custom"),
    }
    stream = (
        _by_hand(b"a", b"Number.float", 1, b"3.14")
        + _by_hand(b"b", b"Binary.gif", 2, b"GIF89a")
        + _by_hand(b"c", b"String.custom", 1, b"x")
    )
    assert md5_of_message_attributes(attrs) == hashlib.md5(stream).hexdigest()


def test_no_attributes_means_no_digest() -> None:
    assert md5_of_message_attributes({}) is None
    assert md5_of_message_system_attributes({}) is None


def test_system_attributes_use_the_same_algorithm() -> None:
    header = "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1"
    attrs = {"AWSTraceHeader": _string(header)}
    expected = hashlib.md5(_by_hand(b"AWSTraceHeader", b"String", 1, header.encode())).hexdigest()
    assert md5_of_message_system_attributes(attrs) == expected


def test_attribute_without_value_is_refused() -> None:
    with pytest.raises(ValueError, match="neither StringValue nor BinaryValue"):
        md5_of_message_attributes({"x": {"DataType": "String"}})


_attribute = st.one_of(
    st.builds(_string, st.text(), st.sampled_from(["String", "Number", "String.x"])),
    st.builds(lambda b: {"DataType": "Binary", "BinaryValue": b}, st.binary()),
)
_attributes = st.dictionaries(st.text(min_size=1), _attribute, min_size=1, max_size=8)


@given(_attributes, st.randoms())
def test_order_of_attributes_does_not_matter(attrs: dict[str, Any], rnd: random.Random) -> None:
    items = list(attrs.items())
    rnd.shuffle(items)
    assert md5_of_message_attributes(dict(items)) == md5_of_message_attributes(attrs)


@given(_attributes)
def test_digest_is_stable_hex_and_sensitive_to_values(attrs: dict[str, Any]) -> None:
    digest = md5_of_message_attributes(attrs)
    assert digest is not None and len(digest) == 32 and int(digest, 16) >= 0
    assert md5_of_message_attributes(dict(attrs)) == digest
    name = next(iter(attrs))
    changed = dict(attrs)
    changed[name] = {"DataType": "String", "StringValue": "\x00changed" + str(attrs[name])}
    assert md5_of_message_attributes(changed) != digest

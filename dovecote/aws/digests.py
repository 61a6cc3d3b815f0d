"""The MD5 digests SQS returns with a message, computed exactly as AWS does.

SDKs (the Java, .NET and Ruby ones among them) recompute ``MD5OfMessageBody``,
``MD5OfMessageAttributes`` and ``MD5OfMessageSystemAttributes`` and reject a
response whose digests differ, so these must match AWS byte for byte.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Mapping
from typing import Any

__all__ = [
    "md5_of_body",
    "md5_of_bytes",
    "md5_of_message_attributes",
    "md5_of_message_system_attributes",
]

# The "transport type" byte AWS puts before each value: which member carries it.
_STRING_TRANSPORT = b"\x01"
_BINARY_TRANSPORT = b"\x02"


def md5_of_body(body: str) -> str:
    """MD5 hex of the UTF-8 body (``MD5OfMessageBody`` / ``MD5OfBody``)."""
    return hashlib.md5(body.encode("utf-8")).hexdigest()


def md5_of_bytes(data: bytes) -> str:
    """MD5 hex of a body already UTF-8 encoded (the same digest as :func:`md5_of_body`)."""
    return hashlib.md5(data).hexdigest()


def _length_prefixed(data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + data


def _as_bytes(value: Any) -> bytes:
    if isinstance(value, str):
        return value.encode("utf-8")
    return bytes(value)


def md5_of_message_attributes(attrs: Mapping[str, Mapping[str, Any]]) -> str | None:
    """``MD5OfMessageAttributes`` of ``{name: {DataType, StringValue | BinaryValue}}``.

    Attributes are taken in name order; each contributes its length-prefixed
    UTF-8 name and data type, a transport byte (1 for a ``StringValue``, which
    String, Number and their custom ``String.x``/``Number.x`` types use, 2 for
    a ``BinaryValue``) and the length-prefixed value. ``BinaryValue`` is the
    decoded bytes, not the base64 of the JSON wire. None when there are no
    attributes: AWS leaves the digest out of the response then.
    """
    if not attrs:
        return None
    md5 = hashlib.md5()
    for name in sorted(attrs):
        attr = attrs[name]
        md5.update(_length_prefixed(name.encode("utf-8")))
        md5.update(_length_prefixed(attr["DataType"].encode("utf-8")))
        if attr.get("StringValue") is not None:
            md5.update(_STRING_TRANSPORT)
            md5.update(_length_prefixed(_as_bytes(attr["StringValue"])))
        elif attr.get("BinaryValue") is not None:
            md5.update(_BINARY_TRANSPORT)
            md5.update(_length_prefixed(_as_bytes(attr["BinaryValue"])))
        else:
            raise ValueError(f"message attribute {name!r} has neither StringValue nor BinaryValue")
    return md5.hexdigest()


def md5_of_message_system_attributes(attrs: Mapping[str, Mapping[str, Any]]) -> str | None:
    """``MD5OfMessageSystemAttributes`` (today only ``AWSTraceHeader``).

    AWS digests system attributes with the same algorithm as user ones.
    """
    return md5_of_message_attributes(attrs)

"""awsJson1_0 values: JSON documents checked and typed against the model's shapes."""

from __future__ import annotations

import base64
import binascii
import datetime
from typing import Any

from botocore.model import Shape

from dovecote.aws.errors import invalid


def decode_json(value: Any, shape: Shape, name: str) -> Any:
    """A parsed JSON value as params of ``shape``; wrong types are InvalidParameterValue."""
    kind = shape.type_name
    if kind == "structure":
        if not isinstance(value, dict):
            raise invalid(name, "an object was expected")
        return {
            key: decode_json(value[key], member, f"{name}.{key}" if name else key)
            for key, member in shape.members.items()
            if value.get(key) is not None
        }
    if kind == "list":
        if not isinstance(value, list):
            raise invalid(name, "a list was expected")
        return [decode_json(v, shape.member, f"{name}.{i}") for i, v in enumerate(value, 1)]
    if kind == "map":
        if not isinstance(value, dict):
            raise invalid(name, "a map was expected")
        return {k: decode_json(v, shape.value, f"{name}.{k}") for k, v in value.items()}
    if kind in ("integer", "long"):
        if isinstance(value, bool) or not isinstance(value, int):
            raise invalid(name, "an integer was expected")
        return value
    if kind == "boolean":
        if not isinstance(value, bool):
            raise invalid(name, "a boolean was expected")
        return value
    if kind in ("float", "double"):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise invalid(name, "a number was expected")
        return float(value)
    if kind == "blob":
        if not isinstance(value, str):
            raise invalid(name, "a base64 string was expected")
        try:
            return base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise invalid(name, "base64 was expected") from None
    if kind == "timestamp":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise invalid(name, "epoch seconds were expected")
        try:
            return datetime.datetime.fromtimestamp(value, datetime.UTC)
        except (OverflowError, OSError, ValueError):
            raise invalid(name, "the timestamp is out of range") from None
    if not isinstance(value, str):
        raise invalid(name, "a string was expected")
    return value


def encode_json(value: Any, shape: Shape) -> Any:
    """A result value of ``shape`` as JSON-ready data (blobs base64, timestamps epoch)."""
    kind = shape.type_name
    if kind == "structure":
        return {
            k: encode_json(value[k], m)
            for k, m in shape.members.items()
            if value.get(k) is not None
        }
    if kind == "list":
        return [encode_json(v, shape.member) for v in value]
    if kind == "map":
        return {k: encode_json(v, shape.value) for k, v in value.items()}
    if kind == "blob":
        raw = value.encode() if isinstance(value, str) else bytes(value)
        return base64.b64encode(raw).decode("ascii")
    if kind == "timestamp" and isinstance(value, datetime.datetime):
        return value.timestamp()
    return value

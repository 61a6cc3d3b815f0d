"""awsJson1_0 values: JSON documents checked and typed against the model's shapes.

Each shape is compiled once into a small function (a decoder that checks
types and required members in one walk, an encoder for results): walking
botocore's shape objects per request cost a fifth of a SendMessageBatch.
Paths for error messages are built only when something is wrong.
"""

from __future__ import annotations

import base64
import binascii
import datetime
from collections.abc import Callable
from typing import Any

from botocore.model import Shape

from dovecote.aws.errors import AwsError, invalid, missing

Codec = Callable[[Any], Any]


class _Bad(Exception):
    """A value deep in a document is wrong; ``path`` grows on the way out."""

    def __init__(self, why: str, *, absent: bool = False) -> None:
        super().__init__(why)
        self.why = why
        self.absent = absent  # a required member is missing (why = its name)
        self.path: list[str] = []


def _error(error: _Bad, name: str) -> AwsError:
    path = ".".join(p for p in [name, *error.path] if p)
    if error.absent:
        return missing(f"{path}.{error.why}" if path else error.why)
    return invalid(path, error.why)


def decode_json(value: Any, shape: Shape, name: str) -> Any:
    """A parsed JSON value as params of ``shape``, its required members
    present; wrong types are InvalidParameterValue, missing members
    MissingParameter."""
    try:
        return _decoder(shape)(value)
    except _Bad as error:
        raise _error(error, name) from None


def encode_json(value: Any, shape: Shape) -> Any:
    """A result value of ``shape`` as JSON-ready data (blobs base64, timestamps epoch)."""
    return _encoder(shape)(value)


# --- decoders -------------------------------------------------------------------------

_DECODERS: dict[int, tuple[Shape, Codec]] = {}
_ENCODERS: dict[int, tuple[Shape, Codec]] = {}


def _compiled(
    table: dict[int, tuple[Shape, Codec]], shape: Shape, compile_: Callable[[Shape], Codec]
) -> Codec:
    """``shape``'s codec from ``table``, compiled on first use."""
    found = table.get(id(shape))
    if found is not None and found[0] is shape:
        return found[1]
    slot: list[Codec] = []
    # Recursive shapes call through the slot, filled once compiled.
    table[id(shape)] = (shape, lambda v: slot[0](v))
    codec = compile_(shape)
    slot.append(codec)
    table[id(shape)] = (shape, codec)
    return codec


def _decoder(shape: Shape) -> Codec:
    return _compiled(_DECODERS, shape, _compile_decoder)


def _compile_decoder(shape: Shape) -> Codec:
    kind = shape.type_name
    if kind == "structure":
        return _structure_decoder(shape)
    if kind == "list":
        item = _decoder(shape.member)

        def list_(value: Any) -> Any:
            if not isinstance(value, list):
                raise _Bad("a list was expected")
            out = []
            for i, v in enumerate(value, 1):
                try:
                    out.append(item(v))
                except _Bad as error:
                    error.path.insert(0, str(i))
                    raise
            return out

        return list_
    if kind == "map":
        item = _decoder(shape.value)

        def map_(value: Any) -> Any:
            if not isinstance(value, dict):
                raise _Bad("a map was expected")
            out = {}
            for k, v in value.items():
                try:
                    out[k] = item(v)
                except _Bad as error:
                    error.path.insert(0, str(k))
                    raise
            return out

        return map_
    return _SCALARS.get(kind, _string)


def _structure_decoder(shape: Shape) -> Codec:
    members = {key: _decoder(member) for key, member in shape.members.items()}
    required = tuple(shape.required_members)

    def structure(value: Any) -> Any:
        if not isinstance(value, dict):
            raise _Bad("an object was expected")
        out = {}
        for key, item in value.items():
            codec = members.get(key)
            if codec is None or item is None:
                continue  # unknown members are ignored, as AWS does
            try:
                out[key] = codec(item)
            except _Bad as error:
                error.path.insert(0, key)
                raise
        for key in required:
            if key not in out:
                raise _Bad(key, absent=True)
        return out

    return structure


def _string(value: Any) -> Any:
    if type(value) is not str:
        raise _Bad("a string was expected")
    return value


def _integer(value: Any) -> Any:
    if type(value) is not int:
        raise _Bad("an integer was expected")
    return value


def _boolean(value: Any) -> Any:
    if type(value) is not bool:
        raise _Bad("a boolean was expected")
    return value


def _number(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _Bad("a number was expected")
    return float(value)


def _blob(value: Any) -> Any:
    if not isinstance(value, str):
        raise _Bad("a base64 string was expected")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise _Bad("base64 was expected") from None


def _timestamp(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _Bad("epoch seconds were expected")
    try:
        return datetime.datetime.fromtimestamp(value, datetime.UTC)
    except (OverflowError, OSError, ValueError):
        raise _Bad("the timestamp is out of range") from None


_SCALARS: dict[str, Codec] = {
    "integer": _integer,
    "long": _integer,
    "boolean": _boolean,
    "float": _number,
    "double": _number,
    "blob": _blob,
    "timestamp": _timestamp,
}


# --- encoders -------------------------------------------------------------------------


def _encoder(shape: Shape) -> Codec:
    return _compiled(_ENCODERS, shape, _compile_encoder)


def _same(value: Any) -> Any:
    return value


def _compile_encoder(shape: Shape) -> Codec:
    kind = shape.type_name
    if kind == "structure":
        members = {k: _encoder(m) for k, m in shape.members.items()}

        def structure(value: Any) -> Any:
            out = {}
            for key, item in value.items():
                codec = members.get(key)
                if codec is not None and item is not None:
                    out[key] = item if codec is _same else codec(item)
            return out

        return structure
    if kind == "list":
        item = _encoder(shape.member)
        if item is _same:
            return list
        return lambda value: [item(v) for v in value]
    if kind == "map":
        item = _encoder(shape.value)
        if item is _same:
            return dict
        return lambda value: {k: item(v) for k, v in value.items()}
    if kind == "blob":
        return lambda value: base64.b64encode(
            value.encode() if isinstance(value, str) else bytes(value)
        ).decode("ascii")
    if kind == "timestamp":
        return lambda value: value.timestamp() if isinstance(value, datetime.datetime) else value
    return _same

"""Random instances of any kio entity, built from its dataclass fields.

A plain ``random.Random`` rather than hypothesis strategies: the round-trip
tests cover ~190 request and ~190 response classes, and drawing nested
entities through hypothesis costs milliseconds each. Values are chosen so
that kio's writer and reader round-trip them exactly: UUIDs are never the
all-zero UUID (kio reads it back as None), durations and timestamps are whole
milliseconds in the range a float keeps exact.
"""

from __future__ import annotations

import random
import string
import uuid
from collections.abc import Callable
from dataclasses import MISSING, Field, fields, is_dataclass
from datetime import timedelta
from types import NoneType, UnionType
from typing import Any, Union, get_args, get_origin

from kio.schema.errors import ErrorCode
from kio.serial.readers import tz_aware_from_i64

MS_LIMIT = 2**42
TEXT = string.ascii_letters + string.digits + "._-é€😀"
ERROR_CODES = list(ErrorCode)


def _signed(bits: int) -> Callable[[random.Random], int]:
    edges = [0, 1, -1, -(2 ** (bits - 1)), 2 ** (bits - 1) - 1]

    def draw(rng: random.Random) -> int:
        if rng.random() < 0.3:
            return rng.choice(edges)
        return rng.randint(-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)

    return draw


def _unsigned(bits: int) -> Callable[[random.Random], int]:
    return lambda rng: rng.choice([0, 2**bits - 1, rng.randint(0, 2**bits - 1)])


def _text(rng: random.Random) -> str:
    return "".join(rng.choice(TEXT) for _ in range(rng.randint(0, 10)))


def _bytes(rng: random.Random) -> bytes:
    return rng.randbytes(rng.randint(0, 40))


def _uuid(rng: random.Random) -> uuid.UUID:
    return uuid.UUID(int=rng.randint(1, 2**128 - 1))


def _millis(rng: random.Random) -> int:
    return rng.randint(-MS_LIMIT, MS_LIMIT)


PRIMITIVES: dict[str, Callable[[random.Random], Any]] = {
    "int8": _signed(8),
    "int16": _signed(16),
    "int32": _signed(32),
    "int64": _signed(64),
    "uint8": _unsigned(8),
    "uint16": _unsigned(16),
    "uint32": _unsigned(32),
    "uint64": _unsigned(64),
    "float64": lambda rng: rng.choice([0.0, -1.5, rng.uniform(-1e300, 1e300)]),
    "bool": lambda rng: rng.random() < 0.5,
    "string": _text,
    "bytes": _bytes,
    "records": _bytes,
    "uuid": _uuid,
    "error_code": lambda rng: rng.choice(ERROR_CODES),
    "timedelta_i32": lambda rng: timedelta(milliseconds=_signed(32)(rng)),
    "timedelta_i64": lambda rng: timedelta(milliseconds=_millis(rng)),
    "datetime_i64": lambda rng: tz_aware_from_i64(abs(_millis(rng))),
}


def _shape(field: Field) -> tuple[Any, bool, bool, bool]:
    """(inner type, is array, array/value nullable, items nullable)."""
    kind = field.type
    nullable = False
    if get_origin(kind) in (UnionType, Union):
        nullable = NoneType in get_args(kind)
        kind = next(a for a in get_args(kind) if a is not NoneType)
    if get_origin(kind) is tuple:
        inner = get_args(kind)[0]
        items_nullable = False
        if get_origin(inner) in (UnionType, Union):
            items_nullable = NoneType in get_args(inner)
            inner = next(a for a in get_args(inner) if a is not NoneType)
        return inner, True, nullable, items_nullable
    return kind, False, nullable, False


def _field_value(field: Field, rng: random.Random, depth: int) -> Any:
    if "tag" in field.metadata and field.default is not MISSING and rng.random() < 0.4:
        return field.default  # absent from the wire
    inner, is_array, nullable, items_nullable = _shape(field)
    if nullable and rng.random() < 0.25:
        return None
    if is_dataclass(inner):

        def item() -> Any:
            return sample(inner, rng, depth + 1)
    else:
        draw = PRIMITIVES[field.metadata["kafka_type"]]

        def item() -> Any:
            if items_nullable and rng.random() < 0.2:
                return None
            return draw(rng)

    if is_array:
        return tuple(item() for _ in range(rng.randint(0, 3 if depth < 2 else 1)))
    return item()


def sample(cls: type, rng: random.Random, depth: int = 0) -> Any:
    """A random instance of the kio entity class ``cls``."""
    return cls(**{f.name: _field_value(f, rng, depth) for f in fields(cls)})

"""Build kio response entities of any version from plain dictionaries.

Each Kafka API version has its own kio classes with only that version's
fields. Handlers describe a response once, as nested dicts holding every
field any version knows; this module keeps the fields the target class has,
converts plain values (ms integers, error codes, id strings) to the types kio
writes, and leaves out what the class fills by default.
"""

from __future__ import annotations

import dataclasses
import datetime
import types
import typing
import uuid
from collections.abc import Callable, Mapping
from functools import cache
from typing import Any

from kio.schema.errors import ErrorCode

Converter = Callable[[Any], Any]
_MISSING = dataclasses.MISSING
_UTC = datetime.UTC
ZERO_UUID = uuid.UUID(int=0)


def _identity(value: Any) -> Any:
    return value


def _timedelta(value: Any) -> Any:
    return datetime.timedelta(milliseconds=value) if isinstance(value, int) else value


def _datetime(value: Any) -> Any:
    if isinstance(value, int):
        return None if value < 0 else datetime.datetime.fromtimestamp(value / 1000, tz=_UTC)
    return value


def _error(value: Any) -> Any:
    return (
        ErrorCode(value) if isinstance(value, int) and not isinstance(value, ErrorCode) else value
    )


def _uuid(value: Any) -> Any:
    if value is None:
        return ZERO_UUID
    return uuid.UUID(value) if isinstance(value, str) else value


def _converter(hint: Any) -> Converter:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(hint) if a is not type(None)]
        inner = _converter(options[0]) if len(options) == 1 else _identity
        return lambda v: None if v is None else inner(v)
    if origin is tuple:
        args = typing.get_args(hint)
        item = _converter(args[0]) if args else _identity
        return lambda v: tuple(item(x) for x in v)
    if isinstance(hint, type):
        if dataclasses.is_dataclass(hint):
            return lambda v: build(hint, v) if isinstance(v, Mapping) else v
        if issubclass(hint, ErrorCode):
            return _error
        if issubclass(hint, datetime.timedelta):
            return _timedelta
        if issubclass(hint, datetime.datetime):
            return _datetime
        if issubclass(hint, uuid.UUID):
            return _uuid
    return _identity


@cache
def _plan(cls: type) -> tuple[tuple[str, Converter, bool], ...]:
    hints = typing.get_type_hints(cls)
    plan = []
    for field in dataclasses.fields(cls):
        required = field.default is _MISSING and field.default_factory is _MISSING
        plan.append((field.name, _converter(hints[field.name]), required))
    return tuple(plan)


def build(cls: type, data: Mapping[str, Any]) -> Any:
    """An instance of the kio class ``cls`` from ``data`` (extra keys ignored)."""
    kwargs = {}
    for name, convert, required in _plan(cls):
        if name in data:
            kwargs[name] = convert(data[name])
        elif required:
            raise KeyError(f"{cls.__module__}.{cls.__qualname__} needs '{name}'")
    return cls(**kwargs)


def ms(value: Any) -> int:
    """Milliseconds from a kio duration (timedelta) or a plain int."""
    if isinstance(value, datetime.timedelta):
        return int(value.total_seconds() * 1000)
    return int(value)

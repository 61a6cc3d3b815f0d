"""What kio knows: API keys, version ranges, flexibility, body classes and readers.

Everything is derived from kio's generated schema classes (``__flexible__``,
the schema index), so supporting a new Kafka version is a kio upgrade, not an
edit here. Lookups are cached: the first request of a kind imports its module.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import cache
from types import MappingProxyType
from typing import Any

from kio.index import load_request_schema, load_response_schema
from kio.schema.index import api_key_map, schema_name_map
from kio.serial import entity_reader

API_VERSIONS = 18  # the one API whose responses always use header v0

VersionRanges = Mapping[int, tuple[int, int]]


def _kio_ranges() -> dict[int, tuple[int, int]]:
    ranges = {}
    for api_key, name in api_key_map.items():
        versions = sorted(schema_name_map[name])
        # kio's ranges are contiguous; a gap would break range checks below.
        assert versions == list(range(versions[0], versions[-1] + 1)), name
        ranges[api_key] = (versions[0], versions[-1])
    return ranges


KIO_VERSIONS: VersionRanges = MappingProxyType(_kio_ranges())
"""``{api_key: (min_version, max_version)}`` for every API kio has schemas for."""


def api_name(api_key: int) -> str | None:
    """kio's snake_case name of an API (``"produce"``), None if unknown."""
    return api_key_map.get(api_key)


def negotiate(supported: VersionRanges) -> dict[int, tuple[int, int]]:
    """``supported`` intersected with :data:`KIO_VERSIONS`; empty ranges dropped.

    This is what the server can actually decode, hence what ApiVersions must
    advertise.
    """
    result = {}
    for api_key, (low, high) in supported.items():
        known = KIO_VERSIONS.get(api_key)
        if known is None:
            continue
        low, high = max(low, known[0]), min(high, known[1])
        if low <= high:
            result[api_key] = (low, high)
    return result


def has_version(api_key: int, version: int) -> bool:
    known = KIO_VERSIONS.get(api_key)
    return known is not None and known[0] <= version <= known[1]


@cache
def request_class(api_key: int, version: int) -> type:
    """kio's request body class; ``KeyError`` if kio has no such version."""
    if not has_version(api_key, version):
        raise KeyError((api_key, version))
    return load_request_schema(api_key, version)


@cache
def response_class(api_key: int, version: int) -> type:
    """kio's response body class; ``KeyError`` if kio has no such version."""
    if not has_version(api_key, version):
        raise KeyError((api_key, version))
    return load_response_schema(api_key, version)


def is_flexible(api_key: int, version: int) -> bool:
    """Whether this version uses compact types and tagged fields (KIP-482)."""
    return bool(request_class(api_key, version).__flexible__)


def request_header_version(api_key: int, version: int) -> int:
    """2 (tagged fields) for flexible versions, else 1."""
    return 2 if is_flexible(api_key, version) else 1


def response_header_version(api_key: int, version: int) -> int:
    """1 for flexible versions, else 0; ApiVersions always 0, because a client
    must parse the answer before it knows which versions the broker speaks."""
    if api_key == API_VERSIONS:
        return 0
    return 1 if is_flexible(api_key, version) else 0


Reader = Callable[[Any, int], tuple[Any, int]]


@cache
def body_reader(api_key: int, version: int) -> Reader:
    """kio's compiled reader for a request body: ``reader(buffer, offset) ->
    (entity, bytes read)`` (kio readers return the size read, not the end)."""
    return entity_reader(request_class(api_key, version))

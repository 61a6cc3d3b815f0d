"""Request handlers per Kafka API key, and the versions each serves.

A handler is ``async (ctx, session, request) -> dict | Encoded | None``: the
response as a dictionary (turned into the request version's kio class by
:mod:`dovecote.kafka.build`), buffers already encoded (Fetch, whose record
data must not be copied), or None when Kafka sends no response (acks=0)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from dovecote.kafka.codec import KIO_VERSIONS
from dovecote.kafka.handlers import admin, cluster, data, groups

Handler = Callable[..., Awaitable[dict[str, Any] | None]]

# api key -> (handler, highest version we serve or None for all kio knows)
HANDLERS: dict[int, tuple[Handler, int | None]] = {
    0: (data.produce, None),
    1: (data.fetch, None),
    2: (data.list_offsets, None),
    3: (cluster.metadata, None),
    8: (groups.offset_commit, None),
    9: (groups.offset_fetch, None),
    10: (cluster.find_coordinator, None),
    11: (groups.join_group, None),
    12: (groups.heartbeat, None),
    13: (groups.leave_group, None),
    14: (groups.sync_group, None),
    15: (groups.describe_groups, None),
    16: (groups.list_groups, None),
    19: (admin.create_topics, None),
    20: (admin.delete_topics, None),
    21: (data.delete_records, None),
    22: (admin.init_producer_id, None),
    32: (admin.describe_configs, None),
    33: (admin.alter_configs, None),
    37: (admin.create_partitions, None),
    42: (groups.delete_groups, None),
    44: (admin.incremental_alter_configs, None),
    47: (groups.offset_delete, None),
    60: (cluster.describe_cluster, None),
}
API_VERSIONS_KEY = 18


def supported_versions() -> dict[int, tuple[int, int]]:
    """What ApiVersions advertises: exactly the APIs and versions handled."""
    out = {API_VERSIONS_KEY: KIO_VERSIONS[API_VERSIONS_KEY]}
    for key, (_handler, highest) in HANDLERS.items():
        window = KIO_VERSIONS.get(key)
        if window is None:
            continue
        lo, hi = window
        out[key] = (lo, min(hi, highest) if highest is not None else hi)
    return out

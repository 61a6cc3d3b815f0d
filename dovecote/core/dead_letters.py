"""The dead-letter history of a record: the ``dovecote.deaths`` header.

Each time a queue dead-letters a record (expired, rejected, over a length
limit or a delivery limit) the record carries one more event in its
:data:`~dovecote.core.headers.DEATHS` header: one entry per (queue, reason)
with a count, most recent first, which adapters render in their own terms.
The queue manager routes the dead letter; this module only writes and
reads that history and holds no queue state, so it is usable (and testable)
without a queue manager.
"""

from __future__ import annotations

import contextlib
import json
import time
from typing import Any

from dovecote.core.headers import DEATHS, EXPIRES_AT
from dovecote.storage.batch import Record


def cycles(record: Record, queue: str) -> bool:
    """Whether ``record`` died in ``queue`` before and was never rejected:
    dead-lettering it back there would loop."""
    deaths = _deaths(record)
    return any(d.get("queue") == queue for d in deaths) and not any(
        d.get("reason") == "rejected" for d in deaths
    )


def _deaths(record: Record) -> list[dict[str, Any]]:
    for key, value in record.headers:
        if key == DEATHS and value is not None:
            with contextlib.suppress(ValueError):
                return json.loads(value)
    return []


def with_death(
    headers: list[tuple[str, bytes | None]],
    queue: str,
    reason: str,
    exchange: str,
    routing_key: str,
    now: int | None = None,
) -> list[tuple[str, bytes | None]]:
    """Headers plus one more dead-letter event (at ``now``, epoch seconds):
    one entry per (queue, reason) with a count, most recent first."""
    deaths: list[dict[str, Any]] = []
    rest = []
    for key, value in headers:
        if key == DEATHS and value is not None:
            with contextlib.suppress(ValueError):
                deaths = json.loads(value)
        elif key != EXPIRES_AT:
            rest.append((key, value))
    if now is None:
        now = int(time.time())
    for entry in deaths:
        if entry.get("queue") == queue and entry.get("reason") == reason:
            entry["count"] = entry.get("count", 1) + 1
            entry["time"] = now
            deaths.remove(entry)
            deaths.insert(0, entry)
            break
    else:
        entry = {
            "queue": queue,
            "reason": reason,
            "count": 1,
            "time": now,
            "exchange": exchange,
            "routing-keys": [routing_key],
        }
        if not deaths:
            entry["first"] = True  # the first death is kept as it was
        deaths.insert(0, entry)
    rest.append((DEATHS, json.dumps(deaths, separators=(",", ":")).encode()))
    return rest

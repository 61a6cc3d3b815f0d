"""The figures Pub/Sub users watch on a subscription: how many messages are
unacked (ready or leased) and how old the oldest of them is.

The oldest unacked message of a partition is the one at the subscription's
floor (everything below it is settled, and the floor never rests on a
settled offset), so finding it reads one record per partition.
"""

from __future__ import annotations

from typing import Any


def unacked_count(sub: Any) -> int:
    """Messages not yet acked: ready to deliver, delayed or in flight."""
    return int(sub.ready_count()) + int(sub.unacked_count())


def oldest_unacked_ms(sub: Any) -> int | None:
    """Publish time (wall ms) of the oldest unacked message, or None."""
    sub.sync_partitions()
    oldest: int | None = None
    for index, cursor in enumerate(sub.cursors):
        partition = sub.topic.partitions[index]
        offset = max(cursor.floor, partition.log_start_offset)
        if offset >= partition.high_watermark:
            continue
        for record in partition.read_records(offset, 1):
            if record.offset < offset or record.offset in cursor.settled:
                continue
            if oldest is None or record.timestamp < oldest:
                oldest = record.timestamp
            break
    return oldest

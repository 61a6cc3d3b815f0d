"""Durable subscription progress: an internal topic of delivery and settle events.

Each change to a subscription (records delivered, records settled) is noted in
memory and, once per loop turn, written as one record per subscription
holding offset *ranges*, so a burst of ten thousand acks costs one small
append. On start the topic is replayed: settled offsets become settled again,
delivered-but-unsettled ones keep their delivery count and come back as
redeliveries. When the topic grows past a threshold every subscription's
state is written as a snapshot and everything before it is deleted.

Acks are at-least-once durable: the topic is fsynced every 200 ms, so an ack
made just before a power failure may be lost and that record is then
delivered again, as RabbitMQ and SQS do. A process crash loses nothing that
reached the page cache.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from dovecote.storage.batch import Record

if TYPE_CHECKING:
    from dovecote.core.broker import BrokerCore
    from dovecote.core.subscription import Delivery, Subscription

log = logging.getLogger(__name__)

STATE_TOPIC = "__dovecote_subscriptions"
SNAPSHOT_BYTES = 32 << 20
# Progress is fsynced in the background every 200 ms rather than after every
# burst of acks: an ack lost to a power failure means one redelivery (at least
# once, as RabbitMQ's queue index), and consumers acking one by one no longer
# cost an fsync round each.
STATE_CONFIGS = {"max.message.bytes": str(256 << 20), "flush.policy": "interval", "flush.ms": "200"}


def to_ranges(offsets: Iterable[int]) -> list[list[int]]:
    """[3, 4, 5, 9] -> [[3, 5], [9, 9]]"""
    ranges: list[list[int]] = []
    for offset in sorted(offsets):
        if ranges and offset == ranges[-1][1] + 1:
            ranges[-1][1] = offset
        elif not ranges or offset > ranges[-1][1]:
            ranges.append([offset, offset])
    return ranges


def from_ranges(ranges: Iterable[Iterable[int]]) -> Iterable[int]:
    for start, end in ranges:
        yield from range(start, end + 1)


@dataclass
class SavedCursor:
    floor: int = 0
    settled: set[int] = field(default_factory=set)
    counts: dict[int, int] = field(default_factory=dict)

    def settle(self, offsets: Iterable[int]) -> None:
        for offset in offsets:
            if offset >= self.floor:
                self.settled.add(offset)
                self.counts.pop(offset, None)
        while self.floor in self.settled:
            self.settled.discard(self.floor)
            self.floor += 1

    def deliver(self, offsets: Iterable[int]) -> None:
        for offset in offsets:
            if offset >= self.floor and offset not in self.settled:
                self.counts[offset] = self.counts.get(offset, 0) + 1


class SubscriptionStore:
    def __init__(self, core: BrokerCore) -> None:
        self.core = core
        self.saved: dict[str, dict[int, SavedCursor]] = {}
        self._pending: dict[str, dict[int, dict[str, list[int]]]] = {}
        self._live: dict[str, Subscription] = {}
        self._flush_scheduled = False
        self._snapshotting = False
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def partition(self):
        return self.core.get_topic(STATE_TOPIC).partitions[0]

    async def load(self) -> None:
        topic = self.core.topic(STATE_TOPIC)
        if topic is None:
            topic = await self.core.create_topic(STATE_TOPIC, 1, STATE_CONFIGS, internal=True)
        elif any(topic.configs.get(k) != v for k, v in STATE_CONFIGS.items()):
            await self.core.alter_topic_configs(STATE_TOPIC, STATE_CONFIGS)
        assert topic is not None
        for record in topic.partitions[0].all_records():
            self._replay(record)

    def _replay(self, record: Record) -> None:
        sub_id = (record.key or b"").decode()
        if record.value is None:
            self.saved.pop(sub_id, None)
            return
        try:
            change = json.loads(record.value)
        except ValueError:
            log.warning("unreadable subscription state record at offset %d", record.offset)
            return
        if "snap" in change:
            self.saved[sub_id] = {
                int(p): SavedCursor(
                    s["f"], set(from_ranges(s["s"])), {int(o): c for o, c in s["c"].items()}
                )
                for p, s in change["snap"].items()
            }
            return
        cursors = self.saved.setdefault(sub_id, {})
        for p, events in change.get("p", {}).items():
            cursor = cursors.setdefault(int(p), SavedCursor())
            cursor.deliver(from_ranges(events.get("d", ())))
            cursor.settle(from_ranges(events.get("s", ())))

    # --- live subscriptions ---------------------------------------------------

    def restore(self, sub: Subscription) -> None:
        """Give a (re)created subscription the progress saved under its id."""
        self._live[sub.id] = sub
        saved = self.saved.get(sub.id)
        if not saved:
            return
        for index, cursor in enumerate(sub.cursors):
            state = saved.get(index)
            if state is None:
                continue
            start = sub.topic.partitions[index].log_start_offset
            cursor.floor = cursor.position = max(state.floor, start)
            cursor.settled = {o for o in state.settled if o >= cursor.floor}
            cursor.counts = {o: c for o, c in state.counts.items() if o >= cursor.floor}

    def delivered(self, sub: Subscription, deliveries: list[Delivery]) -> None:
        pending = self._pending_for(sub.id)
        for delivery in deliveries:
            pending.setdefault(delivery.partition, {"d": [], "s": []})["d"].append(delivery.offset)
        self._schedule()

    def settled(self, sub: Subscription, index: int, offsets: list[int]) -> None:
        pending = self._pending_for(sub.id)
        pending.setdefault(index, {"d": [], "s": []})["s"].extend(offsets)
        self._schedule()

    def forget(self, sub_id: str) -> None:
        """The subscription was deleted: drop its state (a tombstone)."""
        self._live.pop(sub_id, None)
        self._pending.pop(sub_id, None)
        self.saved.pop(sub_id, None)
        self._spawn(
            self.partition.append_records([Record(None, key=sub_id.encode())], durable=False)
        )

    def _pending_for(self, sub_id: str) -> dict[int, dict[str, list[int]]]:
        return self._pending.setdefault(sub_id, {})

    def _schedule(self) -> None:
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        """Write what changed this loop turn: one record per subscription."""
        self._flush_scheduled = False
        pending, self._pending = self._pending, {}
        records = []
        for sub_id, partitions in pending.items():
            body = {
                str(p): {k: to_ranges(v) for k, v in events.items() if v}
                for p, events in partitions.items()
            }
            saved = self.saved.setdefault(sub_id, {})
            for p, events in partitions.items():
                cursor = saved.setdefault(p, SavedCursor())
                cursor.deliver(events["d"])
                cursor.settle(events["s"])
            records.append(
                Record(json.dumps({"p": body}, separators=(",", ":")).encode(), key=sub_id.encode())
            )
        if records:
            self._spawn(self.partition.append_records(records, durable=False))
            if self.partition.log.size_bytes > SNAPSHOT_BYTES and not self._snapshotting:
                self._snapshotting = True
                self._spawn(self._snapshot())

    async def _snapshot(self) -> None:
        """Write every subscription's state, then delete what came before."""
        try:
            partition = self.partition
            records = [
                Record(
                    json.dumps(
                        {
                            "snap": {
                                str(p): {"f": c.floor, "s": to_ranges(c.settled), "c": c.counts}
                                for p, c in cursors.items()
                            }
                        },
                        separators=(",", ":"),
                    ).encode(),
                    key=sub_id.encode(),
                )
                for sub_id, cursors in self.saved.items()
            ]
            if not records:
                return
            result = await partition.append_records(records, durable=True)
            partition.log.delete_records_before(result.base_offset)
            log.info("subscription state compacted to %d snapshots", len(records))
        finally:
            self._snapshotting = False

    def _spawn(self, coro) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def drain(self) -> None:
        if self._flush_scheduled:
            self._flush()
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

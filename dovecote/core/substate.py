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

The same topic keeps two more kinds of state, under keys no subscription id
uses (they start with a NUL): deduplication windows (message ids accepted
recently, see :mod:`~dovecote.core.dedup`) and named snapshots of a
subscription's progress that it can later be seeked back to.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from dovecote.core.dedup import DEFAULT_WINDOW_MS, RELEASED, DedupWindow, Entry
from dovecote.storage.batch import Record

if TYPE_CHECKING:
    from dovecote.core.clock import Clock
    from dovecote.core.subscription import Subscription
    from dovecote.core.subscription_state import Delivery
    from dovecote.core.topic import Partition

log = logging.getLogger(__name__)

STATE_TOPIC = "__dovecote_subscriptions"
DEDUP_PREFIX = "\x00dedup:"
SNAPSHOT_PREFIX = "\x00snapshot:"
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


def cursor_body(cursors: dict[int, SavedCursor]) -> dict[str, dict]:
    return {
        str(p): {"f": c.floor, "s": to_ranges(c.settled), "c": c.counts} for p, c in cursors.items()
    }


def cursors_from_body(body: dict) -> dict[int, SavedCursor]:
    return {
        int(p): SavedCursor(
            s["f"], set(from_ranges(s["s"])), {int(o): c for o, c in s.get("c", {}).items()}
        )
        for p, s in body.items()
    }


@dataclass
class SavedSnapshot:
    """A subscription's progress captured by name (what a seek restores)."""

    sub_id: str
    topic: str
    created_ms: int
    cursors: dict[int, SavedCursor]

    def to_json(self) -> dict:
        return {
            "sub": self.sub_id,
            "topic": self.topic,
            "t": self.created_ms,
            "snap": cursor_body(self.cursors),
        }

    @classmethod
    def from_json(cls, body: dict) -> SavedSnapshot:
        return cls(body["sub"], body["topic"], body["t"], cursors_from_body(body["snap"]))


class SubscriptionStore:
    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.partition: Partition  # the state topic's one partition, from load()
        self.saved: dict[str, dict[int, SavedCursor]] = {}
        self.snapshots: dict[str, SavedSnapshot] = {}
        self.windows: dict[str, DedupWindow] = {}
        self._saved_windows: dict[str, dict[str, Entry]] = {}
        self._pending: dict[str, dict[int, dict[str, list[int]]]] = {}
        self._resets: set[str] = set()  # subscriptions to write whole (after a seek)
        self._pending_dedup: dict[str, list[tuple[str, int, int, int]]] = {}
        self._pending_snapshots: dict[str, SavedSnapshot | None] = {}
        self._live: dict[str, Subscription] = {}
        self._flush_scheduled = False
        self._snapshotting = False
        self._tasks: set[asyncio.Task[None]] = set()

    async def load(self, partition: Partition) -> None:
        """Replay the state topic's partition (``STATE_TOPIC``, made by the
        broker with ``STATE_CONFIGS``)."""
        self.partition = partition
        for record in partition.all_records():
            self._replay(record)

    def _replay(self, record: Record) -> None:
        sub_id = (record.key or b"").decode()
        if sub_id.startswith("\x00"):
            self._replay_other(sub_id, record)
            return
        if record.value is None:
            self.saved.pop(sub_id, None)
            return
        try:
            change = json.loads(record.value)
        except ValueError:
            log.warning("unreadable subscription state record at offset %d", record.offset)
            return
        if "snap" in change:
            self.saved[sub_id] = cursors_from_body(change["snap"])
            return
        cursors = self.saved.setdefault(sub_id, {})
        for p, events in change.get("p", {}).items():
            cursor = cursors.setdefault(int(p), SavedCursor())
            cursor.deliver(from_ranges(events.get("d", ())))
            cursor.settle(from_ranges(events.get("s", ())))

    def _replay_other(self, key: str, record: Record) -> None:
        try:
            body = None if record.value is None else json.loads(record.value)
        except ValueError:
            log.warning("unreadable subscription state record at offset %d", record.offset)
            return
        if key.startswith(DEDUP_PREFIX):
            name = key[len(DEDUP_PREFIX) :]
            if body is None:
                self._saved_windows.pop(name, None)
                return
            entries = {} if body.get("all") else self._saved_windows.get(name, {})
            for message_id, accepted, partition, offset in body["e"]:
                entries.pop(message_id, None)  # keep acceptance order
                if partition != RELEASED:
                    entries[message_id] = (accepted, partition, offset)
            self._saved_windows[name] = entries
        elif key.startswith(SNAPSHOT_PREFIX):
            name = key[len(SNAPSHOT_PREFIX) :]
            if body is None:
                self.snapshots.pop(name, None)
            else:
                self.snapshots[name] = SavedSnapshot.from_json(body)

    # --- dedup windows and snapshots ------------------------------------------

    def dedup_window(self, name: str, window_ms: int = DEFAULT_WINDOW_MS) -> DedupWindow:
        """The durable deduplication window ``name`` (made on first use, with
        the entries saved before a restart)."""
        window = self.windows.get(name)
        if window is None:
            window = DedupWindow(
                name, window_ms, self._saved_windows.pop(name, None), self._dedup_recorded
            )
            self.windows[name] = window
        window.window_ms = window_ms
        return window

    def drop_dedup_window(self, name: str) -> None:
        self.windows.pop(name, None)
        self._saved_windows.pop(name, None)
        self._pending_dedup.pop(name, None)
        self._spawn(
            self.partition.append_records(
                [Record(None, key=(DEDUP_PREFIX + name).encode())], durable=False
            )
        )

    def _dedup_recorded(self, name: str, entries: list[tuple[str, int, int, int]]) -> None:
        """Write the accepted (or released) ids at once, before their
        records are appended: were they left for the next loop turn, a crash
        in between would keep the records and forget the ids, and the
        client's retry of the send it got no answer for would be stored twice."""
        body = json.dumps({"e": entries}, separators=(",", ":"))
        record = Record(body.encode(), key=(DEDUP_PREFIX + name).encode())
        try:
            self.partition.append_records_now([record], durable=False)
        except Exception:
            log.exception("writing dedup window %s failed; retried on the next flush", name)
            self._pending_dedup.setdefault(name, []).extend(entries)
            self._schedule()

    def save_snapshot(self, name: str, snapshot: SavedSnapshot) -> None:
        self.snapshots[name] = snapshot
        self._pending_snapshots[name] = snapshot
        self._schedule()

    def delete_snapshot(self, name: str) -> bool:
        if self.snapshots.pop(name, None) is None:
            return False
        self._pending_snapshots[name] = None
        self._schedule()
        return True

    def reset(self, sub: Subscription, cursors: dict[int, SavedCursor]) -> None:
        """The subscription was seeked: its saved progress is replaced whole."""
        self._pending.pop(sub.id, None)
        self.saved[sub.id] = cursors
        self._resets.add(sub.id)
        self._schedule()

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
        self._resets.discard(sub_id)
        self.saved.pop(sub_id, None)
        if sub_id in self.windows or sub_id in self._saved_windows:
            self.drop_dedup_window(sub_id)  # a queue's window goes with it
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
        resets, self._resets = self._resets, set()
        for sub_id in resets:
            if sub_id in self.saved:
                body = json.dumps({"snap": cursor_body(self.saved[sub_id])}, separators=(",", ":"))
                records.append(Record(body.encode(), key=sub_id.encode()))
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
        dedup, self._pending_dedup = self._pending_dedup, {}
        for name, entries in dedup.items():
            body = json.dumps({"e": entries}, separators=(",", ":"))
            records.append(Record(body.encode(), key=(DEDUP_PREFIX + name).encode()))
        snapshots, self._pending_snapshots = self._pending_snapshots, {}
        for name, snapshot in snapshots.items():
            value = None if snapshot is None else json.dumps(snapshot.to_json()).encode()
            records.append(Record(value, key=(SNAPSHOT_PREFIX + name).encode()))
        if records:
            self._spawn(self.partition.append_records(records, durable=False))
            if self.partition.size_bytes > SNAPSHOT_BYTES and not self._snapshotting:
                self._snapshotting = True
                self._spawn(self._snapshot())

    async def _snapshot(self) -> None:
        """Write every subscription's state, then delete what came before."""
        try:
            partition = self.partition
            records = [
                Record(
                    json.dumps({"snap": cursor_body(cursors)}, separators=(",", ":")).encode(),
                    key=sub_id.encode(),
                )
                for sub_id, cursors in self.saved.items()
            ]
            now_ms = self.clock.wall_ms()
            windows = {name: w.durable_entries() for name, w in self.windows.items()}
            for name, saved in self._saved_windows.items():
                windows[name] = [(i, t, p, o) for i, (t, p, o) in saved.items()]
            for name, entries in windows.items():
                window = self.windows.get(name)
                horizon = now_ms - (window.window_ms if window is not None else 0)
                live = [e for e in entries if window is None or e[1] > horizon]
                body = json.dumps({"all": True, "e": live}, separators=(",", ":"))
                records.append(Record(body.encode(), key=(DEDUP_PREFIX + name).encode()))
            for name, snapshot in self.snapshots.items():
                records.append(
                    Record(
                        json.dumps(snapshot.to_json()).encode(),
                        key=(SNAPSHOT_PREFIX + name).encode(),
                    )
                )
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

    async def sync(self) -> None:
        """Make every change so far durable now, not at the next 200 ms flush:
        an ack that promises never to be undone (Pub/Sub exactly-once) is
        answered after this. Concurrent callers share the fsync."""
        if self._flush_scheduled:
            self._flush()
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
        await self.partition.sync()

    async def drain(self) -> None:
        if self._flush_scheduled:
            self._flush()
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

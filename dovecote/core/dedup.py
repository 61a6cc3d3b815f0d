"""A deduplication window by message id (FIFO queues, exactly-once delivery).

Whoever publishes into a queue asks the window first: ``accept_ids`` answers,
per id, either ``None`` (new: the id is now reserved, append the message) or
the :class:`Duplicate` it repeats. ``record`` says where the accepted
messages land; that is what later duplicates are answered with and what is
made durable (the subscription store logs it at once and replays it on
start). Queues record *before* appending, so a crash after the append cannot
lose the ids; a crash before it leaves ids pointing past the log end, which
``drop_beyond`` releases when the queue is opened. If the append fails,
``release`` frees the ids (durably); ``abandon`` frees ids still only reserved.

Ids are forgotten ``window_ms`` after they were accepted. Entries are kept in
acceptance order, so forgetting is a pop from the front, paid by the next
call: an idle window costs nothing and has no timer.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

PENDING = -1  # reserved, the original's append has not finished
RELEASED = -2  # in a durable entry: the id was let go (its record was never stored)
DEFAULT_WINDOW_MS = 5 * 60_000  # what FIFO queues commonly promise

# (accepted at wall ms, partition, offset); partition/offset PENDING while appending
Entry = tuple[int, int, int]


@dataclass(frozen=True, slots=True)
class Duplicate:
    """The id was seen inside the window: the message it repeats, where known."""

    partition: int | None  # None: the original is still being appended
    offset: int | None
    accepted_ms: int


class DedupWindow:
    def __init__(
        self,
        name: str,
        window_ms: int,
        entries: dict[str, Entry] | None = None,
        on_record: Callable[[str, list[tuple[str, int, int, int]]], None] | None = None,
    ) -> None:
        self.name = name
        self.window_ms = window_ms
        self.entries: dict[str, Entry] = dict(entries or {})
        self._on_record = on_record

    def __len__(self) -> int:
        return len(self.entries)

    def forget_expired(self, now_ms: int) -> None:
        entries = self.entries
        horizon = now_ms - self.window_ms
        while entries:
            first = next(iter(entries))
            if entries[first][0] > horizon:
                break
            del entries[first]

    def lookup(self, message_id: str, now_ms: int) -> Duplicate | None:
        self.forget_expired(now_ms)
        entry = self.entries.get(message_id)
        return None if entry is None else _duplicate(entry)

    def accept_ids(self, ids: Sequence[str], now_ms: int) -> list[Duplicate | None]:
        """Per id: None if new (and now reserved), else what it duplicates.
        A repeat inside ``ids`` duplicates its first occurrence."""
        self.forget_expired(now_ms)
        entries = self.entries
        out: list[Duplicate | None] = []
        for message_id in ids:
            entry = entries.get(message_id)
            if entry is None:
                entries[message_id] = (now_ms, PENDING, PENDING)
                out.append(None)
            else:
                out.append(_duplicate(entry))
        return out

    def record(self, ids: Sequence[str], positions: Sequence[tuple[int, int]]) -> None:
        """The accepted ``ids`` were stored at ``positions`` (partition, offset)."""
        changed: list[tuple[str, int, int, int]] = []
        for message_id, (partition, offset) in zip(ids, positions, strict=True):
            entry = self.entries.get(message_id)
            if entry is None:
                continue  # already out of the window
            self.entries[message_id] = (entry[0], partition, offset)
            changed.append((message_id, entry[0], partition, offset))
        if changed and self._on_record is not None:
            self._on_record(self.name, changed)

    def abandon(self, ids: Iterable[str]) -> None:
        """The append of reserved ``ids`` failed: let a retry through."""
        for message_id in ids:
            entry = self.entries.get(message_id)
            if entry is not None and entry[1] == PENDING:
                del self.entries[message_id]

    def release(self, ids: Iterable[str]) -> None:
        """Forget ``ids`` whatever their state, durably: their records were
        never stored (the append failed, or a crash came between the ids
        being written and their records)."""
        gone: list[tuple[str, int, int, int]] = []
        for message_id in ids:
            entry = self.entries.pop(message_id, None)
            if entry is not None:
                gone.append((message_id, entry[0], RELEASED, RELEASED))
        if gone and self._on_record is not None:
            self._on_record(self.name, gone)

    def drop_beyond(self, ends: Sequence[int]) -> None:
        """Release the entries pointing at or past their partition's end
        (``ends[partition]``): written before records a crash kept from the log."""
        self.release(
            [
                message_id
                for message_id, (_, partition, offset) in self.entries.items()
                if partition < 0 or partition >= len(ends) or offset >= ends[partition]
            ]
        )

    def durable_entries(self) -> list[tuple[str, int, int, int]]:
        """Entries whose message was stored (what a snapshot keeps)."""
        return [(i, t, p, o) for i, (t, p, o) in self.entries.items() if p != PENDING]


def _duplicate(entry: Entry) -> Duplicate:
    accepted, partition, offset = entry
    if partition == PENDING:
        return Duplicate(None, None, accepted)
    return Duplicate(partition, offset, accepted)

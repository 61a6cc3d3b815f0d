"""Kafka's consumer protocol: what consumer-group members put in the opaque
bytes of JoinGroup (their subscription) and SyncGroup (their assignment),
and the two classic assignors every Kafka client offers, range and
roundrobin.

The coordinator never needs these (the leader assigns); a member living in
the broker does (:mod:`dovecote.core.local_member`), and it must read what
real clients write and write what they read: version 0 of each structure,
and only the leading fields of newer versions (which append fields).
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable

ASSIGNORS = ("range", "roundrobin")  # what a broker-side member offers, in order

_I16 = struct.Struct(">h")
_I32 = struct.Struct(">i")


class ProtocolError(ValueError):
    """Consumer-protocol bytes that do not parse."""


def _string(out: bytearray, value: str) -> None:
    raw = value.encode()
    out += _I16.pack(len(raw)) + raw


def encode_subscription(topics: Iterable[str]) -> bytes:
    """ConsumerProtocolSubscription v0: topics, no user data."""
    names = sorted(set(topics))
    out = bytearray(_I16.pack(0) + _I32.pack(len(names)))
    for name in names:
        _string(out, name)
    out += _I32.pack(-1)
    return bytes(out)


def encode_assignment(partitions: dict[str, list[int]]) -> bytes:
    """ConsumerProtocolAssignment v0: partitions per topic, no user data."""
    out = bytearray(_I16.pack(0) + _I32.pack(len(partitions)))
    for topic in sorted(partitions):
        _string(out, topic)
        out += _I32.pack(len(partitions[topic]))
        for index in sorted(partitions[topic]):
            out += _I32.pack(index)
    out += _I32.pack(-1)
    return bytes(out)


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def int(self, kind: struct.Struct) -> int:
        if self.pos + kind.size > len(self.data):
            raise ProtocolError("consumer protocol bytes end early")
        (value,) = kind.unpack_from(self.data, self.pos)
        self.pos += kind.size
        return value

    def count(self) -> int:
        n = self.int(_I32)
        if n < 0 or n > len(self.data):
            raise ProtocolError(f"impossible array length {n}")
        return n

    def string(self) -> str:
        n = self.int(_I16)
        if n < 0 or self.pos + n > len(self.data):
            raise ProtocolError("bad string length")
        value = self.data[self.pos : self.pos + n].decode("utf-8", "replace")
        self.pos += n
        return value


def decode_subscription(data: bytes) -> list[str]:
    """The topics of a subscription of any version."""
    reader = _Reader(data)
    reader.int(_I16)
    return [reader.string() for _ in range(reader.count())]


def decode_assignment(data: bytes) -> dict[str, list[int]]:
    """The partitions of an assignment of any version; empty bytes: nothing."""
    if not data:
        return {}
    reader = _Reader(data)
    reader.int(_I16)
    out: dict[str, list[int]] = {}
    for _ in range(reader.count()):
        topic = reader.string()
        out[topic] = [reader.int(_I32) for _ in range(reader.count())]
    return out


Subscriptions = dict[str, list[str]]  # member id -> topics
Assignment = dict[str, dict[str, list[int]]]  # member id -> topic -> partitions


def assign(
    protocol: str, subscriptions: Subscriptions, partition_count: Callable[[str], int]
) -> Assignment:
    """Assign as Kafka's RangeAssignor or RoundRobinAssignor would."""
    out: Assignment = {member: {} for member in subscriptions}
    topics = sorted({t for ts in subscriptions.values() for t in ts})
    if protocol == "range":
        for topic in topics:
            members = sorted(m for m, ts in subscriptions.items() if topic in ts)
            count = partition_count(topic)
            share, extra = divmod(count, len(members))
            start = 0
            for i, member in enumerate(members):
                n = share + (1 if i < extra else 0)
                if n:
                    out[member][topic] = list(range(start, start + n))
                start += n
        return out
    if protocol == "roundrobin":
        members = sorted(subscriptions)
        turn = 0
        for topic in topics:
            for index in range(partition_count(topic)):
                while topic not in subscriptions[members[turn % len(members)]]:
                    turn += 1
                out[members[turn % len(members)]].setdefault(topic, []).append(index)
                turn += 1
        return out
    raise ProtocolError(f"no assignor {protocol!r}")

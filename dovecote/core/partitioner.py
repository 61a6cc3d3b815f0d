"""Which partition a keyed record goes to when the producer did not say.

Kafka's Java client hashes the key with murmur2 and takes it modulo the
partition count; doing the same means a key lands on the same partition
whether it was produced by a Java client, our CLI or another protocol. Keyless
records are spread round-robin.
"""

from __future__ import annotations

import itertools

_M = 0x5BD1E995
_SEED = 0x9747B28C
_MASK = 0xFFFFFFFF


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 (org.apache.kafka.common.utils.Utils.murmur2), as a signed int32."""
    length = len(data)
    h = (_SEED ^ length) & _MASK
    end = length - length % 4
    for i in range(0, end, 4):
        k = int.from_bytes(data[i : i + 4], "little")
        k = (k * _M) & _MASK
        k ^= k >> 24
        k = (k * _M) & _MASK
        h = (h * _M) & _MASK
        h ^= k
    rest = length % 4
    if rest == 3:
        h ^= data[end + 2] << 16
    if rest >= 2:
        h ^= data[end + 1] << 8
    if rest >= 1:
        h ^= data[end]
        h = (h * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    h ^= h >> 15
    return h - (1 << 32) if h & 0x80000000 else h


def partition_for_key(key: bytes, partitions: int) -> int:
    return (murmur2(key) & 0x7FFFFFFF) % partitions


class Partitioner:
    """Keyed records by murmur2; keyless ones round-robin."""

    def __init__(self) -> None:
        self._counter = itertools.count()

    def choose(self, key: bytes | None, partitions: int) -> int:
        if key is None:
            return next(self._counter) % partitions
        return partition_for_key(key, partitions)

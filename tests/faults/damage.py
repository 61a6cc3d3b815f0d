"""Damage to a stopped broker's data directory, as a crash or a bad disk
leaves it: the last segment of a partition truncated, bytes flipped (also in
batch headers), garbage appended, index files deleted, the clean-shutdown
marker removed. Shared by the torn-tail scenarios of every protocol."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path

from dovecote.storage.batch import BatchInfo, scan_batches

UNCHECKED = range(12, 16)  # partitionLeaderEpoch: covered by no check in the format


@dataclass
class Damage:
    """What one run did to the last segment of one partition."""

    partition: int
    segment: Path
    before: list[BatchInfo]
    size: int = 0
    touched: set[int] = field(default_factory=set)
    steps: list[str] = field(default_factory=list)


def damage(data_dir: Path, topic: str, partitions: int, rng: random.Random) -> Damage:
    """1-3 seeded damages to the last segment of one of ``topic``'s partitions;
    index files deleted at random; the clean-shutdown marker removed."""
    partition = rng.randrange(partitions)
    directory = data_dir / "topics" / topic / str(partition)
    segment = sorted(directory.glob("*.log"))[-1]
    raw = bytearray(segment.read_bytes())
    hurt = Damage(partition, segment, scan_batches(bytes(raw)))
    for _ in range(rng.randint(1, 3)):
        kind = rng.choice(["truncate", "flip", "flip-header", "garbage"])
        size = len(raw)
        near_end = rng.random() < 0.5
        position = size - 1 - rng.randrange(min(size, 400)) if near_end else rng.randrange(size)
        if kind == "truncate":
            del raw[position:]
            hurt.touched |= set(range(position, size))
        elif kind == "flip":
            raw[position] ^= rng.randint(1, 255)
            hurt.touched.add(position)
        elif kind == "flip-header":
            batch = rng.choice([b for b in hurt.before if b.position + 61 <= size])
            position = batch.position + rng.randrange(61)
            raw[position] ^= rng.randint(1, 255)
            hurt.touched.add(position)
        else:
            garbage = rng.choice(
                [bytes(rng.randrange(1, 300)), rng.randbytes(rng.randrange(1, 300))]
            )
            raw += garbage
            hurt.touched |= set(range(size, size + len(garbage)))
        hurt.steps.append(f"{kind}@{position}")
    segment.write_bytes(bytes(raw))
    hurt.size = len(raw)
    if rng.random() < 0.5:
        for index in data_dir.glob("topics/*/*/*index"):
            if rng.random() < 0.7:
                index.unlink()
                hurt.steps.append(f"rm {index.parent.name}/{index.name}")
    (data_dir / ".clean-shutdown").unlink(missing_ok=True)
    return hurt


def intact_prefix(hurt: Damage) -> list[BatchInfo]:
    """The batches before the first one the damage touched (a flip of the
    leader epoch alone leaves a batch intact)."""
    kept = []
    for info in hurt.before:
        span = range(info.position, info.position + info.size)
        harmful = [p for p in hurt.touched if p in span and p - info.position not in UNCHECKED]
        if harmful or info.position + info.size > hurt.size:
            break
        kept.append(info)
    return kept

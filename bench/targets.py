"""What is compared with what: each system, how it is started, what its ack promises.

Dovecote is measured through its Kafka listener with confluent-kafka in
every comparison: against Tansu with the same client, and against NATS
JetStream and Redis Streams with their own usual clients, which have the
same log semantics (append, replay from a position, no per-record acks).

Two comparison groups, never mixed in one ratio:

- ``durable``: the producer waits for each system's acknowledgement;
- ``fire-and-forget``: the producer does not wait; a run ends when the
  system holds every record.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from bench.drivers import Mode
from bench.peers import PeerInfo
from bench.peers.dovecote import dovecote
from bench.peers.nats_server import nats
from bench.peers.redis_server import redis
from bench.peers.tansu import tansu

Starter = Callable[[], contextlib.AbstractContextManager[PeerInfo]]


@dataclass(frozen=True)
class Target:
    """One system in one mode, as a report row names it."""

    system: str  # "dovecote", "tansu", "nats", "redis"
    mode: Mode
    driver: str  # "kafka", "nats", "redis": which client library drives it
    start: Starter
    setting: str  # how the system and its client are configured
    promise: str  # what an acknowledgement (or its absence) means here

    @property
    def key(self) -> str:
        return f"{self.system}/{self.mode}"


DOVECOTE = "dovecote"

TARGETS: tuple[Target, ...] = (
    Target(
        DOVECOTE,
        "durable",
        "kafka",
        partial(dovecote, protocol="kafka", flush="ack"),
        "Kafka protocol, `--flush ack`; confluent-kafka acks=all",
        "ack after fdatasync (group commit); readers only see fsynced records",
    ),
    Target(
        "tansu",
        "durable",
        "kafka",
        tansu,
        "memory storage; confluent-kafka acks=all",
        "ack when in memory: nothing is on disk (the only storage the PyPI build has)",
    ),
    Target(
        "nats",
        "durable",
        "nats",
        nats,
        "JetStream file store; nats-py publish_async (acked)",
        "ack when in the file store's write path; NATS 2.9 fsyncs only every 2 minutes",
    ),
    Target(
        "redis",
        "durable",
        "redis",
        partial(redis, "durable"),
        "`appendonly yes`, `appendfsync always`; redis-py pipelined XADD",
        "reply after the AOF write and fsync (one fsync per event-loop turn)",
    ),
    Target(
        DOVECOTE,
        "fire-and-forget",
        "kafka",
        partial(dovecote, protocol="kafka", flush="never"),
        "Kafka protocol, `--flush never`; confluent-kafka acks=0",
        "no answer; records are in the page cache, the OS writes them back",
    ),
    Target(
        "tansu",
        "fire-and-forget",
        "kafka",
        tansu,
        "memory storage; confluent-kafka acks=0",
        "no answer; records in memory only",
    ),
    Target(
        "nats",
        "fire-and-forget",
        "nats",
        nats,
        "JetStream file store; core NATS publish to the stream subject",
        "no answer; stored by the stream, fsync every 2 minutes",
    ),
    Target(
        "redis",
        "fire-and-forget",
        "redis",
        partial(redis, "fire-and-forget"),
        "no AOF, no snapshots; redis-py pipelined XADD",
        "reply when in memory; nothing is on disk",
    ),
)

SYSTEMS: tuple[str, ...] = tuple(dict.fromkeys(t.system for t in TARGETS))


def select(systems: list[str] | None = None, modes: list[str] | None = None) -> list[Target]:
    """Targets of the given systems and modes (all by default), Dovecote first."""
    return [
        t
        for t in TARGETS
        if (not systems or t.system in systems) and (not modes or t.mode in modes)
    ]

"""Peer brokers that Dovecote's benchmarks run side by side with, in the same run.

Every peer is a context manager with one shape::

    with tansu() as peer:            # or rabbitmq(), nats(), redis("durable"), ...
        peer.host, peer.port         # 127.0.0.1 and a free port picked for this run
        peer.version                 # exact server version, for the report
        peer.startup_s               # how long it took to accept connections
        peer.command, peer.extra     # how it was started (command line, config)
    # here the peer and every process it spawned are gone, its data dir removed

Each starter gives the peer its own temporary data directory (``base_dir=``
puts it on a chosen file system, which matters for disk-bound figures),
waits a bounded time for a protocol-level answer (failing with the peer's
log tail), and stops it with SIGTERM, then SIGKILL after ``stop_timeout``.
Peers also get SIGKILL if the harness process dies (PR_SET_PDEATHSIG).

``PEERS`` maps a peer name to its starter; ``python -m bench.peers --check``
starts each in turn and runs a tiny produce/consume round trip through it.

How Dovecote plugs in: a Dovecote starter is one more context manager of the
same shape, ``dovecote(*, port=None, base_dir=None, start_timeout=...,
stop_timeout=..., keep_data=False) -> Iterator[PeerInfo]`` with
``name="dovecote"``. It can wrap ``dovecote.testing.process.BrokerProcess``
(which already runs ``dovecote serve`` on free loopback ports and reports the
bound addresses) and yield one ``PeerInfo`` per protocol listener or put the
other listeners in ``extra``. Registered in ``PEERS`` (and ``checks.CHECKS``
with the protocol's check), workloads then iterate over Dovecote and the
peers with the same code, so both sides of every ratio are measured alike.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

from bench.peers._proc import PeerInfo, PeerStartError
from bench.peers.dovecote import dovecote_peer
from bench.peers.moto_server import moto
from bench.peers.nats_server import nats
from bench.peers.pubsub_emulator import pubsub_emulator
from bench.peers.rabbitmq import rabbitmq
from bench.peers.redis_server import redis
from bench.peers.tansu import tansu

Starter = Callable[..., contextlib.AbstractContextManager[PeerInfo]]

#: Peer name -> starter. Which protocol each one is a peer for:
#: Kafka: tansu; AMQP 0-9-1: rabbitmq; streaming/queues: nats, redis-*; SQS: moto;
#: Pub/Sub: pubsub-emulator. "dovecote" is Dovecote itself (AMQP listener by default),
#: "dovecote-aws" its SQS listener, "dovecote-pubsub" its Pub/Sub listener.
PEERS: dict[str, Starter] = {
    "dovecote": dovecote_peer,
    "dovecote-aws": partial(dovecote_peer, protocol="aws"),
    "dovecote-pubsub": partial(dovecote_peer, protocol="pubsub"),
    "tansu": tansu,
    "rabbitmq": rabbitmq,
    "nats": nats,
    "redis-durable": partial(redis, "durable"),
    "redis-fire-and-forget": partial(redis, "fire-and-forget"),
    "moto": moto,
    "pubsub-emulator": pubsub_emulator,
}


@contextlib.contextmanager
def peer(name: str, **kwargs: Any) -> Iterator[PeerInfo]:
    """Start the peer called ``name`` (a key of ``PEERS``)."""
    try:
        starter = PEERS[name]
    except KeyError:
        raise KeyError(f"unknown peer {name!r}; known: {', '.join(PEERS)}") from None
    with starter(**kwargs) as info:
        yield info


__all__ = [
    "PEERS",
    "PeerInfo",
    "PeerStartError",
    "dovecote_peer",
    "moto",
    "nats",
    "peer",
    "pubsub_emulator",
    "rabbitmq",
    "redis",
    "tansu",
]

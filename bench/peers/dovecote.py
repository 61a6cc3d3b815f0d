"""Dovecote itself, started the way the peers are, so every ratio compares alike.

Runs ``dovecote serve`` (via :class:`dovecote.testing.BrokerProcess`) on free
loopback ports with its own data directory; ``protocol`` picks which
listener's host and port the yielded PeerInfo carries (all are in ``extra``).
"""

from __future__ import annotations

import contextlib
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

from bench.peers._proc import PeerInfo, make_data_dir
from dovecote import __version__
from dovecote.testing import BrokerProcess

NAME = "dovecote"


@contextlib.contextmanager
def dovecote(
    *,
    protocol: str = "kafka",
    flush: str = "ack",
    base_dir: str | Path | None = None,
    start_timeout: float = 60.0,
    stop_timeout: float = 30.0,
    keep_data: bool = False,
    extra_args: tuple[str, ...] = (),
) -> Iterator[PeerInfo]:
    data_dir = make_data_dir(NAME, base_dir)
    started = time.monotonic()
    broker = BrokerProcess(
        data_dir / "data", "--flush", flush, "--log-level", "WARNING", *extra_args
    )
    broker.start(start_timeout)
    try:
        host, port = broker.addresses[protocol].rsplit(":", 1)
        yield PeerInfo(
            name=NAME,
            host=host,
            port=int(port),
            version=__version__,
            startup_s=time.monotonic() - started,
            command=tuple(["dovecote", "serve", "--flush", flush, *extra_args]),
            data_dir=data_dir,
            extra={"flush": flush, **broker.addresses},
        )
    finally:
        broker.stop(stop_timeout)
        if not keep_data:
            shutil.rmtree(data_dir, ignore_errors=True)

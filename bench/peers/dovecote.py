"""Dovecote itself, started the way the peers are, so workloads treat both alike.

Wraps :class:`dovecote.testing.BrokerProcess` (``python -m dovecote serve`` on
free loopback ports with a ready file). The yielded ``PeerInfo`` points at
the listener of ``protocol`` (AMQP by default); every bound address is in
``extra``. The broker runs with uvloop, as ``dovecote serve`` does.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import dovecote as dovecote_package
from bench.peers._proc import HOST, PeerInfo, PeerStartError, make_data_dir
from dovecote.settings import LISTENERS
from dovecote.testing import BrokerProcess

NAME = "dovecote"


@contextlib.contextmanager
def dovecote_peer(
    *,
    port: int | None = None,
    base_dir: str | Path | None = None,
    start_timeout: float = 60.0,
    stop_timeout: float = 30.0,
    keep_data: bool = False,
    protocol: str = "amqp",
    only: bool = True,
    extra_args: tuple[str, ...] = (),
) -> Iterator[PeerInfo]:
    """Run ``dovecote serve`` on 127.0.0.1; yield the ``protocol`` listener's info.

    ``only`` starts just that listener (the others are ``off``);
    ``extra_args`` go to ``dovecote serve`` (e.g. ``("--flush", "interval")``).
    """
    data_dir = make_data_dir(NAME, base_dir)
    listeners = {name: ("off" if only else f"{HOST}:0") for name in LISTENERS}
    listeners[protocol] = f"{HOST}:{port or 0}"
    proc = BrokerProcess(data_dir / "data", *extra_args, listeners=listeners)
    started = time.monotonic()
    try:
        proc.start(start_timeout)
    except (RuntimeError, TimeoutError) as exc:
        raise PeerStartError(f"dovecote did not start: {exc}") from None
    failed = False
    try:
        host, _, bound = proc.addresses[protocol].rpartition(":")
        assert proc.proc is not None
        yield PeerInfo(
            name=NAME,
            host=host,
            port=int(bound),
            version=f"Dovecote {dovecote_package.__version__} (Python {sys.version.split()[0]})",
            startup_s=time.monotonic() - started,
            command=(sys.executable, "-m", "dovecote", "serve", *extra_args),
            data_dir=data_dir,
            extra={
                "addresses": json.dumps(proc.addresses),
                "url": f"amqp://guest:guest@{proc.addresses.get('amqp', '')}/",
                "log": str(proc.log_path),
                "pythonpath": os.environ.get("PYTHONPATH", ""),
            },
            pgids=(proc.proc.pid,),
        )
    except PeerStartError:
        failed = True
        raise
    finally:
        proc.stop(stop_timeout)
        if not keep_data and not failed:
            shutil.rmtree(data_dir, ignore_errors=True)


def dovecote(
    *, protocol: str = "kafka", flush: str = "ack", **kwargs
) -> contextlib.AbstractContextManager[PeerInfo]:
    """Shorthand: Dovecote with one listener and a given flush policy."""
    return dovecote_peer(protocol=protocol, extra_args=("--flush", flush), **kwargs)

"""NATS server with JetStream from Debian's ``nats-server``: a streaming peer.

Durability note (matters for any "durable" comparison): JetStream file
storage acknowledges a publish once the message is in the server's write
path, and fsyncs on a timer (``sync_interval``, 2 minutes by default). The
Debian build is 2.9.x, which has no ``sync_interval`` setting at all (it came
with 2.10; 2.9.10 rejects it as an unknown field), so an ack here does NOT
mean the message reached the disk. Report NATS next to Dovecote's no-fsync
or group-commit figures accordingly.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import time
from collections.abc import Iterator
from pathlib import Path

from bench.common import free_port
from bench.peers._proc import HOST, PeerInfo, PeerProcess, make_data_dir, recv_until, running

NAME = "nats"
BINARY = "nats-server"


def nats_info(host: str, port: int, timeout: float = 1.0) -> dict[str, object]:
    """The INFO document a NATS server sends first on every connection."""
    with socket.create_connection((host, port), timeout=timeout) as s:
        line = recv_until(s, lambda d: b"\r\n" in d, limit=64 << 10).split(b"\r\n", 1)[0]
    if not line.startswith(b"INFO "):
        raise ConnectionError(f"unexpected greeting {line[:80]!r}")
    return json.loads(line[5:])


def _config(port: int, store_dir: Path) -> str:
    return "\n".join(
        [
            f"listen: {HOST}:{port}",
            f'server_name: "dovecote-bench-{port}"',
            "jetstream {",
            f'  store_dir: "{store_dir}"',
            "}",
            "",
        ]
    )


@contextlib.contextmanager
def nats(
    *,
    port: int | None = None,
    base_dir: str | Path | None = None,
    start_timeout: float = 20.0,
    stop_timeout: float = 10.0,
    keep_data: bool = False,
) -> Iterator[PeerInfo]:
    """Run nats-server with JetStream (file storage in its data dir) on 127.0.0.1."""
    binary = shutil.which(BINARY)
    if binary is None:
        raise FileNotFoundError("nats-server missing: run scripts/install-bench-deps.sh")
    port = port or free_port(HOST)
    data_dir = make_data_dir(NAME, base_dir)
    config = data_dir / "nats.conf"
    config.write_text(_config(port, data_dir / "jetstream"))
    argv = [binary, "-c", str(config)]
    process = PeerProcess(NAME, argv, data_dir / "nats.log", cwd=data_dir)

    def ready() -> dict[str, object] | None:
        info = nats_info(HOST, port)
        # INFO can come before JetStream has finished its own start-up.
        return info if info.get("jetstream") else None

    with running(process, data_dir, keep_data, stop_timeout):
        info = process.wait_ready(ready, start_timeout)
        yield PeerInfo(
            name=NAME,
            host=HOST,
            port=port,
            version=f"nats-server {info.get('version', '?')}",
            startup_s=time.monotonic() - process.started_at,
            command=tuple(argv),
            data_dir=data_dir,
            pgids=(process.pid,),
            extra={
                "url": f"nats://{HOST}:{port}",
                "config": config.read_text(),
                "durability": "JetStream file store, fsync every 2 min (no per-message fsync in 2.9)",
            },
        )

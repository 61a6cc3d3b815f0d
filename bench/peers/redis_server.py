"""Redis from Debian's ``redis-server``: the Redis Streams peer, in two variants.

Persistence is set explicitly rather than left to defaults, because it
decides what a Redis figure may be compared with:

- ``durable``: ``appendonly yes`` + ``appendfsync always``. Redis writes and
  fsyncs the AOF before replying to each write (batched per event-loop
  iteration), so an XADD reply means "on disk". Compare with Dovecote's
  fsync-before-ack figures.
- ``fire-and-forget``: ``appendonly no`` and ``save ""`` (no AOF, no RDB
  snapshots). Data lives only in memory; compare with no-fsync figures.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

from bench.common import free_port
from bench.peers._proc import HOST, PeerInfo, PeerProcess, make_data_dir, recv_until, running

BINARY = "redis-server"
Variant = Literal["durable", "fire-and-forget"]

PERSISTENCE: dict[str, list[str]] = {
    "durable": ["appendonly yes", "appendfsync always", 'save ""'],
    "fire-and-forget": ["appendonly no", 'save ""'],
}


def redis_command(host: str, port: int, *args: str, timeout: float = 1.0) -> bytes:
    """Send one command in RESP and return the raw first reply (simple or bulk)."""
    payload = f"*{len(args)}\r\n".encode()
    for a in args:
        payload += f"${len(a.encode())}\r\n{a}\r\n".encode()

    def complete(d: bytes) -> bool:
        if not d.endswith(b"\r\n"):
            return False
        if d[:1] != b"$":
            return True
        head, _, rest = d.partition(b"\r\n")
        return int(head[1:]) < 0 or len(rest) >= int(head[1:]) + 2

    with socket.create_connection((host, port), timeout=timeout) as s:
        s.sendall(payload)
        return recv_until(s, complete)


def redis_info(host: str, port: int) -> dict[str, str] | None:
    """INFO server as a dict once Redis serves commands; None while loading."""
    if redis_command(host, port, "PING") != b"+PONG\r\n":
        return None
    text = redis_command(host, port, "INFO", "server").decode().partition("\r\n")[2]
    return dict(line.split(":", 1) for line in text.splitlines() if ":" in line)


def _config(port: int, data_dir: Path, variant: Variant) -> str:
    return "\n".join(
        [
            f"bind {HOST}",
            f"port {port}",
            "protected-mode yes",
            "daemonize no",
            'logfile ""',
            f"dir {data_dir}",
            *PERSISTENCE[variant],
            "",
        ]
    )


@contextlib.contextmanager
def redis(
    variant: Variant = "durable",
    *,
    port: int | None = None,
    base_dir: str | Path | None = None,
    start_timeout: float = 20.0,
    stop_timeout: float = 10.0,
    keep_data: bool = False,
) -> Iterator[PeerInfo]:
    """Run redis-server with the chosen persistence variant on 127.0.0.1."""
    if variant not in PERSISTENCE:
        raise ValueError(f"unknown Redis variant {variant!r}; choose from {list(PERSISTENCE)}")
    binary = shutil.which(BINARY)
    if binary is None:
        raise FileNotFoundError("redis-server missing: run scripts/install-bench-deps.sh")
    name = f"redis-{variant}"
    port = port or free_port(HOST)
    data_dir = make_data_dir(name, base_dir)
    config = data_dir / "redis.conf"
    config.write_text(_config(port, data_dir, variant))
    argv = [binary, str(config)]
    process = PeerProcess(name, argv, data_dir / "redis.log", cwd=data_dir)
    with running(process, data_dir, keep_data, stop_timeout):
        info = process.wait_ready(lambda: redis_info(HOST, port), start_timeout)
        yield PeerInfo(
            name=name,
            host=HOST,
            port=port,
            version=f"Redis {info.get('redis_version', '?')}",
            startup_s=time.monotonic() - process.started_at,
            command=tuple(argv),
            data_dir=data_dir,
            pgids=(process.pid,),
            extra={
                "url": f"redis://{HOST}:{port}/0",
                "persistence": "; ".join(PERSISTENCE[variant]),
            },
        )

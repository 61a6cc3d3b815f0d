"""Google's Pub/Sub emulator (Debian ``google-cloud-cli-pubsub-emulator``): the Pub/Sub peer.

It is a Java program (a Netty gRPC server in one JVM) that keeps every
topic, subscription and message in memory: a publish's answer promises
nothing beyond that, and nothing is written to disk. The package's own
launcher is run directly (``gcloud beta emulators pubsub start`` only wraps
it and adds a Python process), bound to 127.0.0.1 on a free port. It has no
data directory of its own; its working directory and log go in the peer's
temporary one.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from bench.common import free_port
from bench.peers._proc import HOST, PeerInfo, PeerProcess, make_data_dir, running

NAME = "pubsub-emulator"
PACKAGE = "google-cloud-cli-pubsub-emulator"
HOME = Path("/usr/lib/google-cloud-sdk/platform/pubsub-emulator")
LAUNCHER = HOME / "bin" / "cloud-pubsub-emulator"
PROBE_PROJECT = "projects/bench-probe"


def missing() -> str:
    """Why the emulator cannot run here ('' when it can)."""
    if not LAUNCHER.exists():
        return f"{LAUNCHER} missing (Debian package {PACKAGE}): run scripts/install-bench-deps.sh"
    if shutil.which("java") is None:
        return (
            "java missing (Debian package default-jre-headless): run scripts/install-bench-deps.sh"
        )
    return ""


def emulator_version() -> str:
    """``cloud-pubsub-emulator 0.8.20 (google-cloud-cli 528.0.0-0)`` as installed."""
    jars = sorted((HOME / "lib").glob("cloud-pubsub-emulator-*.jar"))
    jar = jars[-1].name.removeprefix("cloud-pubsub-emulator-").split("-")[0] if jars else "?"
    try:
        package = subprocess.run(
            ["dpkg-query", "-W", "-f=${Version}", PACKAGE],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        package = "?"
    return f"cloud-pubsub-emulator {jar} ({PACKAGE} {package})"


def java_version() -> str:
    """The first line of ``java -version`` (the JVM the emulator runs on)."""
    try:
        out = subprocess.run(["java", "-version"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"? ({exc})"
    return (out.stderr or out.stdout).strip().splitlines()[0] if (out.stderr or out.stdout) else "?"


def list_topics_answers(host: str, port: int, timeout: float = 2.0) -> int | None:
    """A ListTopics call over gRPC: an answer (any page) means the Publisher service is up."""
    import grpc
    from google.pubsub_v1 import types

    request_cls = types.ListTopicsRequest.pb()
    response_cls = types.ListTopicsResponse.pb()
    with grpc.insecure_channel(f"{host}:{port}") as channel:
        call = channel.unary_unary(
            "/google.pubsub.v1.Publisher/ListTopics",
            request_serializer=request_cls.SerializeToString,
            response_deserializer=response_cls.FromString,
        )
        reply = call(request_cls(project=PROBE_PROJECT), timeout=timeout)
    return len(reply.topics)


@contextlib.contextmanager
def pubsub_emulator(
    *,
    port: int | None = None,
    base_dir: str | Path | None = None,
    start_timeout: float = 60.0,
    stop_timeout: float = 10.0,
    keep_data: bool = False,
) -> Iterator[PeerInfo]:
    """Run ``cloud-pubsub-emulator --host=127.0.0.1 --port=PORT``; yield its gRPC address.

    ``PUBSUB_EMULATOR_HOST`` set to ``info.address`` points a client at it.
    """
    if why := missing():
        raise FileNotFoundError(why)
    port = port or free_port(HOST)
    data_dir = make_data_dir(NAME, base_dir)
    # The launcher execs java, so the process started here is the JVM itself.
    argv = [str(LAUNCHER), f"--host={HOST}", f"--port={port}"]
    process = PeerProcess(NAME, argv, data_dir / "emulator.log", cwd=data_dir)
    with running(process, data_dir, keep_data, stop_timeout):
        process.wait_ready(lambda: list_topics_answers(HOST, port), start_timeout, 0.1)
        startup_s = time.monotonic() - process.started_at
        yield PeerInfo(
            name=NAME,
            host=HOST,
            port=port,
            version=emulator_version(),
            startup_s=startup_s,
            command=tuple(argv),
            data_dir=data_dir,
            pgids=(process.pid,),
            extra={
                "java": java_version(),
                "log": str(process.log_path),
                "durability": "in memory only; nothing is written to disk",
                "env": f"PUBSUB_EMULATOR_HOST={HOST}:{port}",
            },
        )

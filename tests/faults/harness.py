"""What the fault scenarios share: a broker process whose deaths are told
apart (kills we cause vs. exits we did not), its memory, the scale and seed
of a run, and reading a topic back through a real Kafka client.

``DOVECOTE_FAULT_SCALE`` multiplies every count and time budget (``make soak``
raises it); ``DOVECOTE_FAULT_SEED`` replays a run's random choices.
"""

from __future__ import annotations

import os
import random
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import confluent_kafka
from confluent_kafka.admin import AdminClient, NewTopic

from dovecote.testing import BrokerProcess

REPO = Path(__file__).resolve().parents[2]
SCALE = float(os.environ.get("DOVECOTE_FAULT_SCALE", "1"))


def scaled(n: float) -> int:
    """``n`` times the run's scale, at least 1."""
    return max(1, round(n * SCALE))


def seeded() -> tuple[int, random.Random]:
    """The run's seed (``DOVECOTE_FAULT_SEED`` or a fresh one) and a generator."""
    seed = int(os.environ.get("DOVECOTE_FAULT_SEED") or random.SystemRandom().getrandbits(32))
    return seed, random.Random(seed)


def child_env(**settings: str) -> dict[str, str]:
    """The environment of a broker child: this tree first on the import path
    (not whatever copy is installed in the venv), plus ``DOVECOTE_*`` settings."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    for name, value in settings.items():
        env[f"DOVECOTE_{name.upper()}"] = str(value)
    return env


class Broker(BrokerProcess):
    """A broker child process that counts its deaths: :meth:`kill` is one we
    cause; any other exit seen by :meth:`check` is a crash. Ports stay the
    same across restarts so clients reconnect to the same address."""

    def __init__(
        self,
        data_dir: Path,
        *args: str,
        settings: dict[str, str] | None = None,
        amqp: bool = False,
    ) -> None:
        super().__init__(
            data_dir,
            *args,
            listeners={} if amqp else {"amqp": "off"},
            env=child_env(**(settings or {})),
        )
        wanted = [name for name, address in self.listeners.items() if address == "127.0.0.1:0"]
        for name, port in zip(wanted, stable_ports(len(wanted)), strict=True):
            self.listeners[name] = f"127.0.0.1:{port}"
        self.kills = 0
        self.crashes = 0
        self.crash_logs: list[str] = []

    def check(self) -> bool:
        """True if running; a death we did not cause is counted as a crash."""
        if self.proc is None:
            return False
        code = self.proc.poll()
        if code is None:
            return True
        if getattr(self.proc, "_counted", False):
            return False
        self.proc._counted = True  # type: ignore[attr-defined]
        self.crashes += 1
        self.crash_logs.append(f"exit {code}:\n{self.log_tail(200)}")
        return False

    def settle(self, grace: float = 1.0) -> bool:
        """:meth:`check` after giving a dying process ``grace`` seconds to go
        (an abort takes a moment to write its backtrace)."""
        if self.proc is not None:
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                pass
        return self.check()

    def kill(self) -> None:
        if self.proc is not None and self.check():
            self.kills += 1
            super().kill()
            self.proc._counted = True  # type: ignore[attr-defined]

    def stop(self, timeout: float = 30) -> int:
        self.check()
        if self.proc is not None:
            self.proc._counted = True  # type: ignore[attr-defined]
        return super().stop(timeout)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def amqp_address(self) -> tuple[str, int]:
        host, port = self.addresses["amqp"].rsplit(":", 1)
        return host, int(port)

    @property
    def http(self) -> str:
        return f"http://{self.addresses['http']}"

    def rss(self) -> int:
        """Resident memory of the broker process in bytes (0 once it is gone)."""
        return rss_bytes(self.pid)


_HANDED_OUT: set[int] = set()  # never the same port to two brokers of one run


def stable_ports(count: int) -> list[int]:
    """``count`` distinct free loopback ports below the kernel's ephemeral
    range. The broker keeps its ports across restarts; one from the
    ephemeral range can be taken, while the broker is down, by a client's
    outgoing connection (even by a client connecting to it: TCP self-connect),
    and the restart fails to bind."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range", encoding="ascii") as f:
            low = int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    picker = random.Random()
    probes: list[socket.socket] = []
    try:
        for _ in range(100 * max(count, 1)):
            if len(probes) == count:
                break
            port = picker.randrange(10_000, max(10_001, low))
            if port in _HANDED_OUT:
                continue
            probe = socket.socket()
            try:
                probe.bind(("127.0.0.1", port))  # held until all are found: distinct
            except OSError:
                probe.close()
                continue
            probes.append(probe)
        else:
            raise RuntimeError("no free ports below the ephemeral range")
        ports = [probe.getsockname()[1] for probe in probes]
    finally:
        for probe in probes:
            probe.close()
    _HANDED_OUT.update(ports)
    return ports


def rss_bytes(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except (FileNotFoundError, ProcessLookupError):
        return 0
    return 0


def create_topic(bootstrap: str, name: str, partitions: int, **configs: str) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    topic = NewTopic(name, partitions, 1, config=dict(configs))
    admin.create_topics([topic])[name].result(30)


@dataclass(frozen=True, slots=True)
class Consumed:
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


def read_topic(bootstrap: str, topic: str, partitions: int, timeout: float = 60) -> list[Consumed]:
    """Everything below each partition's high watermark, read by confluent-kafka
    from offset 0 (no group), in partition then offset order."""
    consumer = confluent_kafka.Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "fault-reader",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "fetch.max.bytes": 8 << 20,
        }
    )
    try:
        ends = {}
        for p in range(partitions):
            _low, high = consumer.get_watermark_offsets(
                confluent_kafka.TopicPartition(topic, p), timeout=30
            )
            ends[p] = high
        consumer.assign([confluent_kafka.TopicPartition(topic, p, 0) for p in ends if ends[p]])
        out: list[Consumed] = []
        next_offset = dict.fromkeys(ends, 0)
        deadline = time.monotonic() + timeout
        while any(next_offset[p] < ends[p] for p in ends):
            if time.monotonic() > deadline:
                raise TimeoutError(f"read {next_offset} of {ends} in {timeout}s")
            for msg in consumer.consume(10_000, 0.5):
                if msg.error():
                    raise confluent_kafka.KafkaException(msg.error())
                p = msg.partition()
                if msg.offset() < ends[p]:
                    out.append(Consumed(p, msg.offset(), msg.key(), msg.value()))
                    next_offset[p] = msg.offset() + 1
    finally:
        consumer.close()
    out.sort(key=lambda c: (c.partition, c.offset))
    return out


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"gave up after {timeout}s waiting for {what}")
        time.sleep(0.02)

"""Everything ``dovecote serve`` can be told: the core's settings plus the
listeners' own (addresses, and each protocol's limits and users).

The core is handed this object as its :class:`~dovecote.core.config.BrokerConfig`
and reads only that part; protocol settings live here so the core names no
protocol.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from dovecote.core.config import BrokerConfig
from dovecote.core.errors import InvalidConfig

# Every listener and its default port (bound to 127.0.0.1 unless told otherwise).
LISTENERS = {
    "kafka": 9092,
    "amqp": 5672,
    "http": 8080,
    "aws": 9324,
    "pubsub": 8085,
    "registry": 8081,
}


@dataclass
class ServerConfig(BrokerConfig):
    """The core's settings plus every listener's. ``DOVECOTE_<LISTENER>``
    (e.g. ``DOVECOTE_KAFKA=0.0.0.0:9092``) or ``[listeners]`` in the TOML
    file sets an address; ``off`` turns a listener off."""

    listeners: dict[str, str | None] = field(
        default_factory=lambda: {name: f"127.0.0.1:{port}" for name, port in LISTENERS.items()}
    )
    advertised_host: str | None = None  # host told to Kafka clients; default: the listener's
    # AMQP 0-9-1 listener (defaults as RabbitMQ's)
    amqp_users: str = "guest:guest"  # comma-separated user:password pairs
    amqp_loopback_users: str = "guest"  # these may only log in from a loopback address
    amqp_heartbeat: int = 60  # seconds proposed in connection.tune; 0 = off
    amqp_frame_max: int = 131072
    amqp_channel_max: int = 2047
    amqp_max_message_bytes: int = 128 * 1024 * 1024
    amqp_handshake_timeout_ms: int = 10_000
    # SQS/SNS listener
    aws_account_id: str = "000000000000"  # in queue URLs, ARNs and GetCallerIdentity
    aws_region: str = "us-east-1"  # when a request is not SigV4-signed (else its scope's)
    # "AKID:SECRET,...": SigV4 signatures are verified against these; empty:
    # any credentials are accepted (as LocalStack does)
    aws_credentials: str = ""
    aws_max_request_bytes: int = 2 * 1024 * 1024  # larger requests get 413

    def _from_environment(self, env: Mapping[str, str]) -> dict[str, Any]:
        found = {}
        for name in LISTENERS:
            value = env.get(f"DOVECOTE_{name.upper()}")
            if value is not None:
                found[name] = value
        return {"listeners": found} if found else {}

    def _apply_other(self, key: str, value: Any, source: str) -> bool:
        if key != "listeners":
            return False
        for name, address in dict(value).items():
            if name not in LISTENERS:
                raise InvalidConfig(f"{source}: unknown listener {name!r}")
            self.listeners[name] = parse_listener(str(address), LISTENERS[name])
        return True


def parse_listener(value: str, default_port: int) -> str | None:
    """``HOST:PORT``, ``:PORT``, ``PORT`` or ``off`` -> ``HOST:PORT`` or None."""
    value = value.strip()
    if value.lower() in ("off", "none", "false", "no", ""):
        return None
    host, sep, port = value.rpartition(":")
    if not sep:
        host, port = ("127.0.0.1", value) if value.isdigit() else (value, str(default_port))
    host = host.strip("[]") or "127.0.0.1"
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise InvalidConfig(f"invalid listener address {value!r}")
    return f"{host}:{int(port)}"


def split_address(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host, int(port)

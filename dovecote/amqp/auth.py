"""SASL for connection.start-ok: PLAIN and AMQPLAIN against the configured users.

Users come from the ``amqp_users`` setting (``user:password,...``). As in
RabbitMQ, the users named in ``amqp_loopback_users`` (``guest`` by default)
may only log in from a loopback address, so a broker bound to a public
interface does not accept the well-known default credentials from afar.
"""

from __future__ import annotations

import hmac
import ipaddress
import struct
from dataclasses import dataclass

from dovecote.amqp.codec import AMQPError, decode_table

MECHANISMS = ("PLAIN", "AMQPLAIN")


class AuthError(Exception):
    """Login refused; the text is for the broker log, never the client."""


def _raw(value: str | bytes) -> bytes:
    # The codec hands a longstr over as str when it happens to be UTF-8.
    return value.encode("utf-8") if isinstance(value, str) else bytes(value)


def parse_response(mechanism: str, response: str | bytes) -> tuple[str, str]:
    """The (user, password) a start-ok response carries."""
    raw = _raw(response)
    if mechanism == "PLAIN":
        # [authzid] NUL authcid NUL passwd (RFC 4616)
        parts = raw.split(b"\x00")
        if len(parts) != 3:
            raise AuthError("malformed PLAIN response")
        return parts[1].decode("utf-8", "replace"), parts[2].decode("utf-8", "replace")
    if mechanism == "AMQPLAIN":
        # A field table without its length prefix, holding LOGIN and PASSWORD.
        try:
            table, _ = decode_table(struct.pack(">I", len(raw)) + raw)
        except AMQPError:
            raise AuthError("malformed AMQPLAIN response") from None
        login, password = table.get("LOGIN"), table.get("PASSWORD")
        if login is None or password is None:
            raise AuthError("AMQPLAIN response lacks LOGIN or PASSWORD")
        return _text(login), _text(password)
    raise AuthError(f"unsupported mechanism {mechanism!r}")


def _text(value: object) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes | bytearray) else str(value)


def _loopback(host: str | None) -> bool:
    if not host:
        return True  # a Unix socket or a test transport
    try:
        address = ipaddress.ip_address(host.split("%")[0])
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    return (mapped or address).is_loopback


@dataclass(frozen=True)
class Users:
    passwords: dict[str, str]
    loopback_only: frozenset[str]

    @classmethod
    def from_config(cls, users: str, loopback_users: str) -> Users:
        passwords = {}
        for item in users.split(","):
            item = item.strip()
            if not item:
                continue
            name, sep, password = item.partition(":")
            if not sep:
                raise ValueError(f"amqp_users entry {item!r} is not user:password")
            passwords[name] = password
        loopback = frozenset(u.strip() for u in loopback_users.split(",") if u.strip())
        return cls(passwords, loopback)

    def authenticate(self, mechanism: str, response: str | bytes, peer_host: str | None) -> str:
        """The authenticated user name, or :class:`AuthError`."""
        user, password = parse_response(mechanism, response)
        expected = self.passwords.get(user)
        if expected is None or not hmac.compare_digest(
            expected.encode("utf-8"), password.encode("utf-8")
        ):
            raise AuthError(f"invalid credentials for user '{user}'")
        if user in self.loopback_only and not _loopback(peer_host):
            raise AuthError(f"user '{user}' can only connect via localhost")
        return user

"""Delivery tokens: the identity of one delivery attempt.

A lease on a record is named by (partition, offset, attempt). The attempt is
unique to that one delivery, so a consumer whose lease expired cannot settle
the lease the record got when it was delivered again: its token is stale.
The compact text form is what an adapter hands to its clients (a receipt
handle, an ack id) and parses back.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from dovecote.core.errors import BrokerError

MAX_TOKEN_CHARS = 64
_TOKEN = re.compile(r"([0-9a-f]{1,8})\.([0-9a-f]{1,16})\.([0-9a-f]{1,16})")


class InvalidToken(BrokerError, ValueError):
    """Text that is not a delivery token (malformed, not merely stale)."""


class DeliveryToken(NamedTuple):
    partition: int
    offset: int
    attempt: int

    def __str__(self) -> str:
        return f"{self.partition:x}.{self.offset:x}.{self.attempt:x}"

    @classmethod
    def parse(cls, text: str | bytes) -> DeliveryToken:
        """The token a client sent back; :class:`InvalidToken` if it is not one."""
        if isinstance(text, bytes):
            try:
                text = text.decode("ascii")
            except UnicodeDecodeError:
                raise InvalidToken("delivery token is not ASCII") from None
        if not isinstance(text, str) or len(text) > MAX_TOKEN_CHARS:
            raise InvalidToken("not a delivery token")
        match = _TOKEN.fullmatch(text)
        if match is None:
            raise InvalidToken(f"not a delivery token: {text[:MAX_TOKEN_CHARS]!r}")
        return cls(int(match[1], 16), int(match[2], 16), int(match[3], 16))


class Settled(int):
    """How many leases an ack/nack/extend changed, and which tokens were stale.

    An ``int`` (the count), so callers that only count keep working; ``stale``
    lists the items that named no current lease: already settled, or leased
    again to someone else after their lease expired.
    """

    stale: list

    def __new__(cls, done: int, stale: list | None = None) -> Settled:
        value = super().__new__(cls, done)
        value.stale = stale if stale is not None else []
        return value

    @property
    def done(self) -> int:
        return int(self)

    def __repr__(self) -> str:
        return f"Settled(done={int(self)}, stale={len(self.stale)})"

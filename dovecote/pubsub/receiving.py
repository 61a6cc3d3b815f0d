"""Pull, Acknowledge and ModifyAckDeadline: leases by ack id.

Ack ids are the core's delivery tokens (``partition.offset.attempt``); a
stale one (settled, or its lease expired and given to someone else) changes
nothing, so acks are idempotent and valid across streams while the lease
lives. With exactly-once delivery a stale or malformed id fails instead
(``exactly_once.py``). A modack of 0 is a nack: redelivered at once, or
after the retry policy's backoff (``backoff.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from dovecote.core.tokens import DeliveryToken, InvalidToken, Settled
from dovecote.pubsub.exactly_once import ack_failures, parse_each
from dovecote.pubsub.messages import received_message
from dovecote.pubsub.methods import SUBSCRIBER_METHODS, Empty
from dovecote.pubsub.registry import Subscriptions
from dovecote.pubsub.rpc import PubsubError, invalid

M = SUBSCRIBER_METHODS
MAX_ACK_IDS = 2500  # per Acknowledge / ModifyAckDeadline, as the service allows
MAX_PULL = 1000
MAX_ACK_DEADLINE_S = 600
# Google holds a pull open until messages come (or ~90 s); clients retry an
# empty answer, so a shorter hold costs nothing.
PULL_HOLD_S = 5.0
# When a StreamingPull ends, its leases live on this long from then (Google
# keeps them to their deadline; a shorter one brings unacked messages back
# sooner to the next receiver): an ack sent through a unary
# Acknowledge just after the stream closed still counts (ack ids are valid
# across streams), and what nobody acks goes to the next receiver within
# seconds.
STREAM_CLOSE_LEASE_S = 3.0


def parse_ack_ids(ack_ids: Sequence[str]) -> list[DeliveryToken]:
    if len(ack_ids) > MAX_ACK_IDS:
        raise invalid(f"Too many ack ids: at most {MAX_ACK_IDS} per request.")
    tokens = []
    for ack_id in ack_ids:
        try:
            tokens.append(DeliveryToken.parse(ack_id))
        except InvalidToken:
            raise invalid(
                f"You have passed an invalid ack ID to the service (ack_id={ack_id})."
            ) from None
    return tokens


class Receiving:
    def __init__(self, subscriptions: Subscriptions) -> None:
        self.subscriptions = subscriptions

    def handlers(self) -> dict[str, Any]:
        return {
            "Pull": self.pull,
            "Acknowledge": self.acknowledge,
            "ModifyAckDeadline": self.modify_ack_deadline,
        }

    async def pull(self, request: Any, context: Any) -> Any:
        entry = self.subscriptions.existing(request.subscription)
        if request.max_messages <= 0:
            raise invalid("max_messages must be positive.")
        sub = self.subscriptions.core_subscription(entry)
        limit = min(request.max_messages, MAX_PULL)
        # An ordering key's consecutive messages come in one answer, as from
        # Google's service and its emulator (the client keeps them in order);
        # the key then waits until all of them are acked or nacked.
        deliveries = sub.pull(limit, owner=None, group_batches=True)
        if not deliveries and not request.return_immediately and await sub.wait(PULL_HOLD_S):
            deliveries = sub.pull(limit, owner=None, group_batches=True)
        response = M["Pull"].response()
        attempts = entry.pb.HasField("dead_letter_policy")
        response.received_messages.extend(received_message(d, attempts) for d in deliveries)
        return response

    async def acknowledge(self, request: Any, context: Any) -> Any:
        entry = self.subscriptions.existing(request.subscription)
        if not request.ack_ids:
            raise invalid("No ack ids specified.")
        sub = self.subscriptions.core_subscription(entry)
        if entry.pb.enable_exactly_once_delivery:
            error = settle_exactly_once(request.ack_ids, sub.ack)
            await sub.durable()  # an ack that succeeded is never undone by a crash
            if error is not None:
                raise error
        else:
            sub.ack(parse_ack_ids(request.ack_ids))
        return Empty()

    async def modify_ack_deadline(self, request: Any, context: Any) -> Any:
        entry = self.subscriptions.existing(request.subscription)
        seconds = request.ack_deadline_seconds
        check_ack_deadline(seconds)
        sub = self.subscriptions.core_subscription(entry)
        if entry.pb.enable_exactly_once_delivery:
            error = settle_exactly_once(
                request.ack_ids, lambda t: modify_deadlines(sub, t, seconds)
            )
            if error is not None:
                raise error
        else:
            modify_deadlines(sub, parse_ack_ids(request.ack_ids), seconds)
        return Empty()


def check_ack_deadline(seconds: int) -> None:
    """A modack's deadline: 0 (a nack) to 600 seconds."""
    if not 0 <= seconds <= MAX_ACK_DEADLINE_S:
        raise invalid(
            f"Invalid ack deadline given (ack_deadline={seconds}). "
            "The ack deadline must be between 0 and 600 seconds."
        )


def modify_deadlines(sub: Any, tokens: list[DeliveryToken], seconds: int) -> Settled:
    """A modack: 0 is a nack (redelivered after the retry policy's backoff,
    at once without one), else a new deadline."""
    if seconds == 0:
        return sub.nack(tokens)
    return sub.extend(tokens, seconds * 1000)


def settle_exactly_once(
    ack_ids: Sequence[str], settle: Callable[[list[DeliveryToken]], Settled]
) -> PubsubError | None:
    """Settle the well-formed ids; the exactly-once error naming every id that
    was malformed or stale (the others succeeded), or None."""
    if len(ack_ids) > MAX_ACK_IDS:
        raise invalid(f"Too many ack ids: at most {MAX_ACK_IDS} per request.")
    tokens, failed = parse_each(ack_ids)
    if tokens:
        failed += [tokens[t] for t in settle(list(tokens)).stale]
    return ack_failures(failed)


def end_stream_leases(sub: Any, owner: object) -> None:
    """A stream ended: its leases stay valid for ``STREAM_CLOSE_LEASE_S``, then
    expire (redelivered as any expired lease is, after the retry backoff if
    the subscription has one)."""
    tokens = sub.leases_of(owner)
    if tokens:
        sub.extend(tokens, int(STREAM_CLOSE_LEASE_S * 1000))

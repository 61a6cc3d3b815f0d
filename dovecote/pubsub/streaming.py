"""StreamingPull as the Python client drives it.

The first request names the subscription and carries the stream's ack
deadline and flow control (``max_outstanding_messages``/``_bytes``); later
ones are heartbeats (google-cloud-pubsub 2.x sends acks and modacks as unary
calls, but any on the stream are served too).

Delivery is the core's push delivery: every open stream of a subscription is
a :class:`~dovecote.core.delivery.PushConsumer` of one
:class:`~dovecote.core.delivery.ConsumerSet` (competing consumers; the
dispatcher sleeps while idle), its credit the stream's flow control. Acks
reach the core from any connection, so a stream learns that its leases ended
through :meth:`Subscription.watch_owner` and gets its credit back from there.
When the stream ends, what it held stays leased for a few seconds more (an
ack id is valid across streams), then comes back for redelivery.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Callable
from typing import Any

from dovecote.core.delivery import ConsumerSet, PushConsumer
from dovecote.core.subscription_state import Delivery, Lease
from dovecote.pubsub.messages import received_message, set_subscription_properties
from dovecote.pubsub.methods import SUBSCRIBER_METHODS
from dovecote.pubsub.receiving import (
    MAX_ACK_DEADLINE_S,
    check_ack_deadline,
    end_stream_leases,
    modify_deadlines,
    parse_ack_ids,
)
from dovecote.pubsub.registry import Subscriptions
from dovecote.pubsub.rpc import PubsubError, invalid, not_found

M = SUBSCRIBER_METHODS
MIN_STREAM_DEADLINE_S = 10
# Bursts waiting for the response writer: more means the client is not keeping up.
MAX_PENDING_BURSTS = 4
# Message bytes per response. Clients pointed at an emulator (PUBSUB_EMULATOR_HOST)
# use a plain insecure channel, which takes responses of at most 4 MiB; a
# larger message goes alone (such a client cannot take it from Google's
# emulator either; one with an unlimited channel can).
MAX_RESPONSE_BYTES = 3 * 1024 * 1024
_SERVER_ENDED = object()  # the dispatcher stopped: the subscription went away
_CLIENT_CLOSED = object()


class StreamOwner:
    """The lease owner of one stream: its lease length and how it pulls."""

    __slots__ = ("lease_ms",)

    def __init__(self, lease_ms: int) -> None:
        self.lease_ms = lease_ms


class StreamSource:
    """A core subscription as a dispatcher's source, leasing for each stream's
    own deadline (the core's default lease is the subscription's)."""

    def __init__(self, sub: Any) -> None:
        self.sub = sub

    @property
    def closed(self) -> bool:
        return bool(self.sub.closed)

    def pull(self, max_records: int, owner: object) -> list[Delivery]:
        assert isinstance(owner, StreamOwner)
        # One message per ordering key in flight (no group batches): a nacked
        # message must come back before the key's later ones are delivered,
        # and a client acks what it already holds of a key whatever it nacked.
        return self.sub.pull(max_records, owner, owner.lease_ms)

    def ack(self, items: Any) -> int:
        return int(self.sub.ack(items))

    def nack(self, items: Any, *, requeue: bool = True) -> int:
        return int(self.sub.nack(items, requeue=requeue))

    async def wait(self, timeout: float) -> bool:
        return bool(await self.sub.wait(timeout))

    def on_close(self, callback: Callable[[], None]) -> Callable[[], None]:
        return self.sub.on_close(callback)


# A trickle of deliveries is gathered this long into one response.
COALESCE_S = 0.005
COALESCE_BELOW = 64  # messages: a burst this large goes at once


class StreamSink:
    """The core's DeliverySink for one stream: bursts wait in a short queue for
    the response generator; a full queue means the client is not reading."""

    def __init__(self) -> None:
        self.pending: deque[list[Delivery]] = deque()
        self.ended: object = None  # a sentinel above, or the error that ends the stream
        self._wakeup = asyncio.Event()
        self._drained: asyncio.Future[None] | None = None
        self._last_sent = float("-inf")  # when the last response was taken (clock.monotonic)

    def deliver(self, deliveries: list[Delivery]) -> None:
        self.pending.append(deliveries)
        self._wakeup.set()

    def writable(self) -> bool:
        return len(self.pending) < MAX_PENDING_BURSTS

    def wait_writable(self) -> asyncio.Future[None]:
        if self._drained is None or self._drained.done():
            self._drained = asyncio.get_running_loop().create_future()
        return asyncio.shield(self._drained)

    def cancelled(self, error: BaseException | None) -> None:
        self.end(error if error is not None else _SERVER_ENDED)

    def end(self, why: object) -> None:
        if self.ended is None:
            self.ended = why
        self._wakeup.set()

    def _waiting(self) -> int:
        return sum(len(burst) for burst in self.pending)

    async def next_bursts(self, clock: Any = None) -> list[list[Delivery]]:
        """Every burst waiting (at least one), or [] once the stream ended.

        Responses follow each other at least ``COALESCE_S`` apart (on
        ``clock``) while fewer than ``COALESCE_BELOW`` messages wait: one
        response, and one receipt modack and ack call from the client, for
        several messages instead of each (at 500 msg/s one message per
        response cost the broker three RPCs a message and built a standing
        queue). A message after a quiet spell goes at once."""
        while not self.pending and self.ended is None:
            self._wakeup.clear()
            await self._wakeup.wait()
        if clock is not None:
            since = clock.monotonic() - self._last_sent
            if since < COALESCE_S and self.ended is None and self._waiting() < COALESCE_BELOW:
                await clock.sleep(COALESCE_S - since)
            self._last_sent = clock.monotonic()
        bursts = list(self.pending)
        self.pending.clear()
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)
        return bursts


class Streaming:
    def __init__(self, subscriptions: Subscriptions) -> None:
        self.subscriptions = subscriptions
        self._consumer_sets: dict[int, tuple[Any, ConsumerSet]] = {}  # id(core sub) ->
        # An open stream is subscriber activity for the expiration policy.
        subscriptions.in_use.append(self._has_streams)

    def _has_streams(self, entry: Any) -> bool:
        return any(
            sub.id == entry.core_id and len(consumers)
            for sub, consumers in self._consumer_sets.values()
        )

    def handlers(self) -> dict[str, Any]:
        return {"StreamingPull": self.streaming_pull}

    def consumers_of(self, sub: Any) -> ConsumerSet:
        """The one consumer set (one dispatcher) shared by a subscription's streams."""
        found = self._consumer_sets.get(id(sub))
        if found is None or found[0] is not sub:
            found = (sub, ConsumerSet(StreamSource(sub), sub.clock, name=sub.id))
            self._consumer_sets[id(sub)] = found
        return found[1]

    def _forget_if_idle(self, sub: Any) -> None:
        found = self._consumer_sets.get(id(sub))
        if found is not None and found[0] is sub and not len(found[1]):
            del self._consumer_sets[id(sub)]

    async def streaming_pull(
        self, requests: AsyncIterator[Any], context: Any
    ) -> AsyncIterator[Any]:
        requests = aiter(requests)
        first = await anext(requests, None)
        if first is None:
            return
        name = first.subscription
        entry = self.subscriptions.existing(name)
        seconds = first.stream_ack_deadline_seconds
        if not MIN_STREAM_DEADLINE_S <= seconds <= MAX_ACK_DEADLINE_S:
            # the emulator's text (googleapis/google-cloud-go#10557)
            raise invalid("stream_ack_deadline_seconds must be between 10 and 600 seconds")
        sub = self.subscriptions.core_subscription(entry)
        _settle_from_request(sub, first)
        owner = StreamOwner(seconds * 1000)
        sink = StreamSink()
        consumer = PushConsumer(
            sink,
            owner,
            prefetch=max(0, first.max_outstanding_messages),
            max_bytes=max(0, first.max_outstanding_bytes),
        )
        unwatch = sub.watch_owner(owner, _credit_returner(consumer))
        consumers = self.consumers_of(sub)
        reader = asyncio.ensure_future(_read_stream(sub, owner, requests))
        reader.add_done_callback(lambda task: sink.end(_reader_outcome(task)))
        consumers.attach(consumer)
        try:
            # headers now, not with the first message: the client sees the
            # stream is established even on an idle subscription
            await context.send_initial_metadata(())
            while True:
                bursts = await sink.next_bursts(sub.clock)
                if not bursts:
                    break
                entry = self.subscriptions.state.subscription(name) or entry
                for response in _responses(entry.pb, bursts):
                    yield response
            if isinstance(sink.ended, BaseException):
                raise sink.ended
            if sink.ended is not _CLIENT_CLOSED:  # the subscription went away
                raise not_found("Resource", entry.name.rsplit("/", 1)[-1])
        finally:
            consumers.detach(consumer)
            unwatch()
            reader.cancel()
            end_stream_leases(sub, owner)  # valid 3 s more: ack ids work across streams
            self._forget_if_idle(sub)


def _credit_returner(consumer: PushConsumer) -> Callable[[Lease | None], None]:
    """The stream's lease watcher: every lease that ends frees its credit."""

    def returned(lease: Lease | None) -> None:
        if lease is None:  # a seek dropped every lease
            consumer.returned(consumer.in_flight, consumer.bytes_in_flight)
        else:
            size = len(lease.record.value or b"") if consumer.max_bytes else 0
            consumer.returned(1, size)
        consumer.refill()

    return returned


def _reader_outcome(task: asyncio.Task[None]) -> object:
    """How reading the client's requests ended: a bad request ends the stream
    with its error; the client closing its side (or going away) ends it OK."""
    if task.cancelled():
        return _CLIENT_CLOSED
    error = task.exception()
    return error if isinstance(error, PubsubError) else _CLIENT_CLOSED


def _settle_from_request(sub: Any, request: Any) -> None:
    """Acks and modacks sent on the stream (older clients do; 2.x sends them unary)."""
    if request.ack_ids:
        sub.ack(parse_ack_ids(request.ack_ids))
    ids, seconds = request.modify_deadline_ack_ids, request.modify_deadline_seconds
    if len(ids) != len(seconds):
        raise invalid(
            "modify_deadline_ack_ids and modify_deadline_seconds must have the same length."
        )
    by_deadline: dict[int, list[str]] = {}
    for ack_id, deadline in zip(ids, seconds, strict=True):
        check_ack_deadline(deadline)
        by_deadline.setdefault(deadline, []).append(ack_id)
    for deadline, group in by_deadline.items():
        modify_deadlines(sub, parse_ack_ids(group), deadline)


async def _read_stream(sub: Any, owner: StreamOwner, requests: AsyncIterator[Any]) -> None:
    """Serve the client's later requests: heartbeats (which may change the
    stream's ack deadline), acks and modacks."""
    async for request in requests:
        seconds = request.stream_ack_deadline_seconds
        if seconds:
            owner.lease_ms = min(max(seconds, MIN_STREAM_DEADLINE_S), MAX_ACK_DEADLINE_S) * 1000
        _settle_from_request(sub, request)


def _responses(pb: Any, bursts: list[list[Delivery]]) -> list[Any]:
    """One response for the waiting bursts, split only to stay under the send limit."""
    attempts = pb.HasField("dead_letter_policy")
    out = []
    response = None
    size = 0
    for burst in bursts:
        for delivery in burst:
            body = len(delivery.record.value or b"")
            if response is None or (size + body > MAX_RESPONSE_BYTES and size):
                response = M["StreamingPull"].response()
                set_subscription_properties(response, pb)
                out.append(response)
                size = 0
            response.received_messages.append(received_message(delivery, attempts))
            size += body
    return out

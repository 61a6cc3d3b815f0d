"""Push subscriptions: real HTTP POSTs to ``push_config.push_endpoint``.

One :class:`PushDelivery` per push subscription leases messages from the
core subscription (owner: itself; lease: the ack deadline plus a margin) as
its push window allows (``push_flow.py``), POSTs each one
(``push_envelope.py``) and settles it by the answer: a status in Google's
list acks; anything else, a connection error, or no answer within the ack
deadline is a nack through ``Subscription.nack`` (so delivery counts grow and
the core dead-letters after ``max_delivery_attempts``), delayed by the retry
policy, and it shrinks the window and starts the push backoff.

:class:`PushDeliveries` follows the registry (``change_listeners``): a
subscription that gets an endpoint starts pushing, one switched to pull
(ModifyPushConfig with an empty config) or deleted stops, handing back what
it held for redelivery. Stored push subscriptions start with the listener.
All pushers share one aiohttp ``ClientSession``.

Authentication: Google signs an OIDC token with a service account for
``push_config.oidc_token``; Dovecote holds no Google keys, so it sends no
``Authorization`` header (an unsigned token would pass no real verifier and
only hide that). ``push_config.attributes`` (``x-goog-version``) is kept as
given; only the v1 envelope is sent.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import aiohttp

from dovecote.core.clock import Clock
from dovecote.core.subscription_state import Delivery
from dovecote.pubsub.push_envelope import ACK_STATUSES, PushRequest, push_request
from dovecote.pubsub.push_flow import PushFlow, retry_delay_ms
from dovecote.pubsub.registry import Subscriptions
from dovecote.pubsub.state import SubscriptionEntry
from dovecote.pubsub.sub_config import ack_deadline_s

log = logging.getLogger("dovecote.pubsub.push")

Poster = Callable[[str, bytes, Mapping[str, str]], Awaitable[int]]

NO_ANSWER = 0  # the status recorded for a connection error or a timeout
LEASE_MARGIN_MS = 1000  # the lease outlives the request's deadline, so our nack comes first
IDLE_WAIT_S = 30.0  # an idle pusher looks again this often (leases, delays)
MAX_BATCH = 1000  # leased per pull at most
ERROR_PAUSE_S = 1.0  # after an unexpected error in the loop
MAX_CONNECTIONS = 1000  # open to all endpoints at once; more requests wait their turn
USER_AGENT = "CloudPubSub-Google"  # what Google's push requests carry (payload-unwrapping page)


def is_push(pb: Any) -> bool:
    return bool(pb.push_config.push_endpoint)


class PushDelivery:
    """The pusher of one subscription, and the endpoint health it observed."""

    def __init__(self, name: str, subscriptions: Subscriptions, post: Poster, clock: Clock) -> None:
        self.name = name
        self.subscriptions = subscriptions
        self.post = post
        self.clock = clock
        self.flow = PushFlow()
        self.last_status: int | None = None
        self.last_error: str | None = None
        self.last_success_ms: int | None = None
        self.last_failure_ms: int | None = None
        self.acked = 0
        self.failed = 0
        self._task: asyncio.Task[None] | None = None
        self._requests: set[asyncio.Task[None]] = set()
        self._slot = asyncio.Event()

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        if not self.running:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        """Stop pushing; what is in flight goes back to the subscription."""
        tasks = [t for t in (self._task, *self._requests) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._task = None
        sub = self._core_subscription()
        if sub is not None:
            sub.release(self)
        self.flow.in_flight = 0

    def health(self) -> dict[str, Any]:
        """What the admin views show: the endpoint, the last HTTP status (0:
        no answer: a connection error or the ack deadline passed) and error,
        the run of failures, the last success and failure (wall ms), the push
        window and requests in flight, the backoff left, and totals."""
        entry = self.subscriptions.state.subscription(self.name)
        now = self.clock.monotonic()
        return {
            "endpoint": entry.pb.push_config.push_endpoint if entry is not None else None,
            "running": self.running,
            "last_status": self.last_status,
            "last_error": self.last_error,
            "consecutive_failures": self.flow.consecutive_failures,
            "last_success_ms": self.last_success_ms,
            "last_failure_ms": self.last_failure_ms,
            "window": int(self.flow.window),
            "in_flight": self.flow.in_flight,
            "backoff_remaining_s": round(max(0.0, self.flow.paused_until - now), 3),
            "acked": self.acked,
            "failed": self.failed,
        }

    # --- the loop ----------------------------------------------------------------------

    def _entry(self) -> SubscriptionEntry | None:
        entry = self.subscriptions.state.subscription(self.name)
        return entry if entry is not None and is_push(entry.pb) else None

    def _core_subscription(self) -> Any:
        entry = self.subscriptions.state.subscription(self.name)
        return None if entry is None else self.subscriptions.core.subscription(entry.core_id)

    async def _run(self) -> None:
        while True:
            try:
                if not await self._step():
                    return
            except asyncio.CancelledError:
                raise
            except Exception:  # keep pushing: one bad turn must not end delivery
                log.exception("push loop of %s failed; retrying", self.name)
                await self.clock.sleep(ERROR_PAUSE_S)

    async def _step(self) -> bool:
        """One turn: wait for room or work, or lease and send a batch.
        False once the subscription is gone or no longer a push one."""
        entry = self._entry()
        if entry is None:
            return False
        sub = self.subscriptions.core.subscription(entry.core_id)
        if sub is None or sub.closed:
            return False
        wait = self.flow.ready_at() - self.clock.monotonic()
        if wait > 0:
            await self.clock.sleep(wait)
            return True
        room = self.flow.room
        if room <= 0:
            self._slot.clear()
            await self._slot.wait()
            return True
        lease_ms = ack_deadline_s(entry.pb) * 1000 + LEASE_MARGIN_MS
        deliveries = sub.pull(min(room, MAX_BATCH), self, lease_ms)
        if not deliveries:
            await sub.wait(IDLE_WAIT_S)
            return True
        self.flow.started(len(deliveries))
        for delivery in deliveries:
            task = asyncio.get_running_loop().create_task(self._push(entry, sub, delivery))
            self._requests.add(task)
            task.add_done_callback(self._requests.discard)
        return True

    async def _push(self, entry: SubscriptionEntry, sub: Any, delivery: Delivery) -> None:
        pb = entry.pb
        try:
            request = push_request(
                delivery, self.name, pb.push_config, pb.HasField("dead_letter_policy")
            )
        except Exception as error:  # counted as a failed attempt, not a stuck lease
            log.exception("cannot build the push request of %s", self.name)
            self.last_error = f"{type(error).__name__}: {error}"
            status = NO_ANSWER
        else:
            status = await self._post_within(
                pb.push_config.push_endpoint, request, ack_deadline_s(pb)
            )
        self.last_status = status
        if status in ACK_STATUSES:
            sub.ack([delivery.token])
            self.flow.succeeded()
            self.acked += 1
            self.last_error = None
            self.last_success_ms = self.clock.wall_ms()
        else:
            sub.nack([delivery.token], delay_ms=retry_delay_ms(pb, delivery.count))
            self.flow.failed(self.clock.monotonic())
            self.failed += 1
            self.last_failure_ms = self.clock.wall_ms()
            if status != NO_ANSWER:
                self.last_error = f"HTTP {status}"
        self._slot.set()

    async def _post_within(self, url: str, request: PushRequest, seconds: float) -> int:
        """The endpoint's status, or NO_ANSWER on an error or after ``seconds``
        on the injected clock (the ack deadline: a late answer is a nack)."""
        post = asyncio.ensure_future(self.post(url, request.body, request.headers))
        timer = self.clock.call_at(self.clock.monotonic() + seconds, post.cancel)
        try:
            return await post
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise
            self.last_error = f"no answer within the ack deadline ({seconds:g} s)"
            return NO_ANSWER
        except Exception as error:  # a poster that fails is a failed delivery
            self.last_error = f"{type(error).__name__}: {error}"
            return NO_ANSWER
        finally:
            timer.cancel()


class PushDeliveries:
    """Every push subscription's pusher, kept in step with the registry."""

    def __init__(self, subscriptions: Subscriptions, clock: Clock) -> None:
        self.subscriptions = subscriptions
        self.clock = clock
        self.pushers: dict[str, PushDelivery] = {}
        # A push subscription is in use: Google does not expire it for idleness.
        subscriptions.in_use.append(lambda entry: entry.name in self.pushers)
        self._session: aiohttp.ClientSession | None = None
        self.post: Poster = self._http_post
        subscriptions.change_listeners.append(self.changed)

    async def start(self) -> None:
        for entry in list(self.subscriptions.state.subscriptions.values()):
            if is_push(entry.pb):
                self._ensure(entry.name)

    async def changed(self, old: SubscriptionEntry | None, new: SubscriptionEntry | None) -> None:
        if new is None:
            if old is not None:
                await self._stop(old.name)
        elif is_push(new.pb):
            self._ensure(new.name)
        else:
            await self._stop(new.name)

    def health(self, name: str) -> dict[str, Any] | None:
        pusher = self.pushers.get(name)
        return None if pusher is None else pusher.health()

    async def close(self) -> None:
        for name in list(self.pushers):
            await self._stop(name)
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _ensure(self, name: str) -> None:
        pusher = self.pushers.get(name)
        if pusher is None:
            pusher = self.pushers[name] = PushDelivery(
                name, self.subscriptions, self._post, self.clock
            )
        pusher.start()

    async def _stop(self, name: str) -> None:
        pusher = self.pushers.pop(name, None)
        if pusher is not None:
            await pusher.stop()

    def _post(self, url: str, body: bytes, headers: Mapping[str, str]) -> Awaitable[int]:
        return self.post(url, body, headers)  # looked up per call: tests replace ``post``

    async def _http_post(self, url: str, body: bytes, headers: Mapping[str, str]) -> int:
        """POST once; the status. Errors raise (the pusher records them)."""
        if self._session is None or self._session.closed:
            # No client-side total timeout: the pusher enforces the ack deadline.
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=MAX_CONNECTIONS),
                timeout=aiohttp.ClientTimeout(total=None),
                headers={"User-Agent": USER_AGENT},
            )
        try:
            async with self._session.post(url, data=body, headers=dict(headers)) as response:
                await response.read()
                return response.status
        except aiohttp.ClientError as error:
            log.debug("push to %s failed: %s", url, error)
            raise

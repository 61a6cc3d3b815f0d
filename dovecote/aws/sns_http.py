"""SNS delivery to http/https endpoints: the SubscriptionConfirmation POST, and one
pusher task per confirmed subscription that drains its internal queue.

The pusher leases records from the subscription's core queue, POSTs each,
acks on a 2xx and otherwise nacks it with the delay the healthy retry policy
gives for that attempt (timed on the core's clock, no sleeping loop); once the
retries are spent the message goes to the RedrivePolicy's dead-letter queue,
if any, else it is dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Callable, Mapping
from typing import Any

import aiohttp

from dovecote.aws import records as records_
from dovecote.aws.context import RequestContext
from dovecote.aws.sns_envelope import (
    subscription_confirmation,
    to_json,
    unsubscribe_confirmation,
)
from dovecote.aws.sns_messages import CERT_PATH, subscribe_url
from dovecote.aws.sns_signing import SigningKey
from dovecote.aws.sns_subscriptions import HTTP_QUEUE_PREFIX, Subscription, retry_policy
from dovecote.aws.sns_topics import SnsTopics
from dovecote.core.queues import NotFound, QueueManager
from dovecote.core.subscription_state import Delivery
from dovecote.storage.batch import Record

log = logging.getLogger("dovecote.aws.sns")

CONTENT_TYPE = "text/plain; charset=UTF-8"
USER_AGENT = "Amazon Simple Notification Service Agent"
LEASE_MS = 60_000
BATCH = 10
IDLE_WAIT_S = 30.0
REQUEST_TIMEOUT_S = 15.0


def retry_delay_s(policy: Mapping[str, Any], retry: int) -> float:
    """Seconds before retry number ``retry`` (1-based) under a healthy retry policy:
    first the no-delay retries, then the min-delay ones, then the backoff phase
    from minDelayTarget to maxDelayTarget, then the max-delay ones. ``inf`` when
    ``retry`` is past numRetries (give up)."""
    total = int(policy.get("numRetries", 3))
    if retry > total:
        return math.inf
    low = float(policy.get("minDelayTarget", 20))
    high = float(policy.get("maxDelayTarget", 20))
    none = int(policy.get("numNoDelayRetries", 0))
    at_min = int(policy.get("numMinDelayRetries", 0))
    at_max = int(policy.get("numMaxDelayRetries", 0))
    if retry <= none:
        return 0.0
    if retry <= none + at_min:
        return low
    backoff = max(total - none - at_min - at_max, 0)
    step = retry - none - at_min
    if step > backoff:
        return high
    return backoff_delay(str(policy.get("backoffFunction", "linear")), low, high, step, backoff)


def backoff_delay(function: str, low: float, high: float, step: int, steps: int) -> float:
    """Delay at ``step`` of ``steps`` (1-based), rising from ``low`` to ``high``."""
    if steps <= 1 or high <= low:
        return high if steps >= 1 else low
    share = (step - 1) / (steps - 1)  # 0 at the first backoff retry, 1 at the last
    if function == "arithmetic":
        share = share * (step) / steps  # slow start, quadratic rise
    elif function == "geometric":
        return low * (high / low) ** share if low > 0 else high * share
    elif function == "exponential":
        share = (2 ** (step - 1) - 1) / (2 ** (steps - 1) - 1)
    return low + (high - low) * share


def sns_headers(kind: str, message_id: str, topic_arn: str, sub_arn: str | None) -> dict[str, str]:
    headers = {
        "Content-Type": CONTENT_TYPE,
        "User-Agent": USER_AGENT,
        "x-amz-sns-message-type": kind,
        "x-amz-sns-message-id": message_id,
        "x-amz-sns-topic-arn": topic_arn,
    }
    if sub_arn is not None:
        headers["x-amz-sns-subscription-arn"] = sub_arn
    return headers


class HttpDelivery:
    """The confirmation sender and the pushers of every http(s) subscription."""

    def __init__(
        self,
        manager: QueueManager,
        topics: SnsTopics,
        signing_key: Callable[[], SigningKey],
        dead_letter_queue: Callable[[str], str],
    ) -> None:
        self.manager = manager
        self.clock = manager.clock
        self.topics = topics
        self.signing_key = signing_key
        self.dead_letter_queue = dead_letter_queue  # queue ARN -> core queue name
        self.pushers: dict[str, asyncio.Task[None]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._session: aiohttp.ClientSession | None = None

    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)
            )
        return self._session

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> int:
        """POST ``body``; the HTTP status, or 0 when the endpoint could not be
        reached (the one place that does I/O: tests replace it)."""
        try:
            async with self.session().post(url, data=body, headers=dict(headers)) as response:
                await response.read()
                return response.status
        except (aiohttp.ClientError, TimeoutError, ValueError) as error:
            log.debug("SNS POST to %s failed: %s", url, error)
            return 0

    # --- confirmation ---------------------------------------------------------------

    def send_confirmation(self, sub: Subscription, ctx: RequestContext) -> None:
        """POST the SubscriptionConfirmation in the background, as SNS does."""
        self._spawn(self._confirm(sub, ctx))

    def send_unsubscribed(self, sub: Subscription, ctx: RequestContext) -> None:
        """POST the UnsubscribeConfirmation (its SubscribeURL subscribes again)."""
        self._spawn(self._confirm(sub, ctx, unsubscribed=True))

    async def _confirm(
        self, sub: Subscription, ctx: RequestContext, *, unsubscribed: bool = False
    ) -> None:
        topic = self.topics.topics.get(sub.topic)
        if topic is None or sub.token is None:
            return
        message_id = records_.new_message_id()
        fields: dict[str, Any] = {
            "message_id": message_id,
            "topic_arn": topic.arn,
            "token": sub.token,
            "subscribe_url": subscribe_url(ctx.base_url, topic.arn, sub.token),
            "timestamp_ms": self.clock.wall_ms(),
            "signing_cert_url": ctx.base_url + CERT_PATH,
            "key": self.signing_key(),
            "signature_version": topic.signature_version,
        }
        if unsubscribed:
            envelope = unsubscribe_confirmation(subscription_arn=sub.arn, **fields)
            kind, arn = "UnsubscribeConfirmation", sub.arn
        else:
            envelope = subscription_confirmation(**fields)
            kind, arn = "SubscriptionConfirmation", None
        headers = sns_headers(kind, message_id, topic.arn, arn)
        status = await self.post(sub.endpoint, to_json(envelope), headers)
        if not 200 <= status < 300:
            log.info("SNS confirmation to %s answered %d", sub.endpoint, status)

    # --- pushers --------------------------------------------------------------------

    def start(self, sub: Subscription) -> None:
        if sub.id not in self.pushers:
            self.pushers[sub.id] = self._spawn(self._push_loop(sub))

    async def stop(self, sub: Subscription) -> None:
        task = self.pushers.pop(sub.id, None)
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self.pushers.clear()
        if self._session is not None:
            await self._session.close()

    async def _push_loop(self, sub: Subscription) -> None:
        try:
            queue = self.manager.get_queue(HTTP_QUEUE_PREFIX + sub.id)
        except NotFound:
            return
        source = queue.subscription
        while not source.closed:
            deliveries = source.pull(BATCH, self, lease_ms=LEASE_MS)
            if not deliveries:
                await source.wait(IDLE_WAIT_S)
                continue
            await asyncio.gather(*(self._push_one(sub, source, d) for d in deliveries))

    async def _push_one(self, sub: Subscription, source: Any, delivery: Delivery) -> None:
        try:
            await self._push(sub, source, delivery)
        except Exception:  # one bad record must not stop the subscription's pusher
            log.exception("SNS delivery to %s failed", sub.endpoint)
            source.nack([delivery.token], requeue=True, delay_ms=LEASE_MS)

    async def _push(self, sub: Subscription, source: Any, delivery: Delivery) -> None:
        topic = self.topics.topics.get(sub.topic)
        if topic is None:
            return
        record = delivery.record
        # Records published into the exchange over AMQP may have no id: derive one.
        message_id = records_.message_id_of(record, HTTP_QUEUE_PREFIX + sub.id, delivery.partition)
        headers = sns_headers("Notification", message_id, topic.arn, sub.arn)
        if sub.raw:
            headers["x-amz-sns-rawdelivery"] = "true"
        status = await self.post(sub.endpoint, record.value or b"", headers)
        token = delivery.token
        if 200 <= status < 300:
            source.ack([token])
            return
        delay = retry_delay_s(retry_policy(topic, sub), delivery.count)
        if math.isfinite(delay):
            source.nack([token], requeue=True, delay_ms=int(delay * 1000))
            return
        await self._give_up(sub, source, delivery)

    async def _give_up(self, sub: Subscription, source: Any, delivery: Delivery) -> None:
        """Retries spent: to the subscription's dead-letter queue, else dropped."""
        target = sub.dead_letter_arn
        if target is not None:
            try:
                name = self.dead_letter_queue(target)
                record = delivery.record
                copy = Record(record.value, key=record.key, headers=list(record.headers))
                await self.manager.enqueue([name], [copy])
            except Exception as error:  # a missing DLQ: the message is lost, as on AWS
                log.info("SNS dead-letter queue %s unusable: %s", target, error)
        source.ack([delivery.token])

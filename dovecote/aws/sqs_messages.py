"""SQS message operations over a queue's core subscription.

Send appends records (one append per request, acknowledged after the group
commit), receive leases them with the visibility timeout as the lease and
the delivery token's text as the receipt handle, delete acks, visibility
changes extend. Long polls sleep on the subscription, which wakes on an
append, a delay ending and a lease given back, so a receive answers as soon
as something is deliverable. FIFO queues are ordered subscriptions keyed by
MessageGroupId with the core's dedup window.
"""

from __future__ import annotations

import hashlib
import heapq
from dataclasses import dataclass
from typing import Any

from dovecote.aws import records as records_
from dovecote.aws import sqs_attributes as attrs_
from dovecote.aws import sqs_checks as checks
from dovecote.aws.context import RequestContext
from dovecote.aws.digests import (
    md5_of_body,
    md5_of_bytes,
    md5_of_message_attributes,
    md5_of_message_system_attributes,
)
from dovecote.aws.errors import AwsError
from dovecote.aws.sqs_queues import SqsQueue, SqsQueues
from dovecote.core.subscription_state import Delivery
from dovecote.core.tokens import DeliveryToken, InvalidToken
from dovecote.storage.batch import Record

SEQUENCE_HEADER = records_.SEQUENCE
DEDUP_WINDOW_MS = 5 * 60 * 1000
MAX_ATTEMPTS = 1000  # FIFO receive attempts remembered per queue
MAX_TRACKED_DELAYS = 100_000  # per queue; beyond it the delayed count is the core's


class _Owner:
    """Who holds SQS leases: nobody in particular (SQS leases outlive connections)."""

    def __repr__(self) -> str:
        return "<sqs receivers>"


SQS_OWNER = _Owner()


def _invalid_handle(handle: str) -> AwsError:
    return AwsError(
        "ReceiptHandleIsInvalid",
        f'The input receipt handle "{handle}" is not a valid receipt handle.',
    )


def parse_handle(handle: str) -> DeliveryToken:
    try:
        return DeliveryToken.parse(handle)
    except InvalidToken:
        raise _invalid_handle(handle) from None


@dataclass
class _Entry:
    """One message of a send, checked and turned into a record."""

    id: str
    record: Record
    message_id: str
    dedup_key: str | None
    sequence: str | None
    result: dict[str, Any]
    size: int  # body and attribute bytes, as AWS counts them toward the limits


@dataclass(frozen=True, slots=True)
class _Limits:
    """A queue's attributes every message of a send is checked against,
    read once per request rather than once per entry."""

    max_size: int
    delay_seconds: int
    content_based_dedup: bool

    @classmethod
    def of(cls, view: SqsQueue) -> _Limits:
        return cls(
            view.int_attribute("MaximumMessageSize"),
            view.int_attribute("DelaySeconds"),
            view.content_based_dedup,
        )


class SqsMessages:
    def __init__(self, queues: SqsQueues) -> None:
        self.queues = queues
        self.manager = queues.manager
        self.clock = queues.manager.clock
        self.state = queues.state

    # --- send ---------------------------------------------------------------------

    def _entry(
        self,
        view: SqsQueue,
        params: dict[str, Any],
        ctx: RequestContext,
        entry_id: str,
        limits: _Limits | None = None,
    ) -> _Entry:
        body = params.get("MessageBody")
        if body is None or body == "":
            raise AwsError(
                "MissingParameter", "The request must contain the parameter MessageBody."
            )
        body = str(body)
        checks.check_message_body(body)
        value = body.encode("utf-8")
        if limits is None:
            limits = _Limits.of(view)
        attributes = params.get("MessageAttributes") or None
        system = params.get("MessageSystemAttributes") or None
        size = checks.check_message_attributes(attributes) if attributes else 0
        if system:
            checks.check_message_attributes(system, system=True)
        delay = params.get("DelaySeconds")
        group_id = params.get("MessageGroupId")
        dedup_id = params.get("MessageDeduplicationId")
        fifo = view.fifo
        checks.check_send(
            body,
            size,
            max_size=limits.max_size,
            delay_seconds=None if delay is None else int(delay),
            fifo=fifo,
            group_id=group_id,
            dedup_id=dedup_id,
            content_based_dedup=limits.content_based_dedup,
            body_size=len(value),
        )
        now_ms = self.clock.wall_ms()
        delay_s = int(delay) if delay is not None else limits.delay_seconds
        if delay_s > 0:
            delays = self.state(view).delays
            if len(delays) < MAX_TRACKED_DELAYS:
                heapq.heappush(delays, now_ms + delay_s * 1000)
        message_id = records_.new_message_id()
        trace = None
        if system and "AWSTraceHeader" in system:
            trace = system["AWSTraceHeader"].get("StringValue")
        dedup_key = None
        sequence = None
        if fifo:
            if dedup_id is None:
                dedup_id = hashlib.sha256(value).hexdigest()
            dedup_key = f"{group_id}\x00{dedup_id}" if view.dedup_per_group else str(dedup_id)
        headers = records_.sqs_headers(
            message_id,
            group_id=group_id,
            dedup_id=dedup_id if fifo else None,
            trace_header=trace,
            sender_id=ctx.access_key or ctx.account,
            delay_until_ms=now_ms + delay_s * 1000 if delay_s > 0 else None,
        )
        if fifo:
            state = self.state(view)
            state.last_sequence = max(state.last_sequence + 1, now_ms * 1_000_000)
            sequence = f"{state.last_sequence:020d}"
            headers.append((SEQUENCE_HEADER, sequence.encode()))
        if attributes:
            headers.extend(records_.attributes_to_headers(attributes))
        record = Record(
            value,
            group_id.encode("utf-8") if fifo and group_id is not None else None,
            headers,
            now_ms,
        )
        result: dict[str, Any] = {"MD5OfMessageBody": md5_of_bytes(value), "MessageId": message_id}
        digest = md5_of_message_attributes(attributes) if attributes else None
        if digest:
            result["MD5OfMessageAttributes"] = digest
        digest = md5_of_message_system_attributes(system) if system else None
        if digest:
            result["MD5OfMessageSystemAttributes"] = digest
        if sequence is not None:
            result["SequenceNumber"] = sequence
        return _Entry(entry_id, record, message_id, dedup_key, sequence, result, len(value) + size)

    async def _store(self, view: SqsQueue, entries: list[_Entry]) -> None:
        """Append the entries in one go; repeats inside the FIFO window answer
        with the message they repeat."""
        dedup_ids = [e.dedup_key for e in entries] if view.fifo else None
        result = await self.manager.enqueue(
            [view.name], [e.record for e in entries], dedup_ids=dedup_ids
        )
        if not view.fifo:
            return
        state = self.state(view)
        now_ms = self.clock.wall_ms()
        sent = state.sent
        while sent:
            key, (accepted, _, _) = next(iter(sent.items()))
            if accepted > now_ms - DEDUP_WINDOW_MS:
                break
            del sent[key]
        duplicates = result.duplicates.get(view.name) or [None] * len(entries)
        for entry, duplicate in zip(entries, duplicates, strict=True):
            assert entry.dedup_key is not None
            if duplicate is None:
                sent[entry.dedup_key] = (now_ms, entry.message_id, entry.sequence or "")
                continue
            original = sent.get(entry.dedup_key)
            if original is not None:
                entry.result["MessageId"] = original[1]
                entry.result["SequenceNumber"] = original[2]

    async def send_message(self, params: dict[str, Any], ctx: RequestContext) -> dict[str, Any]:
        view = self.queues.reading(params)
        entry = self._entry(view, params, ctx, "")
        await self._store(view, [entry])
        return entry.result

    async def send_message_batch(
        self, params: dict[str, Any], ctx: RequestContext
    ) -> dict[str, Any]:
        view = self.queues.reading(params)
        items = params.get("Entries") or []
        checks.check_batch_entries(items)
        good: list[_Entry] = []
        failed: list[dict[str, Any]] = []
        total = 0
        limits = _Limits.of(view)
        for item in items:
            try:
                entry = self._entry(view, item, ctx, str(item["Id"]), limits)
            except AwsError as error:
                failed.append(_failure(str(item.get("Id", "")), error))
                continue
            total += entry.size
            good.append(entry)
        checks.check_batch_size(total, attrs_.MAX_MESSAGE_SIZE)  # 1 MiB whatever the queue allows
        if good:
            await self._store(view, good)
        result: dict[str, Any] = {
            "Successful": [dict(e.result, Id=e.id) for e in good],
            "Failed": failed,
        }
        return result

    # --- receive ------------------------------------------------------------------

    async def receive_message(self, params: dict[str, Any], ctx: RequestContext) -> dict[str, Any]:
        view = self.queues.reading(params)
        options = checks.check_receive(params)
        visibility = options.visibility_timeout
        if visibility is None:
            visibility = view.int_attribute("VisibilityTimeout")
        wait = options.wait_seconds
        if wait is None:
            wait = view.int_attribute("ReceiveMessageWaitTimeSeconds")
        sub = view.core.subscription
        lease_ms = visibility * 1000
        attempt = params.get("ReceiveRequestAttemptId") if view.fifo else None
        if attempt is not None:
            earlier = self._earlier_attempt(view, str(attempt))
            if earlier is not None:
                return earlier
        deliveries = sub.pull(
            options.max_messages, SQS_OWNER, lease_ms=lease_ms, group_batches=view.fifo
        )
        if not deliveries and wait > 0:
            deadline = self.clock.monotonic() + wait
            while not deliveries and not sub.closed:
                remaining = deadline - self.clock.monotonic()
                if remaining <= 0:
                    break
                await sub.wait(remaining)
                deliveries = sub.pull(
                    options.max_messages, SQS_OWNER, lease_ms=lease_ms, group_batches=view.fifo
                )
        if not deliveries:
            return {}
        state = self.state(view)
        now_ms = self.clock.wall_ms()
        messages = []
        try:
            for delivery in deliveries:
                key = (delivery.partition, delivery.offset)
                first = state.first_receive.setdefault(key, now_ms)
                messages.append(self._message(view, delivery, first, options, ctx))
        except Exception:
            # Nobody got them: visible again now rather than after the
            # visibility timeout (the attempt still counts towards maxReceiveCount).
            sub.extend([d.token for d in deliveries], 0)
            raise
        result = {"Messages": messages}
        if attempt is not None:
            attempts = self.state(view).attempts
            attempts[str(attempt)] = (self.clock.monotonic() + visibility, result)
            while len(attempts) > MAX_ATTEMPTS:
                attempts.pop(next(iter(attempts)))
        return result

    def _earlier_attempt(self, view: SqsQueue, attempt: str) -> dict[str, Any] | None:
        """A FIFO receive retried with the same ReceiveRequestAttemptId gets
        the same messages and handles while their visibility lasts."""
        found = self.state(view).attempts.get(attempt)
        if found is None:
            return None
        until, result = found
        if self.clock.monotonic() >= until:
            return None
        return result

    def _message(
        self,
        view: SqsQueue,
        delivery: Delivery,
        first_receive_ms: int,
        options: checks.ReceiveOptions,
        ctx: RequestContext,
    ) -> dict[str, Any]:
        record = delivery.record
        count = delivery.count
        handle = str(delivery.token)
        partition = delivery.partition
        stored = record.value or b""
        try:
            body = stored.decode("utf-8")
            body_md5 = md5_of_bytes(stored)  # the body's UTF-8 is these very bytes
        except UnicodeDecodeError:
            body = stored.decode("utf-8", "replace")
            body_md5 = md5_of_body(body)
        names = options.system_attribute_names
        # One scan of the headers: all SQS fields when system attributes are
        # wanted, else only the message id.
        meta = records_.read_sqs_headers(record.headers) if names else None
        message_id = (
            meta.message_id if meta is not None else records_.last_message_id(record.headers)
        )
        message: dict[str, Any] = {
            "MessageId": message_id or records_.message_id_of(record, view.name, partition),
            "ReceiptHandle": handle,
            "MD5OfBody": body_md5,
            "Body": body,
        }
        if meta is not None:
            everything = "All" in names
            system: dict[str, str] = {}
            values = {
                "SenderId": meta.sender_id or ctx.account,
                "SentTimestamp": str(max(record.timestamp, 0)),
                "ApproximateReceiveCount": str(count),
                "ApproximateFirstReceiveTimestamp": str(first_receive_ms),
            }
            if meta.trace_header:
                values["AWSTraceHeader"] = meta.trace_header
            if meta.dead_letter_source:
                values["DeadLetterQueueSourceArn"] = ctx.arn("sqs", meta.dead_letter_source)
            if view.fifo:
                if meta.group_id is not None:
                    values["MessageGroupId"] = meta.group_id
                if meta.dedup_id is not None:
                    values["MessageDeduplicationId"] = meta.dedup_id
                sequence = meta.sequence
                values["SequenceNumber"] = (
                    sequence.decode() if sequence else f"{max(record.offset, 0):020d}"
                )
            for name, value in values.items():
                if everything or name in names:
                    system[name] = value
            if system:
                message["Attributes"] = system
        if options.message_attribute_names:
            attributes = records_.headers_to_attributes(
                record.headers, options.message_attribute_names
            )
            if attributes:
                message["MessageAttributes"] = attributes
                digest = md5_of_message_attributes(attributes)
                if digest:
                    message["MD5OfMessageAttributes"] = digest
        return message

    # --- settle ---------------------------------------------------------------------

    async def delete_message(self, params: dict[str, Any], ctx: RequestContext) -> dict[str, Any]:
        view = self.queues.reading(params)
        token = parse_handle(str(params["ReceiptHandle"]))
        self._settle(view, [token])
        return {}

    def _settle(self, view: SqsQueue, tokens: list[DeliveryToken]) -> None:
        # A stale handle (the message was received again since) deletes
        # nothing and is not an error: AWS answers the same.
        view.core.subscription.ack(tokens)
        first = self.state(view).first_receive
        for token in tokens:
            first.pop((token.partition, token.offset), None)

    async def delete_message_batch(
        self, params: dict[str, Any], ctx: RequestContext
    ) -> dict[str, Any]:
        view = self.queues.reading(params)
        items = params.get("Entries") or []
        checks.check_batch_entries(items, entry_name="DeleteMessageBatchRequestEntry")
        done: list[dict[str, Any]] = []
        failed: list[dict[str, Any]] = []
        tokens: list[DeliveryToken] = []
        for item in items:
            try:
                tokens.append(parse_handle(str(item["ReceiptHandle"])))
            except AwsError as error:
                failed.append(_failure(str(item["Id"]), error))
                continue
            done.append({"Id": str(item["Id"])})
        if tokens:
            self._settle(view, tokens)
        return {"Successful": done, "Failed": failed}

    async def change_message_visibility(
        self, params: dict[str, Any], ctx: RequestContext
    ) -> dict[str, Any]:
        view = self.queues.reading(params)
        handle = str(params["ReceiptHandle"])
        self._extend(view, handle, params["VisibilityTimeout"])
        return {}

    def _extend(self, view: SqsQueue, handle: str, timeout: Any) -> None:
        token = parse_handle(handle)
        checks.check_visibility_timeout(int(timeout))
        settled = view.core.subscription.extend([token], int(timeout) * 1000)
        if settled.stale:
            raise AwsError(
                "InvalidParameterValue",
                f"Value {handle} for parameter ReceiptHandle is invalid. Reason: Message does "
                "not exist or is not available for visibility timeout change.",
            )

    async def change_message_visibility_batch(
        self, params: dict[str, Any], ctx: RequestContext
    ) -> dict[str, Any]:
        view = self.queues.reading(params)
        items = params.get("Entries") or []
        checks.check_batch_entries(items, entry_name="ChangeMessageVisibilityBatchRequestEntry")
        done: list[dict[str, Any]] = []
        failed: list[dict[str, Any]] = []
        for item in items:
            try:
                self._extend(view, str(item["ReceiptHandle"]), item.get("VisibilityTimeout", 0))
            except AwsError as error:
                failed.append(_failure(str(item["Id"]), error))
                continue
            done.append({"Id": str(item["Id"])})
        return {"Successful": done, "Failed": failed}


def _failure(entry_id: str, error: AwsError) -> dict[str, Any]:
    return {"Id": entry_id, "SenderFault": True, "Code": error.code, "Message": error.message}

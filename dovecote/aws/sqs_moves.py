"""SQS message move tasks: redrive messages out of a dead-letter queue.

A task leases a few messages at a time from the DLQ, appends them to the
destination (by default the queue each message was dead-lettered from,
named in its death history) and only then deletes them from the DLQ, so a
crash in between duplicates rather than loses. Tasks live in memory: after a
restart the list is empty and an interrupted move is simply started again
(what it moved stays moved).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import uuid
from dataclasses import dataclass, field
from typing import Any

from dovecote.aws import records as records_
from dovecote.aws.context import RequestContext
from dovecote.aws.errors import AwsError
from dovecote.aws.sqs_queues import SqsQueue, SqsQueues
from dovecote.core.headers import DEATHS
from dovecote.storage.batch import Record

log = logging.getLogger("dovecote.aws")

BATCH = 10
LEASE_MS = 60_000
RUNNING, COMPLETED, CANCELLING, CANCELLED, FAILED = (
    "RUNNING",
    "COMPLETED",
    "CANCELLING",
    "CANCELLED",
    "FAILED",
)


@dataclass
class MoveTask:
    handle: str
    source_arn: str
    source: str
    destination_arn: str | None
    rate: int | None  # messages per second; None: as fast as it goes
    to_move: int
    started_ms: int
    status: str = RUNNING
    moved: int = 0
    failure: str | None = None
    task: asyncio.Task[None] | None = field(default=None, repr=False)

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "Status": self.status,
            "SourceArn": self.source_arn,
            "ApproximateNumberOfMessagesMoved": self.moved,
            "ApproximateNumberOfMessagesToMove": self.to_move,
            "StartedTimestamp": self.started_ms,
        }
        if self.status == RUNNING:
            out["TaskHandle"] = self.handle
        if self.destination_arn:
            out["DestinationArn"] = self.destination_arn
        if self.rate is not None:
            out["MaxNumberOfMessagesPerSecond"] = self.rate
        if self.failure:
            out["FailureReason"] = self.failure
        return out


class MessageMoves:
    def __init__(self, queues: SqsQueues) -> None:
        self.queues = queues
        self.manager = queues.manager
        self.clock = queues.manager.clock
        self.tasks: list[MoveTask] = []  # newest last

    async def close(self) -> None:
        for task in self.tasks:
            if task.task is not None and not task.task.done():
                task.task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task.task

    # --- operations ---------------------------------------------------------------

    async def start(self, params: dict[str, Any], ctx: RequestContext) -> dict[str, Any]:
        source_arn = str(params["SourceArn"])
        try:
            source = self.queues.by_arn(source_arn)
        except AwsError:
            raise AwsError(
                "ResourceNotFoundException",
                "The resource that you specified for the SourceArn parameter doesn't exist.",
            ) from None
        if not self.queues.dead_letter_sources(source.name):
            raise AwsError(
                "InvalidParameterValue",
                "Source queue must be configured as a Dead Letter Queue.",
            )
        destination_arn = params.get("DestinationArn")
        if destination_arn:
            try:
                self.queues.by_arn(str(destination_arn))
            except AwsError:
                raise AwsError(
                    "ResourceNotFoundException",
                    "The resource that you specified for the DestinationArn parameter doesn't exist.",
                ) from None
        rate = params.get("MaxNumberOfMessagesPerSecond")
        if rate is not None and not 1 <= int(rate) <= 500:
            raise AwsError(
                "InvalidParameterValue",
                "Value for parameter MaxNumberOfMessagesPerSecond is invalid. "
                "Reason: Must be between 1 and 500.",
            )
        if any(t.source == source.name and t.status == RUNNING for t in self.tasks):
            raise AwsError(
                "UnsupportedOperation",
                "There is already a task running. Only one active task is allowed for a source "
                "queue arn at a given time.",
            )
        await source.core.settle_visible()
        # Messages whose visibility timeout has run out are moved even if
        # its timer has not fired yet (see get_queue_attributes).
        source.core.subscription.expire_leases()
        handle = base64.b64encode(
            json.dumps({"taskId": str(uuid.uuid4()), "sourceArn": source_arn}).encode()
        ).decode()
        task = MoveTask(
            handle,
            source_arn,
            source.name,
            str(destination_arn) if destination_arn else None,
            None if rate is None else int(rate),
            source.core.subscription.ready_count(),
            self.clock.wall_ms(),
        )
        self.tasks.append(task)
        task.task = asyncio.get_running_loop().create_task(self._run(task, source))
        return {"TaskHandle": handle}

    async def list(self, params: dict[str, Any], ctx: RequestContext) -> dict[str, Any]:
        source_arn = str(params["SourceArn"])
        try:
            self.queues.by_arn(source_arn)
        except AwsError:
            raise AwsError(
                "ResourceNotFoundException",
                "The resource that you specified for the SourceArn parameter doesn't exist.",
            ) from None
        limit = int(params.get("MaxResults") or 1)
        if not 1 <= limit <= 10:
            raise AwsError(
                "InvalidParameterValue",
                "Value for parameter MaxResults is invalid. Reason: Must be between 1 and 10.",
            )
        found = [t.describe() for t in reversed(self.tasks) if t.source_arn == source_arn]
        return {"Results": found[:limit]}

    async def cancel(self, params: dict[str, Any], ctx: RequestContext) -> dict[str, Any]:
        handle = str(params["TaskHandle"])
        for task in self.tasks:
            if task.handle == handle:
                if task.status != RUNNING:
                    break
                task.status = CANCELLING
                return {"ApproximateNumberOfMessagesMoved": task.moved}
        raise AwsError("ResourceNotFoundException", "Task does not exist.")

    # --- moving ---------------------------------------------------------------------

    async def _run(self, task: MoveTask, source: SqsQueue) -> None:
        sub = source.core.subscription
        try:
            while task.moved < task.to_move and task.status == RUNNING and not sub.closed:
                want = min(BATCH, task.to_move - task.moved)
                if task.rate is not None:
                    want = min(want, task.rate)
                deliveries = sub.pull(want, task, lease_ms=LEASE_MS)
                if not deliveries:
                    break
                await self._move(task, deliveries)
                sub.ack([d.token for d in deliveries])
                task.moved += len(deliveries)
                if task.rate is not None:
                    await self.clock.sleep(len(deliveries) / task.rate)
            task.status = CANCELLED if task.status == CANCELLING else COMPLETED
        except asyncio.CancelledError:
            task.status = CANCELLED
            raise
        except Exception as error:  # one failed task must not go unnoticed
            log.exception("message move task from %s failed", task.source)
            task.status = FAILED
            task.failure = str(error) or type(error).__name__
            if hasattr(error, "code"):
                task.failure = str(error.code)
        finally:
            if task.status in (RUNNING, CANCELLING):
                task.status = CANCELLED
            sub.release(task)

    async def _move(self, task: MoveTask, deliveries: list[Any]) -> None:
        by_target: dict[str, list[Record]] = {}
        for delivery in deliveries:
            record = delivery.record
            if task.destination_arn:
                target = self.queues.by_arn(task.destination_arn).name
            else:
                origin = records_.read_sqs_headers(record.headers).dead_letter_source
                if origin is None:
                    raise AwsError("FailedToFindSourceQueue", "A message has no source queue.")
                target = self.queues.by_name(origin).name
            headers = [(k, v) for k, v in record.headers if k != DEATHS]
            moved = Record(
                record.value, key=record.key, headers=headers, timestamp=record.timestamp
            )
            by_target.setdefault(target, []).append(moved)
        for target, batch in by_target.items():
            await self.manager.enqueue([target], batch)

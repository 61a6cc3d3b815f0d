"""Produce, Fetch, ListOffsets, DeleteRecords: records in and out."""

from __future__ import annotations

import asyncio
from typing import Any

from kio.schema.errors import ErrorCode

from dovecote.core.errors import BrokerError, OffsetOutOfRange
from dovecote.core.topic import (
    READ_COMMITTED,
    READ_UNCOMMITTED,
    Isolation,
    Partition,
    wait_for_appends,
)
from dovecote.kafka.build import ms
from dovecote.kafka.codec import Request, encode_fetch_response
from dovecote.kafka.errors import check_kafka_topic_name, error_code
from dovecote.kafka.handlers.context import Encoded, KafkaContext, Session

KAFKA_READ_COMMITTED = 1  # isolation_level in Fetch and ListOffsets


def isolation_of(body: Any) -> Isolation:
    """The request's isolation level (absent in old versions: read_uncommitted)."""
    level = getattr(body, "isolation_level", 0)
    return READ_COMMITTED if level == KAFKA_READ_COMMITTED else READ_UNCOMMITTED


# --- produce ---------------------------------------------------------------------


async def produce(ctx: KafkaContext, session: Session, request: Request) -> dict[str, Any] | None:
    body = request.body
    acks = body.acks
    if acks not in (0, 1, -1):
        code = ErrorCode.invalid_required_acks
        return _produce_response(
            [
                (name, tid, [(p.index, code, None) for p in t.partition_data])
                for name, tid, t in _topics(ctx, body)
            ]
        )
    durable = acks != 0
    results: list[tuple[Any, Any, list]] = []
    jobs = []
    for name, topic_id, entry in _topics(ctx, body):
        topic = ctx.core.topic(name) if name else None
        if topic is None and name and ctx.core.config.auto_create_topics:
            try:
                check_kafka_topic_name(name)
                topic = await ctx.core.ensure_topic(name)
            except (BrokerError, OSError):  # OSError: no room for the new topic
                topic = None
        rows: list = []
        results.append((name, topic_id, rows))
        for part in entry.partition_data:
            if topic is None or not 0 <= part.index < len(topic.partitions):
                rows.append((part.index, ErrorCode.unknown_topic_or_partition, None))
                continue
            if body.transactional_id is not None:
                rows.append((part.index, ErrorCode.transactional_id_authorization_failed, None))
                continue
            slot = [part.index, ErrorCode.none, None]
            rows.append(slot)
            jobs.append(_append(topic.partitions[part.index], part.records or b"", durable, slot))
    if jobs:
        await asyncio.gather(*jobs)
    if acks == 0:
        return None
    return _produce_response(results)


async def _append(partition: Partition, records: bytes, durable: bool, slot: list) -> None:
    try:
        result = await partition.append(records, durable=durable)
    except BrokerError as err:
        slot[1] = error_code(err)
        slot[2] = (-1, -1, partition.log_start_offset, str(err))
        return
    except OSError as err:  # StorageError: disk full or failing; nothing was acknowledged
        slot[1] = ErrorCode.kafka_storage_error
        slot[2] = (-1, -1, -1, str(err))
        return
    slot[2] = (result.base_offset, result.log_append_time, partition.log_start_offset, None)


def _topics(ctx: KafkaContext, body):
    for entry in body.topic_data:
        name, _topic = ctx.resolve(entry)
        yield name, getattr(entry, "topic_id", None), entry


def _produce_response(results) -> dict[str, Any]:
    return {
        "responses": [
            {
                "name": name,
                "topic_id": topic_id,
                "partition_responses": [
                    {
                        "index": index,
                        "error_code": code,
                        "base_offset": detail[0] if detail else -1,
                        "log_append_time": detail[1] if detail else -1,
                        "log_start_offset": detail[2] if detail else -1,
                        "record_errors": [],
                        "error_message": detail[3] if detail else None,
                    }
                    for index, code, detail in rows
                ],
            }
            for name, topic_id, rows in results
        ],
        "throttle_time": 0,
    }


# --- fetch -----------------------------------------------------------------------------


async def fetch(ctx: KafkaContext, session: Session, request: Request) -> Encoded:
    """Serve batches straight from segment files; long-poll until min_bytes
    arrive or max_wait passes."""
    body = request.body
    clock = ctx.core.clock
    deadline = clock.monotonic() + ms(body.max_wait) / 1000
    min_bytes = body.min_bytes
    isolation = isolation_of(body)
    # fetch.max.bytes: the broker's cap on one response, whatever the client asks
    max_bytes = min(getattr(body, "max_bytes", 0x7FFFFFFF), ctx.core.config.fetch_max_bytes)
    wanted: list[tuple[str | None, Any, list[tuple[int, int, int, Partition | None]]]] = []
    for entry in body.topics:
        name, topic = ctx.resolve(entry)
        parts = []
        for p in entry.partitions:
            partition = (
                topic.partitions[p.partition]
                if topic and 0 <= p.partition < len(topic.partitions)
                else None
            )
            parts.append((p.partition, p.fetch_offset, p.partition_max_bytes, partition))
        wanted.append((name, getattr(entry, "topic_id", None), parts))
    while True:
        topics, total, errors = _read(ctx, wanted, max_bytes, request.api_version >= 13, isolation)
        remaining = deadline - clock.monotonic()
        watched = [part for _, _, parts in wanted for *_, part in parts if part is not None]
        if total >= min_bytes or errors or remaining <= 0 or not watched:
            return Encoded(encode_fetch_response(request, request.api_version, 0, 0, 0, topics))
        await wait_for_appends(watched, remaining, clock)


def _read(
    ctx: KafkaContext, wanted, max_bytes: int, by_id: bool, isolation: Isolation
) -> tuple[list, int, bool]:
    """Read every wanted partition within the byte budgets; returns the
    topics in encode_fetch_response's shape, bytes read, and whether any
    partition answered with an error."""
    total = 0
    errors = False
    topics = []
    for name, topic_id, parts in wanted:
        rows = []
        for index, offset, part_max, partition in parts:
            if partition is None:
                code = (
                    ErrorCode.unknown_topic_id
                    if name is None
                    else ErrorCode.unknown_topic_or_partition
                )
                rows.append((index, code, -1, -1, -1, None, -1, b""))
                errors = True
                continue
            records: bytes = b""
            code = ErrorCode.none
            budget = min(part_max, max_bytes - total)
            try:
                if budget > 0 or total == 0:
                    chunk = partition.read(offset, max(budget, 1), isolation)
                    if chunk is not None:
                        records = chunk.read()
                        total += len(records)
            except OffsetOutOfRange:
                code = ErrorCode.offset_out_of_range
                errors = True
            rows.append(
                (
                    index,
                    code,
                    partition.high_watermark,
                    partition.last_stable_offset,
                    partition.log_start_offset,
                    None,
                    -1,
                    records,
                )
            )
        topics.append((topic_id if by_id else name, rows))
    return topics, total, errors


# --- list offsets and delete records ---------------------------------------------------


async def list_offsets(ctx: KafkaContext, session: Session, request: Request) -> dict[str, Any]:
    """Offsets by time, or the special timestamps (latest, earliest, max
    timestamp); the partition answers, capped at what the reader may see."""
    isolation = isolation_of(request.body)
    topics = []
    for entry in request.body.topics:
        topic = ctx.core.topic(entry.name)
        rows = []
        for p in entry.partitions:
            row = {
                "partition_index": p.partition_index,
                "error_code": ErrorCode.none,
                "timestamp": -1,
                "offset": -1,
                "leader_epoch": 0,
            }
            if topic is None or not 0 <= p.partition_index < len(topic.partitions):
                row["error_code"] = ErrorCode.unknown_topic_or_partition
                rows.append(row)
                continue
            found = topic.partitions[p.partition_index].offset_for_timestamp(p.timestamp, isolation)
            if found is not None:
                row["offset"], row["timestamp"] = found
            rows.append(row)
        topics.append({"name": entry.name, "partitions": rows})
    return {"throttle_time": 0, "topics": topics}


async def delete_records(ctx: KafkaContext, session: Session, request: Request) -> dict[str, Any]:
    topics = []
    for entry in request.body.topics:
        topic = ctx.core.topic(entry.name)
        rows = []
        for p in entry.partitions:
            row = {
                "partition_index": p.partition_index,
                "low_watermark": -1,
                "error_code": ErrorCode.none,
            }
            if topic is None or not 0 <= p.partition_index < len(topic.partitions):
                row["error_code"] = ErrorCode.unknown_topic_or_partition
            else:
                partition = topic.partitions[p.partition_index]
                offset = partition.high_watermark if p.offset == -1 else p.offset
                try:
                    row["low_watermark"] = partition.delete_records_before(offset)
                except OffsetOutOfRange:
                    row["error_code"] = ErrorCode.offset_out_of_range
            rows.append(row)
        topics.append({"name": entry.name, "partitions": rows})
    return {"throttle_time": 0, "topics": topics}

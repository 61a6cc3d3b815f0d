"""Core objects as JSON-ready dictionaries: what the admin API returns, the
CLI prints and the metrics endpoint counts. Read-only; no protocol types."""

from __future__ import annotations

import base64
import time
from typing import Any

from dovecote.core.broker import BrokerCore
from dovecote.core.consumer_protocol import ProtocolError, decode_assignment
from dovecote.core.groups import Group
from dovecote.core.queues import Queue
from dovecote.core.topic import Topic
from dovecote.storage.batch import Record


def encode_bytes(data: bytes | None) -> dict[str, Any]:
    """Bytes as text when they are UTF-8, else base64, saying which."""
    if data is None:
        return {"data": None, "encoding": None}
    try:
        return {"data": data.decode("utf-8"), "encoding": "utf-8"}
    except UnicodeDecodeError:
        return {"data": base64.b64encode(data).decode(), "encoding": "base64"}


def decode_bytes(value: str | None, encoding: str | None = "utf-8") -> bytes | None:
    if value is None:
        return None
    if encoding == "base64":
        return base64.b64decode(value)
    return value.encode("utf-8")


def record_view(record: Record, partition: int) -> dict[str, Any]:
    key = encode_bytes(record.key)
    value = encode_bytes(record.value)
    return {
        "partition": partition,
        "offset": record.offset,
        "timestamp": record.timestamp,
        "key": key["data"],
        "key_encoding": key["encoding"],
        "value": value["data"],
        "value_encoding": value["encoding"],
        "headers": [[k, encode_bytes(v)["data"]] for k, v in record.headers],
    }


def topic_summary(topic: Topic) -> dict[str, Any]:
    return {
        "name": topic.name,
        "id": topic.id,
        "partitions": len(topic.partitions),
        "internal": topic.internal,
        "messages": sum(p.high_watermark - p.log_start_offset for p in topic.partitions),
        "bytes": topic.size_bytes,
    }


def topic_detail(core: BrokerCore, topic: Topic) -> dict[str, Any]:
    from dovecote.core.config import TOPIC_CONFIGS

    configs = []
    for name in sorted(TOPIC_CONFIGS):
        explicit = name in topic.configs
        configs.append(
            {
                "name": name,
                "value": topic.configs[name] if explicit else core.config.topic_default(name),
                "source": "topic" if explicit else "default",
            }
        )
    return {
        **topic_summary(topic),
        "partition_details": [
            {
                "partition": p.index,
                "log_start_offset": p.log_start_offset,
                "high_watermark": p.high_watermark,
                "log_end_offset": p.log_end_offset,
                "segments": p.segment_count,
                "bytes": p.size_bytes,
            }
            for p in topic.partitions
        ],
        "configs": configs,
    }


def group_detail(core: BrokerCore, group: Group) -> dict[str, Any]:
    owners: dict[tuple[str, int], dict[str, Any]] = {}
    for member in group.members.values():
        for topic, partitions in decode_consumer_assignment(member.assignment).items():
            for partition in partitions:
                owners[(topic, partition)] = {
                    "member_id": member.member_id,
                    "client_id": member.client_id,
                    "host": member.client_host,
                    "instance_id": member.instance_id,
                }
    rows = []
    for topic_name, index in sorted(set(group.offsets) | set(owners)):
        committed = group.offsets.get((topic_name, index))
        topic = core.topic(topic_name)
        end = (
            topic.partitions[index].high_watermark
            if topic and index < len(topic.partitions)
            else None
        )
        rows.append(
            {
                "topic": topic_name,
                "partition": index,
                "committed_offset": committed.offset if committed else None,
                "log_end_offset": end,
                "lag": None if end is None or committed is None else max(0, end - committed.offset),
                "metadata": committed.metadata if committed else None,
                "owner": owners.get((topic_name, index)),
            }
        )
    return {
        "group_id": group.group_id,
        "state": group.state.value,
        "generation": group.generation,
        "protocol_type": group.protocol_type,
        "protocol": group.protocol_name,
        "members": [
            {
                "member_id": m.member_id,
                "instance_id": m.instance_id,
                "client_id": m.client_id,
                "host": m.client_host,
                "assignment": {t: ps for t, ps in decode_consumer_assignment(m.assignment).items()},
            }
            for m in group.members.values()
        ],
        "offsets": rows,
        "total_lag": sum(r["lag"] or 0 for r in rows),
    }


def group_summary(core: BrokerCore, group: Group) -> dict[str, Any]:
    detail = group_detail(core, group)
    return {
        "group_id": group.group_id,
        "state": group.state.value,
        "protocol_type": group.protocol_type,
        "members": len(group.members),
        "total_lag": detail["total_lag"],
    }


def decode_consumer_assignment(data: bytes) -> dict[str, list[int]]:
    """Topics and partitions of a member's assignment; unreadable -> {}."""
    try:
        return decode_assignment(data)
    except ProtocolError:
        return {}


def declared_by(queue: Queue) -> str:
    """Which protocol's declaration the queue carries: "sqs" (with its
    attributes), "amqp" (x-arguments or none) or "stream"."""
    if "sqs" in queue.arguments:
        return "sqs"
    if queue.settings.stream:
        return "stream"
    return "amqp"


def queue_view(core: BrokerCore, queue: Queue) -> dict[str, Any]:
    args = queue.settings
    delayed = queue.subscription.delayed_count()
    dlq_depth = None
    if args.dead_letter_queue and args.dead_letter_queue in core.queues.queues:
        dlq_depth = core.queues.queues[args.dead_letter_queue].message_count()
    elif args.dead_letter_exchange is not None:
        targets = (
            core.queues.router.route(
                args.dead_letter_exchange,
                args.dead_letter_routing_key or queue.name,
                {},
                queue_exists=core.queues.queues.__contains__,
            )
            if args.dead_letter_exchange in core.queues.router.exchanges
            else set()
        )
        if targets:
            dlq_depth = sum(
                core.queues.queues[t].message_count() for t in targets if t in core.queues.queues
            )
    return {
        "name": queue.name,
        "durable": queue.durable,
        "exclusive": queue.exclusive_owner is not None,
        "auto_delete": queue.auto_delete,
        # ready excludes delayed, as SQS's ApproximateNumberOfMessages does: the
        # core counts a delayed record once its cursor has reached it
        "messages_ready": max(0, queue.message_count() - delayed),
        "messages_unacked": queue.unacked_count(),
        "messages_delayed": delayed,
        "declared_by": declared_by(queue),
        "consumers": queue.consumers,
        "dead_letter_depth": dlq_depth,
        "arguments": queue.arguments,
        "idle_seconds": round(time.monotonic() - queue.last_used, 1),
    }

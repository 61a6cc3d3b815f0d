"""Prometheus text exposition of what an operator watches: partition offsets
and sizes, consumer lag per group and partition, queue depths, Pub/Sub
subscription backlogs."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from dovecote.core.broker import BrokerCore


def _labels(**labels: object) -> str:
    inner = ",".join(
        f'{k}="{str(v).replace(chr(92), chr(92) * 2).replace(chr(34), chr(92) + chr(34))}"'
        for k, v in labels.items()
    )
    return "{" + inner + "}"


def render_metrics(core: BrokerCore, pubsub_subscriptions: Iterable[Mapping[str, Any]] = ()) -> str:
    """``pubsub_subscriptions``: the Pub/Sub listener's subscription rows
    (``dovecote.pubsub.views``), if it runs."""
    lines: list[str] = []

    def family(name: str, kind: str, help_: str) -> None:
        lines.append(f"# HELP {name} {help_}")
        lines.append(f"# TYPE {name} {kind}")

    family("dovecote_partition_high_watermark", "gauge", "Offset after the last visible record.")
    for topic in core.topics.values():
        for p in topic.partitions:
            lines.append(
                f"dovecote_partition_high_watermark{_labels(topic=topic.name, partition=p.index)} {p.high_watermark}"
            )
    family("dovecote_partition_log_start_offset", "gauge", "First offset still stored.")
    for topic in core.topics.values():
        for p in topic.partitions:
            lines.append(
                f"dovecote_partition_log_start_offset{_labels(topic=topic.name, partition=p.index)} {p.log_start_offset}"
            )
    family("dovecote_partition_bytes", "gauge", "Bytes of segment files.")
    for topic in core.topics.values():
        for p in topic.partitions:
            lines.append(
                f"dovecote_partition_bytes{_labels(topic=topic.name, partition=p.index)} {p.size_bytes}"
            )
    family("dovecote_consumer_group_lag", "gauge", "High watermark minus committed offset.")
    family_rows = []
    for group in core.groups.groups.values():
        for (topic_name, index), committed in group.offsets.items():
            topic = core.topic(topic_name)
            if topic is None or index >= len(topic.partitions):
                continue
            lag = max(0, topic.partitions[index].high_watermark - committed.offset)
            family_rows.append(
                f"dovecote_consumer_group_lag{_labels(group=group.group_id, topic=topic_name, partition=index)} {lag}"
            )
    lines += family_rows
    family("dovecote_consumer_group_members", "gauge", "Members of each consumer group.")
    for group in core.groups.groups.values():
        lines.append(
            f"dovecote_consumer_group_members{_labels(group=group.group_id)} {len(group.members)}"
        )
    family("dovecote_queue_messages_ready", "gauge", "Messages waiting for delivery.")
    for queue in core.queues.queues.values():
        lines.append(
            f"dovecote_queue_messages_ready{_labels(queue=queue.name)} {queue.message_count()}"
        )
    family(
        "dovecote_queue_messages_unacked", "gauge", "Messages delivered and not yet acknowledged."
    )
    for queue in core.queues.queues.values():
        lines.append(
            f"dovecote_queue_messages_unacked{_labels(queue=queue.name)} {queue.unacked_count()}"
        )
    family("dovecote_queue_consumers", "gauge", "Consumers of each queue.")
    for queue in core.queues.queues.values():
        lines.append(f"dovecote_queue_consumers{_labels(queue=queue.name)} {queue.consumers}")
    subs = [s for s in pubsub_subscriptions if s.get("backlog") is not None]
    family(
        "dovecote_pubsub_subscription_backlog",
        "gauge",
        "Unacked messages of a Pub/Sub subscription (ready and in flight).",
    )
    for sub in subs:
        lines.append(
            f"dovecote_pubsub_subscription_backlog{_labels(subscription=sub['name'])} {sub['backlog']}"
        )
    family(
        "dovecote_pubsub_subscription_oldest_unacked_age_seconds",
        "gauge",
        "Age of the oldest unacked message of a Pub/Sub subscription (0: none).",
    )
    for sub in subs:
        age = sub.get("oldest_unacked_age_s") or 0
        lines.append(
            f"dovecote_pubsub_subscription_oldest_unacked_age_seconds{_labels(subscription=sub['name'])} {age}"
        )
    family("dovecote_fsync_rounds_total", "counter", "Group-commit flush rounds run.")
    lines.append(f"dovecote_fsync_rounds_total {core.flush_rounds}")
    memory = core.memory
    family(
        "dovecote_inflight_request_bytes", "gauge", "Bytes of requests received, not yet answered."
    )
    lines.append(f"dovecote_inflight_request_bytes {memory.used}")
    family(
        "dovecote_inflight_request_bytes_peak", "gauge", "Most bytes of requests ever in flight."
    )
    lines.append(f"dovecote_inflight_request_bytes_peak {memory.peak}")
    family("dovecote_inflight_request_bytes_limit", "gauge", "max_inflight_bytes (0: unlimited).")
    lines.append(f"dovecote_inflight_request_bytes_limit {max(memory.limit, 0)}")
    family(
        "dovecote_inflight_budget_waits_total",
        "counter",
        "Requests that waited for the in-flight budget (connections paused).",
    )
    lines.append(f"dovecote_inflight_budget_waits_total {memory.refusals}")
    family("dovecote_produce_throttled_total", "counter", "Produce requests throttled by quota.")
    lines.append(f"dovecote_produce_throttled_total {core.produce_quotas.throttled}")
    return "\n".join(lines) + "\n"

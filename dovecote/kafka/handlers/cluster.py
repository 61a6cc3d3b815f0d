"""ApiVersions, Metadata, DescribeCluster, FindCoordinator: who the cluster is."""

from __future__ import annotations

from typing import Any

from kio.schema.errors import ErrorCode

from dovecote.core.errors import BrokerError
from dovecote.kafka.codec import Request
from dovecote.kafka.errors import check_kafka_topic_name, error_code
from dovecote.kafka.handlers.context import KafkaContext, Session


def api_versions(
    ctx: KafkaContext, session: Session, request: Request, supported
) -> dict[str, Any]:
    return {
        "error_code": ErrorCode.none,
        "api_keys": [
            {"api_key": key, "min_version": lo, "max_version": hi}
            for key, (lo, hi) in sorted(supported.items())
        ],
        "throttle_time": 0,
        "supported_features": [],
        "finalized_features_epoch": -1,
        "finalized_features": [],
        "zk_migration_ready": False,
    }


def _partitions(ctx: KafkaContext, topic) -> list[dict[str, Any]]:
    return [
        {
            "error_code": ErrorCode.none,
            "partition_index": p.index,
            "leader_id": ctx.node_id,
            "leader_epoch": 0,
            "replica_nodes": (ctx.node_id,),
            "isr_nodes": (ctx.node_id,),
            "offline_replicas": (),
        }
        for p in topic.partitions
    ]


def _topic_entry(ctx: KafkaContext, topic) -> dict[str, Any]:
    return {
        "error_code": ErrorCode.none,
        "name": topic.name,
        "topic_id": ctx.topic_id(topic),
        "is_internal": topic.internal,
        "partitions": _partitions(ctx, topic),
        "topic_authorized_operations": -2147483648,
    }


async def metadata(ctx: KafkaContext, session: Session, request: Request) -> dict[str, Any]:
    body = request.body
    core = ctx.core
    entries = []
    requested = getattr(body, "topics", None)
    if requested is None:
        # All topics; Kafka lists internal ones too, flagged.
        entries = [_topic_entry(ctx, t) for t in core.topics.values()]
    else:
        auto = core.config.auto_create_topics and getattr(body, "allow_auto_topic_creation", True)
        if request.api_version < 4:
            auto = core.config.auto_create_topics
        for item in requested:
            name, topic = ctx.resolve(item)
            if topic is None and name and auto:
                try:
                    check_kafka_topic_name(name)
                    topic = await core.ensure_topic(name)
                except (BrokerError, OSError) as err:
                    entries.append(
                        _error_entry(name, getattr(item, "topic_id", None), error_code(err))
                    )
                    continue
            if topic is None:
                code = (
                    ErrorCode.unknown_topic_id
                    if name is None
                    else ErrorCode.unknown_topic_or_partition
                )
                entries.append(_error_entry(name, getattr(item, "topic_id", None), code))
                continue
            entries.append(_topic_entry(ctx, topic))
    return {
        "throttle_time": 0,
        "brokers": [ctx.broker_entry],
        "cluster_id": ctx.cluster_id,
        "controller_id": ctx.node_id,
        "topics": entries,
        "cluster_authorized_operations": -2147483648,
        "error_code": ErrorCode.none,
    }


def _error_entry(name, topic_id, code: ErrorCode) -> dict[str, Any]:
    return {
        "error_code": code,
        "name": name,
        "topic_id": topic_id,
        "is_internal": False,
        "partitions": [],
        "topic_authorized_operations": -2147483648,
    }


async def describe_cluster(ctx: KafkaContext, session: Session, request: Request) -> dict[str, Any]:
    return {
        "throttle_time": 0,
        "error_code": ErrorCode.none,
        "error_message": None,
        "endpoint_type": 1,
        "cluster_id": ctx.cluster_id,
        "controller_id": ctx.node_id,
        "brokers": [ctx.broker_entry],
        "cluster_authorized_operations": -2147483648,
    }


async def find_coordinator(ctx: KafkaContext, session: Session, request: Request) -> dict[str, Any]:
    """Every group's (and transaction's) coordinator is this broker."""
    body = request.body
    keys = list(getattr(body, "coordinator_keys", ()) or ())
    if not keys and getattr(body, "key", None) is not None:
        keys = [body.key]
    entries = [
        {
            "key": key,
            "node_id": ctx.node_id,
            "host": ctx.host,
            "port": ctx.port,
            "error_code": ErrorCode.none
            if not ctx.core.groups.loading
            else ErrorCode.coordinator_load_in_progress,
            "error_message": None,
        }
        for key in keys
    ]
    first = entries[0] if entries else {"error_code": ErrorCode.none, "node_id": ctx.node_id}
    return {
        "throttle_time": 0,
        "coordinators": entries,
        # v0-v3 carry a single coordinator at the top level
        "error_code": first["error_code"],
        "error_message": None,
        "node_id": ctx.node_id,
        "host": ctx.host,
        "port": ctx.port,
    }

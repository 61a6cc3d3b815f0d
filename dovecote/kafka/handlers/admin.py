"""CreateTopics, DeleteTopics, CreatePartitions, DescribeConfigs, AlterConfigs,
IncrementalAlterConfigs and InitProducerId."""

from __future__ import annotations

from typing import Any

from kio.schema.errors import ErrorCode

from dovecote.core.config import TOPIC_CONFIGS
from dovecote.core.errors import BrokerError, InvalidConfig, UnknownTopic
from dovecote.kafka.codec import Request
from dovecote.kafka.errors import check_kafka_topic_name, error_code
from dovecote.kafka.handlers.context import KafkaContext, Session

TOPIC_RESOURCE, BROKER_RESOURCE = 2, 4
SOURCE_TOPIC, SOURCE_STATIC_BROKER, SOURCE_DEFAULT = 1, 4, 5
OP_SET, OP_DELETE, OP_APPEND, OP_SUBTRACT = 0, 1, 2, 3
CONFIG_TYPES = {
    "retention.ms": 5,
    "retention.bytes": 5,
    "segment.bytes": 3,
    "segment.ms": 5,
    "max.message.bytes": 3,
    "index.interval.bytes": 3,
    "flush.ms": 5,
    "min.insync.replicas": 3,
    "delete.retention.ms": 5,
    "min.compaction.lag.ms": 5,
    "cleanup.policy": 7,
    "unclean.leader.election.enable": 1,
    "compression.gzip.level": 3,
    "compression.lz4.level": 3,
    "compression.zstd.level": 3,
    "file.delete.delay.ms": 5,
    "flush.messages": 5,
    "follower.replication.throttled.replicas": 7,
    "leader.replication.throttled.replicas": 7,
    "local.retention.bytes": 5,
    "local.retention.ms": 5,
    "max.compaction.lag.ms": 5,
    "message.downconversion.enable": 1,
    "message.timestamp.after.max.ms": 5,
    "message.timestamp.before.max.ms": 5,
    "message.timestamp.difference.max.ms": 5,
    "min.cleanable.dirty.ratio": 6,
    "preallocate": 1,
    "remote.log.copy.disable": 1,
    "remote.log.delete.on.disable": 1,
    "remote.storage.enable": 1,
    "segment.index.bytes": 3,
    "segment.jitter.ms": 5,
}  # 1 boolean, 2 string, 3 int, 5 long, 6 double, 7 list


def _outcome(err: BaseException | None) -> tuple[ErrorCode, str | None]:
    if err is None:
        return ErrorCode.none, None
    return error_code(err), str(err) or type(err).__name__


async def create_topics(ctx: KafkaContext, session: Session, request: Request) -> dict[str, Any]:
    body = request.body
    results = []
    for entry in body.topics:
        err: BaseException | None = None
        topic = None
        try:
            check_kafka_topic_name(entry.name)
            if entry.replication_factor not in (-1, 1):
                results.append(
                    _created(
                        ctx,
                        entry.name,
                        ErrorCode.invalid_replication_factor,
                        f"replication factor {entry.replication_factor} is larger than the "
                        "number of brokers (1)",
                        None,
                    )
                )
                continue
            partitions = entry.num_partitions
            if entry.assignments:
                partitions = len(entry.assignments)
            configs = {c.name: c.value for c in entry.configs}
            topic = await ctx.core.create_topic(
                entry.name, partitions, configs, validate_only=body.validate_only
            )
        except (BrokerError, OSError) as e:  # OSError: disk full or failing
            err = e
        code, message = _outcome(err)
        results.append(_created(ctx, entry.name, code, message, topic))
    return {"throttle_time": 0, "topics": results}


def _created(ctx: KafkaContext, name: str, code, message, topic) -> dict[str, Any]:
    return {
        "name": name,
        "topic_id": ctx.topic_id(topic) if topic is not None else None,
        "error_code": code,
        "error_message": message,
        "topic_config_error_code": 0,
        "num_partitions": len(topic.partitions) if topic is not None else -1,
        "replication_factor": 1 if topic is not None else -1,
        "configs": [
            {
                "name": c["name"],
                "value": c["value"],
                "read_only": False,
                "config_source": c["config_source"],
                "is_sensitive": False,
            }
            for c in _topic_configs(ctx, topic, None)
        ]
        if topic is not None
        else None,
    }


async def delete_topics(ctx: KafkaContext, session: Session, request: Request) -> dict[str, Any]:
    body = request.body
    entries = getattr(body, "topics", None)
    if entries is None:  # v0-v5: names only
        entries = [type("Named", (), {"name": n, "topic_id": None})() for n in body.topic_names]
    results = []
    for entry in entries:
        name, topic = ctx.resolve(entry)
        err: BaseException | None = None
        if topic is None:
            code = ErrorCode.unknown_topic_id if not name else ErrorCode.unknown_topic_or_partition
            results.append(
                {
                    "name": name,
                    "topic_id": getattr(entry, "topic_id", None),
                    "error_code": code,
                    "error_message": None,
                }
            )
            continue
        topic_id = ctx.topic_id(topic)
        try:
            await ctx.core.delete_topic(topic.name)
            ctx.topics_by_id.pop(topic_id, None)
        except (BrokerError, OSError) as e:  # OSError: disk full or failing
            err = e
        code, message = _outcome(err)
        results.append(
            {"name": topic.name, "topic_id": topic_id, "error_code": code, "error_message": message}
        )
    return {"throttle_time": 0, "responses": results}


async def create_partitions(
    ctx: KafkaContext, session: Session, request: Request
) -> dict[str, Any]:
    body = request.body
    results = []
    for entry in body.topics:
        err: BaseException | None = None
        try:
            await ctx.core.create_partitions(
                entry.name, entry.count, validate_only=body.validate_only
            )
        except (BrokerError, OSError) as e:  # OSError: disk full or failing
            err = e
        code, message = _outcome(err)
        results.append({"name": entry.name, "error_code": code, "error_message": message})
    return {"throttle_time": 0, "results": results}


# --- configs -------------------------------------------------------------------------


def _topic_configs(ctx: KafkaContext, topic, keys) -> list[dict[str, Any]]:
    out = []
    for name, definition in sorted(TOPIC_CONFIGS.items()):
        if keys and name not in keys:
            continue
        explicit = name in topic.configs
        value = topic.configs[name] if explicit else ctx.core.config.topic_default(name)
        out.append(
            {
                "name": name,
                "value": value,
                "read_only": False,
                "config_source": SOURCE_TOPIC if explicit else SOURCE_DEFAULT,
                "is_default": not explicit,
                "is_sensitive": False,
                "synonyms": [],
                "config_type": CONFIG_TYPES.get(name, 2),
                "documentation": definition.doc,
            }
        )
    return out


def _broker_configs(ctx: KafkaContext, keys) -> list[dict[str, Any]]:
    config = ctx.core.config
    values = {
        "broker.id": str(config.node_id),
        "node.id": str(config.node_id),
        "auto.create.topics.enable": str(config.auto_create_topics).lower(),
        "num.partitions": str(config.num_partitions),
        "message.max.bytes": str(config.message_max_bytes),
        "socket.request.max.bytes": str(config.max_request_bytes),
        "log.dirs": str(config.data_dir),
        "log.retention.check.interval.ms": str(config.retention_check_interval_ms),
        "group.initial.rebalance.delay.ms": str(config.group_initial_rebalance_delay_ms),
        "offsets.retention.minutes": str(config.offsets_retention_ms // 60000),
        "default.replication.factor": "1",
    }
    for name in TOPIC_CONFIGS:
        values[f"log.{name}" if not name.startswith("log.") else name] = config.topic_default(name)
    return [
        {
            "name": k,
            "value": v,
            "read_only": True,
            "config_source": SOURCE_STATIC_BROKER,
            "is_default": False,
            "is_sensitive": False,
            "synonyms": [],
            "config_type": 2,
            "documentation": None,
        }
        for k, v in sorted(values.items())
        if not keys or k in keys
    ]


async def describe_configs(ctx: KafkaContext, session: Session, request: Request) -> dict[str, Any]:
    results = []
    for resource in request.body.resources:
        keys = set(resource.configuration_keys or ())
        entry = {
            "resource_type": resource.resource_type,
            "resource_name": resource.resource_name,
            "error_code": ErrorCode.none,
            "error_message": None,
            "configs": [],
        }
        if resource.resource_type == TOPIC_RESOURCE:
            topic = ctx.core.topic(resource.resource_name)
            if topic is None:
                entry["error_code"] = ErrorCode.unknown_topic_or_partition
                entry["error_message"] = f"topic {resource.resource_name} does not exist"
            else:
                entry["configs"] = _topic_configs(ctx, topic, keys)
        elif resource.resource_type == BROKER_RESOURCE:
            entry["configs"] = _broker_configs(ctx, keys)
        else:
            entry["error_code"] = ErrorCode.invalid_request
            entry["error_message"] = f"unsupported resource type {resource.resource_type}"
        results.append(entry)
    return {"throttle_time": 0, "results": results}


async def _alter(
    ctx: KafkaContext,
    resource,
    sets: dict[str, str],
    deletes: list[str],
    replace: bool,
    validate_only: bool,
) -> dict[str, Any]:
    entry = {
        "resource_type": resource.resource_type,
        "resource_name": resource.resource_name,
        "error_code": ErrorCode.none,
        "error_message": None,
    }
    err: BaseException | None = None
    try:
        if resource.resource_type == BROKER_RESOURCE:
            raise InvalidConfig(
                "broker configs are static: set them in dovecote.toml or the environment"
            )
        if resource.resource_type != TOPIC_RESOURCE:
            raise InvalidConfig(f"unsupported resource type {resource.resource_type}")
        if ctx.core.topic(resource.resource_name) is None:
            raise UnknownTopic(resource.resource_name)
        await ctx.core.alter_topic_configs(
            resource.resource_name, sets, deletes, replace=replace, validate_only=validate_only
        )
    except (BrokerError, OSError) as e:
        err = e
    entry["error_code"], entry["error_message"] = _outcome(err)
    return entry


async def alter_configs(ctx: KafkaContext, session: Session, request: Request) -> dict[str, Any]:
    """Legacy AlterConfigs: the given configs replace all of the topic's."""
    body = request.body
    responses = []
    for resource in body.resources:
        sets = {c.name: c.value for c in resource.configs if c.value is not None}
        responses.append(await _alter(ctx, resource, sets, [], True, body.validate_only))
    return {"throttle_time": 0, "responses": responses}


async def incremental_alter_configs(
    ctx: KafkaContext, session: Session, request: Request
) -> dict[str, Any]:
    body = request.body
    responses = []
    for resource in body.resources:
        sets: dict[str, str] = {}
        deletes: list[str] = []
        topic = (
            ctx.core.topic(resource.resource_name)
            if resource.resource_type == TOPIC_RESOURCE
            else None
        )
        for c in resource.configs:
            if c.config_operation == OP_SET:
                sets[c.name] = c.value or ""
            elif c.config_operation == OP_DELETE:
                deletes.append(c.name)
            elif c.config_operation in (OP_APPEND, OP_SUBTRACT):
                current = (
                    topic.configs.get(c.name, ctx.core.config.topic_default(c.name))
                    if topic
                    else ""
                )
                items = [x for x in (current or "").split(",") if x]
                for value in (c.value or "").split(","):
                    if c.config_operation == OP_APPEND and value not in items:
                        items.append(value)
                    elif c.config_operation == OP_SUBTRACT and value in items:
                        items.remove(value)
                sets[c.name] = ",".join(items)
        responses.append(await _alter(ctx, resource, sets, deletes, False, body.validate_only))
    return {"throttle_time": 0, "responses": responses}


# --- producers ---------------------------------------------------------------------------


async def init_producer_id(ctx: KafkaContext, session: Session, request: Request) -> dict[str, Any]:
    body = request.body
    if body.transactional_id is not None:
        return {
            "throttle_time": 0,
            "error_code": ErrorCode.transactional_id_authorization_failed,
            "producer_id": -1,
            "producer_epoch": -1,
        }
    if getattr(body, "producer_id", -1) >= 0:
        # An idempotent producer asking to bump its epoch after an error (KIP-360).
        return {
            "throttle_time": 0,
            "error_code": ErrorCode.none,
            "producer_id": body.producer_id,
            "producer_epoch": (body.producer_epoch + 1) % 32767,
        }
    try:
        pid = await ctx.core.allocate_producer_id()
    except OSError:  # the id block could not be recorded: retriable, as Kafka's coordinator errors
        return {
            "throttle_time": 0,
            "error_code": ErrorCode.coordinator_not_available,
            "producer_id": -1,
            "producer_epoch": -1,
        }
    return {
        "throttle_time": 0,
        "error_code": ErrorCode.none,
        "producer_id": pid,
        "producer_epoch": 0,
    }

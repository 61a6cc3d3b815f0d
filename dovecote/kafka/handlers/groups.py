"""Consumer group APIs, translated onto the core's GroupCoordinator."""

from __future__ import annotations

from typing import Any

from kio.schema.errors import ErrorCode

from dovecote.core.groups import GroupError
from dovecote.kafka.build import ms
from dovecote.kafka.codec import Request
from dovecote.kafka.errors import group_error
from dovecote.kafka.handlers.context import KafkaContext, Session


async def join_group(ctx: KafkaContext, session: Session, request: Request) -> dict[str, Any]:
    body = request.body
    session_ms = ms(body.session_timeout)
    rebalance_ms = ms(getattr(body, "rebalance_timeout", body.session_timeout))
    if rebalance_ms < 0:
        rebalance_ms = session_ms
    result = await ctx.core.groups.join(
        body.group_id,
        body.member_id,
        getattr(body, "group_instance_id", None),
        session.client_id or "",
        session.client_host,
        session_ms,
        rebalance_ms,
        body.protocol_type,
        [(p.name, bytes(p.metadata)) for p in body.protocols],
        require_known_member=request.api_version >= 4,
    )
    return {
        "throttle_time": 0,
        "error_code": group_error(result.error),
        "generation_id": result.generation,
        "protocol_type": result.protocol_type,
        "protocol_name": result.protocol_name
        if request.api_version >= 7
        else (result.protocol_name or ""),
        "leader": result.leader,
        "skip_assignment": result.skip_assignment,
        "member_id": result.member_id,
        "members": [
            {"member_id": mid, "group_instance_id": iid, "metadata": meta}
            for mid, iid, meta in result.members
        ],
    }


async def sync_group(ctx: KafkaContext, session: Session, request: Request) -> dict[str, Any]:
    body = request.body
    result = await ctx.core.groups.sync(
        body.group_id,
        body.generation_id,
        body.member_id,
        getattr(body, "group_instance_id", None),
        getattr(body, "protocol_type", None),
        getattr(body, "protocol_name", None),
        {a.member_id: bytes(a.assignment) for a in body.assignments},
    )
    return {
        "throttle_time": 0,
        "error_code": group_error(result.error),
        "protocol_type": result.protocol_type,
        "protocol_name": result.protocol_name,
        "assignment": result.assignment,
    }


async def heartbeat(ctx: KafkaContext, session: Session, request: Request) -> dict[str, Any]:
    body = request.body
    error = ctx.core.groups.heartbeat(
        body.group_id, body.generation_id, body.member_id, getattr(body, "group_instance_id", None)
    )
    return {"throttle_time": 0, "error_code": group_error(error)}


async def leave_group(ctx: KafkaContext, session: Session, request: Request) -> dict[str, Any]:
    body = request.body
    members = getattr(body, "members", None)
    if members is None:  # v0-v2: one member
        identities = [(body.member_id, None)]
    else:
        identities = [(m.member_id, m.group_instance_id) for m in members]
    error, results = await ctx.core.groups.leave(body.group_id, identities)
    return {
        "throttle_time": 0,
        "error_code": group_error(error),
        "members": [
            {"member_id": mid, "group_instance_id": iid, "error_code": group_error(r)}
            for (mid, iid), r in zip(identities, results, strict=True)
        ],
    }


async def offset_commit(ctx: KafkaContext, session: Session, request: Request) -> dict[str, Any]:
    body = request.body
    generation = getattr(body, "generation_id_or_member_epoch", getattr(body, "generation_id", -1))
    offsets: dict[tuple[str, int], tuple[int, int, str | None]] = {}
    names = []
    for entry in body.topics:
        name, _topic = ctx.resolve(entry)
        names.append((entry, name))
        for p in entry.partitions:
            if name is not None:
                offsets[(name, p.partition_index)] = (
                    p.committed_offset,
                    getattr(p, "committed_leader_epoch", -1),
                    p.committed_metadata,
                )
    results = await ctx.core.groups.commit_offsets(
        body.group_id, generation, body.member_id, getattr(body, "group_instance_id", None), offsets
    )
    return {
        "throttle_time": 0,
        "topics": [
            {
                "name": name,
                "topic_id": getattr(entry, "topic_id", None),
                "partitions": [
                    {
                        "partition_index": p.partition_index,
                        "error_code": group_error(
                            results.get(
                                (name, p.partition_index), GroupError.UNKNOWN_TOPIC_OR_PARTITION
                            )
                        )
                        if name is not None
                        else ErrorCode.unknown_topic_id,
                    }
                    for p in entry.partitions
                ],
            }
            for entry, name in names
        ],
    }


def _fetched_group(ctx: KafkaContext, group_id: str, topics) -> dict[str, Any]:
    groups = ctx.core.groups
    if groups.loading:
        return {
            "group_id": group_id,
            "topics": [],
            "error_code": ErrorCode.coordinator_load_in_progress,
        }
    if topics is None:
        committed = groups.fetch_offsets(group_id, None)
        by_topic: dict[str, list[tuple[int, Any]]] = {}
        for (name, index), c in sorted(committed.items()):
            by_topic.setdefault(name, []).append((index, c))
        wanted = [(name, None, parts) for name, parts in by_topic.items()]
    else:
        wanted = []
        for t in topics:
            name, _topic = ctx.resolve(t)
            indexes = list(t.partition_indexes)
            found = groups.fetch_offsets(group_id, [(name, i) for i in indexes]) if name else {}
            wanted.append(
                (name, getattr(t, "topic_id", None), [(i, found.get((name, i))) for i in indexes])
            )
    return {
        "group_id": group_id,
        "error_code": ErrorCode.none,
        "topics": [
            {
                "name": name,
                "topic_id": topic_id if topic_id is not None else (_id_of(ctx, name)),
                "partitions": [
                    {
                        "partition_index": index,
                        "committed_offset": c.offset if c else -1,
                        "committed_leader_epoch": c.leader_epoch if c else -1,
                        "metadata": (c.metadata if c else "") or "",
                        "error_code": ErrorCode.none,
                    }
                    for index, c in parts
                ],
            }
            for name, topic_id, parts in wanted
        ],
    }


def _id_of(ctx: KafkaContext, name: str | None):
    topic = ctx.core.topic(name) if name else None
    return ctx.topic_id(topic) if topic else None


async def offset_fetch(ctx: KafkaContext, session: Session, request: Request) -> dict[str, Any]:
    body = request.body
    groups = getattr(body, "groups", None)
    if groups is not None:  # v8+: many groups per request
        return {
            "throttle_time": 0,
            "groups": [_fetched_group(ctx, g.group_id, g.topics) for g in groups],
        }
    group = _fetched_group(ctx, body.group_id, body.topics)
    return {"throttle_time": 0, "topics": group["topics"], "error_code": group["error_code"]}


async def offset_delete(ctx: KafkaContext, session: Session, request: Request) -> dict[str, Any]:
    body = request.body
    wanted = [(t.name, p.partition_index) for t in body.topics for p in t.partitions]
    error, results = await ctx.core.groups.delete_offsets(body.group_id, wanted)
    return {
        "error_code": group_error(error),
        "throttle_time": 0,
        "topics": [
            {
                "name": t.name,
                "partitions": [
                    {
                        "partition_index": p.partition_index,
                        "error_code": group_error(
                            results.get((t.name, p.partition_index), GroupError.NONE)
                        ),
                    }
                    for p in t.partitions
                ],
            }
            for t in body.topics
        ],
    }


async def describe_groups(ctx: KafkaContext, session: Session, request: Request) -> dict[str, Any]:
    out = []
    for group_id in request.body.groups:
        group = ctx.core.groups.groups.get(group_id)
        if group is None:
            out.append(
                {
                    "error_code": ErrorCode.none,
                    "group_id": group_id,
                    "group_state": "Dead",
                    "protocol_type": "",
                    "protocol_data": "",
                    "members": [],
                }
            )
            continue
        out.append(
            {
                "error_code": ErrorCode.none,
                "error_message": None,
                "group_id": group_id,
                "group_state": group.state.value,
                "protocol_type": group.protocol_type or "",
                "protocol_data": group.protocol_name or "",
                "members": [
                    {
                        "member_id": m.member_id,
                        "group_instance_id": m.instance_id,
                        "client_id": m.client_id,
                        "client_host": m.client_host,
                        "member_metadata": m.metadata(group.protocol_name or ""),
                        "member_assignment": m.assignment,
                    }
                    for m in group.members.values()
                ],
            }
        )
    return {"throttle_time": 0, "groups": out}


async def list_groups(ctx: KafkaContext, session: Session, request: Request) -> dict[str, Any]:
    body = request.body
    states = set(getattr(body, "states_filter", ()) or ())
    types_ = set(getattr(body, "types_filter", ()) or ())
    groups = [
        {
            "group_id": g.group_id,
            "protocol_type": g.protocol_type or "",
            "group_state": g.state.value,
            "group_type": "classic",
        }
        for g in ctx.core.groups.list_groups()
        if (not states or g.state.value in states) and (not types_ or "classic" in types_)
    ]
    return {"throttle_time": 0, "error_code": ErrorCode.none, "groups": groups}


async def delete_groups(ctx: KafkaContext, session: Session, request: Request) -> dict[str, Any]:
    results = await ctx.core.groups.delete_groups(list(request.body.groups_names))
    return {
        "throttle_time": 0,
        "results": [{"group_id": g, "error_code": group_error(e)} for g, e in results.items()],
    }

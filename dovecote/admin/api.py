"""The HTTP admin API (JSON under /v1, Prometheus text at /metrics).

Thin: each handler parses the request, calls the core and returns a view.
The ``dovecote`` CLI is a client of this API.
"""

from __future__ import annotations

import errno
import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from dovecote.admin import views
from dovecote.admin.metrics import render_metrics
from dovecote.admin.openapi import SPEC
from dovecote.core.broker import BrokerCore
from dovecote.core.errors import (
    BrokerError,
    InvalidConfig,
    InvalidPartitions,
    InvalidRecord,
    InvalidTopicName,
    MessageTooLarge,
    OffsetOutOfRange,
    PolicyViolation,
    TopicExists,
    UnknownPartition,
    UnknownTopic,
)
from dovecote.core.groups import GroupError, State
from dovecote.core.local_member import LocalMember
from dovecote.core.partitioner import Partitioner
from dovecote.core.queues import AccessRefused, NotFound, PreconditionFailed, ResourceLocked
from dovecote.core.topic import wait_for_appends
from dovecote.storage.batch import Record

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

STATUS = [
    ((UnknownTopic, UnknownPartition, NotFound), 404),
    ((TopicExists, PreconditionFailed, ResourceLocked), 409),
    ((InvalidConfig, InvalidPartitions, InvalidTopicName, InvalidRecord, OffsetOutOfRange), 400),
    ((MessageTooLarge,), 413),
    ((PolicyViolation, AccessRefused), 403),
]
MAX_WAIT_MS = 30_000


async def json_object(request: web.Request) -> dict[str, Any]:
    """The request's JSON body, which every route that takes one wants as an object."""
    body = await request.json()
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(
            text=json.dumps({"error": "the body must be a JSON object"}),
            content_type="application/json",
        )
    return body


def error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


@web.middleware
async def errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException:
        raise
    except BrokerError as err:
        for kinds, status in STATUS:
            if isinstance(err, kinds):
                return error(status, str(err) or type(err).__name__)
        return error(500, str(err))
    except (json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as err:
        # AttributeError: a nested JSON value of the wrong shape (a list where
        # an object belongs); the handlers only call methods on client JSON.
        return error(400, f"bad request: {err!r}")
    except OSError as err:  # disk full or failing: nothing was done
        return error(507 if err.errno == errno.ENOSPC else 503, f"storage error: {err}")


class AdminApi:
    def __init__(self, core: BrokerCore, broker=None) -> None:
        self.core = core
        self.broker = broker
        self.partitioner = Partitioner()
        # Broker-side group members of clients without a Kafka connection, by session id.
        self.members: dict[str, LocalMember] = {}

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/v1/health", self.health),
            web.get("/v1/cluster", self.cluster),
            web.get("/v1/openapi.json", self.openapi),
            web.get("/metrics", self.metrics),
            web.get("/v1/topics", self.list_topics),
            web.post("/v1/topics", self.create_topic),
            web.get("/v1/topics/{topic}", self.describe_topic),
            web.delete("/v1/topics/{topic}", self.delete_topic),
            web.patch("/v1/topics/{topic}/configs", self.alter_topic),
            web.post("/v1/topics/{topic}/partitions", self.add_partitions),
            web.post("/v1/topics/{topic}/records", self.produce),
            web.get("/v1/topics/{topic}/partitions/{partition}/records", self.consume),
            web.get("/v1/topics/{topic}/offsets", self.offsets),
            web.get("/v1/groups", self.list_groups),
            web.get("/v1/groups/{group}", self.describe_group),
            web.delete("/v1/groups/{group}", self.delete_group),
            web.post("/v1/groups/{group}/offsets", self.commit_offsets),
            web.post("/v1/groups/{group}/members", self.join_group),
            web.get("/v1/groups/{group}/members/{session}", self.poll_member),
            web.delete("/v1/groups/{group}/members/{session}", self.leave_group),
            web.post("/v1/groups/{group}/reset-offsets", self.reset_offsets),
            web.get("/v1/queues", self.list_queues),
            web.get("/v1/queues/{queue}", self.describe_queue),
            web.post("/v1/queues/{queue}/purge", self.purge_queue),
            web.get("/v1/exchanges", self.list_exchanges),
            web.get("/v1/bindings", self.list_bindings),
            web.get("/v1/sns/topics", self.list_sns_topics),
            web.get("/v1/pubsub/topics", self.list_pubsub_topics),
            web.get("/v1/pubsub/subscriptions", self.list_pubsub_subscriptions),
        ]

    # --- broker -------------------------------------------------------------------

    async def health(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok" if not self.core.loading else "loading"})

    async def cluster(self, request: web.Request) -> web.Response:
        from dovecote import __version__

        return web.json_response(
            {
                "version": __version__,
                "node_id": self.core.config.node_id,
                "data_dir": str(self.core.data_dir.resolve()),
                "listeners": self.broker.addresses() if self.broker is not None else {},
                "flush_policy": self.core.config.topic_default("flush.policy"),
                "topics": len(self.core.topics),
            }
        )

    async def openapi(self, request: web.Request) -> web.Response:
        return web.json_response(SPEC)

    async def metrics(self, request: web.Request) -> web.Response:
        subscriptions = self._listener_objects("pubsub").get("pubsub_subscriptions", [])
        return web.Response(
            text=render_metrics(self.core, subscriptions), content_type="text/plain"
        )

    def _listener_objects(self, name: str) -> dict[str, Any]:
        """A protocol listener's own objects (``admin_objects``), {} without it."""
        listener = self.broker.listeners.get(name) if self.broker is not None else None
        return listener.admin_objects() if hasattr(listener, "admin_objects") else {}

    # --- topics ---------------------------------------------------------------------

    async def list_topics(self, request: web.Request) -> web.Response:
        internal = request.query.get("internal") == "true"
        topics = [
            views.topic_summary(t) for t in self.core.topics.values() if internal or not t.internal
        ]
        return web.json_response(sorted(topics, key=lambda t: t["name"]))

    async def create_topic(self, request: web.Request) -> web.Response:
        body = await json_object(request)
        topic = await self.core.create_topic(
            body["name"],
            body.get("partitions"),
            {k: str(v) for k, v in body.get("configs", {}).items()},
        )
        assert topic is not None
        return web.json_response(views.topic_detail(self.core, topic), status=201)

    async def describe_topic(self, request: web.Request) -> web.Response:
        topic = self.core.get_topic(request.match_info["topic"])
        return web.json_response(views.topic_detail(self.core, topic))

    async def delete_topic(self, request: web.Request) -> web.Response:
        await self.core.delete_topic(request.match_info["topic"])
        return web.json_response({"deleted": request.match_info["topic"]})

    async def alter_topic(self, request: web.Request) -> web.Response:
        body = await json_object(request)
        name = request.match_info["topic"]
        await self.core.alter_topic_configs(
            name, {k: str(v) for k, v in body.get("set", {}).items()}, body.get("delete", [])
        )
        return web.json_response(views.topic_detail(self.core, self.core.get_topic(name)))

    async def add_partitions(self, request: web.Request) -> web.Response:
        body = await json_object(request)
        name = request.match_info["topic"]
        await self.core.create_partitions(name, int(body["count"]))
        return web.json_response(views.topic_detail(self.core, self.core.get_topic(name)))

    # --- records --------------------------------------------------------------------------

    async def produce(self, request: web.Request) -> web.Response:
        """Append records: {"records": [{"key", "value", "headers", "partition",
        "encoding"}]}. Keyed records are placed as Kafka's Java client would."""
        body = await json_object(request)
        name = request.match_info["topic"]
        topic = self.core.topic(name)
        if topic is None:
            if not self.core.config.auto_create_topics:
                raise UnknownTopic(name)
            topic = await self.core.ensure_topic(name)
        by_partition: dict[int, list[Record]] = {}
        for item in body["records"]:
            encoding = item.get("encoding", "utf-8")
            key = views.decode_bytes(item.get("key"), encoding)
            record = Record(
                views.decode_bytes(item.get("value"), encoding),
                key=key,
                headers=[
                    (str(h), views.decode_bytes(v, encoding)) for h, v in item.get("headers", [])
                ],
            )
            partition = item.get("partition")
            if partition is None:
                partition = self.partitioner.choose(key, len(topic.partitions))
            if not 0 <= int(partition) < len(topic.partitions):
                raise UnknownPartition(f"{name}-{partition}")
            by_partition.setdefault(int(partition), []).append(record)
        results = []
        for index, records in by_partition.items():
            appended = await topic.partitions[index].append_records(records)
            results.append(
                {"partition": index, "base_offset": appended.base_offset, "count": len(records)}
            )
        return web.json_response({"results": results})

    async def consume(self, request: web.Request) -> web.Response:
        """Records of one partition from ``offset``; with ``timeout_ms`` waits
        for new data like a Kafka fetch."""
        partition = self.core.partition(
            request.match_info["topic"], int(request.match_info["partition"])
        )
        offset = int(request.query.get("offset", partition.log_start_offset))
        max_bytes = min(int(request.query.get("max_bytes", 1 << 20)), 16 << 20)
        max_records = int(request.query.get("max_records", 1000))
        timeout = min(int(request.query.get("timeout_ms", 0)), MAX_WAIT_MS) / 1000
        if offset >= partition.high_watermark and timeout > 0:
            await wait_for_appends([partition], timeout, self.core.clock)
        records = partition.read_records(offset, max_bytes)[:max_records]
        next_offset = records[-1].offset + 1 if records else max(offset, partition.log_start_offset)
        return web.json_response(
            {
                "records": [views.record_view(r, partition.index) for r in records],
                "next_offset": next_offset,
                "high_watermark": partition.high_watermark,
                "log_start_offset": partition.log_start_offset,
            }
        )

    async def offsets(self, request: web.Request) -> web.Response:
        """Per partition: earliest, latest, or the first offset at or after ?timestamp=ms."""
        topic = self.core.get_topic(request.match_info["topic"])
        timestamp = request.query.get("timestamp")
        out = []
        for p in topic.partitions:
            row: dict[str, Any] = {
                "partition": p.index,
                "earliest": p.log_start_offset,
                "latest": p.high_watermark,
            }
            if timestamp is not None:
                found = p.offset_for_timestamp(int(timestamp))
                row["offset_for_timestamp"] = found.offset if found else p.high_watermark
            out.append(row)
        return web.json_response(out)

    # --- groups -----------------------------------------------------------------------------

    async def list_groups(self, request: web.Request) -> web.Response:
        groups = self.core.groups.list_groups()
        return web.json_response(
            sorted((views.group_summary(self.core, g) for g in groups), key=lambda g: g["group_id"])
        )

    def _group(self, request: web.Request):
        group = self.core.groups.groups.get(request.match_info["group"])
        if group is None:
            raise NotFound(f"no group '{request.match_info['group']}'")
        return group

    async def describe_group(self, request: web.Request) -> web.Response:
        return web.json_response(views.group_detail(self.core, self._group(request)))

    async def delete_group(self, request: web.Request) -> web.Response:
        name = request.match_info["group"]
        result = (await self.core.groups.delete_groups([name]))[name]
        if result == GroupError.GROUP_ID_NOT_FOUND:
            raise NotFound(f"no group '{name}'")
        if result != GroupError.NONE:
            raise PreconditionFailed(f"group '{name}': {result.value}")
        return web.json_response({"deleted": name})

    async def commit_offsets(self, request: web.Request) -> web.Response:
        """Commit {"offsets": [{"topic", "partition", "offset"}]}: as a standalone
        consumer, or with "session" as that broker-side member (its generation)."""
        body = await json_object(request)
        name = request.match_info["group"]
        offsets = {
            (o["topic"], int(o["partition"])): (int(o["offset"]), -1, o.get("metadata"))
            for o in body["offsets"]
        }
        generation, member_id = -1, ""
        if body.get("session") is not None:
            member = self._member(name, str(body["session"]))
            generation, member_id = member.generation, member.member_id
        results = await self.core.groups.commit_offsets(name, generation, member_id, None, offsets)
        failed = {f"{t}-{p}": e.value for (t, p), e in results.items() if e != GroupError.NONE}
        if failed:
            raise PreconditionFailed(f"commit refused: {failed}")
        return web.json_response({"committed": len(results)})

    async def join_group(self, request: web.Request) -> web.Response:
        """Join as a broker-side member: {"topics": [...], "client_id"?, "session_timeout_ms"?}.
        Answers once the first assignment is in; poll the session to stay in."""
        self._reap_members()
        body = await json_object(request)
        topics = [str(t) for t in body["topics"]]
        if not topics:
            raise ValueError("topics: subscribe to at least one")
        for topic in topics:
            self.core.get_topic(topic)  # 404 for an unknown topic
        peer = request.remote or "unknown"
        member = LocalMember(
            self.core.groups,
            request.match_info["group"],
            topics,
            client_id=str(body.get("client_id") or "dovecote-cli"),
            client_host=f"/{peer}",
            session_timeout_ms=int(body.get("session_timeout_ms") or 10_000),
        )
        self.members[member.session_id] = member
        await member.start(timeout=min(MAX_WAIT_MS, member.session_timeout_ms * 3) / 1000)
        return web.json_response(member.poll(), status=201)

    async def poll_member(self, request: web.Request) -> web.Response:
        member = self._member(request.match_info["group"], request.match_info["session"])
        return web.json_response(member.poll())

    async def leave_group(self, request: web.Request) -> web.Response:
        member = self._member(request.match_info["group"], request.match_info["session"])
        del self.members[member.session_id]
        await member.close()
        return web.json_response({"left": member.session_id})

    def _member(self, group: str, session: str) -> LocalMember:
        self._reap_members()
        member = self.members.get(session)
        if member is None or member.group_id != group:
            raise NotFound(f"no member session '{session}' in group '{group}'")
        return member

    def _reap_members(self) -> None:
        """Forget sessions whose member left (its client went silent)."""
        for session, member in list(self.members.items()):
            if member.closed and member.error is None:
                del self.members[session]

    async def close(self) -> None:
        """The admin listener stops: its members leave their groups."""
        members, self.members = list(self.members.values()), {}
        for member in members:
            await member.close()

    async def reset_offsets(self, request: web.Request) -> web.Response:
        """Move a group's committed offsets (group must have no members):
        {"topic", "to": earliest|latest|timestamp|offset|shift, "value", "dry_run": true}."""
        body = await json_object(request)
        name = request.match_info["group"]
        group = self.core.groups.groups.get(name)
        if group is not None and group.members and group.state != State.EMPTY:
            raise PreconditionFailed(f"group '{name}' has active members; stop them first")
        topic = self.core.get_topic(body["topic"])
        partitions = body.get("partitions") or list(range(len(topic.partitions)))
        to = body.get("to", "earliest")
        value = body.get("value")
        current = self.core.groups.fetch_offsets(name, [(topic.name, i) for i in partitions])
        plan = []
        for index in partitions:
            p = topic.partitions[int(index)]
            if to == "earliest":
                target = p.log_start_offset
            elif to == "latest":
                target = p.high_watermark
            elif to == "timestamp":
                found = p.offset_for_timestamp(int(value))
                target = found.offset if found else p.high_watermark
            elif to == "offset":
                target = int(value)
            elif to == "shift":
                committed = current.get((topic.name, int(index)))
                target = (committed.offset if committed else p.log_start_offset) + int(value)
            else:
                raise InvalidConfig(f"unknown reset target {to!r}")
            target = min(max(target, p.log_start_offset), p.high_watermark)
            before = current.get((topic.name, int(index)))
            plan.append(
                {
                    "topic": topic.name,
                    "partition": int(index),
                    "current": before.offset if before else None,
                    "new": target,
                }
            )
        dry_run = body.get("dry_run", True)
        if not dry_run:
            await self.core.groups.commit_offsets(
                name,
                -1,
                "",
                None,
                {(r["topic"], r["partition"]): (r["new"], -1, None) for r in plan},
            )
        return web.json_response({"dry_run": dry_run, "offsets": plan})

    # --- queues and routing --------------------------------------------------------------

    async def list_queues(self, request: web.Request) -> web.Response:
        queues = self.core.queues.queues.values()
        return web.json_response(
            sorted((views.queue_view(self.core, q) for q in queues), key=lambda q: q["name"])
        )

    async def describe_queue(self, request: web.Request) -> web.Response:
        queue = self.core.queues.get_queue(request.match_info["queue"])
        return web.json_response(views.queue_view(self.core, queue))

    async def list_sns_topics(self, request: web.Request) -> web.Response:
        """SNS topics live in the AWS listener (the core sees fanout exchanges)."""
        listener = self.broker.listeners.get("aws") if self.broker is not None else None
        objects = listener.admin_objects() if hasattr(listener, "admin_objects") else {}
        return web.json_response(objects.get("sns_topics", []))

    async def list_pubsub_topics(self, request: web.Request) -> web.Response:
        """Pub/Sub topics live in the Pub/Sub listener (the core sees their log topics)."""
        return web.json_response(self._listener_objects("pubsub").get("pubsub_topics", []))

    async def list_pubsub_subscriptions(self, request: web.Request) -> web.Response:
        """Pub/Sub subscriptions with backlog, oldest unacked age, DLQ depth, push health."""
        objects = self._listener_objects("pubsub")
        return web.json_response(objects.get("pubsub_subscriptions", []))

    async def purge_queue(self, request: web.Request) -> web.Response:
        count = await self.core.queues.purge_queue(request.match_info["queue"])
        return web.json_response({"purged": count})

    async def list_exchanges(self, request: web.Request) -> web.Response:
        exchanges = self.core.queues.router.exchanges.values()
        return web.json_response(
            sorted(
                (
                    {
                        "name": e.name,
                        "type": e.type,
                        "durable": e.durable,
                        "auto_delete": e.auto_delete,
                        "internal": e.internal,
                        "bindings": len(e.bindings),
                        "arguments": e.arguments,
                    }
                    for e in exchanges
                ),
                key=lambda e: e["name"],
            )
        )

    async def list_bindings(self, request: web.Request) -> web.Response:
        out = [
            {
                "source": b.source,
                "destination": b.destination,
                "destination_type": b.kind,
                "routing_key": b.routing_key,
                "arguments": dict(b.arguments),
            }
            for e in self.core.queues.router.exchanges.values()
            for b in e.bindings
        ]
        return web.json_response(out)


def build_app(core: BrokerCore, broker=None) -> web.Application:
    app = web.Application(middlewares=[errors_middleware], client_max_size=64 << 20)
    api = AdminApi(core, broker)
    app.add_routes(api.routes())

    async def leave_groups(_app: web.Application) -> None:
        await api.close()

    app.on_shutdown.append(leave_groups)
    return app

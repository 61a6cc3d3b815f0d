"""OpenAPI 3 description of the admin API (served at /v1/openapi.json)."""

from __future__ import annotations

from typing import Any

from dovecote import __version__


def _op(
    summary: str,
    *,
    params: list[dict] | None = None,
    body: dict | None = None,
    responses: dict[str, str] | None = None,
) -> dict[str, Any]:
    op: dict[str, Any] = {"summary": summary, "responses": {}}
    for code, text in (responses or {"200": "OK"}).items():
        op["responses"][code] = {
            "description": text,
            "content": {"application/json": {"schema": {}}},
        }
    if params:
        op["parameters"] = params
    if body is not None:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": body}}}
    return op


def _path(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}


def _query(name: str, kind: str = "integer") -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": {"type": kind}}


ERRORS = {"400": "Bad request", "404": "Not found", "409": "Conflict"}
RECORD = {
    "type": "object",
    "properties": {
        "key": {"type": "string", "nullable": True},
        "value": {"type": "string", "nullable": True},
        "headers": {"type": "array", "items": {"type": "array", "items": {"type": "string"}}},
        "partition": {"type": "integer", "nullable": True},
        "encoding": {"type": "string", "enum": ["utf-8", "base64"]},
    },
}

QUEUE = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "declared_by": {
            "type": "string",
            "enum": ["amqp", "sqs", "stream"],
            "description": "the protocol whose declaration the queue carries",
        },
        "durable": {"type": "boolean"},
        "exclusive": {"type": "boolean"},
        "auto_delete": {"type": "boolean"},
        "messages_ready": {"type": "integer", "description": "deliverable, not delayed"},
        "messages_unacked": {"type": "integer", "description": "in flight (leased)"},
        "messages_delayed": {"type": "integer", "description": "waiting for their delay"},
        "consumers": {"type": "integer"},
        "dead_letter_depth": {
            "type": "integer",
            "nullable": True,
            "description": "messages in its dead-letter queue (SQS RedrivePolicy or AMQP "
            "dead-letter exchange); null without one",
        },
        "arguments": {
            "type": "object",
            "description": "AMQP x-arguments; an SQS queue's attributes and tags under sqs",
        },
        "idle_seconds": {"type": "number"},
    },
}


def _returning(op: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    op["responses"]["200"]["content"]["application/json"]["schema"] = schema
    return op


SPEC: dict[str, Any] = {
    "openapi": "3.0.3",
    "info": {"title": "Dovecote admin API", "version": __version__},
    "paths": {
        "/v1/health": {"get": _op("Liveness and loading state")},
        "/v1/cluster": {"get": _op("Broker version, listeners and settings")},
        "/metrics": {
            "get": {
                "summary": "Prometheus metrics",
                "responses": {
                    "200": {
                        "description": "OK",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    }
                },
            }
        },
        "/v1/topics": {
            "get": _op("List topics", params=[_query("internal", "boolean")]),
            "post": _op(
                "Create a topic",
                body={
                    "type": "object",
                    "required": ["name"],
                    "properties": {
                        "name": {"type": "string"},
                        "partitions": {"type": "integer"},
                        "configs": {"type": "object", "additionalProperties": {"type": "string"}},
                    },
                },
                responses={"201": "Created", **ERRORS},
            ),
        },
        "/v1/topics/{topic}": {
            "get": _op(
                "Describe a topic",
                params=[_path("topic")],
                responses={"200": "OK", "404": "Not found"},
            ),
            "delete": _op(
                "Delete a topic",
                params=[_path("topic")],
                responses={"200": "OK", "404": "Not found"},
            ),
        },
        "/v1/topics/{topic}/configs": {
            "patch": _op(
                "Set or delete topic configs",
                params=[_path("topic")],
                body={
                    "type": "object",
                    "properties": {
                        "set": {"type": "object", "additionalProperties": {"type": "string"}},
                        "delete": {"type": "array", "items": {"type": "string"}},
                    },
                },
                responses={"200": "OK", **ERRORS},
            )
        },
        "/v1/topics/{topic}/partitions": {
            "post": _op(
                "Raise the partition count",
                params=[_path("topic")],
                body={
                    "type": "object",
                    "required": ["count"],
                    "properties": {"count": {"type": "integer"}},
                },
                responses={"200": "OK", **ERRORS},
            )
        },
        "/v1/topics/{topic}/records": {
            "post": _op(
                "Produce records",
                params=[_path("topic")],
                body={
                    "type": "object",
                    "required": ["records"],
                    "properties": {"records": {"type": "array", "items": RECORD}},
                },
                responses={"200": "OK", **ERRORS, "413": "Too large"},
            )
        },
        "/v1/topics/{topic}/partitions/{partition}/records": {
            "get": _op(
                "Read records of one partition (long-polls with timeout_ms)",
                params=[
                    _path("topic"),
                    _path("partition"),
                    _query("offset"),
                    _query("max_bytes"),
                    _query("max_records"),
                    _query("timeout_ms"),
                ],
                responses={"200": "OK", **ERRORS},
            )
        },
        "/v1/topics/{topic}/offsets": {
            "get": _op(
                "Earliest, latest and by-timestamp offsets",
                params=[_path("topic"), _query("timestamp")],
            )
        },
        "/v1/groups": {"get": _op("List consumer groups with lag")},
        "/v1/groups/{group}": {
            "get": _op(
                "Describe a group: members, offsets, lag",
                params=[_path("group")],
                responses={"200": "OK", "404": "Not found"},
            ),
            "delete": _op(
                "Delete an empty group", params=[_path("group")], responses={"200": "OK", **ERRORS}
            ),
        },
        "/v1/groups/{group}/offsets": {
            "post": _op(
                "Commit offsets: as a standalone consumer, or with session as that member",
                params=[_path("group")],
                body={
                    "type": "object",
                    "required": ["offsets"],
                    "properties": {
                        "offsets": {"type": "array", "items": {"type": "object"}},
                        "session": {"type": "string"},
                    },
                },
                responses={"200": "OK", **ERRORS},
            )
        },
        "/v1/groups/{group}/members": {
            "post": _op(
                "Join the group as a broker-side consumer member; answers with its first"
                " assignment. Poll the session within session_timeout_ms to stay in.",
                params=[_path("group")],
                body={
                    "type": "object",
                    "required": ["topics"],
                    "properties": {
                        "topics": {"type": "array", "items": {"type": "string"}},
                        "client_id": {"type": "string"},
                        "session_timeout_ms": {"type": "integer"},
                    },
                },
                responses={"201": "Joined", **ERRORS},
            )
        },
        "/v1/groups/{group}/members/{session}": {
            "get": _op(
                "The member's generation and assignment (also keeps it in the group)",
                params=[_path("group"), _path("session")],
                responses={"200": "OK", **ERRORS},
            ),
            "delete": _op(
                "Leave the group",
                params=[_path("group"), _path("session")],
                responses={"200": "OK", **ERRORS},
            ),
        },
        "/v1/groups/{group}/reset-offsets": {
            "post": _op(
                "Plan (dry run, the default) or apply an offset reset",
                params=[_path("group")],
                body={
                    "type": "object",
                    "required": ["topic"],
                    "properties": {
                        "topic": {"type": "string"},
                        "to": {
                            "type": "string",
                            "enum": ["earliest", "latest", "timestamp", "offset", "shift"],
                        },
                        "value": {"type": "integer"},
                        "partitions": {"type": "array", "items": {"type": "integer"}},
                        "dry_run": {"type": "boolean"},
                    },
                },
                responses={"200": "OK", **ERRORS},
            )
        },
        "/v1/sns/topics": {
            "get": _op(
                "List SNS topics with their subscriptions (protocol, endpoint, filter, "
                "ready and in-flight messages of each subscription's queue)"
            )
        },
        "/v1/pubsub/topics": {
            "get": _op(
                "List Pub/Sub topics with their log topic, stored message count, "
                "subscriptions, labels and retention"
            )
        },
        "/v1/pubsub/subscriptions": {
            "get": _op(
                "List Pub/Sub subscriptions with topic, backlog (unacked: ready and in "
                "flight), oldest unacked message age, dead-letter depth, push endpoint and "
                "its health"
            )
        },
        "/v1/queues": {
            "get": _returning(
                _op(
                    "List queues (AMQP and SQS alike) with their kind, ready, in-flight and "
                    "delayed counts, consumers and dead-letter depth"
                ),
                {"type": "array", "items": QUEUE},
            )
        },
        "/v1/queues/{queue}": {
            "get": _returning(
                _op(
                    "Describe a queue",
                    params=[_path("queue")],
                    responses={"200": "OK", "404": "Not found"},
                ),
                QUEUE,
            )
        },
        "/v1/queues/{queue}/purge": {
            "post": _op(
                "Drop every ready message",
                params=[_path("queue")],
                responses={"200": "OK", "404": "Not found"},
            )
        },
        "/v1/exchanges": {"get": _op("List exchanges")},
        "/v1/bindings": {"get": _op("List bindings")},
    },
}

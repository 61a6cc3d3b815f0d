"""SchemaService with the real SchemaServiceClient, and schemas on topics with
the real PublisherClient and SubscriberClient."""

from __future__ import annotations

import io
import json
import os

import fastavro
import pytest
from google.api_core import exceptions
from google.cloud import pubsub_v1
from google.pubsub_v1 import types

from dovecote.testing import BrokerThread
from tests.compat.pubsub.conftest import ONLY_PUBSUB, PROJECT

PARENT = f"projects/{PROJECT}"
AVRO = types.Schema.Type.AVRO
PROTO = types.Schema.Type.PROTOCOL_BUFFER
JSON = types.Encoding.JSON
BINARY = types.Encoding.BINARY

AVRO_V1 = json.dumps(
    {
        "type": "record",
        "name": "Order",
        "fields": [{"name": "id", "type": "string"}, {"name": "qty", "type": "int"}],
    }
)
# v2 adds a required field, so v1 messages do not validate against it.
AVRO_V2 = json.dumps(
    {
        "type": "record",
        "name": "Order",
        "fields": [
            {"name": "id", "type": "string"},
            {"name": "qty", "type": "int"},
            {"name": "shop", "type": "string"},
        ],
    }
)
PROTO_DEF = 'syntax = "proto3";\nmessage Order { string id = 1; int32 qty = 2; }\n'
V1_MESSAGE = b'{"id": "a", "qty": 1}'
V2_MESSAGE = b'{"id": "a", "qty": 1, "shop": "s"}'


@pytest.fixture
def schemas(emulator_host: str):
    client = pubsub_v1.SchemaServiceClient()
    yield client
    client.transport.close()


def make(schemas, schema_id: str, definition: str = AVRO_V1, kind=AVRO) -> types.Schema:
    return schemas.create_schema(
        parent=PARENT, schema=types.Schema(type_=kind, definition=definition), schema_id=schema_id
    )


def avro_binary(definition: str, record: dict) -> bytes:
    out = io.BytesIO()
    fastavro.schemaless_writer(out, fastavro.parse_schema(json.loads(definition)), record)
    return out.getvalue()


def test_create_get_list_delete(schemas, name):
    path = f"{PARENT}/schemas/{name}"
    created = make(schemas, name)
    assert created.name == path and created.type_ == AVRO and created.definition == AVRO_V1
    assert len(created.revision_id) == 8 and int(created.revision_id, 16) >= 0
    assert created.revision_create_time.timestamp() > 0
    with pytest.raises(exceptions.AlreadyExists, match=f"resource={path}"):
        make(schemas, name)

    assert schemas.get_schema(name=path) == created  # FULL by default
    basic = schemas.get_schema(request={"name": path, "view": types.SchemaView.BASIC})
    assert basic.definition == "" and basic.revision_id == created.revision_id

    listed = {s.name: s for s in schemas.list_schemas(parent=PARENT)}
    assert listed[path].definition == ""  # BASIC by default
    full = schemas.list_schemas(request={"parent": PARENT, "view": types.SchemaView.FULL})
    assert {s.name: s for s in full}[path].definition == AVRO_V1

    schemas.delete_schema(name=path)
    with pytest.raises(exceptions.NotFound):
        schemas.get_schema(name=path)
    with pytest.raises(exceptions.NotFound):
        schemas.delete_schema(name=path)


def test_bad_definitions_and_names(schemas, name):
    with pytest.raises(exceptions.InvalidArgument, match="Could not parse schema definition"):
        make(schemas, name, "{not json")
    with pytest.raises(exceptions.InvalidArgument, match="Could not parse schema definition"):
        make(schemas, name, '{"type": "no-such-type"}')
    with pytest.raises(exceptions.InvalidArgument, match="Expected message name"):
        make(schemas, name, "message {", PROTO)
    two = 'syntax = "proto3"; message A { int32 x = 1; } message B { int32 y = 1; }'
    with pytest.raises(exceptions.InvalidArgument, match="exactly one top-level type"):
        make(schemas, name, two, PROTO)
    with pytest.raises(exceptions.InvalidArgument, match="Invalid schema type"):
        schemas.create_schema(
            parent=PARENT, schema=types.Schema(definition=AVRO_V1), schema_id=name
        )
    with pytest.raises(exceptions.InvalidArgument, match=r"Invalid \[schemas\] name"):
        make(schemas, "1-starts-with-a-digit")
    with pytest.raises(exceptions.NotFound):  # nothing was created by the failures
        schemas.get_schema(name=f"{PARENT}/schemas/{name}")
    schemas.validate_schema(parent=PARENT, schema=types.Schema(type_=PROTO, definition=PROTO_DEF))
    with pytest.raises(exceptions.InvalidArgument, match="Could not parse schema definition"):
        schemas.validate_schema(parent=PARENT, schema=types.Schema(type_=AVRO, definition="[1"))


def test_revisions_commit_rollback_delete(schemas, name):
    path = f"{PARENT}/schemas/{name}"
    first = make(schemas, name)
    second = schemas.commit_schema(name=path, schema=types.Schema(type_=AVRO, definition=AVRO_V2))
    assert second.revision_id != first.revision_id
    assert schemas.get_schema(name=path).revision_id == second.revision_id
    assert schemas.get_schema(name=f"{path}@{first.revision_id}").definition == AVRO_V1
    with pytest.raises(exceptions.NotFound, match="Schema revision not found"):
        schemas.get_schema(name=f"{path}@ffffffff")

    third = schemas.rollback_schema(name=path, revision_id=first.revision_id)
    assert third.definition == AVRO_V1
    assert third.revision_id not in (first.revision_id, second.revision_id)
    with pytest.raises(exceptions.NotFound, match="Revision not found"):
        schemas.rollback_schema(name=path, revision_id="ffffffff")
    with pytest.raises(exceptions.InvalidArgument, match="Missing revision ID"):
        schemas.rollback_schema(name=path, revision_id="")
    with pytest.raises(exceptions.InvalidArgument, match="Could not parse schema definition"):
        schemas.commit_schema(name=path, schema=types.Schema(type_=AVRO, definition="{"))

    ids = [s.revision_id for s in schemas.list_schema_revisions(name=path)]
    assert ids == [first.revision_id, second.revision_id, third.revision_id]
    page = schemas.list_schema_revisions(request={"name": path, "page_size": 2})
    assert [s.revision_id for s in page] == ids  # the pager follows the tokens
    assert {s.definition for s in schemas.list_schema_revisions(name=path)} == {""}  # BASIC
    full = schemas.list_schema_revisions(request={"name": path, "view": types.SchemaView.FULL})
    assert [s.definition for s in full] == [AVRO_V1, AVRO_V2, AVRO_V1]

    deleted = schemas.delete_schema_revision(name=f"{path}@{second.revision_id}")
    assert deleted.revision_id == second.revision_id
    ids = [s.revision_id for s in schemas.list_schema_revisions(name=path)]
    assert ids == [first.revision_id, third.revision_id]
    schemas.delete_schema_revision(name=f"{path}@{first.revision_id}")
    with pytest.raises(exceptions.InvalidArgument, match="Cannot delete last revision"):
        schemas.delete_schema_revision(name=f"{path}@{third.revision_id}")


def test_validate_message(schemas, name):
    path = f"{PARENT}/schemas/{name}"
    make(schemas, name)

    def validate(message: bytes, encoding, **spec) -> None:
        schemas.validate_message(
            request={"parent": PARENT, "message": message, "encoding": encoding, **spec}
        )

    validate(V1_MESSAGE, JSON, name=path)
    validate(avro_binary(AVRO_V1, {"id": "a", "qty": 1}), BINARY, name=path)
    with pytest.raises(exceptions.InvalidArgument, match="Could not parse JSON Avro message"):
        validate(b'{"id": "a"}', JSON, name=path)
    with pytest.raises(exceptions.InvalidArgument, match="Could not parse JSON Avro message"):
        validate(b'{"id": 5, "qty": 1}', JSON, name=path)
    with pytest.raises(exceptions.InvalidArgument, match="Could not parse binary Avro message"):
        validate(avro_binary(AVRO_V1, {"id": "a", "qty": 1}) + b"\x00", BINARY, name=path)
    with pytest.raises(exceptions.InvalidArgument, match="No encoding provided"):
        validate(V1_MESSAGE, types.Encoding.ENCODING_UNSPECIFIED, name=path)
    with pytest.raises(exceptions.NotFound):
        validate(V1_MESSAGE, JSON, name=path + "-missing")

    v2 = schemas.commit_schema(name=path, schema=types.Schema(type_=AVRO, definition=AVRO_V2))
    with pytest.raises(exceptions.InvalidArgument):  # by name: the newest revision
        validate(V1_MESSAGE, JSON, name=path)
    first = schemas.list_schema_revisions(name=path).schemas[0].revision_id
    validate(V1_MESSAGE, JSON, name=f"{path}@{first}")
    validate(V2_MESSAGE, JSON, name=f"{path}@{v2.revision_id}")

    proto = {"schema": {"type_": PROTO, "definition": PROTO_DEF}}
    validate(b'{"id": "a", "qty": 3}', JSON, **proto)
    validate(b"\x0a\x01a\x10\x03", BINARY, **proto)
    with pytest.raises(exceptions.InvalidArgument, match="Could not parse JSON Protocol Buffer"):
        validate(b'{"nope": 1}', JSON, **proto)
    with pytest.raises(exceptions.InvalidArgument, match="Could not parse binary Protocol Buffer"):
        validate(b"\xff\xff\xff", BINARY, **proto)


def test_topic_rejects_invalid_messages_and_tags_valid_ones(schemas, publisher, subscriber, name):
    schema = f"{PARENT}/schemas/{name}"
    make(schemas, name)
    topic = publisher.topic_path(PROJECT, name)
    created = publisher.create_topic(
        request={"name": topic, "schema_settings": {"schema": schema, "encoding": JSON}}
    )
    assert created.schema_settings.schema == schema
    sub = subscriber.subscription_path(PROJECT, name)
    subscriber.create_subscription(name=sub, topic=topic)

    with pytest.raises(exceptions.InvalidArgument) as failed:
        publisher.publish(topic, b'{"id": 1}').result(timeout=10)
    assert failed.value.message == "Invalid data in message: Message failed schema validation."
    assert failed.value.reason == "INVALID_JSON_AVRO_MESSAGE"
    assert failed.value.domain == "pubsub.googleapis.com"
    assert (
        "Could not validate message with any schema revision"
        in (failed.value.metadata["revisionInfo"])
    )

    publisher.publish(topic, V1_MESSAGE).result(timeout=10)
    received = subscriber.pull(subscription=sub, max_messages=10, timeout=10).received_messages
    assert [m.message.data for m in received] == [V1_MESSAGE]  # the bad one was not stored
    revision = schemas.get_schema(name=schema).revision_id
    assert dict(received[0].message.attributes) == {
        "googclient_schemaname": schema,
        "googclient_schemaencoding": "JSON",
        "googclient_schemarevisionid": revision,
    }


def test_topic_schema_settings_are_checked(schemas, publisher, name):
    schema = f"{PARENT}/schemas/{name}"
    first = make(schemas, name)
    second = schemas.commit_schema(name=schema, schema=types.Schema(type_=AVRO, definition=AVRO_V2))
    topic = publisher.topic_path(PROJECT, name)

    def create(suffix: str, **settings) -> None:
        publisher.create_topic(
            request={"name": f"{topic}-{suffix}", "schema_settings": {"schema": schema, **settings}}
        )

    with pytest.raises(exceptions.NotFound, match="Schema could not be found"):
        publisher.create_topic(
            request={
                "name": topic,
                "schema_settings": {"schema": schema + "-missing", "encoding": JSON},
            }
        )
    with pytest.raises(exceptions.InvalidArgument, match="Invalid schema encoding provided"):
        create("a")
    with pytest.raises(exceptions.NotFound, match="First revision could not be found"):
        create("b", encoding=JSON, first_revision_id="ffffffff")
    with pytest.raises(exceptions.NotFound, match="Last revision could not be found"):
        create("c", encoding=JSON, last_revision_id="ffffffff")
    with pytest.raises(exceptions.InvalidArgument, match="First revision creation time is after"):
        create(
            "d",
            encoding=JSON,
            first_revision_id=second.revision_id,
            last_revision_id=first.revision_id,
        )
    with pytest.raises(exceptions.NotFound):  # none of them was created
        publisher.get_topic(topic=f"{topic}-b")


def test_revision_range_on_publish_and_update(schemas, publisher, subscriber, name):
    schema = f"{PARENT}/schemas/{name}"
    first = make(schemas, name)
    second = schemas.commit_schema(name=schema, schema=types.Schema(type_=AVRO, definition=AVRO_V2))
    topic = publisher.topic_path(PROJECT, name)
    publisher.create_topic(
        request={
            "name": topic,
            "schema_settings": {
                "schema": schema,
                "encoding": JSON,
                "first_revision_id": first.revision_id,
                "last_revision_id": second.revision_id,
            },
        }
    )
    sub = subscriber.subscription_path(PROJECT, name)
    subscriber.create_subscription(name=sub, topic=topic)
    # Valid against either revision in the range: each is tagged with the one it matched.
    publisher.publish(topic, V1_MESSAGE).result(timeout=10)
    publisher.publish(topic, V2_MESSAGE).result(timeout=10)
    received = subscriber.pull(subscription=sub, max_messages=10, timeout=10).received_messages
    tags = {m.message.data: m.message.attributes["googclient_schemarevisionid"] for m in received}
    assert tags == {V2_MESSAGE: second.revision_id, V1_MESSAGE: first.revision_id}
    subscriber.acknowledge(subscription=sub, ack_ids=[m.ack_id for m in received])

    # Narrow the range to the second revision through a sub-field update mask.
    updated = publisher.update_topic(
        request={
            "topic": {"name": topic, "schema_settings": {"first_revision_id": second.revision_id}},
            "update_mask": {"paths": ["schema_settings.first_revision_id"]},
        }
    )
    assert updated.schema_settings.schema == schema
    assert updated.schema_settings.first_revision_id == second.revision_id
    with pytest.raises(exceptions.InvalidArgument) as failed:
        publisher.publish(topic, V1_MESSAGE).result(timeout=10)
    assert f"revision_id={second.revision_id}" in failed.value.metadata["revisionInfo"]
    publisher.publish(topic, V2_MESSAGE).result(timeout=10)


def test_protocol_buffer_topic_binary(schemas, publisher, subscriber, name):
    schema = f"{PARENT}/schemas/{name}"
    make(schemas, name, PROTO_DEF, PROTO)
    topic = publisher.topic_path(PROJECT, name)
    publisher.create_topic(
        request={"name": topic, "schema_settings": {"schema": schema, "encoding": BINARY}}
    )
    sub = subscriber.subscription_path(PROJECT, name)
    subscriber.create_subscription(name=sub, topic=topic)
    with pytest.raises(exceptions.InvalidArgument) as failed:
        publisher.publish(topic, b"\x0a\x05ab").result(timeout=10)  # truncated string
    assert failed.value.reason == "INVALID_BINARY_PROTO_MESSAGE"
    publisher.publish(topic, b"\x0a\x01a\x10\x03").result(timeout=10)
    received = subscriber.pull(subscription=sub, max_messages=10, timeout=10).received_messages
    assert [m.message.data for m in received] == [b"\x0a\x01a\x10\x03"]
    assert received[0].message.attributes["googclient_schemaencoding"] == "BINARY"


def test_deleting_a_schema_marks_its_topics(schemas, publisher, subscriber, name):
    schema = f"{PARENT}/schemas/{name}"
    make(schemas, name)
    topic = publisher.topic_path(PROJECT, name)
    publisher.create_topic(
        request={"name": topic, "schema_settings": {"schema": schema, "encoding": JSON}}
    )
    sub = subscriber.subscription_path(PROJECT, name)
    subscriber.create_subscription(name=sub, topic=topic)
    schemas.delete_schema(name=schema)
    settings = publisher.get_topic(topic=topic).schema_settings
    assert settings.schema == "_deleted-schema_"
    # Google documents messages of such topics as carrying the deleted-schema name.
    publisher.publish(topic, b"anything").result(timeout=10)
    received = subscriber.pull(subscription=sub, max_messages=10, timeout=10).received_messages
    assert received[0].message.attributes["googclient_schemaname"] == "_deleted-schema_"
    # The topic can still be updated (labels) with its deleted-schema settings.
    publisher.update_topic(
        request={
            "topic": {"name": topic, "labels": {"k": "v"}},
            "update_mask": {"paths": ["labels"]},
        }
    )


def test_schema_iam(schemas, name):
    from google.iam.v1 import iam_policy_pb2

    path = f"{PARENT}/schemas/{name}"
    with pytest.raises(exceptions.NotFound):
        schemas.get_iam_policy(request=iam_policy_pb2.GetIamPolicyRequest(resource=path))
    make(schemas, name)
    policy = schemas.get_iam_policy(request=iam_policy_pb2.GetIamPolicyRequest(resource=path))
    assert policy.version == 1


def test_schemas_survive_a_restart(tmp_path, name):
    data = tmp_path / "data"
    before = os.environ.get("PUBSUB_EMULATOR_HOST")
    schema = f"{PARENT}/schemas/{name}"
    topic = f"{PARENT}/topics/{name}"
    try:
        with BrokerThread(data, **ONLY_PUBSUB) as broker:
            os.environ["PUBSUB_EMULATOR_HOST"] = broker.pubsub_host
            client = pubsub_v1.SchemaServiceClient()
            first = make(client, name)
            second = client.commit_schema(
                name=schema, schema=types.Schema(type_=AVRO, definition=AVRO_V2)
            )
            client.delete_schema_revision(name=f"{schema}@{first.revision_id}")
            make(client, name + "-gone")
            client.delete_schema(name=f"{PARENT}/schemas/{name}-gone")
            make(client, name + "-proto", PROTO_DEF, PROTO)
            publisher = pubsub_v1.PublisherClient()
            publisher.create_topic(
                request={
                    "name": topic,
                    "schema_settings": {"schema": f"{schema}-proto", "encoding": BINARY},
                }
            )
            publisher.stop()
            client.transport.close()
        with BrokerThread(data, **ONLY_PUBSUB) as broker:
            os.environ["PUBSUB_EMULATOR_HOST"] = broker.pubsub_host
            client = pubsub_v1.SchemaServiceClient()
            revisions = list(
                client.list_schema_revisions(
                    request={"name": schema, "view": types.SchemaView.FULL}
                )
            )
            assert [(r.revision_id, r.definition) for r in revisions] == [
                (second.revision_id, AVRO_V2)
            ]
            assert revisions[0].revision_create_time == second.revision_create_time
            with pytest.raises(exceptions.NotFound):
                client.get_schema(name=f"{PARENT}/schemas/{name}-gone")
            client.transport.close()
            publisher = pubsub_v1.PublisherClient()
            publisher.publish(topic, b"\x0a\x01a").result(timeout=10)
            with pytest.raises(exceptions.InvalidArgument):
                publisher.publish(topic, b"\xff").result(timeout=10)
            publisher.stop()
    finally:
        if before is None:
            os.environ.pop("PUBSUB_EMULATOR_HOST", None)
        else:
            os.environ["PUBSUB_EMULATOR_HOST"] = before

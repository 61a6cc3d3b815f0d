"""google.pubsub.v1.SchemaService, and schemas on topics.

Schemas live in a :class:`~dovecote.pubsub.schema_store.SchemaStore` (a
compacted internal topic); definitions compile through
:mod:`~dovecote.pubsub.schema_validation`. Two hooks tie schemas to topics:

- ``check_topic`` (the publisher's ``topic_checks``): a topic's
  ``schema_settings`` must name an existing schema, an encoding, and
  existing revisions in creation order;
- ``check_messages`` (the publisher's ``message_checks``): each message must
  validate against some revision in the topic's range (newest first); then
  it gets the ``googclient_schema*`` attributes Google adds. A topic whose
  schema was deleted (``_deleted-schema_``) publishes without validation, as
  Google documents.

Error texts: Google's where known (the publish failure and its ErrorInfo,
ALREADY_EXISTS, resource names), else Google's emulator's; see the report of
the branch that made this module for which ones are verified.
"""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

import grpc
from google.protobuf import any_pb2
from google.pubsub_v1 import types
from google.rpc import error_details_pb2, status_pb2

from dovecote.pubsub import names
from dovecote.pubsub import schema_validation as sv
from dovecote.pubsub.methods import SCHEMA_METHODS, SCHEMA_SERVICE, Empty
from dovecote.pubsub.paging import page
from dovecote.pubsub.rpc import PubsubError, ServiceTable, already_exists, invalid, not_found
from dovecote.pubsub.schema_store import (
    SCHEMAS_TOPIC,
    SCHEMAS_TOPIC_CONFIGS,
    Revision,
    SchemaStore,
)
from dovecote.pubsub.state import PubsubState, TopicEntry

M = SCHEMA_METHODS
SchemaPb: Any = M["GetSchema"].response
NAMESPACE = "pubsub"

DELETED_SCHEMA = "_deleted-schema_"
DELETED_REVISION = "_deleted-schema-revision_"
ATTR_NAME = "googclient_schemaname"
ATTR_ENCODING = "googclient_schemaencoding"
ATTR_REVISION = "googclient_schemarevisionid"

_TYPES = {
    int(types.Schema.Type.AVRO): sv.AVRO,
    int(types.Schema.Type.PROTOCOL_BUFFER): sv.PROTOCOL_BUFFER,
}
_TYPE_NUMBERS = {v: k for k, v in _TYPES.items()}
_ENCODINGS = {int(types.Encoding.JSON): sv.JSON, int(types.Encoding.BINARY): sv.BINARY}
_BASIC = int(types.SchemaView.BASIC)
_FULL = int(types.SchemaView.FULL)
_SHORT_TYPE = {sv.AVRO: "AVRO", sv.PROTOCOL_BUFFER: "PROTO"}
_TYPE_WORDS = {sv.AVRO: "Avro", sv.PROTOCOL_BUFFER: "Protocol Buffer"}
_ENCODING_WORDS = {sv.JSON: "JSON", sv.BINARY: "binary"}


class SchemaService:
    def __init__(self, core: Any, state: PubsubState) -> None:
        self.core = core
        self.state = state
        self.store = SchemaStore(NAMESPACE)
        self._warming: asyncio.Future[None] | None = None

    async def start(self) -> None:
        await self.store.load(
            await self.core.internal_partition(SCHEMAS_TOPIC, SCHEMAS_TOPIC_CONFIGS)
        )
        # Compile the schemas topics use in the background, so the first
        # publish after a start does not run protoc on the loop.
        wanted = {
            (r.type, r.definition)
            for entry in self.state.topics.values()
            if entry.pb.HasField("schema_settings")
            and self.store.exists(entry.pb.schema_settings.schema)
            for r in self.revisions_for(entry.pb.schema_settings)
        }
        if wanted:
            self._warming = asyncio.get_running_loop().run_in_executor(None, _warm, wanted)

    def table(self) -> ServiceTable:
        return ServiceTable(
            SCHEMA_SERVICE,
            M,
            {
                "CreateSchema": self.create_schema,
                "GetSchema": self.get_schema,
                "ListSchemas": self.list_schemas,
                "ListSchemaRevisions": self.list_schema_revisions,
                "CommitSchema": self.commit_schema,
                "RollbackSchema": self.rollback_schema,
                "DeleteSchemaRevision": self.delete_schema_revision,
                "DeleteSchema": self.delete_schema,
                "ValidateSchema": self.validate_schema,
                "ValidateMessage": self.validate_message,
            },
        )

    def exists(self, name: str) -> bool:
        """For IAM: whether schema ``name`` exists."""
        return self.store.exists(name)

    # --- lookups ---------------------------------------------------------------------

    def _existing(self, name: str) -> str:
        parsed = names.parse(name, names.SCHEMAS)
        if not self.store.exists(name):
            raise not_found("Resource", parsed.id)
        return name

    def _revision_of(self, reference: str) -> Revision:
        """``name`` (its newest revision) or ``name@revision``."""
        name, _, revision_id = reference.partition("@")
        self._existing(name)
        if not revision_id:
            latest = self.store.latest(name)
            assert latest is not None
            return latest
        found = self.store.revision(name, revision_id)
        if found is None:
            raise not_found_text("Schema revision not found")
        return found

    # --- RPCs ------------------------------------------------------------------------

    async def create_schema(self, request: Any, context: Any) -> Any:
        project = names.parse_project(request.parent)
        name = f"projects/{project}/schemas/{request.schema_id}"
        names.parse(name, names.SCHEMAS)
        schema_type = _schema_type(request.schema)
        await _compile(schema_type, request.schema.definition)
        if self.store.exists(name):
            raise already_exists(name)
        revision = self._new_revision(name, schema_type, request.schema.definition)
        await self.store.add(revision)
        return _to_pb(revision, _FULL)

    async def get_schema(self, request: Any, context: Any) -> Any:
        revision = self._revision_of(request.name)
        return _to_pb(revision, request.view or _FULL)

    async def list_schemas(self, request: Any, context: Any) -> Any:
        project = names.parse_project(request.parent)
        found, token = page(
            self.store.names(f"projects/{project}/schemas/"), request.page_size, request.page_token
        )
        response = M["ListSchemas"].response()
        view = request.view or _BASIC
        for name in found:
            latest = self.store.latest(name)
            if latest is not None:
                response.schemas.append(_to_pb(latest, view))
        response.next_page_token = token
        return response

    async def list_schema_revisions(self, request: Any, context: Any) -> Any:
        name = self._existing(request.name)
        revisions = self.store.revisions(name)
        if request.page_size < 0:
            raise invalid("The value for page_size is too small. It must be at least 0.")
        start = 0
        if request.page_token:
            try:
                start = int(request.page_token)
            except ValueError:
                raise invalid("The page_token is invalid.") from None
        end = len(revisions) if request.page_size == 0 else start + request.page_size
        response = M["ListSchemaRevisions"].response()
        view = request.view or _BASIC  # Google's documented default (its emulator sends FULL)
        response.schemas.extend(_to_pb(r, view) for r in revisions[start:end])
        response.next_page_token = str(end) if end < len(revisions) else ""
        return response

    async def commit_schema(self, request: Any, context: Any) -> Any:
        name = self._existing(request.name)
        schema_type = _schema_type(request.schema)
        latest = self.store.latest(name)
        assert latest is not None
        if schema_type != latest.type:
            raise invalid("The schema type cannot be changed by a new revision.")
        await _compile(schema_type, request.schema.definition)
        revision = self._new_revision(name, schema_type, request.schema.definition)
        await self.store.add(revision)
        return _to_pb(revision, _FULL)

    async def rollback_schema(self, request: Any, context: Any) -> Any:
        name = self._existing(request.name)
        if not request.revision_id:
            raise invalid("Missing revision ID")
        old = self.store.revision(name, request.revision_id)
        if old is None:
            raise not_found_text("Revision not found")
        revision = self._new_revision(name, old.type, old.definition)
        await self.store.add(revision)
        return _to_pb(revision, _FULL)

    async def delete_schema_revision(self, request: Any, context: Any) -> Any:
        reference = request.name
        if "@" not in reference and request.revision_id:
            reference = f"{reference}@{request.revision_id}"
        if "@" not in reference:
            self._existing(reference)
            raise invalid("The revision to delete must be given as name@revision_id.")
        revision = self._revision_of(reference)
        if len(self.store.revisions(revision.schema)) == 1:
            raise invalid("Cannot delete last revision. Please use DeleteSchema.")
        await self.store.delete_revision(revision.schema, revision.revision_id)
        return _to_pb(revision, _FULL)

    async def delete_schema(self, request: Any, context: Any) -> Any:
        name = self._existing(request.name)
        await self.store.delete_schema(name)
        for entry in list(self.state.topics.values()):
            settings = entry.pb.schema_settings
            if entry.pb.HasField("schema_settings") and settings.schema == name:
                updated = type(entry.pb)()
                updated.CopyFrom(entry.pb)
                updated.schema_settings.schema = DELETED_SCHEMA
                if settings.first_revision_id:
                    updated.schema_settings.first_revision_id = DELETED_REVISION
                if settings.last_revision_id:
                    updated.schema_settings.last_revision_id = DELETED_REVISION
                await self.state.put_topic(TopicEntry(updated, entry.log_topic, entry.owns_log))
        await self.state.delete_policy(name)
        return Empty()

    async def validate_schema(self, request: Any, context: Any) -> Any:
        names.parse_project(request.parent)
        await _compile(_schema_type(request.schema), request.schema.definition)
        return M["ValidateSchema"].response()

    async def validate_message(self, request: Any, context: Any) -> Any:
        names.parse_project(request.parent)
        if request.WhichOneof("schema_spec") == "name":
            revision = self._revision_of(request.name)
            schema_type, definition = revision.type, revision.definition
        else:
            schema_type, definition = _schema_type(request.schema), request.schema.definition
        encoding = _ENCODINGS.get(request.encoding)
        if encoding is None:
            raise invalid("No encoding provided.")
        validator = await _compile(schema_type, definition)
        try:
            validator.validate(request.message, encoding)
        except sv.MessageInvalid as err:
            raise invalid(f"{_parse_failure(schema_type, encoding)}: {err}") from None
        return M["ValidateMessage"].response()

    def _new_revision(self, name: str, schema_type: str, definition: str) -> Revision:
        taken = {r.revision_id for r in self.store.revisions(name)}
        revision_id = secrets.token_hex(4)
        while revision_id in taken:
            revision_id = secrets.token_hex(4)
        created_ns = self.core.clock.wall_ms() * 1_000_000
        latest = self.store.latest(name)
        if latest is not None and created_ns <= latest.created_ns:
            created_ns = latest.created_ns + 1  # revision times follow creation order
        return Revision(name, revision_id, schema_type, definition, created_ns)

    # --- topics ----------------------------------------------------------------------

    def check_topic(self, topic: Any) -> None:
        """A new or updated topic's ``schema_settings`` (the publisher's topic_checks)."""
        if not topic.HasField("schema_settings"):
            return
        settings = topic.schema_settings
        if settings.schema == DELETED_SCHEMA:
            return  # what DeleteSchema left on the topic; nothing to check against
        names.parse(settings.schema, names.SCHEMAS)
        if not self.store.exists(settings.schema):
            raise not_found_text("Schema could not be found")
        if settings.encoding not in _ENCODINGS:
            raise invalid("Invalid schema encoding provided")
        first = last = None
        if settings.first_revision_id:
            first = self.store.revision(settings.schema, settings.first_revision_id)
            if first is None:
                raise not_found_text("First revision could not be found")
        if settings.last_revision_id:
            last = self.store.revision(settings.schema, settings.last_revision_id)
            if last is None:
                raise not_found_text("Last revision could not be found")
        if first is not None and last is not None and first.created_ns > last.created_ns:
            raise invalid("First revision creation time is after last revision creation time")

    def revisions_for(self, settings: Any) -> list[Revision]:
        """The revisions a topic's messages may match, newest first. A bound
        whose revision was deleted since no longer bounds."""
        revisions = self.store.revisions(settings.schema)
        ids = [r.revision_id for r in revisions]
        start = ids.index(settings.first_revision_id) if settings.first_revision_id in ids else 0
        end = (
            ids.index(settings.last_revision_id)
            if settings.last_revision_id in ids
            else len(ids) - 1
        )
        return revisions[start : end + 1][::-1]

    def check_messages(self, entry: TopicEntry, messages: list[Any]) -> None:
        """Validate a publish request's messages against the topic's schema
        (the publisher's message_checks) and add Google's schema attributes.
        Nothing is changed unless every message passes."""
        if not entry.pb.HasField("schema_settings") or not entry.pb.schema_settings.schema:
            return
        settings = entry.pb.schema_settings
        encoding = _ENCODINGS.get(settings.encoding, sv.JSON)
        if settings.schema == DELETED_SCHEMA or not self.store.exists(settings.schema):
            # (not existing: deleted, with a crash before its topics were marked)
            for message in messages:
                message.attributes[ATTR_NAME] = DELETED_SCHEMA
                message.attributes[ATTR_ENCODING] = encoding
            return
        revisions = self.revisions_for(settings)
        matched: list[Revision] = []
        for message in messages:
            failure: tuple[Revision, str] | None = None
            for revision in revisions:
                try:
                    validator = sv.cached(revision.type, revision.definition)
                    if validator is None:
                        # Not compiled since start: compile now (rare; blocks briefly).
                        validator = sv.compile_schema(revision.type, revision.definition)
                    validator.validate(message.data, encoding)
                except (sv.MessageInvalid, sv.SchemaInvalid) as err:
                    failure = (revision, str(err))
                    continue
                matched.append(revision)
                break
            else:
                raise _publish_failure(settings.schema, encoding, revisions, failure)
        for message, revision in zip(messages, matched, strict=True):
            message.attributes[ATTR_NAME] = settings.schema
            message.attributes[ATTR_ENCODING] = encoding
            message.attributes[ATTR_REVISION] = revision.revision_id


# --- helpers -----------------------------------------------------------------------


def not_found_text(message: str) -> PubsubError:
    return PubsubError(grpc.StatusCode.NOT_FOUND, message)


def _schema_type(schema: Any) -> str:
    schema_type = _TYPES.get(schema.type_)
    if schema_type is None:
        raise invalid("Invalid schema type")
    return schema_type


async def _compile(schema_type: str, definition: str) -> sv.Validator:
    """Compile off the loop (protoc runs in a child process)."""
    found = sv.cached(schema_type, definition)
    if found is not None:
        return found
    loop = asyncio.get_running_loop()
    try:
        return await loop.run_in_executor(None, sv.compile_schema, schema_type, definition)
    except sv.SchemaInvalid as err:
        raise invalid(f"Could not parse schema definition: {err}") from None


def _warm(definitions: set[tuple[str, str]]) -> None:
    for schema_type, definition in definitions:
        try:
            sv.compile_schema(schema_type, definition)
        except sv.SchemaInvalid:
            pass  # publishing reports it


def _to_pb(revision: Revision, view: int) -> Any:
    out = SchemaPb(
        name=revision.schema,
        type_=_TYPE_NUMBERS[revision.type],
        revision_id=revision.revision_id,
    )
    if view != _BASIC:
        out.definition = revision.definition
    out.revision_create_time.FromNanoseconds(revision.created_ns)
    return out


def _parse_failure(schema_type: str, encoding: str) -> str:
    """The emulator's text, e.g. ``Could not parse JSON Avro message``."""
    return f"Could not parse {_ENCODING_WORDS[encoding]} {_TYPE_WORDS[schema_type]} message"


def _publish_failure(
    schema: str, encoding: str, revisions: list[Revision], failure: tuple[Revision, str] | None
) -> PubsubError:
    """Google's publish failure: INVALID_ARGUMENT with an ErrorInfo whose
    metadata names the last revision tried and why it failed."""
    message = "Invalid data in message: Message failed schema validation."
    schema_type = revisions[0].type if revisions else sv.AVRO
    if failure is None:
        revision_info = f"No schema revision to validate against for schema: {schema}"
    else:
        revision, why = failure
        revision_info = (
            f"Could not validate message with any schema revision for schema: {schema}, "
            f"last checked revision: revision_id={revision.revision_id} failed with status: {why}"
        )
    info = error_details_pb2.ErrorInfo(
        reason=f"INVALID_{encoding}_{_SHORT_TYPE[schema_type]}_MESSAGE",
        domain="pubsub.googleapis.com",
        metadata={"message": "Message failed schema validation", "revisionInfo": revision_info},
    )
    detail = any_pb2.Any()
    detail.Pack(info)
    status = status_pb2.Status(
        code=grpc.StatusCode.INVALID_ARGUMENT.value[0], message=message, details=[detail]
    )
    return PubsubError(grpc.StatusCode.INVALID_ARGUMENT, message, status)

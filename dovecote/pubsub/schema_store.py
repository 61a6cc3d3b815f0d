"""Durable schema revisions: a compacted internal topic of keyed records.

Each revision is one record, keyed by (namespace, schema name, revision id),
its value the JSON of the revision; deleting a revision writes a tombstone
for its key, deleting a schema one per revision. Compaction keeps the latest
value of each key, so the topic holds the live revisions (and tombstones
until compaction drops them). On start the topic is replayed in offset
order, which is also the order revisions were made.

The store knows nothing of Pub/Sub: a *schema* is a name with an ordered
list of revisions, each with a type, a definition text and a creation time.
``namespace`` keeps users apart, so the Confluent-compatible schema registry
can keep its subjects in the same topic under its own namespace.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from dovecote.storage.batch import Record

if TYPE_CHECKING:
    from dovecote.core.topic import Partition

log = logging.getLogger(__name__)

SCHEMAS_TOPIC = "__dovecote_schemas"
# Keyed records, so compaction keeps the latest of each; never deleted by time.
SCHEMAS_TOPIC_CONFIGS = {
    "cleanup.policy": "compact",
    "retention.ms": "-1",
    "segment.bytes": str(16 << 20),
}


@dataclass(frozen=True, slots=True)
class Revision:
    schema: str  # the schema's name, e.g. projects/p/schemas/s
    revision_id: str
    type: str  # e.g. AVRO, PROTOCOL_BUFFER
    definition: str
    created_ns: int  # wall-clock creation time, nanoseconds since the epoch

    def value(self) -> bytes:
        return json.dumps(
            {"type": self.type, "definition": self.definition, "created_ns": self.created_ns}
        ).encode()


class SchemaStore:
    """Schemas of one namespace, in memory and written through the topic."""

    def __init__(self, namespace: str) -> None:
        self.namespace = namespace
        # name -> revision id -> revision, in creation order
        self._schemas: dict[str, dict[str, Revision]] = {}
        self._log: Partition | None = None

    async def load(self, partition: Partition) -> None:
        """Replay ``partition`` (the :data:`SCHEMAS_TOPIC` partition)."""
        self._log = partition
        for record in partition.all_records():
            self._replay(record)
        log.info("loaded %d %s schemas", len(self._schemas), self.namespace)

    def _replay(self, record: Record) -> None:
        try:
            key = json.loads(record.key or b"{}")
            if key.get("ns") != self.namespace:
                return
            name, revision_id = key["schema"], key["rev"]
            if record.value is None:
                self._forget(name, revision_id)
                return
            value = json.loads(record.value)
            revision = Revision(
                name, revision_id, value["type"], value["definition"], value["created_ns"]
            )
        except (ValueError, KeyError, TypeError):
            log.warning("%s: skipping an unreadable schema record", SCHEMAS_TOPIC)
            return
        self._schemas.setdefault(name, {})[revision_id] = revision

    def _forget(self, name: str, revision_id: str) -> None:
        revisions = self._schemas.get(name)
        if revisions is not None:
            revisions.pop(revision_id, None)
            if not revisions:
                del self._schemas[name]

    def _key(self, name: str, revision_id: str) -> bytes:
        return json.dumps({"ns": self.namespace, "schema": name, "rev": revision_id}).encode()

    async def _write(self, records: list[Record]) -> None:
        assert self._log is not None, "the schema store is not loaded"
        await self._log.append_records(records, durable=True)

    # --- reading -------------------------------------------------------------------

    def exists(self, name: str) -> bool:
        return name in self._schemas

    def names(self, prefix: str = "") -> list[str]:
        """Schema names starting with ``prefix``, sorted."""
        return sorted(n for n in self._schemas if n.startswith(prefix))

    def revisions(self, name: str) -> list[Revision]:
        """Revisions of ``name``, oldest first (empty when there is no such schema)."""
        return list(self._schemas.get(name, {}).values())

    def latest(self, name: str) -> Revision | None:
        revisions = self._schemas.get(name)
        return next(reversed(revisions.values())) if revisions else None

    def revision(self, name: str, revision_id: str) -> Revision | None:
        return self._schemas.get(name, {}).get(revision_id)

    def __iter__(self) -> Iterator[str]:
        return iter(self._schemas)

    # --- writing -------------------------------------------------------------------

    async def add(self, revision: Revision) -> None:
        """Store a new revision (a new schema when it is the first of its name)."""
        await self._write(
            [Record(revision.value(), key=self._key(revision.schema, revision.revision_id))]
        )
        self._schemas.setdefault(revision.schema, {})[revision.revision_id] = revision

    async def delete_revision(self, name: str, revision_id: str) -> None:
        await self._write([Record(None, key=self._key(name, revision_id))])
        self._forget(name, revision_id)

    async def delete_schema(self, name: str) -> None:
        revisions = self._schemas.get(name, {})
        if revisions:
            await self._write([Record(None, key=self._key(name, r)) for r in revisions])
        self._schemas.pop(name, None)

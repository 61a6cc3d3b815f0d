"""google.pubsub.v1.Publisher: topics and Publish.

Publish appends each request's messages as one batch per partition (a topic
made through Pub/Sub has one partition; a Kafka topic with several is
spread by ordering key, round robin without one) and answers once they are
durable under the topic's flush policy.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import grpc

from dovecote.core.errors import MessageTooLarge, TopicExists
from dovecote.core.headers import MESSAGE_ID
from dovecote.core.partitioner import Partitioner
from dovecote.pubsub import names
from dovecote.pubsub.checks import check_labels, mask_paths
from dovecote.pubsub.methods import PUBLISHER, PUBLISHER_METHODS, Empty
from dovecote.pubsub.paging import page
from dovecote.pubsub.records import attributes_to_headers, message_id
from dovecote.pubsub.rpc import (
    PubsubError,
    ServiceTable,
    Sized,
    already_exists,
    invalid,
    not_found,
)
from dovecote.pubsub.state import PubsubState, TopicEntry
from dovecote.pubsub.topic_config import check_topic_retention, log_topic_configs
from dovecote.storage.batch import Record

M = PUBLISHER_METHODS
MAX_MESSAGES = 1000
MAX_REQUEST_BYTES = 10 * 1000 * 1000
MAX_ATTRIBUTES = 100
MAX_ATTRIBUTE_KEY_BYTES = 256
MAX_ATTRIBUTE_VALUE_BYTES = 1024
MAX_ORDERING_KEY_BYTES = 1024

# A check a topic's messages must pass before they are stored (schemas plug in
# here); it raises PubsubError.
MessageCheck = Callable[[TopicEntry, list[Any]], None]


class Publisher:
    def __init__(self, core: Any, state: PubsubState) -> None:
        self.core = core
        self.state = state
        self.partitioner = Partitioner()
        self.message_checks: list[MessageCheck] = []
        # Checks of a new or updated topic's settings (schemas plug in here).
        self.topic_checks: list[Callable[[Any], None]] = []
        # Set by the subscriber service: what happens to a topic's subscriptions.
        self.on_topic_deleted: Callable[[TopicEntry], Any] | None = None
        self.on_detach: Callable[[str], Any] | None = None
        # Set by the subscriber service: a topic's settings changed (the log
        # topic's retention follows its subscriptions too).
        self.on_topic_updated: Callable[[TopicEntry], Any] | None = None

    def table(self) -> ServiceTable:
        # Publish's limits count the request's bytes: the listener passes their length.
        methods = {**M, "Publish": dataclasses.replace(M["Publish"], sized=True)}
        return ServiceTable(
            PUBLISHER,
            methods,
            {
                "CreateTopic": self.create_topic,
                "UpdateTopic": self.update_topic,
                "Publish": self.publish,
                "GetTopic": self.get_topic,
                "ListTopics": self.list_topics,
                "ListTopicSubscriptions": self.list_topic_subscriptions,
                "ListTopicSnapshots": self.list_topic_snapshots,
                "DeleteTopic": self.delete_topic,
                "DetachSubscription": self.detach_subscription,
            },
        )

    # --- topics ---------------------------------------------------------------------

    def existing(self, name: str) -> TopicEntry:
        parsed = names.topic(name)
        entry = self.state.topic(name)
        if entry is None:
            raise not_found("Resource", parsed.id)
        return entry

    async def create_topic(self, request: Any, context: Any) -> Any:
        name = names.topic(request.name)
        if self.state.topic(request.name) is not None:
            raise already_exists(request.name)
        check_labels(request.labels)
        check_topic_retention(request)
        for check in self.topic_checks:
            check(request)
        log_topic = self.state.log_topic_for(name)
        owns_log = self.core.topic(log_topic) is None
        if owns_log:
            try:
                await self.core.create_topic(log_topic, 1, log_topic_configs(request))
            except TopicExists:
                owns_log = False
        topic = M["GetTopic"].response()
        topic.CopyFrom(request)
        await self.state.put_topic(TopicEntry(topic, log_topic, owns_log))
        return topic

    async def get_topic(self, request: Any, context: Any) -> Any:
        return self.existing(request.topic).pb

    async def update_topic(self, request: Any, context: Any) -> Any:
        entry = self.existing(request.topic.name)
        paths = mask_paths(request, "Topic")
        updated = M["GetTopic"].response()
        updated.CopyFrom(entry.pb)
        for path in paths:
            field = path.split(".")[0]
            if field not in _UPDATABLE_TOPIC_FIELDS:
                raise invalid(f"Invalid update_mask provided in the UpdateTopicRequest: '{path}'.")
            if "." in path and field in _MESSAGE_FIELDS:
                # e.g. schema_settings.last_revision_id: that one field only
                if not _copy_subfield(request.topic, updated, path):
                    raise invalid(
                        f"Invalid update_mask provided in the UpdateTopicRequest: '{path}'."
                    )
                continue
            if request.topic.HasField(field) if field in _MESSAGE_FIELDS else True:
                if field in _MESSAGE_FIELDS:
                    getattr(updated, field).CopyFrom(getattr(request.topic, field))
                elif field == "labels":
                    updated.labels.clear()
                    updated.labels.update(request.topic.labels)
                else:
                    setattr(updated, field, getattr(request.topic, field))
            else:
                updated.ClearField(field)
        check_labels(updated.labels)
        check_topic_retention(updated)
        for check in self.topic_checks:
            check(updated)
        if entry.owns_log or updated.HasField("message_retention_duration"):
            await self.core.alter_topic_configs(entry.log_topic, log_topic_configs(updated))
        new_entry = TopicEntry(updated, entry.log_topic, entry.owns_log)
        await self.state.put_topic(new_entry)
        if self.on_topic_updated is not None:
            await self.on_topic_updated(self.state.topics[new_entry.name])
        return updated

    async def list_topics(self, request: Any, context: Any) -> Any:
        project = names.parse_project(request.project)
        response = M["ListTopics"].response()
        entries, token = page(
            [t.name for t in self.state.topics_of(project)], request.page_size, request.page_token
        )
        response.topics.extend(self.state.topics[n].pb for n in entries)
        response.next_page_token = token
        return response

    async def list_topic_subscriptions(self, request: Any, context: Any) -> Any:
        entry = self.existing(request.topic)
        response = M["ListTopicSubscriptions"].response()
        entries, token = page(sorted(entry.subscriptions), request.page_size, request.page_token)
        response.subscriptions.extend(entries)
        response.next_page_token = token
        return response

    async def list_topic_snapshots(self, request: Any, context: Any) -> Any:
        self.existing(request.topic)
        response = M["ListTopicSnapshots"].response()
        found = sorted(
            n for n, s in self.state.snapshots.items() if s.get("topic") == request.topic
        )
        entries, token = page(found, request.page_size, request.page_token)
        response.snapshots.extend(entries)
        response.next_page_token = token
        return response

    async def delete_topic(self, request: Any, context: Any) -> Any:
        entry = self.existing(request.topic)
        await self.state.delete_topic(request.topic)
        await self.state.delete_policy(request.topic)
        if self.on_topic_deleted is not None:
            await self.on_topic_deleted(entry)
        still_read = any(s.log_topic == entry.log_topic for s in self.state.subscriptions.values())
        if entry.owns_log and not still_read and self.core.topic(entry.log_topic) is not None:
            await self.core.delete_topic(entry.log_topic)
        return Empty()

    async def detach_subscription(self, request: Any, context: Any) -> Any:
        parsed = names.subscription(request.subscription)
        if self.state.subscription(request.subscription) is None:
            raise not_found("Resource", parsed.id)
        if self.on_detach is not None:
            await self.on_detach(request.subscription)
        return M["DetachSubscription"].response()

    # --- publishing -----------------------------------------------------------------

    async def publish(self, request: Any, context: Any) -> Any:
        if type(request) is Sized:  # from the listener: the request and its length
            request, request_bytes = request.message, request.size
        else:
            request_bytes = request.ByteSize()
        entry = self.existing(request.topic)
        active = self.core.resources.alarms
        if active:
            # Publishers retry RESOURCE_EXHAUSTED with backoff, as AMQP ones wait
            # while blocked.
            raise PubsubError(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"The broker is low on {' and '.join(sorted(active))}; try again later.",
            )
        messages = list(request.messages)
        check_messages(messages, request_bytes)
        for check in self.message_checks:
            check(entry, messages)
        topic = self.core.get_topic(entry.log_topic)
        count = len(topic.partitions)
        if count == 1:
            by_partition = {0: range(len(messages))}
        else:
            by_partition = {}
            for index, message in enumerate(messages):
                key = message.ordering_key.encode("utf-8") if message.ordering_key else None
                partition = self.partitioner.choose(key, count)
                by_partition.setdefault(partition, []).append(index)
        now = self.core.clock.wall_ms()
        ids = [""] * len(messages)
        waits = []
        for partition_index, indexes in by_partition.items():
            partition = topic.partitions[partition_index]
            # Appends are written synchronously in call order, so the next
            # offset is known here and each record can carry its id.
            base = partition.log_end_offset
            records = _records(messages, indexes, partition_index, base, now, ids)
            try:
                wait = partition.append_records_now(records)
            except MessageTooLarge as err:
                raise invalid(f"The request is too large for the topic: {err}.") from None
            if partition.log_end_offset != base + len(records):
                raise RuntimeError("publish: the log's next offset moved during an append")
            if wait is not None:
                waits.append(wait)
        if len(waits) == 1:
            await waits[0]
        elif waits:
            await asyncio.gather(*waits)
        response = M["Publish"].response()
        response.message_ids.extend(ids)
        return response


def _records(
    messages: list[Any],
    indexes: Sequence[int],
    partition: int,
    base: int,
    now: int,
    ids: list[str],
) -> list[Record]:
    """The records of ``messages[indexes]`` at offsets from ``base``; fills in
    their ``ids``. A message with neither attributes nor an ordering key (the
    usual one) skips the general header mapping: its only header is its id."""
    records = []
    for place, index in enumerate(indexes):
        message = messages[index]
        ids[index] = id_ = message_id(partition, base + place)
        attributes = message.attributes
        ordering_key = message.ordering_key
        if attributes or ordering_key:
            key = ordering_key.encode("utf-8") if ordering_key else None
            headers = attributes_to_headers(attributes, ordering_key, id_)
        else:
            key = None
            headers = [(MESSAGE_ID, id_.encode("ascii"))]
        records.append(Record(message.data, key, headers, now))
    return records


def _copy_subfield(source: Any, target: Any, path: str) -> bool:
    """Copy the field at dotted ``path`` from ``source`` to ``target``
    (clearing it when unset); False when there is no such field."""
    *parents, leaf = path.split(".")
    for part in parents:
        if part not in source.DESCRIPTOR.fields_by_name:
            return False
        source, target = getattr(source, part), getattr(target, part)
    field = source.DESCRIPTOR.fields_by_name.get(leaf)
    if field is None:
        return False
    if field.message_type is not None and not field.is_repeated:
        if source.HasField(leaf):
            getattr(target, leaf).CopyFrom(getattr(source, leaf))
        else:
            target.ClearField(leaf)
    elif field.is_repeated:
        target.ClearField(leaf)
        getattr(target, leaf).extend(getattr(source, leaf))
    else:
        setattr(target, leaf, getattr(source, leaf))
    return True


def check_messages(messages: list[Any], request_bytes: int) -> None:
    """Google's limits on a publish request, with its INVALID_ARGUMENT texts."""
    if not messages:
        raise invalid("The request must contain at least one message.")
    if len(messages) > MAX_MESSAGES:
        raise invalid(
            f"The value for message_count is too large. You passed {len(messages)} in the "
            f"request, but the maximum value is {MAX_MESSAGES}."
        )
    if request_bytes > MAX_REQUEST_BYTES:
        raise invalid(
            f"The value for request_size is too large. You passed {request_bytes} in the "
            f"request, but the maximum value is {MAX_REQUEST_BYTES}."
        )
    for message in messages:
        attributes = message.attributes
        if attributes:
            _check_attributes(attributes)
        elif not message.data:
            raise invalid(
                "Some messages in the publish request are empty. Each message must contain "
                "a non-empty data field, or at least one attribute."
            )
        ordering_key = message.ordering_key
        # A str of n characters is at most 4n UTF-8 bytes: most keys need no encoding.
        if len(ordering_key) * 4 > MAX_ORDERING_KEY_BYTES:
            size = len(ordering_key.encode())
            if size > MAX_ORDERING_KEY_BYTES:
                raise invalid(
                    f"The value for ordering_key_size is too large. You passed {size} in the "
                    f"request, but the maximum value is {MAX_ORDERING_KEY_BYTES}."
                )


def _check_attributes(attributes: Any) -> None:
    if len(attributes) > MAX_ATTRIBUTES:
        raise invalid(
            f"The value for attribute_count is too large. You passed "
            f"{len(attributes)} in the request, but the maximum value is "
            f"{MAX_ATTRIBUTES}."
        )
    for key, value in attributes.items():
        if not key:
            raise invalid("The attribute key must not be empty.")
        if len(key.encode()) > MAX_ATTRIBUTE_KEY_BYTES:
            raise invalid(
                f"The value for attribute_key_size is too large. You passed "
                f"{len(key.encode())} in the request, but the maximum value is "
                f"{MAX_ATTRIBUTE_KEY_BYTES}."
            )
        if key.startswith("goog"):
            raise invalid(f"The attribute key '{key}' must not start with 'goog'.")
        if len(value.encode()) > MAX_ATTRIBUTE_VALUE_BYTES:
            raise invalid(
                f"The value for attribute_value_size is too large. You passed "
                f"{len(value.encode())} in the request, but the maximum value is "
                f"{MAX_ATTRIBUTE_VALUE_BYTES}."
            )


_MESSAGE_FIELDS = frozenset(
    {
        "message_storage_policy",
        "schema_settings",
        "message_retention_duration",
        "ingestion_data_source_settings",
    }
)
_UPDATABLE_TOPIC_FIELDS = _MESSAGE_FIELDS | {"labels", "kms_key_name", "message_transforms"}

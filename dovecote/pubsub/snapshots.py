"""Snapshots and Seek.

A snapshot is the core's named snapshot of a subscription's progress
(``Subscription.snapshot``: what is unacked then is unacked again after a
seek to it, with everything published since), plus its definition (the
``Snapshot`` protobuf) in the registry. As Google computes it, a snapshot
expires 7 days after the publish time of the oldest message it holds
unacked (7 days after creation when it holds none); ``expiration.py``
deletes it then.

Seek to a time marks messages published before it acked and the ones after
it unacked; an acked message after it is delivered again only when the
subscription retains acked messages or its topic has a message retention
duration (else what was acked stays acked).
"""

from __future__ import annotations

from typing import Any

import grpc
from google.protobuf import field_mask_pb2

from dovecote.core.subscription import UnknownSnapshot
from dovecote.pubsub import names
from dovecote.pubsub.backlog import oldest_unacked_ms
from dovecote.pubsub.checks import check_labels, mask_paths
from dovecote.pubsub.expiration import Expiry
from dovecote.pubsub.methods import SUBSCRIBER_METHODS, Empty
from dovecote.pubsub.paging import page
from dovecote.pubsub.registry import Subscriptions
from dovecote.pubsub.rpc import PubsubError, already_exists, invalid, not_found
from dovecote.pubsub.state import SnapshotPb, from_json, to_json

M = SUBSCRIBER_METHODS
SNAPSHOT_LIFETIME_MS = 7 * 24 * 3600 * 1000
MIN_SNAPSHOT_LIFE_MS = 3600 * 1000
UPDATABLE_FIELDS = frozenset({"labels", "expire_time"})


def timestamp_ms(ts: Any) -> int:
    return int(ts.seconds) * 1000 + int(ts.nanos) // 1_000_000


class Snapshots:
    def __init__(self, subscriptions: Subscriptions) -> None:
        self.subscriptions = subscriptions
        self.core = subscriptions.core
        self.state = subscriptions.state
        self.expiry = Expiry(self.core.clock, self.expire)

    def handlers(self) -> dict[str, Any]:
        return {
            "CreateSnapshot": self.create_snapshot,
            "GetSnapshot": self.get_snapshot,
            "ListSnapshots": self.list_snapshots,
            "UpdateSnapshot": self.update_snapshot,
            "DeleteSnapshot": self.delete_snapshot,
            "Seek": self.seek,
        }

    async def start(self) -> None:
        for name, record in self.state.snapshots.items():
            self._watch(name, from_json(SnapshotPb, record["snapshot"]))

    def close(self) -> None:
        self.expiry.close()

    # --- records ----------------------------------------------------------------------

    def existing(self, name: str) -> Any:
        parsed = names.snapshot(name)
        record = self.state.snapshots.get(name)
        if record is None:
            raise not_found("Resource", parsed.id)
        return from_json(SnapshotPb, record["snapshot"])

    async def _put(self, pb: Any, subscription: str) -> None:
        await self.state.put_snapshot(
            pb.name, {"snapshot": to_json(pb), "topic": pb.topic, "subscription": subscription}
        )
        self._watch(pb.name, pb)

    def _watch(self, name: str, pb: Any) -> None:
        left_ms = timestamp_ms(pb.expire_time) - self.core.clock.wall_ms()
        self.expiry.watch(name, max(0.0, left_ms / 1000))

    async def expire(self, name: str) -> None:
        await self._delete(name)

    async def _delete(self, name: str) -> None:
        self.expiry.forget(name)
        await self.state.delete_snapshot(name)
        await self.state.delete_policy(name)
        self.core.delete_snapshot(name)

    # --- RPCs -------------------------------------------------------------------------

    async def create_snapshot(self, request: Any, context: Any) -> Any:
        names.snapshot(request.name)
        entry = self.subscriptions.existing(request.subscription)
        if request.name in self.state.snapshots:
            raise already_exists(request.name)
        check_labels(request.labels)
        if entry.pb.topic == names.DELETED_TOPIC:
            raise PubsubError(
                grpc.StatusCode.FAILED_PRECONDITION,
                "Cannot create a snapshot of a subscription whose topic has been deleted.",
            )
        sub = self.subscriptions.core_subscription(entry)
        now = self.core.clock.wall_ms()
        oldest = oldest_unacked_ms(sub)
        expire_ms = (now if oldest is None else oldest) + SNAPSHOT_LIFETIME_MS
        if expire_ms - now < MIN_SNAPSHOT_LIFE_MS:
            # Google's rule: a snapshot that would expire within the hour is refused.
            raise PubsubError(
                grpc.StatusCode.FAILED_PRECONDITION,
                "The subscription's backlog is too old to be snapshotted: the snapshot "
                "would expire in less than 1 hour.",
            )
        sub.snapshot(request.name)
        pb = SnapshotPb()
        pb.name = request.name
        pb.topic = entry.pb.topic
        pb.expire_time.FromMilliseconds(expire_ms)
        pb.labels.update(request.labels)
        await self._put(pb, entry.name)
        return pb

    async def get_snapshot(self, request: Any, context: Any) -> Any:
        return self.existing(request.snapshot)

    async def list_snapshots(self, request: Any, context: Any) -> Any:
        project = names.parse_project(request.project)
        prefix = f"projects/{project}/snapshots/"
        found, token = page(
            sorted(n for n in self.state.snapshots if n.startswith(prefix)),
            request.page_size,
            request.page_token,
        )
        response = M["ListSnapshots"].response()
        response.snapshots.extend(self.existing(n) for n in found)
        response.next_page_token = token
        return response

    async def update_snapshot(self, request: Any, context: Any) -> Any:
        pb = self.existing(request.snapshot.name)
        paths = mask_paths(request, "Snapshot")
        fields = SnapshotPb.DESCRIPTOR.fields_by_name
        for path in paths:
            if path not in fields:
                raise invalid(
                    "Invalid update_mask provided in the UpdateSnapshotRequest: "
                    f"{path} is not a known Snapshot field."
                )
            if path not in UPDATABLE_FIELDS:
                raise invalid(
                    "Invalid update_mask provided in the UpdateSnapshotRequest: the "
                    f"{path} field in the Snapshot is not mutable."
                )
        field_mask_pb2.FieldMask(paths=paths).MergeMessage(
            request.snapshot, pb, replace_message_field=True, replace_repeated_field=True
        )
        check_labels(pb.labels)
        if "expire_time" in paths and timestamp_ms(pb.expire_time) <= self.core.clock.wall_ms():
            raise invalid("Invalid expire_time: it must be in the future.")
        record = self.state.snapshots[pb.name]
        await self._put(pb, record.get("subscription", ""))
        return pb

    async def delete_snapshot(self, request: Any, context: Any) -> Any:
        pb = self.existing(request.snapshot)
        await self._delete(pb.name)
        return Empty()

    async def seek(self, request: Any, context: Any) -> Any:
        entry = self.subscriptions.existing(request.subscription)
        target = request.WhichOneof("target")
        if target is None:
            raise invalid(
                "No target was specified in the SeekRequest. Must specify either a time "
                "or a snapshot"
            )
        if target == "snapshot":
            snapshot = self.existing(request.snapshot)
            if snapshot.topic != entry.pb.topic:
                raise PubsubError(
                    grpc.StatusCode.FAILED_PRECONDITION,
                    f"The subscription's topic {entry.pb.topic} is different from that of the "
                    f"snapshot {snapshot.topic}; they must match in order for Seek work. Note "
                    "that if a topic is deleted and then re-created with the same name, it is "
                    "considered a distinct topic for these purposes.",
                )
            sub = self.subscriptions.core_subscription(entry)
            try:
                sub.seek_to_snapshot(snapshot.name)
            except UnknownSnapshot:
                raise not_found("Resource", names.snapshot(snapshot.name).id) from None
        else:
            sub = self.subscriptions.core_subscription(entry)
            topic = self.state.topic(entry.pb.topic)
            # Acked messages are replayed when the subscription retains them, or
            # the topic does (its message_retention_duration, as Google has it).
            replay = entry.pb.retain_acked_messages or (
                topic is not None and topic.pb.HasField("message_retention_duration")
            )
            sub.seek_to_time(timestamp_ms(request.time), keep_settled=not replay)
        return M["Seek"].response()

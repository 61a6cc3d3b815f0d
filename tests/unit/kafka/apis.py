"""The Kafka APIs Dovecote's broker implements, by api key, and request helpers."""

from __future__ import annotations

import io
from typing import Any

from kio.serial import entity_writer

from dovecote.kafka.codec import (
    KIO_VERSIONS,
    RequestHeader,
    encode_request_header,
    is_flexible,
)

BROKER_APIS = {
    "Produce": 0,
    "Fetch": 1,
    "ListOffsets": 2,
    "Metadata": 3,
    "OffsetCommit": 8,
    "OffsetFetch": 9,
    "FindCoordinator": 10,
    "JoinGroup": 11,
    "Heartbeat": 12,
    "LeaveGroup": 13,
    "SyncGroup": 14,
    "DescribeGroups": 15,
    "ListGroups": 16,
    "SaslHandshake": 17,
    "ApiVersions": 18,
    "CreateTopics": 19,
    "DeleteTopics": 20,
    "DeleteRecords": 21,
    "InitProducerId": 22,
    "AddPartitionsToTxn": 24,
    "AddOffsetsToTxn": 25,
    "EndTxn": 26,
    "TxnOffsetCommit": 28,
    "DescribeConfigs": 32,
    "AlterConfigs": 33,
    "SaslAuthenticate": 36,
    "CreatePartitions": 37,
    "DeleteGroups": 42,
    "IncrementalAlterConfigs": 44,
    "OffsetDelete": 47,
    "DescribeCluster": 60,
}

SUPPORTED = {key: KIO_VERSIONS[key] for key in BROKER_APIS.values()}
"""Every version kio has of every broker API."""

ALL_VERSIONS = [
    (name, key, version)
    for name, key in BROKER_APIS.items()
    for version in range(KIO_VERSIONS[key][0], KIO_VERSIONS[key][1] + 1)
]


def encode_body(entity: Any) -> bytes:
    """kio's own bytes for ``entity``: the reference the codec is held to."""
    out = io.BytesIO()
    entity_writer(type(entity))(out, entity)
    return out.getvalue()


def request_frame(
    body: Any, correlation_id: int = 7, client_id: str | None = "test-client", tags=None
) -> bytes:
    """Header + body of a request, without the size prefix (what FrameReader yields)."""
    key, version = body.__api_key__, body.__version__
    header = RequestHeader(key, version, correlation_id, client_id, tags or {})
    return encode_request_header(header, is_flexible(key, version)) + encode_body(body)

"""google.iam.v1.IAMPolicy for topics, subscriptions, snapshots and schemas.

Policies are stored (with an etag that changes on every set, so
read-modify-write clients can detect a race) but not enforced: a Pub/Sub
emulator has no identities to check. TestIamPermissions grants everything
asked, as permissive-by-default means.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import grpc
from google.protobuf import json_format

from dovecote.pubsub import names
from dovecote.pubsub.methods import IAM_METHODS, IAM_POLICY
from dovecote.pubsub.rpc import PubsubError, ServiceTable, invalid, not_found
from dovecote.pubsub.state import PubsubState

M = IAM_METHODS
Policy: Any = M["GetIamPolicy"].response
_COLLECTIONS = (names.TOPICS, names.SUBSCRIPTIONS, names.SNAPSHOTS, names.SCHEMAS)


class IamPolicies:
    def __init__(self, state: PubsubState, schema_exists: Any = None) -> None:
        self.state = state
        self.schema_exists = schema_exists  # name -> bool, once schemas exist

    def table(self) -> ServiceTable:
        return ServiceTable(
            IAM_POLICY,
            M,
            {
                "SetIamPolicy": self.set_policy,
                "GetIamPolicy": self.get_policy,
                "TestIamPermissions": self.test_permissions,
            },
        )

    def _check(self, resource: str) -> None:
        parts = resource.split("/")
        if len(parts) != 4 or parts[2] not in _COLLECTIONS:
            raise invalid(f"Invalid resource name given (name={resource}).")
        collection = parts[2]
        names.parse(resource, collection)
        exists = {
            names.TOPICS: lambda: self.state.topic(resource) is not None,
            names.SUBSCRIPTIONS: lambda: self.state.subscription(resource) is not None,
            names.SNAPSHOTS: lambda: resource in self.state.snapshots,
            names.SCHEMAS: lambda: self.schema_exists is None or self.schema_exists(resource),
        }[collection]
        if not exists():
            raise not_found("Resource", resource)

    async def set_policy(self, request: Any, context: Any) -> Any:
        self._check(request.resource)
        policy = Policy()
        policy.CopyFrom(request.policy)
        current = self._stored(request.resource)
        if policy.etag and policy.etag != current.etag:
            raise PubsubError(
                grpc.StatusCode.ABORTED,
                "There were concurrent policy changes. Please retry the whole read-modify-write "
                "with exponential backoff.",
            )
        if not policy.version:
            policy.version = 1
        data = policy.SerializeToString(deterministic=True) + current.etag
        policy.etag = base64.b64encode(hashlib.sha256(data).digest()[:8])
        await self.state.put_policy(
            request.resource, json_format.MessageToDict(policy, preserving_proto_field_name=True)
        )
        return policy

    async def get_policy(self, request: Any, context: Any) -> Any:
        self._check(request.resource)
        return self._stored(request.resource)

    async def test_permissions(self, request: Any, context: Any) -> Any:
        self._check(request.resource)
        response = M["TestIamPermissions"].response()
        response.permissions.extend(request.permissions)
        return response

    def _stored(self, resource: str) -> Any:
        stored = self.state.policies.get(resource)
        if stored is None:
            return Policy(version=1, etag=b"ACAB")
        return json_format.ParseDict(stored, Policy(), ignore_unknown_fields=True)

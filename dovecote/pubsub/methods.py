"""Every RPC the Pub/Sub listener knows: service -> method -> message classes.

The classes are the plain protobuf ones behind google-cloud-pubsub's proto-plus
types (``types.X.pb()``) and grpc-google-iam-v1's modules, so no .proto is
compiled here (the ones shipped under google/cloud/pubsub_v1/proto are stale).
"""

from __future__ import annotations

from google.iam.v1 import iam_policy_pb2, policy_pb2
from google.protobuf import empty_pb2
from google.pubsub_v1 import types

from dovecote.pubsub.rpc import Method

PUBLISHER = "google.pubsub.v1.Publisher"
SUBSCRIBER = "google.pubsub.v1.Subscriber"
SCHEMA_SERVICE = "google.pubsub.v1.SchemaService"
IAM_POLICY = "google.iam.v1.IAMPolicy"

Empty = empty_pb2.Empty


def _m(request: type, response: type, stream: bool = False) -> Method:
    req = request if request is Empty or request.__module__.endswith("_pb2") else request.pb()
    res = response if response is Empty or response.__module__.endswith("_pb2") else response.pb()
    return Method(req, res, stream)


PUBLISHER_METHODS = {
    "CreateTopic": _m(types.Topic, types.Topic),
    "UpdateTopic": _m(types.UpdateTopicRequest, types.Topic),
    "Publish": _m(types.PublishRequest, types.PublishResponse),
    "GetTopic": _m(types.GetTopicRequest, types.Topic),
    "ListTopics": _m(types.ListTopicsRequest, types.ListTopicsResponse),
    "ListTopicSubscriptions": _m(
        types.ListTopicSubscriptionsRequest, types.ListTopicSubscriptionsResponse
    ),
    "ListTopicSnapshots": _m(types.ListTopicSnapshotsRequest, types.ListTopicSnapshotsResponse),
    "DeleteTopic": _m(types.DeleteTopicRequest, Empty),
    "DetachSubscription": _m(types.DetachSubscriptionRequest, types.DetachSubscriptionResponse),
}

SUBSCRIBER_METHODS = {
    "CreateSubscription": _m(types.Subscription, types.Subscription),
    "GetSubscription": _m(types.GetSubscriptionRequest, types.Subscription),
    "UpdateSubscription": _m(types.UpdateSubscriptionRequest, types.Subscription),
    "ListSubscriptions": _m(types.ListSubscriptionsRequest, types.ListSubscriptionsResponse),
    "DeleteSubscription": _m(types.DeleteSubscriptionRequest, Empty),
    "ModifyAckDeadline": _m(types.ModifyAckDeadlineRequest, Empty),
    "Acknowledge": _m(types.AcknowledgeRequest, Empty),
    "Pull": _m(types.PullRequest, types.PullResponse),
    "StreamingPull": _m(types.StreamingPullRequest, types.StreamingPullResponse, stream=True),
    "ModifyPushConfig": _m(types.ModifyPushConfigRequest, Empty),
    "GetSnapshot": _m(types.GetSnapshotRequest, types.Snapshot),
    "ListSnapshots": _m(types.ListSnapshotsRequest, types.ListSnapshotsResponse),
    "CreateSnapshot": _m(types.CreateSnapshotRequest, types.Snapshot),
    "UpdateSnapshot": _m(types.UpdateSnapshotRequest, types.Snapshot),
    "DeleteSnapshot": _m(types.DeleteSnapshotRequest, Empty),
    "Seek": _m(types.SeekRequest, types.SeekResponse),
}

SCHEMA_METHODS = {
    "CreateSchema": _m(types.CreateSchemaRequest, types.Schema),
    "GetSchema": _m(types.GetSchemaRequest, types.Schema),
    "ListSchemas": _m(types.ListSchemasRequest, types.ListSchemasResponse),
    "ListSchemaRevisions": _m(types.ListSchemaRevisionsRequest, types.ListSchemaRevisionsResponse),
    "CommitSchema": _m(types.CommitSchemaRequest, types.Schema),
    "RollbackSchema": _m(types.RollbackSchemaRequest, types.Schema),
    "DeleteSchemaRevision": _m(types.DeleteSchemaRevisionRequest, types.Schema),
    "DeleteSchema": _m(types.DeleteSchemaRequest, Empty),
    "ValidateSchema": _m(types.ValidateSchemaRequest, types.ValidateSchemaResponse),
    "ValidateMessage": _m(types.ValidateMessageRequest, types.ValidateMessageResponse),
}

IAM_METHODS = {
    "SetIamPolicy": _m(iam_policy_pb2.SetIamPolicyRequest, policy_pb2.Policy),
    "GetIamPolicy": _m(iam_policy_pb2.GetIamPolicyRequest, policy_pb2.Policy),
    "TestIamPermissions": _m(
        iam_policy_pb2.TestIamPermissionsRequest, iam_policy_pb2.TestIamPermissionsResponse
    ),
}

SERVICES = {
    PUBLISHER: PUBLISHER_METHODS,
    SUBSCRIBER: SUBSCRIBER_METHODS,
    SCHEMA_SERVICE: SCHEMA_METHODS,
    IAM_POLICY: IAM_METHODS,
}

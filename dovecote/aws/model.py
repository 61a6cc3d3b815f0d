"""The SQS and SNS service models botocore ships, and the facts they leave out.

botocore's SQS model is the awsJson1_0 one: it lost the query protocol's wire names
(``Attribute.1.Name``, ``SendMessageBatchRequestEntry.1.Id``...), the XML namespace and
the legacy error codes. Those are put back here as data, so the codec stays driven by
the model for both protocols.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from functools import cache
from typing import Any

import botocore.session
from botocore.model import ServiceModel, Shape

SQS_NAMESPACE = "http://queue.amazonaws.com/doc/2012-11-05/"

# SQS query names: list member names (flattened lists repeat them), and the
# structure members renamed on the wire (maps take the member's name as prefix).
_SQS_LIST_MEMBER_NAMES = {
    "AWSAccountIdList": "AWSAccountId",
    "ActionNameList": "ActionName",
    "AttributeNameList": "AttributeName",
    "BatchResultErrorEntryList": "BatchResultErrorEntry",
    "BinaryList": "BinaryListValue",
    "ChangeMessageVisibilityBatchRequestEntryList": "ChangeMessageVisibilityBatchRequestEntry",
    "ChangeMessageVisibilityBatchResultEntryList": "ChangeMessageVisibilityBatchResultEntry",
    "DeleteMessageBatchRequestEntryList": "DeleteMessageBatchRequestEntry",
    "DeleteMessageBatchResultEntryList": "DeleteMessageBatchResultEntry",
    "MessageAttributeNameList": "MessageAttributeName",
    "MessageList": "Message",
    "MessageSystemAttributeList": "MessageSystemAttributeName",
    "QueueUrlList": "QueueUrl",
    "SendMessageBatchRequestEntryList": "SendMessageBatchRequestEntry",
    "SendMessageBatchResultEntryList": "SendMessageBatchResultEntry",
    "StringList": "StringListValue",
    "TagKeyList": "TagKey",
    "ListMessageMoveTasksResultEntryList": "ListMessageMoveTasksResultEntry",
}
_SQS_MAP_ENTRY_NAMES = {
    "QueueAttributeMap": ("Name", "Value"),
    "MessageBodyAttributeMap": ("Name", "Value"),
    "MessageBodySystemAttributeMap": ("Name", "Value"),
    "MessageSystemAttributeMap": ("Name", "Value"),
    "TagMap": ("Key", "Value"),
}
_SQS_MEMBER_NAMES = {
    ("CreateQueueRequest", "Attributes"): "Attribute",
    ("CreateQueueRequest", "tags"): "Tag",
    ("GetQueueAttributesResult", "Attributes"): "Attribute",
    ("SetQueueAttributesRequest", "Attributes"): "Attribute",
    ("ListQueueTagsResult", "Tags"): "Tag",
    ("TagQueueRequest", "Tags"): "Tag",
    ("Message", "Attributes"): "Attribute",
    ("Message", "MessageAttributes"): "MessageAttribute",
    ("SendMessageRequest", "MessageAttributes"): "MessageAttribute",
    ("SendMessageRequest", "MessageSystemAttributes"): "MessageSystemAttribute",
    ("SendMessageBatchRequestEntry", "MessageAttributes"): "MessageAttribute",
    ("SendMessageBatchRequestEntry", "MessageSystemAttributes"): "MessageSystemAttribute",
}

# The awsQueryError codes of SQS's errors (AWS's SQS API reference), which
# botocore's SQS model omits: shape name -> (legacy code, HTTP status).
_SQS_LEGACY_ERRORS = {
    "QueueDoesNotExist": ("AWS.SimpleQueueService.NonExistentQueue", 400),
    "QueueNameExists": ("QueueAlreadyExists", 400),
    "QueueDeletedRecently": ("AWS.SimpleQueueService.QueueDeletedRecently", 400),
    "PurgeQueueInProgress": ("AWS.SimpleQueueService.PurgeQueueInProgress", 403),
    "BatchEntryIdsNotDistinct": ("AWS.SimpleQueueService.BatchEntryIdsNotDistinct", 400),
    "BatchRequestTooLong": ("AWS.SimpleQueueService.BatchRequestTooLong", 400),
    "EmptyBatchRequest": ("AWS.SimpleQueueService.EmptyBatchRequest", 400),
    "InvalidBatchEntryId": ("AWS.SimpleQueueService.InvalidBatchEntryId", 400),
    "TooManyEntriesInBatchRequest": ("AWS.SimpleQueueService.TooManyEntriesInBatchRequest", 400),
    "UnsupportedOperation": ("AWS.SimpleQueueService.UnsupportedOperation", 400),
    "MessageNotInflight": ("AWS.SimpleQueueService.MessageNotInflight", 400),
    "OverLimit": ("OverLimit", 403),
    "RequestThrottled": ("RequestThrottled", 403),
    "InvalidSecurity": ("InvalidSecurity", 403),
    "InvalidAddress": ("InvalidAddress", 404),
    "ResourceNotFoundException": ("ResourceNotFoundException", 404),
    "KmsAccessDenied": ("KMS.AccessDeniedException", 400),
    "KmsDisabled": ("KMS.DisabledException", 400),
    "KmsInvalidKeyUsage": ("KMS.InvalidKeyUsageException", 400),
    "KmsInvalidState": ("KMS.InvalidStateException", 400),
    "KmsNotFound": ("KMS.NotFoundException", 400),
    "KmsOptInRequired": ("KMS.OptInRequired", 403),
    "KmsThrottled": ("KMS.ThrottlingException", 400),
}


@dataclass(frozen=True)
class ErrorInfo:
    """How one error is written: the type name for JSON, the query code, status, fault."""

    shape_name: str
    query_code: str
    status: int
    sender_fault: bool


@dataclass(frozen=True)
class Service:
    """One service as the codec sees it."""

    name: str  # "sqs" or "sns"
    api_version: str
    namespace: str
    target_prefix: str | None
    json_namespace: str | None  # the "com.amazonaws.sqs" of JSON error __types


SQS = Service("sqs", "2012-11-05", SQS_NAMESPACE, "AmazonSQS", "com.amazonaws.sqs")
SNS = Service("sns", "2010-03-31", "http://sns.amazonaws.com/doc/2010-03-31/", None, None)
# STS only for GetCallerIdentity: SDK helpers and test fixtures ask who they are.
STS = Service("sts", "2011-06-15", "https://sts.amazonaws.com/doc/2011-06-15/", None, None)
SERVICES = {s.name: s for s in (SQS, SNS, STS)}
BY_VERSION = {s.api_version: s for s in (SQS, SNS, STS)}


@cache
def _raw(name: str) -> dict[str, Any]:
    loader = botocore.session.get_session().get_component("data_loader")
    return loader.load_service_model(name, "service-2")


def _sqs_query_variant(raw: dict[str, Any]) -> dict[str, Any]:
    data = copy.deepcopy(raw)
    data["metadata"].update(protocol="query", protocols=["query"], xmlNamespace=SQS_NAMESPACE)
    data["metadata"].pop("awsQueryCompatible", None)
    shapes = data["shapes"]
    for shape, member_name in _SQS_LIST_MEMBER_NAMES.items():
        shapes[shape]["member"]["locationName"] = member_name
        shapes[shape]["flattened"] = True
    for shape, (key, value) in _SQS_MAP_ENTRY_NAMES.items():
        shapes[shape]["key"]["locationName"] = key
        shapes[shape]["value"]["locationName"] = value
    for (structure, member), location in _SQS_MEMBER_NAMES.items():
        shapes[structure]["members"][member]["locationName"] = location
    for op in data["operations"].values():
        if "output" in op:
            op["output"]["resultWrapper"] = f"{op['name']}Result"
    return data


@cache
def service_model(name: str, protocol: str) -> ServiceModel:
    """The botocore model of ``name`` ("sqs"/"sns"/"sts") for ``protocol`` ("json"/"query")."""
    raw = _raw(name)
    if name == "sqs" and protocol == "query":
        raw = _sqs_query_variant(raw)
    elif raw["metadata"]["protocol"] != protocol:
        raise ValueError(f"{name} does not speak {protocol}")
    return ServiceModel(raw, service_name=name)


def error_info(service: Service, code: str) -> ErrorInfo:
    """The wire facts of error ``code`` (a shape name, or a common code such as MissingParameter)."""
    model = service_model(service.name, "json" if service is SQS else "query")
    if service is SQS and code in _SQS_LEGACY_ERRORS:
        legacy, status = _SQS_LEGACY_ERRORS[code]
        return ErrorInfo(code, legacy, status, status < 500)
    try:
        shape: Shape = model.shape_for(code)
    except Exception:
        shape = None  # type: ignore[assignment]
    meta = (
        shape.metadata.get("error", {})
        if shape is not None and shape.metadata.get("exception")
        else {}
    )
    status = int(meta.get("httpStatusCode", 500 if code == "InternalFailure" else 400))
    return ErrorInfo(
        code, meta.get("code", code), status, bool(meta.get("senderFault", status < 500))
    )

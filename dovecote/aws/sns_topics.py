"""SNS topics: each one a core fanout exchange of the same name, its SNS-only
metadata (attributes, tags) in the catalog as kind "sns-topic".

An AMQP client may bind its own queue to the exchange and receive what SNS
publishes; deleting the topic deletes the exchange and its bindings.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from dovecote.aws.context import RequestContext
from dovecote.aws.errors import AwsError
from dovecote.core.queues import QueueManager

KIND = "sns-topic"
PAGE = 100
MAX_TAGS = 50
_NAME = re.compile(r"[A-Za-z0-9_-]{1,256}")
_FIFO_NAME = re.compile(r"[A-Za-z0-9_-]{1,251}\.fifo")

SETTABLE = frozenset(
    {
        "DisplayName",
        "Policy",
        "DeliveryPolicy",
        "KmsMasterKeyId",
        "SignatureVersion",
        "TracingConfig",
        "ContentBasedDeduplication",
        "ArchivePolicy",
        "DataProtectionPolicy",
        "FifoThroughputScope",
    }
)
CREATE_ONLY = frozenset({"FifoTopic"})

DEFAULT_HTTP_RETRY = {
    "minDelayTarget": 20,
    "maxDelayTarget": 20,
    "numRetries": 3,
    "numMaxDelayRetries": 0,
    "numNoDelayRetries": 0,
    "numMinDelayRetries": 0,
    "backoffFunction": "linear",
}


def invalid_parameter(what: str) -> AwsError:
    return AwsError("InvalidParameterException", f"Invalid parameter: {what}")


def topic_missing() -> AwsError:
    return AwsError("NotFoundException", "Topic does not exist")


def name_of_arn(arn: str) -> str:
    """The topic a TopicArn names; InvalidParameter when it is not an SNS ARN."""
    parts = str(arn).split(":")
    if len(parts) != 6 or parts[0] != "arn" or parts[2] != "sns" or not parts[5]:
        raise invalid_parameter("TopicArn")
    return parts[5]


def default_policy(arn: str, account: str) -> str:
    actions = [
        "SNS:GetTopicAttributes",
        "SNS:SetTopicAttributes",
        "SNS:AddPermission",
        "SNS:RemovePermission",
        "SNS:DeleteTopic",
        "SNS:Subscribe",
        "SNS:ListSubscriptionsByTopic",
        "SNS:Publish",
    ]
    policy = {
        "Version": "2008-10-17",
        "Id": "__default_policy_ID",
        "Statement": [
            {
                "Sid": "__default_statement_ID",
                "Effect": "Allow",
                "Principal": {"AWS": "*"},
                "Action": actions,
                "Resource": arn,
                "Condition": {"StringEquals": {"AWS:SourceOwner": account}},
            }
        ],
    }
    return json.dumps(policy, separators=(",", ":"))


def effective_delivery_policy(topic_policy: str | None) -> dict[str, Any]:
    """The topic's DeliveryPolicy over AWS's defaults (only ``http`` matters here)."""
    retry = dict(DEFAULT_HTTP_RETRY)
    http: dict[str, Any] = {
        "defaultHealthyRetryPolicy": retry,
        "disableSubscriptionOverrides": False,
        "defaultRequestPolicy": {"headerContentType": "text/plain; charset=UTF-8"},
    }
    if topic_policy:
        given = json.loads(topic_policy).get("http", {})
        retry.update(given.get("defaultHealthyRetryPolicy") or {})
        for key in ("disableSubscriptionOverrides", "defaultThrottlePolicy"):
            if key in given:
                http[key] = given[key]
        if "defaultRequestPolicy" in given:
            http["defaultRequestPolicy"] = given["defaultRequestPolicy"]
    return {"http": http}


def check_delivery_policy(text: str, *, subscription: bool) -> None:
    """The shape checks SNS makes before accepting a DeliveryPolicy."""
    try:
        doc = json.loads(text)
    except ValueError:
        doc = None
    if not isinstance(doc, dict):
        raise invalid_parameter("DeliveryPolicy: failed to parse JSON.")
    retry = (
        doc.get("healthyRetryPolicy")
        if subscription
        else (doc.get("http") or {}).get("defaultHealthyRetryPolicy")
    )
    if retry is None:
        return
    if not isinstance(retry, dict):
        raise invalid_parameter("DeliveryPolicy: healthyRetryPolicy must be an object")
    for key in ("minDelayTarget", "maxDelayTarget", "numRetries"):
        value = retry.get(key)
        if value is not None and (not isinstance(value, int) or value < 0):
            raise invalid_parameter(f"DeliveryPolicy: {key} must be a non-negative integer")
    low, high = retry.get("minDelayTarget", 20), retry.get("maxDelayTarget", 20)
    if low > high:
        raise invalid_parameter("DeliveryPolicy: minDelayTarget must be <= maxDelayTarget")
    if retry.get("numRetries", 3) > 100:
        raise invalid_parameter("DeliveryPolicy: numRetries must be <= 100")
    function = retry.get("backoffFunction", "linear")
    if function not in ("linear", "arithmetic", "geometric", "exponential"):
        raise invalid_parameter(f"DeliveryPolicy: invalid backoffFunction {function}")


def check_attribute(name: str, value: str) -> str:
    """A topic attribute's value as stored; InvalidParameter as SNS answers."""
    if name == "SignatureVersion" and value not in ("1", "2"):
        raise invalid_parameter("SignatureVersion")
    if name in ("ContentBasedDeduplication", "FifoTopic"):
        if value.lower() not in ("true", "false"):
            raise invalid_parameter(f"{name}: Invalid value [{value}]. Must be true or false.")
        return value.lower()
    if name == "DeliveryPolicy" and value:
        check_delivery_policy(value, subscription=False)
    if name == "Policy" and value:
        try:
            json.loads(value)
        except ValueError:
            raise invalid_parameter("Policy Error: null") from None
    if name == "DisplayName" and len(value) > 100:
        raise invalid_parameter("DisplayName")
    return value


@dataclass
class Topic:
    name: str
    arn: str
    owner: str
    fifo: bool
    attributes: dict[str, str] = field(default_factory=dict)  # the settable ones given
    tags: dict[str, str] = field(default_factory=dict)
    deleted_subscriptions: int = 0
    last_sequence: int = 0  # FIFO SequenceNumber (not stored: time-based, so it grows)

    @property
    def signature_version(self) -> str:
        return self.attributes.get("SignatureVersion", "1")

    @property
    def content_based_dedup(self) -> bool:
        return self.attributes.get("ContentBasedDeduplication", "false") == "true"

    def next_sequence(self, now_ms: int) -> str:
        self.last_sequence = max(self.last_sequence + 1, now_ms * 1_000_000)
        return f"{self.last_sequence:020d}"

    def to_json(self) -> dict[str, Any]:
        return {
            "arn": self.arn,
            "owner": self.owner,
            "fifo": self.fifo,
            "attributes": self.attributes,
            "tags": self.tags,
            "deleted": self.deleted_subscriptions,
        }

    @classmethod
    def from_json(cls, name: str, data: dict[str, Any]) -> Topic:
        return cls(
            name,
            data["arn"],
            data["owner"],
            bool(data.get("fifo")),
            dict(data.get("attributes", {})),
            dict(data.get("tags", {})),
            int(data.get("deleted", 0)),
        )


def _tags(params: dict[str, Any]) -> dict[str, str]:
    return {str(t["Key"]): str(t["Value"]) for t in params.get("Tags") or []}


def _page_token(name: str) -> str:
    return base64.urlsafe_b64encode(name.encode()).decode()


def _after(token: Any) -> str:
    if token is None:
        return ""
    try:
        return base64.urlsafe_b64decode(str(token).encode()).decode()
    except ValueError:
        raise invalid_parameter("NextToken") from None


class SnsTopics:
    """The topic operations. ``counts(topic) -> (confirmed, pending)`` and
    ``on_delete(topic)`` come from the subscriptions."""

    def __init__(self, manager: QueueManager) -> None:
        self.manager = manager
        self.catalog = manager.catalog
        self.topics: dict[str, Topic] = {}
        self.counts: Callable[[Topic], tuple[int, int]] = lambda _t: (0, 0)
        self.on_delete: Callable[[Topic], Any] | None = None

    async def load(self) -> None:
        for name, data in self.catalog.items(KIND).items():
            topic = Topic.from_json(name, data)
            self.topics[name] = topic
            await self.manager.declare_exchange(name, "fanout", durable=True)

    def by_arn(self, arn: Any) -> Topic:
        topic = self.topics.get(name_of_arn(str(arn)))
        if topic is None:
            raise topic_missing()
        return topic

    async def save(self, topic: Topic) -> None:
        await self.catalog.put(KIND, topic.name, topic.to_json())

    # --- operations -------------------------------------------------------------------

    async def create_topic(self, params: dict[str, Any], ctx: RequestContext) -> dict[str, Any]:
        name = str(params["Name"])
        given = {str(k): str(v) for k, v in (params.get("Attributes") or {}).items()}
        for key in given:
            if key not in SETTABLE and key not in CREATE_ONLY:
                raise invalid_parameter(f"Attributes Reason: Unknown attribute {key}")
        fifo = check_attribute("FifoTopic", given.pop("FifoTopic", "false")) == "true"
        if fifo and not _FIFO_NAME.fullmatch(name):
            raise invalid_parameter(
                "Fifo Topic names must end with .fifo and must be made up of only uppercase "
                "and lowercase ASCII letters, numbers, underscores, and hyphens, and must be "
                "between 1 and 256 characters long."
            )
        if not fifo and not _NAME.fullmatch(name):
            raise invalid_parameter("Topic Name")
        if not fifo and "ContentBasedDeduplication" in given:
            raise invalid_parameter(
                "Attributes Reason: ContentBasedDeduplication is only valid for FIFO topics"
            )
        attributes = {k: check_attribute(k, v) for k, v in given.items()}
        tags = _tags(params)
        existing = self.topics.get(name)
        if existing is not None:
            if any(existing.attributes.get(k, _default(k)) != v for k, v in attributes.items()):
                raise invalid_parameter(
                    "Attributes Reason: Topic already exists with different attributes"
                )
            if tags and any(existing.tags.get(k) != v for k, v in tags.items()):
                raise invalid_parameter("Tags Reason: Topic already exists with different tags")
            return {"TopicArn": existing.arn}
        if len(tags) > MAX_TAGS:
            raise tag_limit()
        topic = Topic(name, ctx.arn("sns", name), ctx.account, fifo, attributes, tags)
        self.topics[name] = topic  # before awaiting: a concurrent create finds it
        await self.manager.declare_exchange(name, "fanout", durable=True)
        await self.save(topic)
        return {"TopicArn": topic.arn}

    async def delete_topic(self, params: dict[str, Any], ctx: RequestContext) -> dict[str, Any]:
        name = name_of_arn(str(params["TopicArn"]))
        topic = self.topics.pop(name, None)
        if topic is None:
            return {}  # AWS: deleting a missing topic succeeds
        if self.on_delete is not None:
            await self.on_delete(topic)
        await self.manager.delete_exchange(name)
        await self.catalog.delete(KIND, name)
        return {}

    async def list_topics(self, params: dict[str, Any], ctx: RequestContext) -> dict[str, Any]:
        after = _after(params.get("NextToken"))
        names = sorted(n for n in self.topics if n > after)
        page = names[:PAGE]
        result: dict[str, Any] = {"Topics": [{"TopicArn": self.topics[n].arn} for n in page]}
        if len(names) > PAGE:
            result["NextToken"] = _page_token(page[-1])
        return result

    def attributes(self, topic: Topic) -> dict[str, str]:
        confirmed, pending = self.counts(topic)
        out = {
            "TopicArn": topic.arn,
            "Owner": topic.owner,
            "Policy": default_policy(topic.arn, topic.owner),
            "DisplayName": "",
            "SubscriptionsConfirmed": str(confirmed),
            "SubscriptionsPending": str(pending),
            "SubscriptionsDeleted": str(topic.deleted_subscriptions),
            "EffectiveDeliveryPolicy": json.dumps(
                effective_delivery_policy(topic.attributes.get("DeliveryPolicy")),
                separators=(",", ":"),
            ),
        }
        if topic.fifo:
            out["FifoTopic"] = "true"
            out["ContentBasedDeduplication"] = "false"
        out.update(topic.attributes)
        return out

    async def get_topic_attributes(
        self, params: dict[str, Any], ctx: RequestContext
    ) -> dict[str, Any]:
        return {"Attributes": self.attributes(self.by_arn(params["TopicArn"]))}

    async def set_topic_attributes(
        self, params: dict[str, Any], ctx: RequestContext
    ) -> dict[str, Any]:
        topic = self.by_arn(params["TopicArn"])
        name = str(params["AttributeName"])
        value = str(params.get("AttributeValue") or "")
        if name not in SETTABLE:
            raise invalid_parameter("AttributeName")
        if name == "ContentBasedDeduplication" and not topic.fifo:
            raise invalid_parameter(
                "ContentBasedDeduplication Reason: ContentBasedDeduplication can only be "
                "set for FIFO topics"
            )
        topic.attributes[name] = check_attribute(name, value)
        await self.save(topic)
        return {}

    # --- permissions and data protection ----------------------------------------------

    def _policy(self, topic: Topic) -> dict[str, Any]:
        text = topic.attributes.get("Policy") or default_policy(topic.arn, topic.owner)
        policy = json.loads(text)
        policy.setdefault("Statement", [])
        return policy

    async def add_permission(self, params: dict[str, Any], ctx: RequestContext) -> dict[str, Any]:
        """A statement allowing the accounts the actions, labelled for RemovePermission."""
        topic = self.by_arn(params["TopicArn"])
        label = str(params["Label"])
        policy = self._policy(topic)
        if any(s.get("Sid") == label for s in policy["Statement"]):
            raise invalid_parameter("Statement already exists")
        accounts = [f"arn:aws:iam::{a}:root" for a in params.get("AWSAccountId") or []]
        actions = [f"SNS:{a}" for a in params.get("ActionName") or []]
        policy["Statement"].append(
            {
                "Sid": label,
                "Effect": "Allow",
                "Principal": {"AWS": accounts[0] if len(accounts) == 1 else accounts},
                "Action": actions[0] if len(actions) == 1 else actions,
                "Resource": topic.arn,
            }
        )
        topic.attributes["Policy"] = json.dumps(policy, separators=(",", ":"))
        await self.save(topic)
        return {}

    async def remove_permission(
        self, params: dict[str, Any], ctx: RequestContext
    ) -> dict[str, Any]:
        topic = self.by_arn(params["TopicArn"])
        label = str(params["Label"])
        policy = self._policy(topic)
        kept = [s for s in policy["Statement"] if s.get("Sid") != label]
        if len(kept) == len(policy["Statement"]):
            raise invalid_parameter("Statement does not exist")
        policy["Statement"] = kept
        topic.attributes["Policy"] = json.dumps(policy, separators=(",", ":"))
        await self.save(topic)
        return {}

    async def get_data_protection_policy(
        self, params: dict[str, Any], ctx: RequestContext
    ) -> dict[str, Any]:
        topic = self.by_arn(params["ResourceArn"])
        return {"DataProtectionPolicy": topic.attributes.get("DataProtectionPolicy", "")}

    async def put_data_protection_policy(
        self, params: dict[str, Any], ctx: RequestContext
    ) -> dict[str, Any]:
        """Stored and answered back; not enforced."""
        topic = self.by_arn(params["ResourceArn"])
        text = str(params["DataProtectionPolicy"])
        try:
            json.loads(text)
        except ValueError:
            raise invalid_parameter("DataProtectionPolicy") from None
        topic.attributes["DataProtectionPolicy"] = text
        await self.save(topic)
        return {}

    # --- tags -------------------------------------------------------------------------

    def _tagged(self, arn: Any) -> Topic:
        try:
            return self.by_arn(arn)
        except AwsError:
            raise AwsError("ResourceNotFoundException", "Resource does not exist") from None

    async def tag_resource(self, params: dict[str, Any], ctx: RequestContext) -> dict[str, Any]:
        topic = self._tagged(params["ResourceArn"])
        merged = {**topic.tags, **_tags(params)}
        if len(merged) > MAX_TAGS:
            raise tag_limit()
        topic.tags = merged
        await self.save(topic)
        return {}

    async def untag_resource(self, params: dict[str, Any], ctx: RequestContext) -> dict[str, Any]:
        topic = self._tagged(params["ResourceArn"])
        for key in params.get("TagKeys") or []:
            topic.tags.pop(str(key), None)
        await self.save(topic)
        return {}

    async def list_tags_for_resource(
        self, params: dict[str, Any], ctx: RequestContext
    ) -> dict[str, Any]:
        topic = self._tagged(params["ResourceArn"])
        return {"Tags": [{"Key": k, "Value": v} for k, v in topic.tags.items()]}


def tag_limit() -> AwsError:
    return AwsError(
        "TagLimitExceededException",
        "Could not complete request: tag quota of per resource exceeded",
    )


def _default(name: str) -> str:
    return {"ContentBasedDeduplication": "false", "SignatureVersion": "1"}.get(name, "")

"""SNS subscriptions as core bindings: an ``sqs`` subscription binds the topic's
exchange to the queue, an http(s) one (once confirmed) to its own internal queue
``__sns_http/<id>`` that a pusher drains. The binding carries the FilterPolicy
as a filter predicate; filters are not stored by the core, so they are bound
again from the catalog (kind "sns-subscription") at every start.

Other protocols (application, email, sms, lambda, firehose) are stored and
listed but nothing is delivered to them.
"""

from __future__ import annotations

import json
import re
import secrets
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any

from dovecote.aws.context import RequestContext
from dovecote.aws.errors import AwsError
from dovecote.aws.sns_filter import FilterPolicy, check_scope
from dovecote.aws.sns_messages import PublishView, typed_attributes
from dovecote.aws.sns_topics import (
    PAGE,
    SnsTopics,
    Topic,
    _after,
    _page_token,
    check_delivery_policy,
    effective_delivery_policy,
    invalid_parameter,
)
from dovecote.core.queues import NotFound, Queue, QueueManager
from dovecote.core.routing import BindingFilter

KIND = "sns-subscription"
HTTP_QUEUE_PREFIX = "__sns_http/"
PENDING = "pending confirmation"  # what Subscribe answers
PENDING_IN_LISTS = "PendingConfirmation"  # what the list operations show
PROTOCOLS = frozenset(
    {"http", "https", "email", "email-json", "sms", "sqs", "application", "lambda", "firehose"}
)
DELIVERED = frozenset({"sqs", "http", "https"})
SETTABLE = frozenset(
    {
        "RawMessageDelivery",
        "FilterPolicy",
        "FilterPolicyScope",
        "RedrivePolicy",
        "DeliveryPolicy",
        "SubscriptionRoleArn",
        "ReplayPolicy",
    }
)
MAX_RESTORABLE = 1000
_RAW_PROTOCOLS = frozenset({"sqs", "http", "https", "firehose"})
_PHONE = re.compile(r"\+?[0-9]{5,15}")


@dataclass
class Subscription:
    id: str
    arn: str
    topic: str  # topic name
    topic_arn: str
    protocol: str
    endpoint: str
    owner: str
    attributes: dict[str, str] = field(default_factory=dict)
    confirmed: bool = False
    token: str | None = None
    authenticated: bool = False
    queue: str | None = None  # the core queue it is bound to, once bound
    bound: Queue | None = None  # that queue when bound (a new one of the name is not bound)
    policy: FilterPolicy | None = None

    @property
    def raw(self) -> bool:
        return self.attributes.get("RawMessageDelivery", "false") == "true"

    @property
    def dead_letter_arn(self) -> str | None:
        text = self.attributes.get("RedrivePolicy")
        if not text:
            return None
        return json.loads(text).get("deadLetterTargetArn")

    def to_json(self) -> dict[str, Any]:
        return {
            "arn": self.arn,
            "topic": self.topic,
            "topic_arn": self.topic_arn,
            "protocol": self.protocol,
            "endpoint": self.endpoint,
            "owner": self.owner,
            "attributes": self.attributes,
            "confirmed": self.confirmed,
            "token": self.token,
            "authenticated": self.authenticated,
        }

    @classmethod
    def from_json(cls, id_: str, data: dict[str, Any]) -> Subscription:
        return cls(
            id_,
            data["arn"],
            data["topic"],
            data["topic_arn"],
            data["protocol"],
            data["endpoint"],
            data["owner"],
            dict(data.get("attributes", {})),
            bool(data.get("confirmed")),
            data.get("token"),
            bool(data.get("authenticated")),
        )


async def _no_pusher(_sub: Subscription) -> None:
    """Until the service wires the http delivery in."""


def filter_predicate(policy: FilterPolicy) -> BindingFilter:
    """The binding filter for ``policy``: over an SNS publish's typed attributes
    and body, or over the plain header values of any other publish."""

    def passes(_key: str, headers: Any) -> bool:
        if policy.scope == "MessageBody":
            return isinstance(headers, PublishView) and policy.matches_body(headers.body)
        return policy.matches_attributes(typed_attributes(headers))

    return passes


def retry_policy(topic: Topic, sub: Subscription) -> dict[str, Any]:
    """The healthy retry policy in force: the topic's over AWS's defaults, and the
    subscription's over that unless the topic disables overrides."""
    http = effective_delivery_policy(topic.attributes.get("DeliveryPolicy"))["http"]
    retry = dict(http["defaultHealthyRetryPolicy"])
    own = sub.attributes.get("DeliveryPolicy")
    if own and not http.get("disableSubscriptionOverrides"):
        retry.update(json.loads(own).get("healthyRetryPolicy") or {})
    return retry


def _bool_attribute(name: str, value: str) -> str:
    if value.lower() not in ("true", "false"):
        raise invalid_parameter(f"{name}: Invalid value [{value}]. Must be true or false.")
    return value.lower()


def check_endpoint(protocol: str, endpoint: str | None) -> str:
    """Loose shape checks per protocol, with SNS's error texts."""
    if protocol not in PROTOCOLS:
        raise invalid_parameter(f"Amazon SNS does not support this protocol string: {protocol}")
    if not endpoint:
        raise invalid_parameter("Endpoint")
    ok = True
    if protocol in ("http", "https"):
        ok = endpoint.lower().startswith(protocol + "://")
    elif protocol in ("email", "email-json"):
        ok = "@" in endpoint
    elif protocol == "sms":
        ok = _PHONE.fullmatch(endpoint.replace("-", "").replace(" ", "")) is not None
    elif protocol == "sqs":
        if not endpoint.startswith("arn:aws:sqs:") or endpoint.count(":") != 5:
            raise invalid_parameter("SQS endpoint ARN")
    elif protocol in ("lambda", "firehose", "application"):
        ok = endpoint.startswith("arn:")
    if not ok:
        raise invalid_parameter("Endpoint must match the specified protocol")
    return endpoint


class SnsSubscriptions:
    """The subscription operations and the bindings they keep."""

    def __init__(
        self,
        manager: QueueManager,
        topics: SnsTopics,
        sqs_queue_name: Callable[[str], str],
    ) -> None:
        self.manager = manager
        self.catalog = manager.catalog
        self.topics = topics
        self.sqs_queue_name = sqs_queue_name  # queue ARN -> core queue name (AwsError if none)
        self.by_arn: dict[str, Subscription] = {}
        self.by_id: dict[str, Subscription] = {}
        self.by_topic: dict[str, dict[str, Subscription]] = {}
        # Set by the service: start/stop an http pusher, send a confirmation.
        self.start_pusher: Callable[[Subscription], None] = lambda _s: None
        self.stop_pusher: Callable[[Subscription], Awaitable[None]] = _no_pusher
        self.send_confirmation: Callable[[Subscription, RequestContext], None] = lambda _s, _c: None
        self.send_unsubscribed: Callable[[Subscription, RequestContext], None] = lambda _s, _c: None
        # token -> an unsubscribed http(s) subscription its UnsubscribeConfirmation's
        # SubscribeURL restores (in memory: a restart forgets them)
        self._restorable: dict[str, Subscription] = {}
        topics.counts = self.counts
        topics.on_delete = self._topic_deleted

    # --- start ----------------------------------------------------------------------

    async def load(self) -> None:
        for id_, data in self.catalog.items(KIND).items():
            sub = Subscription.from_json(id_, data)
            if sub.topic not in self.topics.topics:
                await self.catalog.delete(KIND, id_)
                continue
            text = sub.attributes.get("FilterPolicy")
            if text:
                scope = sub.attributes.get("FilterPolicyScope", "MessageAttributes")
                sub.policy = FilterPolicy.parse(text, scope)
            self._add(sub)
            if sub.confirmed:
                await self.bind(sub)
                if sub.protocol in ("http", "https"):
                    self.start_pusher(sub)

    def _add(self, sub: Subscription) -> None:
        self.by_arn[sub.arn] = sub
        self.by_id[sub.id] = sub
        self.by_topic.setdefault(sub.topic, {})[sub.id] = sub

    def of_topic(self, topic: str) -> list[Subscription]:
        return list(self.by_topic.get(topic, {}).values())

    def counts(self, topic: Topic) -> tuple[int, int]:
        subs = self.of_topic(topic.name)
        confirmed = sum(1 for s in subs if s.confirmed)
        return confirmed, len(subs) - confirmed

    # --- bindings -------------------------------------------------------------------

    def _target(self, sub: Subscription) -> str | None:
        if sub.protocol == "sqs":
            try:
                return self.sqs_queue_name(sub.endpoint)
            except AwsError:
                return None  # no such queue (yet): bound when it appears (see ensure_bound)
        if sub.protocol in ("http", "https"):
            return HTTP_QUEUE_PREFIX + sub.id
        return None

    async def bind(self, sub: Subscription) -> None:
        """Bind (again) the subscription's queue to its topic, with its filter."""
        target = self._target(sub)
        if target is None:
            return
        if sub.protocol in ("http", "https"):
            await self.manager.declare_queue(target, durable=True)
        if sub.queue is not None:
            await self._unbind(sub)
        try:
            await self.manager.bind(
                sub.topic,
                target,
                "",
                arguments={"sns-subscription": sub.id},
                filter=filter_predicate(sub.policy) if sub.policy is not None else None,
            )
        except NotFound:
            return
        sub.queue = target
        sub.bound = self.manager.queues.get(target)

    async def _unbind(self, sub: Subscription) -> None:
        if sub.queue is None:
            return
        await self.manager.unbind(sub.topic, sub.queue, "", arguments={"sns-subscription": sub.id})
        sub.queue = sub.bound = None

    async def ensure_bound(self, topic: str) -> None:
        """Bind sqs subscriptions whose queue was missing, or deleted and created
        again (SNS keeps delivering to a queue ARN whatever became of it)."""
        queues = self.manager.queues
        for sub in self.of_topic(topic):
            if sub.protocol != "sqs" or not sub.confirmed:
                continue
            if sub.bound is not None and queues.get(sub.queue or "") is sub.bound:
                continue  # still the queue it was bound to (deleting a queue unbinds it)
            if self._target(sub) is not None:
                await self.bind(sub)

    async def _remove(self, sub: Subscription) -> None:
        self.by_arn.pop(sub.arn, None)
        self.by_id.pop(sub.id, None)
        self.by_topic.get(sub.topic, {}).pop(sub.id, None)
        await self.stop_pusher(sub)
        await self._unbind(sub)
        if sub.protocol in ("http", "https"):
            await self.manager.delete_queue(HTTP_QUEUE_PREFIX + sub.id)
        await self.catalog.delete(KIND, sub.id)

    async def _topic_deleted(self, topic: Topic) -> None:
        for sub in self.of_topic(topic.name):
            await self._remove(sub)

    async def save(self, sub: Subscription) -> None:
        await self.catalog.put(KIND, sub.id, sub.to_json())

    # --- attributes -----------------------------------------------------------------

    def _checked(
        self, sub: Subscription, name: str, value: str, *, subscribe: bool
    ) -> dict[str, str]:
        """The attributes after setting ``name``; raises as SNS does. Compiles the
        filter into ``sub.policy`` only via :meth:`_apply_policy`."""
        reason = "Attributes Reason: " if subscribe else ""
        if name not in SETTABLE:
            raise invalid_parameter(
                f"{reason}Unknown attribute {name}" if subscribe else "AttributeName"
            )
        attributes = dict(sub.attributes)
        if name == "RawMessageDelivery":
            if sub.protocol not in _RAW_PROTOCOLS:
                raise invalid_parameter(
                    f"{reason}Delivery protocol [{sub.protocol}] does not support raw message "
                    "delivery."
                )
            value = _bool_attribute(name, value)
        elif name == "FilterPolicyScope":
            check_scope(value)
        elif name == "RedrivePolicy" and value:
            try:
                target = json.loads(value).get("deadLetterTargetArn")
            except (ValueError, AttributeError):
                target = None
            if not isinstance(target, str) or not target.startswith("arn:aws:sqs:"):
                raise invalid_parameter(f"{reason}RedrivePolicy: deadLetterTargetArn is invalid")
        elif name == "DeliveryPolicy" and value:
            if sub.protocol not in ("http", "https"):
                raise invalid_parameter(f"{reason}DeliveryPolicy: only for http(s) subscriptions")
            check_delivery_policy(value, subscription=True)
        if value == "" and name != "RawMessageDelivery":
            attributes.pop(name, None)
        else:
            attributes[name] = value
        return attributes

    @staticmethod
    def _policy(attributes: dict[str, str], *, subscribe: bool) -> FilterPolicy | None:
        text = attributes.get("FilterPolicy")
        if not text:
            return None
        scope = attributes.get("FilterPolicyScope", "MessageAttributes")
        return FilterPolicy.parse(text, scope, subscribe=subscribe)

    def attributes(self, sub: Subscription) -> dict[str, str]:
        topic = self.topics.topics.get(sub.topic)
        out = {
            "SubscriptionArn": sub.arn,
            "TopicArn": sub.topic_arn,
            "Owner": sub.owner,
            "Protocol": sub.protocol,
            "Endpoint": sub.endpoint,
            "PendingConfirmation": "false" if sub.confirmed else "true",
            "ConfirmationWasAuthenticated": "true" if sub.authenticated else "false",
            "RawMessageDelivery": "false",
            "SubscriptionPrincipal": f"arn:aws:iam::{sub.owner}:user/dovecote",
        }
        if sub.protocol in ("http", "https") and topic is not None:
            out["EffectiveDeliveryPolicy"] = json.dumps(
                {
                    "healthyRetryPolicy": retry_policy(topic, sub),
                    "sicklyRetryPolicy": None,
                    "throttlePolicy": None,
                    "guaranteed": False,
                },
                separators=(",", ":"),
            )
        out.update(sub.attributes)
        if "FilterPolicy" in sub.attributes:
            out.setdefault("FilterPolicyScope", "MessageAttributes")
        return out

    # --- operations -----------------------------------------------------------------

    def _by_arn(self, arn: Any) -> Subscription:
        text = str(arn)
        if text.count(":") != 6 or not text.startswith("arn:aws:sns:"):
            raise invalid_parameter("SubscriptionArn")
        sub = self.by_arn.get(text)
        if sub is None:
            raise AwsError("NotFoundException", "Subscription does not exist")
        return sub

    async def subscribe(self, params: dict[str, Any], ctx: RequestContext) -> dict[str, Any]:
        topic = self.topics.by_arn(params["TopicArn"])
        protocol = str(params.get("Protocol", ""))
        endpoint = params.get("Endpoint")
        check_endpoint(protocol, None if endpoint is None else str(endpoint))
        endpoint = str(endpoint)
        if protocol == "sqs" and not topic.fifo and endpoint.endswith(".fifo"):
            raise invalid_parameter(
                "Endpoint Reason: FIFO SQS Queues can not be subscribed to standard SNS topics"
            )
        if topic.fifo and protocol != "sqs":
            raise invalid_parameter(f"Invalid protocol type: {protocol}")
        sub_id = str(uuid.uuid4())
        sub = Subscription(
            sub_id,
            f"{topic.arn}:{sub_id}",
            topic.name,
            topic.arn,
            protocol,
            endpoint,
            ctx.account,
        )
        for name, value in (params.get("Attributes") or {}).items():
            sub.attributes = self._checked(sub, str(name), str(value), subscribe=True)
        if protocol == "firehose" and "SubscriptionRoleArn" not in sub.attributes:
            raise invalid_parameter(
                "Attributes Reason: The SubscriptionRoleArn attribute is required for "
                "Firehose endpoints"
            )
        sub.policy = self._policy(sub.attributes, subscribe=True)
        wants_arn = bool(params.get("ReturnSubscriptionArn"))
        for old in self.of_topic(topic.name):
            if old.protocol == protocol and old.endpoint == endpoint:
                if sub.attributes and sub.attributes != old.attributes:
                    raise invalid_parameter(
                        "Attributes Reason: Subscription already exists with different attributes"
                    )
                return {"SubscriptionArn": old.arn if old.confirmed or wants_arn else PENDING}
        sub.confirmed = protocol not in ("http", "https", "email", "email-json")
        if not sub.confirmed:
            sub.token = secrets.token_hex(64)
        self._add(sub)
        await self.save(sub)
        if sub.confirmed:
            await self.bind(sub)
        elif protocol in ("http", "https"):
            self.send_confirmation(sub, ctx)
        return {"SubscriptionArn": sub.arn if sub.confirmed or wants_arn else PENDING}

    async def confirm_subscription(
        self, params: dict[str, Any], ctx: RequestContext
    ) -> dict[str, Any]:
        topic = self.topics.by_arn(params["TopicArn"])
        token = str(params["Token"])
        for sub in self.of_topic(topic.name):
            if sub.token is not None and secrets.compare_digest(sub.token, token):
                break
        else:
            restored = self._restorable.get(token)
            if restored is None or restored.topic != topic.name:
                raise invalid_parameter("Token")
            del self._restorable[token]
            for old in self.of_topic(topic.name):
                if old.protocol == restored.protocol and old.endpoint == restored.endpoint:
                    return {"SubscriptionArn": old.arn}  # subscribed again meanwhile
            sub = restored
            self._add(sub)
        if not sub.confirmed:
            sub.confirmed = True
            sub.authenticated = str(params.get("AuthenticateOnUnsubscribe", "")).lower() == "true"
            await self.save(sub)
            await self.bind(sub)
            if sub.protocol in ("http", "https"):
                self.start_pusher(sub)
        return {"SubscriptionArn": sub.arn}

    async def unsubscribe(self, params: dict[str, Any], ctx: RequestContext) -> dict[str, Any]:
        try:
            sub = self._by_arn(params["SubscriptionArn"])
        except AwsError as error:
            if error.code == "NotFoundException":
                return {}  # already gone: the caller's wish holds
            raise
        await self._remove(sub)
        if sub.confirmed and sub.protocol in ("http", "https"):
            token = secrets.token_hex(64)
            gone = replace(sub, token=token, confirmed=False, queue=None, bound=None)
            if len(self._restorable) >= MAX_RESTORABLE:
                self._restorable.pop(next(iter(self._restorable)))
            self._restorable[token] = gone
            self.send_unsubscribed(gone, ctx)
        return {}

    def _listing(self, subs: list[Subscription], token: Any) -> dict[str, Any]:
        after = _after(token)
        ordered = sorted((s for s in subs if s.arn > after), key=lambda s: s.arn)
        page = ordered[:PAGE]
        result: dict[str, Any] = {
            "Subscriptions": [
                {
                    "SubscriptionArn": s.arn if s.confirmed else PENDING_IN_LISTS,
                    "Owner": s.owner,
                    "Protocol": s.protocol,
                    "Endpoint": s.endpoint,
                    "TopicArn": s.topic_arn,
                }
                for s in page
            ]
        }
        if len(ordered) > PAGE:
            result["NextToken"] = _page_token(page[-1].arn)
        return result

    async def list_subscriptions(
        self, params: dict[str, Any], ctx: RequestContext
    ) -> dict[str, Any]:
        return self._listing(list(self.by_id.values()), params.get("NextToken"))

    async def list_subscriptions_by_topic(
        self, params: dict[str, Any], ctx: RequestContext
    ) -> dict[str, Any]:
        topic = self.topics.by_arn(params["TopicArn"])
        return self._listing(self.of_topic(topic.name), params.get("NextToken"))

    async def get_subscription_attributes(
        self, params: dict[str, Any], ctx: RequestContext
    ) -> dict[str, Any]:
        return {"Attributes": self.attributes(self._by_arn(params["SubscriptionArn"]))}

    async def set_subscription_attributes(
        self, params: dict[str, Any], ctx: RequestContext
    ) -> dict[str, Any]:
        sub = self._by_arn(params["SubscriptionArn"])
        name = str(params["AttributeName"])
        value = str(params.get("AttributeValue") or "")
        attributes = self._checked(sub, name, value, subscribe=False)
        policy = self._policy(attributes, subscribe=False)
        sub.attributes = attributes
        rebind = name in ("FilterPolicy", "FilterPolicyScope")
        sub.policy = policy
        await self.save(sub)
        if rebind and sub.confirmed:
            await self.bind(sub)
        return {}

"""SQS queues as core queues: create, find, list, attributes, tags, permissions, purge.

An SQS queue *is* a core queue of the same name (so AMQP and Kafka clients
see it, and an AMQP-declared queue is reachable over SQS). What only SQS
needs (its attributes as the client set them, tags, permissions, timestamps)
is kept in the queue's adapter arguments under ``"sqs"``, stored with the
queue in the catalog; behaviour goes through :class:`QueueSettings`.
"""

from __future__ import annotations

import base64
import heapq
import json
import weakref
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from dovecote.aws import sqs_attributes as attrs_
from dovecote.aws.context import RequestContext, name_from_arn, queue_name_from_url
from dovecote.aws.errors import AwsError
from dovecote.core.queues import NotFound, Queue, QueueManager
from dovecote.core.subscription import Subscription

QUEUE_MISSING = "The specified queue does not exist."
MAX_READERS = 4096  # cached read-only views (by QueueUrl); cleared when full
# Attributes computed on every GetQueueAttributes, never stored.
COUNTED = (
    "ApproximateNumberOfMessages",
    "ApproximateNumberOfMessagesNotVisible",
    "ApproximateNumberOfMessagesDelayed",
)


def queue_missing() -> AwsError:
    return AwsError("QueueDoesNotExist", QUEUE_MISSING)


@dataclass
class SqsQueue:
    """A core queue seen as an SQS queue."""

    name: str
    queue: Queue | None  # None while it is being created
    fifo: bool
    attributes: dict[str, str]  # every stored attribute, defaults included
    tags: dict[str, str]
    created_s: int
    modified_s: int
    _ints: dict[str, int] = field(default_factory=dict, repr=False)  # parsed attributes

    @property
    def core(self) -> Queue:
        assert self.queue is not None
        return self.queue

    def int_attribute(self, name: str) -> int:
        value = self._ints.get(name)
        if value is None:
            value = int(self.attributes.get(name) or attrs_.defaults(self.fifo)[name])
            self._ints[name] = value
        return value

    @property
    def content_based_dedup(self) -> bool:
        return self.attributes.get("ContentBasedDeduplication", "false").lower() == "true"

    @property
    def dedup_per_group(self) -> bool:
        return self.attributes.get("DeduplicationScope") == "messageGroup"

    def arguments(self) -> dict[str, Any]:
        return {
            "sqs": {
                "attributes": self.attributes,
                "tags": self.tags,
                "created": self.created_s,
                "modified": self.modified_s,
            }
        }


@dataclass
class QueueState:
    """What the adapter remembers of one queue between requests. Not durable:
    after a restart first-receive times count from the next receive, a
    repeated FIFO send answers with a fresh MessageId, and messages delayed
    before it count as visible until a receive reaches them."""

    last_sequence: int = 0
    first_receive: dict[tuple[int, int], int] = field(default_factory=dict)
    # dedup key -> (accepted ms, message id, sequence number), oldest first
    sent: OrderedDict[str, tuple[int, str, str]] = field(default_factory=OrderedDict)
    delays: list[int] = field(default_factory=list)  # heap: when delayed sends become due
    # FIFO ReceiveRequestAttemptId -> (monotonic deadline, the answer given)
    attempts: OrderedDict[str, tuple[float, dict[str, Any]]] = field(default_factory=OrderedDict)

    def delayed(self, now_ms: int) -> int:
        """How many delayed sends are not due yet."""
        while self.delays and self.delays[0] <= now_ms:
            heapq.heappop(self.delays)
        return len(self.delays)


def is_fifo_name(name: str) -> bool:
    return name.endswith(".fifo")


class SqsQueues:
    """The queue operations, over the core's queue manager."""

    def __init__(self, manager: QueueManager) -> None:
        self.manager = manager
        self._state: weakref.WeakKeyDictionary[Subscription, QueueState] = (
            weakref.WeakKeyDictionary()
        )
        # QueueUrl -> (queue, its arguments then, the view): see reading()
        self._readers: dict[str, tuple[Queue, Any, SqsQueue]] = {}

    def state(self, view: SqsQueue) -> QueueState:
        """The adapter's memory of a queue (gone with the queue)."""
        sub = view.core.subscription
        state = self._state.get(sub)
        if state is None:
            state = self._state[sub] = QueueState()
        return state

    # --- lookup ---------------------------------------------------------------

    def view(self, queue: Queue) -> SqsQueue:
        fifo = is_fifo_name(queue.name)
        stored = queue.arguments.get("sqs") if isinstance(queue.arguments, dict) else None
        if not isinstance(stored, dict):
            stored = {}
        attributes = attrs_.defaults(fifo)
        attributes.update(stored.get("attributes", {}))
        now_s = self.manager.clock.wall_ms() // 1000
        return SqsQueue(
            queue.name,
            queue,
            fifo,
            attributes,
            dict(stored.get("tags", {})),
            int(stored.get("created", now_s)),
            int(stored.get("modified", stored.get("created", now_s))),
        )

    def by_name(self, name: str) -> SqsQueue:
        try:
            queue = self.manager.get_queue(name)
        except NotFound:
            raise queue_missing() from None
        if queue.subscription.closed:
            raise queue_missing()
        return self.view(queue)

    def by_url(self, params: dict[str, Any]) -> SqsQueue:
        return self.by_name(queue_name_from_url(str(params["QueueUrl"])))

    def reading(self, params: dict[str, Any]) -> SqsQueue:
        """:meth:`by_url` for the message operations, which only read the
        view: the one built for the same QueueUrl is reused while that URL
        names the same live queue with the same arguments (SetQueueAttributes
        and tag changes replace a queue's arguments, deletion closes its
        subscription), which saves parsing the URL and rebuilding the
        attributes on every send, receive and delete."""
        url = str(params["QueueUrl"])
        found = self._readers.get(url)
        if found is not None:
            queue, arguments, view = found
            if (
                self.manager.queues.get(view.name) is queue
                and queue.arguments is arguments
                and not queue.subscription.closed
            ):
                return view
        view = self.by_url(params)
        if len(self._readers) >= MAX_READERS:
            self._readers.clear()
        self._readers[url] = (view.core, view.core.arguments, view)
        return view

    def by_arn(self, arn: str) -> SqsQueue:
        return self.by_name(name_from_arn(arn, "sqs"))

    # --- operations -------------------------------------------------------------

    async def create_queue(self, params: dict[str, Any], ctx: RequestContext) -> dict[str, Any]:
        name = str(params["QueueName"])
        fifo_name = attrs_.check_queue_name(name)
        given = {str(k): str(v) for k, v in (params.get("Attributes") or {}).items()}
        fifo = given.get("FifoQueue", "false").lower() == "true"
        if fifo != fifo_name:
            raise AwsError(
                "InvalidParameterValue",
                "The name of a FIFO queue can only include alphanumeric characters, hyphens, "
                "or underscores, must end with .fifo suffix and be 1 to 80 in length.",
            )
        normalized = attrs_.normalize(given, fifo=fifo, creating=True)
        existing = self.manager.queues.get(name)
        if existing is not None and not existing.subscription.closed:
            current = self.view(existing)
            for key, value in normalized.items():
                if current.attributes.get(key, "") != value:
                    raise AwsError(
                        "QueueNameExists",
                        f"A queue already exists with the same name and a different value "
                        f"for attribute {key}",
                    )
            return {"QueueUrl": ctx.queue_url(name)}
        attributes = attrs_.defaults(fifo)
        attributes.update(normalized)
        now_s = self.manager.clock.wall_ms() // 1000
        view = SqsQueue(
            name,
            None,
            fifo,
            attributes,
            {str(k): str(v) for k, v in (params.get("tags") or {}).items()},
            now_s,
            now_s,
        )
        settings = self._settings(view, ctx)
        await self.manager.declare_queue(
            name, durable=True, settings=settings, arguments=view.arguments()
        )
        return {"QueueUrl": ctx.queue_url(name)}

    def _settings(self, view: SqsQueue, ctx: RequestContext) -> Any:
        policy = attrs_.redrive_policy(view.attributes)
        dead_letter_queue = None
        if policy is not None:
            target = self._dead_letter_target(policy.dead_letter_target_arn, view, ctx)
            dead_letter_queue = target.name
        settings = attrs_.to_settings(
            view.attributes, fifo=view.fifo, dead_letter_queue=dead_letter_queue
        )
        # Delays are per message (an explicit DelaySeconds=0 overrides the
        # queue's), so the adapter stamps each message; retention drops.
        settings.delivery_delay_ms = 0
        settings.dead_letter_expired = False
        return settings

    def _dead_letter_target(self, arn: str, view: SqsQueue, ctx: RequestContext) -> SqsQueue:
        try:
            target = self.by_arn(arn)
        except AwsError:
            raise AwsError(
                "InvalidParameterValue",
                f"Value {json.dumps({'deadLetterTargetArn': arn})} for parameter RedrivePolicy "
                "is invalid. Reason: Dead letter target does not exist.",
            ) from None
        if target.fifo != view.fifo:
            raise AwsError(
                "InvalidParameterValue",
                "Value for parameter RedrivePolicy is invalid. Reason: Dead-letter queue must be "
                "same type of queue as the source.",
            )
        allow = attrs_.redrive_allow_policy(target.attributes)
        if allow is not None:
            source_arn = ctx.arn("sqs", view.name)
            if not attrs_.allows_source(allow, source_arn):
                raise AwsError(
                    "InvalidParameterValue",
                    "Value for parameter RedrivePolicy is invalid. Reason: Dead letter target "
                    "does not allow this queue as a source queue.",
                )
        return target

    async def delete_queue(self, params: dict[str, Any], ctx: RequestContext) -> dict[str, Any]:
        view = self.by_url(params)
        await self.manager.delete_queue(view.name)
        return {}

    async def get_queue_url(self, params: dict[str, Any], ctx: RequestContext) -> dict[str, Any]:
        view = self.by_name(str(params["QueueName"]))
        return {"QueueUrl": ctx.queue_url(view.name)}

    async def list_queues(self, params: dict[str, Any], ctx: RequestContext) -> dict[str, Any]:
        prefix = str(params.get("QueueNamePrefix") or "")
        limit = _max_results(params)
        after = _decode_token(params.get("NextToken"))
        names = sorted(
            name
            for name, queue in self.manager.queues.items()
            if name.startswith(prefix)
            and not name.startswith("__")
            and not queue.subscription.closed
            and (after is None or name > after)
        )
        result: dict[str, Any] = {}
        if limit is None:
            names = names[:1000]
        elif len(names) > limit:
            names = names[:limit]
            result["NextToken"] = _encode_token(names[-1])
        if names:
            result["QueueUrls"] = [ctx.queue_url(n) for n in names]
        return result

    async def get_queue_attributes(
        self, params: dict[str, Any], ctx: RequestContext
    ) -> dict[str, Any]:
        view = self.by_url(params)
        wanted = [str(n) for n in params.get("AttributeNames") or []]
        known = attrs_.SETTABLE | attrs_.READ_ONLY | {"All"}
        for name in wanted:
            if name not in known:
                raise AwsError("InvalidAttributeName", f"Unknown Attribute {name}.")
        if not wanted:
            return {}
        everything = "All" in wanted
        values = dict(view.attributes)
        if not view.fifo:
            for name in attrs_.FIFO_ONLY:
                values.pop(name, None)
        values["QueueArn"] = ctx.arn("sqs", view.name)
        values["CreatedTimestamp"] = str(view.created_s)
        values["LastModifiedTimestamp"] = str(view.modified_s)
        if everything or any(n in COUNTED for n in wanted):
            await view.core.settle_visible()
            sub = view.core.subscription
            # A visibility timeout that has run out counts as visible even
            # if its timer has not fired yet (a request can be handled in
            # the same turn of the loop as the timeout ends).
            sub.expire_leases()
            now_ms = self.manager.clock.wall_ms()
            delayed = max(sub.delayed_count(), self.state(view).delayed(now_ms))
            values["ApproximateNumberOfMessages"] = str(max(0, sub.ready_count() - delayed))
            values["ApproximateNumberOfMessagesNotVisible"] = str(sub.unacked_count())
            values["ApproximateNumberOfMessagesDelayed"] = str(delayed)
        chosen = {k: v for k, v in values.items() if (everything or k in wanted) and v != ""}
        return {"Attributes": chosen} if chosen else {}

    async def set_queue_attributes(
        self, params: dict[str, Any], ctx: RequestContext
    ) -> dict[str, Any]:
        view = self.by_url(params)
        given = {str(k): str(v) for k, v in (params.get("Attributes") or {}).items()}
        normalized = attrs_.normalize(
            given, fifo=view.fifo, creating=False, current=view.attributes
        )
        for key, value in normalized.items():
            if value == "" and key in ("RedrivePolicy", "RedriveAllowPolicy", "Policy"):
                view.attributes.pop(key, None)
            else:
                view.attributes[key] = value
        view.modified_s = self.manager.clock.wall_ms() // 1000
        await self._save(view, ctx)
        return {}

    async def _save(self, view: SqsQueue, ctx: RequestContext) -> None:
        settings = self._settings(view, ctx)
        await self.manager.update_settings(view.name, settings, view.arguments())

    async def purge_queue(self, params: dict[str, Any], ctx: RequestContext) -> dict[str, Any]:
        view = self.by_url(params)
        await view.core.settle_visible()
        await self.manager.purge_queue(view.name)
        state = self.state(view)
        state.first_receive.clear()
        state.delays.clear()
        return {}

    async def tag_queue(self, params: dict[str, Any], ctx: RequestContext) -> dict[str, Any]:
        view = self.by_url(params)
        tags = {str(k): str(v) for k, v in (params.get("Tags") or {}).items()}
        if not tags:
            raise AwsError("InvalidParameterValue", "The request must contain Tags.")
        view.tags.update(tags)
        if len(view.tags) > 50:
            raise AwsError("InvalidParameterValue", "Too many tags added for queue.")
        await self._save(view, ctx)
        return {}

    async def untag_queue(self, params: dict[str, Any], ctx: RequestContext) -> dict[str, Any]:
        view = self.by_url(params)
        keys = [str(k) for k in params.get("TagKeys") or []]
        if not keys:
            raise AwsError(
                "InvalidParameterValue", "Tag keys must be between 1 and 128 characters in length."
            )
        for key in keys:
            view.tags.pop(key, None)
        await self._save(view, ctx)
        return {}

    async def list_queue_tags(self, params: dict[str, Any], ctx: RequestContext) -> dict[str, Any]:
        view = self.by_url(params)
        return {"Tags": dict(view.tags)} if view.tags else {}

    async def add_permission(self, params: dict[str, Any], ctx: RequestContext) -> dict[str, Any]:
        view = self.by_url(params)
        label = str(params["Label"])
        accounts = [str(a) for a in params.get("AWSAccountIds") or []]
        actions = [str(a) for a in params.get("Actions") or []]
        if not accounts or not actions:
            raise AwsError(
                "MissingParameter",
                "The request must contain the parameter "
                + ("AWSAccountIds." if not accounts else "Actions."),
            )
        policy = _policy(view.attributes.get("Policy"))
        if any(s.get("Sid") == label for s in policy["Statement"]):
            raise AwsError(
                "InvalidParameterValue",
                f"Value {label} for parameter Label is invalid. Reason: Already exists.",
            )
        arn = ctx.arn("sqs", view.name)
        policy["Statement"].append(
            {
                "Sid": label,
                "Effect": "Allow",
                "Principal": {
                    "AWS": [f"arn:aws:iam::{a}:root" for a in accounts]
                    if len(accounts) > 1
                    else f"arn:aws:iam::{accounts[0]}:root"
                },
                "Action": [f"SQS:{a}" for a in actions]
                if len(actions) > 1
                else f"SQS:{actions[0]}",
                "Resource": arn,
            }
        )
        policy.setdefault("Id", f"{arn}/SQSDefaultPolicy")
        view.attributes["Policy"] = json.dumps(policy, separators=(",", ":"))
        await self._save(view, ctx)
        return {}

    async def remove_permission(
        self, params: dict[str, Any], ctx: RequestContext
    ) -> dict[str, Any]:
        view = self.by_url(params)
        label = str(params["Label"])
        policy = _policy(view.attributes.get("Policy"))
        kept = [s for s in policy["Statement"] if s.get("Sid") != label]
        if len(kept) == len(policy["Statement"]):
            raise AwsError(
                "InvalidParameterValue",
                f"Value {label} for parameter Label is invalid. Reason: can't find label on "
                "existing policy.",
            )
        if kept:
            policy["Statement"] = kept
            view.attributes["Policy"] = json.dumps(policy, separators=(",", ":"))
        else:
            view.attributes.pop("Policy", None)
        await self._save(view, ctx)
        return {}

    async def list_dead_letter_source_queues(
        self, params: dict[str, Any], ctx: RequestContext
    ) -> dict[str, Any]:
        view = self.by_url(params)
        limit = _max_results(params) or 1000
        after = _decode_token(params.get("NextToken"))
        names = sorted(
            source.name
            for source in self.dead_letter_sources(view.name)
            if after is None or source.name > after
        )
        result: dict[str, Any] = {"queueUrls": [ctx.queue_url(n) for n in names[:limit]]}
        if len(names) > limit:
            result["NextToken"] = _encode_token(names[limit - 1])
        return result

    def dead_letter_sources(self, name: str) -> list[SqsQueue]:
        """The queues whose RedrivePolicy sends dead letters to queue ``name``."""
        found = []
        for queue in self.manager.queues.values():
            if queue.settings.dead_letter_queue == name and not queue.subscription.closed:
                found.append(self.view(queue))
        return found


def _policy(text: str | None) -> dict[str, Any]:
    if text:
        try:
            policy = json.loads(text)
            if isinstance(policy, dict):
                statements = policy.get("Statement")
                if isinstance(statements, dict):
                    policy["Statement"] = [statements]
                elif not isinstance(statements, list):
                    policy["Statement"] = []
                return policy
        except ValueError:
            pass
    return {"Version": "2012-10-17", "Statement": []}


def _max_results(params: dict[str, Any]) -> int | None:
    """A list's MaxResults, 1 to 1000 (AWS refuses others, 0 and negatives
    too: a negative one used to index past the page, a 500)."""
    limit = params.get("MaxResults")
    if limit is None:
        return None
    if not 1 <= int(limit) <= 1000:
        raise AwsError(
            "InvalidParameterValue",
            f"Value {limit} for parameter MaxResults is invalid. "
            "Reason: MaxResults must be an integer between 1 and 1000.",
        )
    return int(limit)


def _encode_token(name: str) -> str:
    return base64.urlsafe_b64encode(name.encode()).decode()


def _decode_token(token: Any) -> str | None:
    if not token:
        return None
    try:
        return base64.urlsafe_b64decode(str(token).encode()).decode()
    except (ValueError, UnicodeDecodeError):
        raise AwsError("InvalidParameterValue", "Invalid NextToken value.") from None

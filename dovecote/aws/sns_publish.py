"""Publish and PublishBatch: route through the topic's exchange, then append to
every queue it reaches, in one synchronous pass so a whole publish (or batch)
shares the group commit; answer once every append is durable.

Queues of envelope (non-raw) sqs/http subscriptions get the signed JSON
Notification (one record per subscription: the UnsubscribeURL differs); all
other queues (raw subscriptions, AMQP-bound queues) get the message itself with
the MessageAttributes as headers.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from dovecote.aws import records as records_
from dovecote.aws.context import RequestContext
from dovecote.aws.errors import AwsError
from dovecote.aws.sns_envelope import (
    check_message_structure,
    message_for_protocol,
    notification,
    to_json,
)
from dovecote.aws.sns_messages import CERT_PATH, PublishView, is_number, unsubscribe_url
from dovecote.aws.sns_signing import SigningKey
from dovecote.aws.sns_subscriptions import SnsSubscriptions, Subscription
from dovecote.aws.sns_topics import SnsTopics, Topic, invalid_parameter
from dovecote.core.headers import DELIVER_AT, Header
from dovecote.core.queues import QueueManager
from dovecote.storage.batch import Record

MAX_MESSAGE_BYTES = 256 * 1024
MAX_BATCH = 10
SEQUENCE_HEADER = "sqs.sequence-number"
_ATTRIBUTE_NAME = re.compile(r"[A-Za-z0-9_.-]{1,256}")
_BATCH_ID = re.compile(r"[A-Za-z0-9_-]{1,80}")
_GROUP_ID = re.compile(r"[!-~]{1,128}")  # printable ASCII, as SQS


def _value_error(text: str) -> AwsError:
    return AwsError("InvalidParameterValueException", text)


def check_attributes(attributes: Mapping[str, Mapping[str, Any]]) -> int:
    """Check MessageAttributes as SNS does; returns their size in bytes."""
    size = 0
    for name, attr in attributes.items():
        if not _ATTRIBUTE_NAME.fullmatch(name) or name.startswith((".", "AWS.", "Amazon.")):
            raise _value_error(f"The message attribute name '{name}' is invalid.")
        if name.endswith(".") or ".." in name:
            raise _value_error(f"The message attribute name '{name}' is invalid.")
        data_type = str(attr.get("DataType") or "")
        base = data_type.split(".", 1)[0]
        if data_type == "String.Array":
            base = "String.Array"
        if base not in ("String", "Number", "Binary", "String.Array"):
            raise _value_error(
                f"The message attribute '{name}' has an invalid message attribute type, the set "
                "of supported type prefixes is Binary, Number, and String."
            )
        if base == "Binary":
            raw = attr.get("BinaryValue")
            if raw is None:
                raise _value_error(
                    f"The message attribute '{name}' with type 'Binary' must use field 'Binary'."
                )
            size += len(raw)
        else:
            text = attr.get("StringValue")
            if text is None or text == "":
                raise _value_error(
                    f"The message attribute '{name}' must contain non-empty message attribute "
                    f"value for message attribute type '{base}'."
                )
            if base == "Number" and not is_number(str(text)):
                raise _value_error(f"Could not cast message attribute '{name}' value to number.")
            size += len(str(text).encode("utf-8"))
        size += len(name.encode("utf-8")) + len(data_type.encode("utf-8"))
    return size


def check_subject(subject: str | None) -> None:
    """ASCII text, under 100 characters, starting with a letter, number or
    punctuation, without line breaks or control characters."""
    if subject is None:
        return
    if (
        not subject
        or len(subject) >= 100
        or not subject.isascii()
        or not subject.isprintable()
        or subject[0].isspace()
    ):
        raise invalid_parameter("Subject")


@dataclass(frozen=True, slots=True)
class QueueTraits:
    """The SQS settings of a target queue that a delivery to it follows."""

    delay_ms: int = 0  # DelaySeconds
    dedup_per_group: bool = False  # DeduplicationScope=messageGroup


PLAIN_QUEUE = QueueTraits()


@dataclass
class Outgoing:
    """One checked message of a Publish or a PublishBatch entry."""

    message: str
    subject: str | None
    structure: str | None  # "json" or None
    attributes: dict[str, Any]
    group_id: str | None
    dedup_id: str | None  # FIFO: given, or the body's SHA-256


def check_message(topic: Topic, entry: Mapping[str, Any]) -> Outgoing:
    """Every check SNS makes before accepting one message to ``topic``."""
    message = entry.get("Message")
    if message is None or message == "":
        raise invalid_parameter("Empty message")
    message = str(message)
    subject = entry.get("Subject")
    check_subject(subject)
    attributes = dict(entry.get("MessageAttributes") or {})
    size = len(message.encode("utf-8")) + check_attributes(attributes)
    if size > MAX_MESSAGE_BYTES:
        raise invalid_parameter("Message too long")
    structure = entry.get("MessageStructure")
    if structure is not None:
        if structure != "json":
            raise invalid_parameter("MessageStructure")
        check_message_structure(message)
    group_id = entry.get("MessageGroupId")
    dedup_id = entry.get("MessageDeduplicationId")
    if topic.fifo:
        if group_id is None:
            raise invalid_parameter("The MessageGroupId parameter is required for FIFO topics")
        if not _GROUP_ID.fullmatch(str(group_id)):
            raise invalid_parameter("MessageGroupId")
        if dedup_id is None:
            if not topic.content_based_dedup:
                raise invalid_parameter(
                    "The topic should either have ContentBasedDeduplication enabled or "
                    "MessageDeduplicationId provided explicitly"
                )
            dedup_id = hashlib.sha256(message.encode("utf-8")).hexdigest()
        elif not _GROUP_ID.fullmatch(str(dedup_id)):
            raise invalid_parameter("MessageDeduplicationId")
    elif dedup_id is not None:
        raise invalid_parameter(
            "MessageDeduplicationId Reason: The request includes MessageDeduplicationId "
            "parameter that is not valid for this topic type"
        )
    else:
        group_id = None  # standard topics accept a group id (fair queues); it orders nothing
    return Outgoing(
        message,
        subject,
        structure,
        attributes,
        None if group_id is None else str(group_id),
        None if dedup_id is None else str(dedup_id),
    )


class SnsPublisher:
    def __init__(
        self,
        manager: QueueManager,
        topics: SnsTopics,
        subscriptions: SnsSubscriptions,
        signing_key: Callable[[], SigningKey],
        queue_traits: Callable[[str], QueueTraits] = lambda _name: PLAIN_QUEUE,
    ) -> None:
        self.manager = manager
        self.clock = manager.clock
        self.topics = topics
        self.subscriptions = subscriptions
        self.signing_key = signing_key
        self.queue_traits = queue_traits  # what SQS settings of a queue a delivery follows

    def _target(self, params: Mapping[str, Any]) -> Topic | None:
        arn = params.get("TopicArn") or params.get("TargetArn")
        if arn is None:
            if params.get("PhoneNumber"):
                return None  # SMS: accepted, not sent
            raise invalid_parameter("TopicArn or TargetArn Reason: no value for required parameter")
        return self.topics.by_arn(arn)

    async def publish(self, params: dict[str, Any], ctx: RequestContext) -> dict[str, Any]:
        topic = self._target(params)
        if topic is None:
            return {"MessageId": records_.new_message_id()}
        outgoing = check_message(topic, params)
        await self.subscriptions.ensure_bound(topic.name)
        result, waits = self._send(topic, outgoing, ctx)
        if waits:
            await asyncio.gather(*waits)
        return result

    async def publish_batch(self, params: dict[str, Any], ctx: RequestContext) -> dict[str, Any]:
        topic = self.topics.by_arn(params["TopicArn"])
        entries = list(params.get("PublishBatchRequestEntries") or [])
        if not entries:
            raise AwsError(
                "EmptyBatchRequestException", "The batch request doesn't contain any entries."
            )
        if len(entries) > MAX_BATCH:
            raise AwsError(
                "TooManyEntriesInBatchRequestException",
                "The batch request contains more entries than permissible.",
            )
        ids = [str(e.get("Id", "")) for e in entries]
        if len(set(ids)) != len(ids):
            raise AwsError(
                "BatchEntryIdsNotDistinctException",
                "Two or more batch entries in the request have the same Id.",
            )
        for entry_id in ids:
            if not _BATCH_ID.fullmatch(entry_id):
                raise AwsError(
                    "InvalidBatchEntryIdException",
                    "The Id of a batch entry in a batch request doesn't abide by the "
                    "specification.",
                )
        total = sum(len(str(e.get("Message") or "").encode("utf-8")) for e in entries)
        if total > MAX_MESSAGE_BYTES:
            raise AwsError(
                "BatchRequestTooLongException",
                "The length of all the messages put together is more than the limit.",
            )
        await self.subscriptions.ensure_bound(topic.name)
        successful: list[dict[str, Any]] = []
        failed: list[dict[str, Any]] = []
        waits: list[asyncio.Future[None]] = []
        for entry_id, entry in zip(ids, entries, strict=True):
            try:
                outgoing = check_message(topic, entry)
            except AwsError as error:
                failed.append(
                    {
                        "Id": entry_id,
                        "Code": error.code.removesuffix("Exception"),
                        "Message": error.message,
                        "SenderFault": True,
                    }
                )
                continue
            answer, entry_waits = self._send(topic, outgoing, ctx)
            successful.append({"Id": entry_id, **answer})
            waits += entry_waits
        if waits:
            await asyncio.gather(*waits)
        return {"Successful": successful, "Failed": failed}

    def _send(
        self, topic: Topic, out: Outgoing, ctx: RequestContext
    ) -> tuple[dict[str, Any], list[asyncio.Future[None]]]:
        """Append ``out`` to every queue the exchange routes it to, now; returns
        the answer and the waits for durability."""
        view = PublishView(out.attributes, out.message)
        names = self.manager.route(topic.name, "", view)
        subs: dict[str, Subscription] = {}
        for sub in self.subscriptions.of_topic(topic.name):
            if sub.queue is not None and sub.confirmed:
                subs[sub.queue] = sub
        message_id = records_.new_message_id()
        now_ms = self.clock.wall_ms()
        sequence = topic.next_sequence(now_ms) if topic.fifo else None
        base = records_.sqs_headers(
            message_id,
            group_id=out.group_id,
            dedup_id=out.dedup_id,
            trace_header=None,
            sender_id=ctx.account,
            delay_until_ms=None,
        )
        if sequence is not None:
            base.append((SEQUENCE_HEADER, sequence.encode()))
        key = out.group_id.encode("utf-8") if out.group_id is not None else None
        signatures: dict[str, dict[str, Any]] = {}
        raw_groups: dict[tuple[str, int, str | None], list[str]] = {}
        waits: list[asyncio.Future[None]] = []
        for name in sorted(names):
            sub = subs.get(name)
            protocol = sub.protocol if sub is not None else "default"
            text = message_for_protocol(out.message, out.structure, protocol)
            traits = self.queue_traits(name)
            dedup = _dedup_key(out, traits) if topic.fifo else None
            if sub is None or sub.raw:
                raw_groups.setdefault((text, traits.delay_ms, dedup), []).append(name)
                continue
            envelope = signatures.get(text)
            if envelope is None:
                envelope = signatures[text] = notification(
                    message_id=message_id,
                    topic_arn=topic.arn,
                    message=text,
                    timestamp_ms=now_ms,
                    unsubscribe_url="",  # per subscription, below (it is not signed)
                    signing_cert_url=ctx.base_url + CERT_PATH,
                    key=self.signing_key(),
                    subject=out.subject,
                    attributes=out.attributes,
                    signature_version=topic.signature_version,
                    sequence_number=sequence,
                )
            body = dict(envelope, UnsubscribeURL=unsubscribe_url(ctx.base_url, sub.arn))
            headers = _delayed(base, now_ms, traits.delay_ms)
            record = Record(to_json(body), key=key, headers=headers, timestamp=now_ms)
            ids = None if dedup is None else [dedup]
            _, more = self.manager.enqueue_now([name], [record], dedup_ids=ids)
            waits += more
        if raw_groups:
            headers = base + records_.attributes_to_headers(out.attributes)
            for (text, delay, dedup), queues in raw_groups.items():
                record = Record(
                    text.encode("utf-8"),
                    key=key,
                    headers=_delayed(headers, now_ms, delay),
                    timestamp=now_ms,
                )
                ids = None if dedup is None else [dedup]
                _, more = self.manager.enqueue_now(queues, [record], dedup_ids=ids)
                waits += more
        answer: dict[str, Any] = {"MessageId": message_id}
        if sequence is not None:
            answer["SequenceNumber"] = sequence
        return answer, waits


def _dedup_key(out: Outgoing, traits: QueueTraits) -> str | None:
    """The id a FIFO queue's dedup window compares, keyed as SendMessage keys it."""
    if out.dedup_id is None:
        return None
    if traits.dedup_per_group:
        return f"{out.group_id}\x00{out.dedup_id}"
    return out.dedup_id


def _delayed(headers: list[Header], now_ms: int, delay_ms: int) -> list[Header]:
    """The headers, with the queue's delivery delay stamped as SendMessage does."""
    if delay_ms <= 0:
        return list(headers)
    return [*headers, (DELIVER_AT, b"%d" % (now_ms + delay_ms))]

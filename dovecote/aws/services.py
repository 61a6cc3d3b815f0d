"""The services the AWS listener serves, by name, and the files it serves beside them."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from dovecote.aws.context import RequestContext
from dovecote.aws.errors import AwsError
from dovecote.aws.gateway import Operation
from dovecote.aws.sns import SnsService, register
from dovecote.aws.sns_publish import PLAIN_QUEUE, QueueTraits
from dovecote.aws.sqs_messages import SqsMessages
from dovecote.aws.sqs_moves import MessageMoves
from dovecote.aws.sqs_queues import SqsQueues


class OperationTable:
    """A service as the gateway sees it: operation name -> coroutine function."""

    def __init__(self, operations: Mapping[str, Operation]) -> None:
        self.operations = dict(operations)


def sqs_operations(queues: SqsQueues, messages: SqsMessages, moves: MessageMoves) -> OperationTable:
    return OperationTable(
        {
            "CreateQueue": queues.create_queue,
            "DeleteQueue": queues.delete_queue,
            "ListQueues": queues.list_queues,
            "GetQueueUrl": queues.get_queue_url,
            "GetQueueAttributes": queues.get_queue_attributes,
            "SetQueueAttributes": queues.set_queue_attributes,
            "PurgeQueue": queues.purge_queue,
            "TagQueue": queues.tag_queue,
            "UntagQueue": queues.untag_queue,
            "ListQueueTags": queues.list_queue_tags,
            "AddPermission": queues.add_permission,
            "RemovePermission": queues.remove_permission,
            "ListDeadLetterSourceQueues": queues.list_dead_letter_source_queues,
            "SendMessage": messages.send_message,
            "SendMessageBatch": messages.send_message_batch,
            "ReceiveMessage": messages.receive_message,
            "DeleteMessage": messages.delete_message,
            "DeleteMessageBatch": messages.delete_message_batch,
            "ChangeMessageVisibility": messages.change_message_visibility,
            "ChangeMessageVisibilityBatch": messages.change_message_visibility_batch,
            "StartMessageMoveTask": moves.start,
            "ListMessageMoveTasks": moves.list,
            "CancelMessageMoveTask": moves.cancel,
        }
    )


def sts_operations(account: str) -> OperationTable:
    async def get_caller_identity(params: dict[str, Any], ctx: RequestContext) -> dict[str, Any]:
        user = ctx.access_key or "AKIAIOSFODNN7EXAMPLE"
        return {"UserId": user, "Account": ctx.account, "Arn": f"arn:aws:iam::{ctx.account}:root"}

    return OperationTable({"GetCallerIdentity": get_caller_identity})


# Operations that store messages: refused while the broker has a resource alarm.
PUBLISHING = {
    "sqs": ("SendMessage", "SendMessageBatch"),
    "sns": ("Publish", "PublishBatch"),
}
THROTTLED = {"sqs": "RequestThrottled", "sns": "ThrottledException"}


def refuse_while_alarmed(
    operation: Operation, alarms: Callable[[], frozenset[str]], code: str
) -> Operation:
    """``operation``, refused with a throttling error (which SDKs retry with
    backoff) while a disk or memory alarm holds, as AMQP blocks publishers."""

    async def guarded(params: dict[str, Any], ctx: RequestContext) -> dict[str, Any]:
        active = alarms()
        if active:
            raise AwsError(
                code,
                f"The broker is low on {' and '.join(sorted(active))}; try again later.",
            )
        return await operation(params, ctx)

    return guarded


class AwsServices:
    """SQS, SNS and STS over one broker core."""

    def __init__(self, core: Any, config: Any) -> None:
        self.core = core
        self.config = config
        self.queues = SqsQueues(core.queues)
        self.messages = SqsMessages(self.queues)
        self.moves = MessageMoves(self.queues)
        self.by_name: dict[str, OperationTable] = {
            "sqs": sqs_operations(self.queues, self.messages, self.moves),
            "sts": sts_operations(config.aws_account_id),
        }
        # GET path -> () -> (content type, body)
        self.static: dict[str, Callable[[], tuple[str, bytes]]] = {}
        self.sns = SnsService(
            core.queues, lambda arn: self.queues.by_arn(arn).name, self._queue_traits
        )
        register(self.by_name, self.static, self.sns)
        for service, names in PUBLISHING.items():
            operations = self.by_name[service].operations
            for name in names:
                operations[name] = refuse_while_alarmed(
                    operations[name], lambda: core.resources.alarms, THROTTLED[service]
                )

    def _queue_traits(self, name: str) -> QueueTraits:
        """What SNS deliveries to a queue honour as SendMessage does: its
        DelaySeconds and FIFO deduplication scope."""
        queue = self.core.queues.queues.get(name)
        if queue is None:
            return PLAIN_QUEUE
        view = self.queues.view(queue)
        return QueueTraits(view.int_attribute("DelaySeconds") * 1000, view.dedup_per_group)

    def sns_topics(self) -> list[dict[str, Any]]:
        """SNS topics and their subscriptions, for the admin API and CLI:
        ready and in-flight counts of each subscription's queue (its own SQS
        queue, or the internal one of an HTTP endpoint)."""
        out = []
        subscriptions = self.sns.subscriptions
        for name in sorted(self.sns.topics.topics):
            topic = self.sns.topics.topics[name]
            subs = []
            for sub in subscriptions.by_topic.get(name, {}).values():
                queue = self.core.queues.queues.get(sub.queue) if sub.queue else None
                subs.append(
                    {
                        "arn": sub.arn if sub.confirmed else "PendingConfirmation",
                        "protocol": sub.protocol,
                        "endpoint": sub.endpoint,
                        "raw": sub.raw,
                        "filter_policy": sub.attributes.get("FilterPolicy"),
                        "queue": sub.queue,
                        "messages_ready": queue.message_count() if queue else None,
                        "messages_unacked": queue.unacked_count() if queue else None,
                    }
                )
            confirmed, pending = self.sns.topics.counts(topic)
            out.append(
                {
                    "name": name,
                    "arn": topic.arn,
                    "fifo": topic.fifo,
                    "subscriptions_confirmed": confirmed,
                    "subscriptions_pending": pending,
                    "subscriptions": subs,
                }
            )
        return out

    async def start(self) -> None:
        await self.sns.start()

    async def close(self) -> None:
        await self.sns.close()
        await self.moves.close()

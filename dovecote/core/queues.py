"""Queues and exchanges: the routing half of the model, shared by AMQP and SQS/SNS.

A queue is a topic (named like the queue, so it can also be read as a Kafka
stream) plus one subscription. With ``x-max-priority`` the topic has one
partition per priority level. Queue topics reclaim settled data
(``retention.acked``), so a queue's disk use follows its depth.

Exchanges, bindings and durable queues are kept in the catalog; non-durable
queues and their data are removed on restart, exclusive ones when their
owner goes away, auto-delete ones when their last consumer leaves.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from dovecote.core.config import FLUSH_ACK
from dovecote.core.errors import BrokerError, MessageTooLarge, TopicExists
from dovecote.core.headers import application_headers
from dovecote.core.routing import (
    DIRECT,
    EXCHANGE,
    EXCHANGE_TYPES,
    FANOUT,
    HEADERS,
    QUEUE,
    TOPIC,
    Binding,
    Exchange,
    Router,
    freeze_arguments,
)
from dovecote.core.subscription import EXPIRES_AT, Subscription, SubscriptionConfig
from dovecote.core.topic import Partition
from dovecote.storage.batch import Record, build_batch, scan_batches

if TYPE_CHECKING:
    from dovecote.core.broker import BrokerCore

log = logging.getLogger(__name__)

DEATHS = "dovecote.deaths"  # JSON list of dead-letter events, newest first (AMQP renders x-death)
EXCHANGE_HEADER = "amqp.exchange"  # the exchange a record was published to (absent: default)
SWEEP_INTERVAL = 1.0
# A queue topic takes whatever the protocol front door accepted: an AMQP
# message may be as large as the frame layer allows, and a publish batch
# groups many of them into one record batch.
QUEUE_MAX_BATCH_BYTES = 1 << 30

# Exchanges every vhost has, as in RabbitMQ.
STANDARD_EXCHANGES = {
    "amq.direct": DIRECT,
    "amq.fanout": FANOUT,
    "amq.topic": TOPIC,
    "amq.headers": HEADERS,
    "amq.match": HEADERS,
}


class NotFound(BrokerError):
    """AMQP 404."""


class PreconditionFailed(BrokerError):
    """AMQP 406: inequivalent redeclare, not empty, in use."""


class ResourceLocked(BrokerError):
    """AMQP 405: an exclusive queue of another connection."""


class AccessRefused(BrokerError):
    """AMQP 403: reserved names."""


@dataclass
class QueueArgs:
    """Queue behaviour, normalised from AMQP x-arguments or SQS attributes."""

    message_ttl_ms: int | None = None
    expires_ms: int | None = None
    max_length: int | None = None
    max_length_bytes: int | None = None
    overflow: str = "drop-head"  # drop-head | reject-publish | reject-publish-dlx
    dead_letter_exchange: str | None = None
    dead_letter_routing_key: str | None = None
    dead_letter_queue: str | None = None  # SQS redrive target
    max_priority: int | None = None
    delivery_limit: int | None = None
    lease_ms: int | None = None  # SQS visibility timeout; None = until acked
    ordered: bool = False  # FIFO message groups

    @classmethod
    def from_amqp(cls, arguments: Mapping[str, Any], queue: str = "") -> QueueArgs:
        """Validate x-arguments; errors read as RabbitMQ's ("invalid arg ... for queue ...")."""
        where = f" for queue '{queue}'" if queue else ""

        def invalid(name: str, why: str) -> PreconditionFailed:
            return PreconditionFailed(f"invalid arg '{name}'{where}: {why}")

        def number(name: str, minimum: int = 0) -> int | None:
            value = arguments.get(name)
            if value is None:
                return None
            if isinstance(value, bool) or not isinstance(value, int):
                kind = "longstr" if isinstance(value, str | bytes) else type(value).__name__
                raise invalid(name, f'"expected integer, got {kind}"')
            if value < minimum:
                reason = "value_negative" if value < 0 else "value_zero"
                raise invalid(name, f"{{{reason},{value}}}")
            return value

        overflow = _text(arguments.get("x-overflow", "drop-head"))
        if overflow not in ("drop-head", "reject-publish", "reject-publish-dlx"):
            raise invalid("x-overflow", "invalid_overflow")
        priority = number("x-max-priority")
        if priority is not None and priority > 255:
            raise invalid("x-max-priority", f"{{max_value_exceeded,{priority}}}")
        dlx = arguments.get("x-dead-letter-exchange")
        dlk = arguments.get("x-dead-letter-routing-key")
        return cls(
            message_ttl_ms=number("x-message-ttl"),
            expires_ms=number("x-expires", 1),
            max_length=number("x-max-length"),
            max_length_bytes=number("x-max-length-bytes"),
            overflow=overflow,
            dead_letter_exchange=None if dlx is None else _text(dlx),
            dead_letter_routing_key=None if dlk is None else _text(dlk),
            max_priority=priority,
            delivery_limit=number("x-delivery-limit"),
        )

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _shown(value: Any) -> str:
    """An argument value as RabbitMQ prints it in inequivalence errors."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return str(value).lower()
    return _text(value)


@dataclass
class Queue:
    name: str
    subscription: Subscription
    args: QueueArgs
    durable: bool = True
    auto_delete: bool = False
    exclusive_owner: object | None = None
    arguments: dict[str, Any] = field(default_factory=dict)  # as declared, for equivalence
    consumers: int = 0
    last_used: float = field(default_factory=time.monotonic)
    had_consumer: bool = False

    @property
    def topic(self):
        return self.subscription.topic

    def message_count(self) -> int:
        return self.subscription.ready_count()

    def depth(self) -> int:
        """Ready records counting appends still waiting for their fsync (what
        length limits apply to: they are stored, just not visible yet)."""
        sub = self.subscription
        sub.sync_partitions()
        total = 0
        for index, cursor in enumerate(sub.cursors):
            end = self.topic.partitions[index].log_end_offset
            total += max(0, end - cursor.floor) - len(cursor.settled) - len(cursor.leased)
        return max(0, total)

    def unacked_count(self) -> int:
        return self.subscription.unacked_count()

    def ready_bytes(self) -> int:
        """Approximate bytes of unsettled records: log bytes above each floor."""
        total = 0
        for index, cursor in enumerate(self.subscription.cursors):
            log_ = self.topic.partitions[index].log
            found = None
            for segment in log_.segments:
                if segment.next_offset > cursor.floor:
                    found = segment.find(cursor.floor)
                    if found is not None:
                        total += segment.size - found[0]
                        found = segment
                        continue
                if found is not None:
                    total += segment.size
        return total

    def touch(self) -> None:
        self.last_used = time.monotonic()


@dataclass(slots=True)
class PublishResult:
    queues: list[str]  # where it was stored
    rejected: list[str]  # queues full with overflow=reject-publish

    @property
    def routed(self) -> bool:
        return bool(self.queues or self.rejected)


class QueueManager:
    def __init__(self, core: BrokerCore) -> None:
        self.core = core
        self.router = Router()
        self.queues: dict[str, Queue] = {}
        self._sweeper: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()

    # --- start and stop ---------------------------------------------------------

    async def load(self) -> None:
        catalog = self.core.catalog
        for name, kind in STANDARD_EXCHANGES.items():
            self.router.exchanges[name] = Exchange(name, kind)
        self.router.exchanges[""] = Exchange("", DIRECT)
        for name, meta in catalog.items("exchange").items():
            self.router.exchanges[name] = Exchange(
                name,
                meta["type"],
                durable=True,
                auto_delete=meta.get("auto_delete", False),
                internal=meta.get("internal", False),
                arguments=meta.get("arguments", {}),
            )
        for name, meta in list(catalog.items("queue").items()):
            if not meta.get("durable", True):
                await self._forget_queue(name, delete_topic=True)
                continue
            self._open_queue(name, meta)
        for meta in catalog.items("binding").values():
            binding = Binding.from_json(meta)
            exchange = self.router.exchanges.get(binding.source)
            if exchange is not None:
                exchange.add(binding)
        self._sweeper = asyncio.create_task(self._sweep_loop(), name="queue-sweeper")

    async def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def _open_queue(self, name: str, meta: Mapping[str, Any]) -> Queue:
        args = QueueArgs(**meta.get("args", {}))
        subscription = self.core.open_subscription(
            f"queue:{name}",
            name,
            SubscriptionConfig(
                lease_ms=args.lease_ms,
                max_deliveries=args.delivery_limit,
                message_ttl_ms=args.message_ttl_ms,
                ordered=args.ordered,
                priority=args.max_priority is not None,
            ),
            on_dead_letter=lambda record, reason, q=name: self._dead_letter(q, record, reason),
        )
        queue = Queue(
            name,
            subscription,
            args,
            durable=meta.get("durable", True),
            auto_delete=meta.get("auto_delete", False),
            arguments=dict(meta.get("arguments", {})),
        )
        self.queues[name] = queue
        return queue

    # --- exchanges ---------------------------------------------------------------

    async def declare_exchange(
        self,
        name: str,
        type_: str,
        *,
        durable: bool = True,
        auto_delete: bool = False,
        internal: bool = False,
        arguments: Mapping[str, Any] | None = None,
        passive: bool = False,
    ) -> Exchange:
        existing = self.router.exchanges.get(name)
        if passive:
            if existing is None:
                raise NotFound(f"no exchange '{name}'")
            return existing
        if existing is not None:
            if (
                existing.type != type_
                or existing.durable != durable
                or existing.auto_delete != auto_delete
            ):
                raise PreconditionFailed(
                    f"inequivalent arg 'type' or flags for exchange '{name}': "
                    f"received '{type_}' but current is '{existing.type}'"
                )
            return existing
        if name.startswith("amq."):
            raise AccessRefused(f"exchange name '{name}' contains reserved prefix 'amq.*'")
        if type_ not in EXCHANGE_TYPES:
            raise PreconditionFailed(
                f"invalid exchange type '{type_}'"
            )  # RabbitMQ: 503 command invalid
        exchange = Exchange(name, type_, durable, auto_delete, internal, _plain(arguments))
        if durable:
            await self.core.catalog.put("exchange", name, exchange.to_json())
        self.router.exchanges[name] = exchange
        return exchange

    async def delete_exchange(self, name: str, *, if_unused: bool = False) -> None:
        exchange = self.router.exchanges.get(name)
        if exchange is None:
            return  # RabbitMQ: deleting a missing exchange is not an error
        if name == "" or name.startswith("amq."):
            raise AccessRefused(f"cannot delete exchange '{name}'")
        if if_unused and (exchange.bindings or self.router.bindings_to(EXCHANGE, name)):
            raise PreconditionFailed(f"exchange '{name}' in use")
        for binding in list(exchange.bindings) + self.router.bindings_to(EXCHANGE, name):
            await self._remove_binding(binding)
        # Another delete (or a delete and a new declare) may have run while
        # the bindings went: forget this exchange only if it is still the one.
        if self.router.exchanges.get(name) is not exchange:
            return
        del self.router.exchanges[name]
        if exchange.durable:
            await self.core.catalog.delete("exchange", name)

    # --- bindings -----------------------------------------------------------------

    async def bind(
        self,
        source: str,
        destination: str,
        routing_key: str,
        *,
        kind: str = QUEUE,
        arguments: Mapping[str, Any] | None = None,
    ) -> None:
        exchange = self._exchange(source)
        if source == "":
            raise AccessRefused("operation not permitted on the default exchange")
        if kind == QUEUE:
            queue = self.get_queue(destination)
            durable = queue.durable
        else:
            durable = self._exchange(destination).durable
        binding = Binding(
            source, destination, kind, routing_key, freeze_arguments(_plain(arguments))
        )
        if exchange.add(binding) and durable and exchange.durable:
            await self.core.catalog.put("binding", binding.catalog_key(), binding.to_json())

    async def unbind(
        self,
        source: str,
        destination: str,
        routing_key: str,
        *,
        kind: str = QUEUE,
        arguments: Mapping[str, Any] | None = None,
    ) -> None:
        if source == "":
            raise AccessRefused("operation not permitted on the default exchange")
        self._exchange(source)
        if kind == QUEUE:
            self.get_queue(destination)
        else:
            self._exchange(destination)
        binding = Binding(
            source, destination, kind, routing_key, freeze_arguments(_plain(arguments))
        )
        await self._remove_binding(binding)

    async def _remove_binding(self, binding: Binding) -> None:
        exchange = self.router.exchanges.get(binding.source)
        if exchange is not None and exchange.remove(binding):
            if self.core.catalog.get("binding", binding.catalog_key()) is not None:
                await self.core.catalog.delete("binding", binding.catalog_key())
            if exchange.auto_delete and not exchange.bindings and exchange.name:
                await self.delete_exchange(exchange.name)

    def _exchange(self, name: str) -> Exchange:
        exchange = self.router.exchanges.get(name)
        if exchange is None:
            raise NotFound(f"no exchange '{name}'")
        return exchange

    # --- queues -------------------------------------------------------------------

    def get_queue(self, name: str, owner: object | None = None) -> Queue:
        queue = self.queues.get(name)
        if queue is None:
            raise NotFound(f"no queue '{name}'")
        if (
            queue.exclusive_owner is not None
            and owner is not None
            and queue.exclusive_owner is not owner
        ):
            raise ResourceLocked(
                f"cannot obtain exclusive access to locked queue '{name}'. It could be originally "
                "declared on another connection or the exclusive property value does not match "
                "that of the original declaration."
            )
        return queue

    async def declare_queue(
        self,
        name: str,
        *,
        durable: bool = True,
        exclusive_owner: object | None = None,
        auto_delete: bool = False,
        arguments: Mapping[str, Any] | None = None,
        args: QueueArgs | None = None,
        passive: bool = False,
        owner: object | None = None,
        server_named: bool = False,
    ) -> Queue:
        """Create a queue, or check an existing one is equivalent.

        ``owner`` is the declaring connection (for exclusivity checks);
        ``exclusive_owner`` is set when the queue is to be exclusive to it;
        ``server_named`` lets the broker's own ``amq.gen-*`` names through."""
        arguments = _plain(arguments)
        existing = self.queues.get(name)
        if passive:
            if existing is None:
                raise NotFound(f"no queue '{name}'")
            return self.get_queue(name, owner)
        if existing is not None:
            self.get_queue(name, owner)
            for flag, wanted, current in (
                ("durable", durable, existing.durable),
                ("auto_delete", auto_delete, existing.auto_delete),
                ("exclusive", exclusive_owner is not None, existing.exclusive_owner is not None),
            ):
                if wanted != current:
                    raise PreconditionFailed(
                        f"inequivalent arg '{flag}' for queue '{name}': "
                        f"received '{str(wanted).lower()}' but current is '{str(current).lower()}'"
                    )
            for key in sorted(set(arguments) | set(existing.arguments)):
                if key.startswith("x-") and arguments.get(key) != existing.arguments.get(key):
                    raise PreconditionFailed(
                        f"inequivalent arg '{key}' for queue '{name}': received "
                        f"'{_shown(arguments.get(key))}' but current is "
                        f"'{_shown(existing.arguments.get(key))}'"
                    )
            return existing
        if name.startswith("amq.") and not server_named:
            raise AccessRefused(f"queue name '{name}' contains reserved prefix 'amq.*'")
        args = args or QueueArgs.from_amqp(arguments, name)
        async with self._lock:
            if name in self.queues:
                return self.queues[name]
            levels = 1 if args.max_priority is None else args.max_priority + 1
            configs = {
                "retention.acked": "true",
                "retention.ms": "-1",
                "max.message.bytes": str(QUEUE_MAX_BATCH_BYTES),
            }
            if not durable or exclusive_owner is not None:
                configs["flush.policy"] = "never"  # transient: gone at restart anyway
            try:
                await self.core.create_topic(name, levels, configs)
            except TopicExists:
                pass  # a Kafka topic of that name: the queue reads it
            meta = {
                "durable": durable and exclusive_owner is None,
                "auto_delete": auto_delete,
                "arguments": arguments,
                "args": args.to_json(),
            }
            await self.core.catalog.put("queue", name, meta)
            queue = self._open_queue(name, meta)
            queue.exclusive_owner = exclusive_owner
            queue.durable = durable
            return queue

    async def delete_queue(
        self,
        name: str,
        *,
        if_unused: bool = False,
        if_empty: bool = False,
        owner: object | None = None,
    ) -> int:
        """Delete a queue; returns the number of messages it held."""
        queue = self.queues.get(name)
        if queue is None:
            return 0
        self.get_queue(name, owner)
        if if_unused and queue.consumers:
            raise PreconditionFailed(f"queue '{name}' in use")
        count = queue.message_count()
        if if_empty and count:
            raise PreconditionFailed(f"queue '{name}' not empty")
        for binding in self.router.bindings_to(QUEUE, name):
            await self._remove_binding(binding)
        await self._forget_queue(name, delete_topic=True, queue=queue)
        return count

    async def _forget_queue(
        self, name: str, delete_topic: bool, queue: Queue | None = None
    ) -> None:
        # Under the declaration lock: a declare of the same name waits until
        # the old topic is gone. Without it, the declare found the topic still
        # there (TopicExists: "a Kafka topic, the queue reads it") and got a
        # queue whose log this deletion then closed (reads and appends on a
        # closed file descriptor, found by the AMQP fuzzer).
        async with self._lock:
            if queue is not None and self.queues.get(name) is not queue:
                return  # deleted meanwhile (and perhaps declared anew): not ours to delete
            self.queues.pop(name, None)
            self.core.drop_subscription(f"queue:{name}")
            if self.core.catalog.get("queue", name) is not None:
                await self.core.catalog.delete("queue", name)
            topic = self.core.topic(name)
            if delete_topic and topic is not None and topic.config("retention.acked") == "true":
                await self.core.delete_topic(name)

    async def purge_queue(self, name: str, owner: object | None = None) -> int:
        return self.get_queue(name, owner).subscription.purge()

    async def owner_gone(self, owner: object) -> None:
        """A connection closed: its exclusive queues go with it."""
        for queue in list(self.queues.values()):
            if queue.exclusive_owner is owner:
                await self.delete_queue(queue.name)

    def consumer_added(self, queue: Queue) -> None:
        queue.consumers += 1
        queue.had_consumer = True
        queue.touch()

    async def consumer_removed(self, queue: Queue) -> None:
        queue.consumers = max(0, queue.consumers - 1)
        queue.touch()
        unused = queue.auto_delete and queue.consumers == 0 and queue.had_consumer
        if unused and self.queues.get(queue.name) is queue:
            await self.delete_queue(queue.name)

    # --- publishing -------------------------------------------------------------------

    def route(self, exchange: str, routing_key: str, headers: Mapping[str, Any] | None) -> set[str]:
        if exchange not in self.router.exchanges:
            raise NotFound(f"no exchange '{exchange}'")
        return self.router.route(
            exchange, routing_key, headers, queue_exists=self.queues.__contains__
        )

    async def publish(
        self,
        exchange: str,
        routing_key: str,
        records: list[Record],
        *,
        headers: Mapping[str, Any] | None = None,
        priority: int | None = None,
        durable: bool = True,
    ) -> PublishResult:
        """Route records (sharing one routing key and headers) and store them
        in every queue they reach. Returns where they went."""
        names = self.route(exchange, routing_key, headers)
        return await self.enqueue(names, records, priority=priority, durable=durable)

    async def enqueue(
        self,
        names: set[str] | list[str],
        records: list[Record],
        *,
        priority: int | None = None,
        durable: bool = True,
    ) -> PublishResult:
        result, waits = self.enqueue_now(names, records, priority=priority, durable=durable)
        if waits:
            await asyncio.gather(*waits)
        return result

    def enqueue_now(
        self,
        names: set[str] | list[str],
        records: list[Record],
        *,
        priority: int | None = None,
        durable: bool = True,
    ) -> tuple[PublishResult, list[asyncio.Future[None]]]:
        """Store ``records`` in the named queues now, without awaiting anything.

        Returns where they went and, when ``durable``, the futures that
        complete once each append is on disk (the group commit). Protocol
        adapters call this from their read path so that a burst of publishes
        is appended in arrival order, one append per queue per batch, and
        acknowledge when the futures are done.
        """
        stored: list[str] = []
        rejected: list[str] = []
        waits: list[asyncio.Future[None]] = []
        for name in names:
            queue = self.queues.get(name)
            if queue is None:
                continue
            if queue.args.overflow != "drop-head" and self._full(queue, len(records)):
                rejected.append(name)
                if queue.args.overflow == "reject-publish-dlx":
                    for record in records:
                        self._spawn(self._dead_letter(name, record, "maxlen"))
                continue
            level = 0
            if queue.args.max_priority is not None and priority:
                level = min(max(priority, 0), queue.args.max_priority)
            partition = queue.topic.partitions[level]
            wait = append_now(partition, records, durable)
            if wait is not None:
                waits.append(wait)
            stored.append(name)
            args = queue.args
            if args.max_length is not None or args.max_length_bytes is not None:
                # drop-head: only visible records can be dropped, so trim once
                # this append is visible (callbacks run in order: before anyone
                # awaiting the append resumes).
                if partition.log_end_offset > partition.high_watermark:
                    if wait is None:
                        wait = partition.topic.flusher.flush(partition.log)
                    wait.add_done_callback(lambda _f, q=queue: self._trim(q))
                else:
                    self._trim(queue)
        return PublishResult(stored, rejected), waits

    def _trim(self, queue: Queue) -> None:
        """Drop (dead-letter) the oldest records past a drop-head queue's limits."""
        if queue.args.overflow != "drop-head" or self.queues.get(queue.name) is not queue:
            return
        excess = self._excess(queue)
        if excess:
            queue.subscription.drop_head(excess, "maxlen")

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _full(self, queue: Queue, incoming: int) -> bool:
        args = queue.args
        if args.max_length is not None and queue.depth() + incoming > args.max_length:
            return True
        return args.max_length_bytes is not None and queue.ready_bytes() > args.max_length_bytes

    def _excess(self, queue: Queue) -> int:
        args = queue.args
        excess = 0
        if args.max_length is not None:
            excess = max(0, queue.message_count() - args.max_length)
        if args.max_length_bytes is not None and queue.ready_bytes() > args.max_length_bytes:
            excess = max(excess, 1)
        return excess

    # --- dead letters ---------------------------------------------------------------

    async def _dead_letter(self, queue_name: str, record: Record, reason: str) -> None:
        queue = self.queues.get(queue_name)
        if queue is None:
            return
        args = queue.args
        routing_key = (record.key or b"").decode("utf-8", "replace")
        exchange = _header(record, EXCHANGE_HEADER)
        headers = with_death(record.headers, queue_name, reason, exchange, routing_key)
        now_ms = int(time.time() * 1000)
        if args.dead_letter_queue is not None:
            if args.dead_letter_queue in self.queues:
                moved = Record(record.value, key=record.key, headers=headers, timestamp=now_ms)
                await self.enqueue([args.dead_letter_queue], [moved])
            return
        if args.dead_letter_exchange is None:
            return
        target = args.dead_letter_exchange
        target_key = args.dead_letter_routing_key or routing_key
        if target not in self.router.exchanges:
            log.warning(
                "dead-letter exchange '%s' of queue '%s' does not exist; dropped",
                target,
                queue_name,
            )
            return
        # Re-published through the dead-letter exchange: it and the key used
        # there are what a consumer sees (x-death keeps the original ones).
        headers = [(k, v) for k, v in headers if k != EXCHANGE_HEADER]
        if target:
            headers.append((EXCHANGE_HEADER, target.encode()))
        moved = Record(record.value, key=target_key.encode(), headers=headers, timestamp=now_ms)
        names = self.route(target, target_key, application_headers(moved.headers))
        if queue_name in names and _cycles(record, queue_name):
            # Dead-lettered back into this queue with no rejection in between:
            # RabbitMQ drops it there rather than loop forever.
            names.discard(queue_name)
        if names:
            await self.enqueue(names, [moved])

    # --- background -------------------------------------------------------------------

    async def _sweep_loop(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_INTERVAL)
            try:
                await self.sweep()
            except Exception:
                log.exception("queue sweep failed")

    async def sweep(self) -> None:
        """Expire unused queues (x-expires), dead-letter expired heads (TTL),
        requeue overdue leases."""
        now = time.monotonic()
        for queue in list(self.queues.values()):
            expires = queue.args.expires_ms
            if (
                expires is not None
                and queue.consumers == 0
                and now - queue.last_used > expires / 1000
            ):
                log.info("queue %s expired after %d ms unused", queue.name, expires)
                await self.delete_queue(queue.name)
                continue
            queue.subscription.expire_leases()
            queue.subscription.expire_head()


def append_now(
    partition: Partition, records: list[Record], durable: bool
) -> asyncio.Future[None] | None:
    """Append ``records`` to a queue partition as one batch, synchronously.

    The same steps as ``Partition.append_records`` minus the await: the data
    is written now; under flush.policy=ack the returned future completes
    after the group commit (``durable``), or the flush is just scheduled.
    """
    data = build_batch(records)
    infos = scan_batches(data, check_crc=False)
    topic = partition.topic
    if infos[0].size > topic.max_message_bytes:
        raise MessageTooLarge(
            f"batch of {infos[0].size} bytes exceeds max.message.bytes {topic.max_message_bytes}"
        )
    partition.log.append(data, infos, int(time.time() * 1000))
    if topic.flush_policy == FLUSH_ACK:
        if durable:
            return topic.flusher.flush(partition.log)
        topic.flusher.schedule(partition.log)
    else:
        partition.log.mark_written()
    return None


def _cycles(record: Record, queue: str) -> bool:
    deaths = _deaths(record)
    return any(d.get("queue") == queue for d in deaths) and not any(
        d.get("reason") == "rejected" for d in deaths
    )


def _deaths(record: Record) -> list[dict[str, Any]]:
    for key, value in record.headers:
        if key == DEATHS and value is not None:
            with contextlib.suppress(ValueError):
                return json.loads(value)
    return []


def _header(record: Record, name: str) -> str:
    for key, value in record.headers:
        if key == name and value is not None:
            return value.decode("utf-8", "replace")
    return ""


def with_death(
    headers: list[tuple[str, bytes | None]],
    queue: str,
    reason: str,
    exchange: str,
    routing_key: str,
) -> list[tuple[str, bytes | None]]:
    """Headers plus one more dead-letter event, merged as RabbitMQ merges x-death:
    one entry per (queue, reason) with a count, most recent first."""
    deaths: list[dict[str, Any]] = []
    rest = []
    for key, value in headers:
        if key == DEATHS and value is not None:
            with contextlib.suppress(ValueError):
                deaths = json.loads(value)
        elif key != EXPIRES_AT:
            rest.append((key, value))
    now = int(time.time())
    for entry in deaths:
        if entry.get("queue") == queue and entry.get("reason") == reason:
            entry["count"] = entry.get("count", 1) + 1
            entry["time"] = now
            deaths.remove(entry)
            deaths.insert(0, entry)
            break
    else:
        entry = {
            "queue": queue,
            "reason": reason,
            "count": 1,
            "time": now,
            "exchange": exchange,
            "routing-keys": [routing_key],
        }
        if not deaths:
            entry["first"] = True  # x-first-death-* never change once set
        deaths.insert(0, entry)
    rest.append((DEATHS, json.dumps(deaths, separators=(",", ":")).encode()))
    return rest


def _plain(arguments: Mapping[str, Any] | None) -> dict[str, Any]:
    """Arguments as JSON-storable plain values (AMQP tables may carry bytes)."""
    if not arguments:
        return {}
    out = {}
    for key, value in arguments.items():
        out[str(key)] = _plain_value(value)
    return out


def _plain_value(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, Mapping):
        return _plain(value)
    if isinstance(value, list | tuple):
        return [_plain_value(v) for v in value]
    if isinstance(value, int | float | str | bool) or value is None:
        return value
    return str(value)

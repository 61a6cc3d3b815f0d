"""Queues and exchanges: the routing half of the model, shared by every protocol.

A queue is a topic (named like the queue, so it can also be read as a log
stream) plus one subscription. With a maximum priority the topic has one
partition per priority level. Queue topics reclaim settled data
(``retention.acked``), so a queue's disk use follows its depth.

Exchanges, bindings and durable queues are kept in the catalog; non-durable
queues and their data are removed on restart, exclusive ones when their
owner goes away, auto-delete ones when their last consumer leaves, and
queues with an expiry when unused that long (one timer per such queue).

Queues are described by :class:`~dovecote.core.queue_settings.QueueSettings`,
in neutral terms; the manager is built from the services in
:mod:`~dovecote.core.queue_services`, and the dead-letter history it writes
is kept by :mod:`~dovecote.core.dead_letters`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from dovecote.core.catalog import Catalog
from dovecote.core.clock import Alarm, Clock
from dovecote.core.dead_letters import cycles, with_death
from dovecote.core.dedup import DedupWindow, Duplicate
from dovecote.core.delivery import ConsumerSet, PushConsumer
from dovecote.core.errors import BrokerError, TopicExists
from dovecote.core.headers import EXCHANGE_HEADER, application_headers
from dovecote.core.queue_services import SubscriptionService, TopicService
from dovecote.core.queue_settings import (
    DROP_HEAD,
    OVERFLOWS,
    REJECT_NEW_DEAD_LETTER,
    QueueSettings,
    subscription_config,
)
from dovecote.core.routing import (
    DIRECT,
    EXCHANGE,
    EXCHANGE_TYPES,
    QUEUE,
    Binding,
    BindingFilter,
    Exchange,
    Router,
    freeze_arguments,
)
from dovecote.core.subscription import EXPIRED, Subscription
from dovecote.core.topic import Partition, Topic
from dovecote.storage.batch import Record

log = logging.getLogger(__name__)

# A queue topic takes whatever the protocol front door accepted: a message
# may be as large as the adapter's frame layer allows, and a publish batch
# groups many of them into one record batch.
QUEUE_MAX_BATCH_BYTES = 1 << 30


class NotFound(BrokerError):
    """No queue, exchange or binding of that name."""


class PreconditionFailed(BrokerError):
    """The request conflicts with the current state: an inequivalent
    redeclare, a queue not empty or in use, an invalid setting."""


class ResourceLocked(BrokerError):
    """A queue exclusive to another owner."""


class AccessRefused(BrokerError):
    """A reserved exchange (the default one, or one an adapter marked reserved)."""


@dataclass
class Queue:
    name: str
    subscription: Subscription
    settings: QueueSettings
    durable: bool = True
    auto_delete: bool = False
    exclusive_owner: object | None = None
    # What the adapter declared it with (its arguments or attributes):
    # opaque to the core, kept so the adapter can check a redeclare.
    arguments: dict[str, Any] = field(default_factory=dict)
    consumers: int = 0
    last_used: float = 0.0  # clock.monotonic() of the last use
    had_consumer: bool = False
    delivery: ConsumerSet | None = None  # its push consumers (made at the first one)
    clock: Clock | None = field(default=None, repr=False)
    expiry: Alarm | None = field(default=None, repr=False)  # with settings.expires_ms

    @property
    def topic(self) -> Topic:
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

    def pending_appends(self) -> bool:
        """Whether records appended to it are not yet visible (awaiting their fsync)."""
        return any(p.pending_appends() for p in self.topic.partitions)

    async def settle_visible(self) -> None:
        """Wait until everything appended so far is visible, so counts, gets
        and purges see what was published before them."""
        waits = [w for w in (p.settle() for p in self.topic.partitions) if w is not None]
        if waits:
            await asyncio.gather(*waits, return_exceptions=True)

    def touch(self) -> None:
        """The queue was used: its expiry counts from now."""
        if self.clock is None:
            return
        self.last_used = self.clock.monotonic()
        expires = self.settings.expires_ms
        if self.expiry is not None and expires is not None:
            self.expiry.arm(self.last_used + expires / 1000)


@dataclass(slots=True)
class PublishResult:
    queues: list[str]  # where it was stored
    rejected: list[str]  # full queues that refused it (overflow reject-new*)
    # Consecutive records with one outcome, in order: (count, refused). A
    # record is refused when any queue it reached refused it. None: all
    # records had the same outcome (refused when ``rejected``).
    outcomes: list[tuple[int, bool]] | None = None
    # Per queue with a dedup window, per record: None if stored, else the
    # earlier record it repeats (stored once; the publisher still succeeds).
    duplicates: dict[str, list[Duplicate | None]] = field(default_factory=dict)

    @property
    def routed(self) -> bool:
        return bool(self.queues or self.rejected)

    def runs(self, total: int) -> list[tuple[int, bool]]:
        """``outcomes``, or one run of ``total`` records."""
        return self.outcomes if self.outcomes is not None else [(total, bool(self.rejected))]


class QueueManager:
    """Exchanges, bindings and queues: declarations, routing, overflow, dead
    letters and expiry, over the services it is given."""

    def __init__(
        self,
        catalog: Catalog,
        clock: Clock,
        topics: TopicService,
        subscriptions: SubscriptionService,
    ) -> None:
        self.catalog = catalog
        self.clock = clock
        self.topics = topics
        self.subscriptions = subscriptions
        self.router = Router()
        self.queues: dict[str, Queue] = {}
        # Stored bindings whose source exchange is not declared yet (an
        # adapter's reserved exchanges are declared when it starts).
        self._waiting_bindings: dict[str, list[Binding]] = {}
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()

    # --- start and stop ---------------------------------------------------------

    async def load(self) -> None:
        catalog = self.catalog
        self.router.exchanges[""] = Exchange("", DIRECT, reserved=True)
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
            else:
                self._waiting_bindings.setdefault(binding.source, []).append(binding)

    async def close(self) -> None:
        for queue in self.queues.values():
            if queue.expiry is not None:
                queue.expiry.cancel()
        await self.wait_idle()

    async def wait_idle(self) -> None:
        """Wait for background work (dead letters, expiries) started so far."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def _open_queue(self, name: str, meta: Mapping[str, Any]) -> Queue:
        settings = QueueSettings.from_stored(meta)
        subscription = self.subscriptions.open_subscription(
            f"queue:{name}",
            name,
            subscription_config(settings),
            on_dead_letter=lambda record, reason, q=name: self._dead_letter(q, record, reason),
        )
        queue = Queue(
            name,
            subscription,
            settings,
            durable=meta.get("durable", True),
            auto_delete=meta.get("auto_delete", False),
            arguments=dict(meta.get("arguments", {})),
            clock=self.clock,
        )
        if settings.expires_ms is not None:
            queue.expiry = Alarm(self.clock, lambda q=queue: self._expiry_due(q))
        if settings.dedup_window_ms is not None:
            # Before any append: ids a crash kept from the log are let go.
            window = self.subscriptions.dedup_window(f"queue:{name}", settings.dedup_window_ms)
            window.drop_beyond([p.log_end_offset for p in queue.topic.partitions])
        self.queues[name] = queue
        queue.touch()
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
        if type_ not in EXCHANGE_TYPES:
            raise PreconditionFailed(f"invalid exchange type '{type_}'")
        exchange = Exchange(name, type_, durable, auto_delete, internal, plain_arguments(arguments))
        if durable:
            await self.catalog.put("exchange", name, exchange.to_json())
        self._add_exchange(exchange)
        return exchange

    def declare_reserved_exchange(self, name: str, type_: str) -> Exchange:
        """An exchange that always exists and cannot be deleted (an adapter's
        standard exchanges); not stored: the adapter declares it at each start.
        Bindings to it are stored as to any durable exchange."""
        existing = self.router.exchanges.get(name)
        if existing is not None:
            existing.reserved = True
            return existing
        if type_ not in EXCHANGE_TYPES:
            raise PreconditionFailed(f"invalid exchange type '{type_}'")
        exchange = Exchange(name, type_, reserved=True)
        self._add_exchange(exchange)
        return exchange

    def _add_exchange(self, exchange: Exchange) -> None:
        self.router.exchanges[exchange.name] = exchange
        for binding in self._waiting_bindings.pop(exchange.name, ()):
            exchange.add(binding)

    async def delete_exchange(self, name: str, *, if_unused: bool = False) -> None:
        exchange = self.router.exchanges.get(name)
        if exchange is None:
            return  # deleting a missing exchange is not an error
        if exchange.reserved:
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
            await self.catalog.delete("exchange", name)

    # --- bindings -----------------------------------------------------------------

    async def bind(
        self,
        source: str,
        destination: str,
        routing_key: str,
        *,
        kind: str = QUEUE,
        arguments: Mapping[str, Any] | None = None,
        filter: BindingFilter | None = None,
    ) -> None:
        """Bind ``destination`` to exchange ``source``. ``filter`` is an
        optional predicate over (routing key, headers): records it rejects
        are not routed through this binding. Filters are not stored; the
        adapter that owns them binds again after a restart."""
        exchange = self._exchange(source)
        if source == "":
            raise AccessRefused("operation not permitted on the default exchange")
        if kind == QUEUE:
            queue = self.get_queue(destination)
            durable = queue.durable
        else:
            durable = self._exchange(destination).durable
        binding = Binding(
            source,
            destination,
            kind,
            routing_key,
            freeze_arguments(plain_arguments(arguments)),
            filter,
        )
        if filter is not None:
            exchange.remove(binding)  # a new filter replaces the old one
        if exchange.add(binding) and durable and exchange.durable:
            await self.catalog.put("binding", binding.catalog_key(), binding.to_json())

    async def unbind(
        self,
        source: str,
        destination: str,
        routing_key: str,
        *,
        kind: str = QUEUE,
        arguments: Mapping[str, Any] | None = None,
    ) -> None:
        """Remove a binding. A binding already gone (or whose exchange or
        destination is gone) is not an error: the caller's wish holds."""
        if source == "":
            raise AccessRefused("operation not permitted on the default exchange")
        binding = Binding(
            source, destination, kind, routing_key, freeze_arguments(plain_arguments(arguments))
        )
        await self._remove_binding(binding)

    async def _remove_binding(self, binding: Binding) -> None:
        exchange = self.router.exchanges.get(binding.source)
        if exchange is not None and exchange.remove(binding):
            if self.catalog.get("binding", binding.catalog_key()) is not None:
                await self.catalog.delete("binding", binding.catalog_key())
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
        settings: QueueSettings | None = None,
        arguments: Mapping[str, Any] | None = None,
        passive: bool = False,
        owner: object | None = None,
    ) -> Queue:
        """Create a queue, or check an existing one is equivalent.

        ``owner`` is the declaring connection (for exclusivity checks);
        ``exclusive_owner`` is set when the queue is to be exclusive to it.
        An existing queue is equivalent when its flags match and, if
        ``settings`` are given, its settings do. ``arguments`` are the
        adapter's own record of the declaration (kept, not interpreted)."""
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
            if settings is not None and settings != existing.settings:
                raise PreconditionFailed(
                    f"inequivalent settings for queue '{name}': received {settings} "
                    f"but current is {existing.settings}"
                )
            return existing
        settings = settings or QueueSettings()
        if settings.overflow not in OVERFLOWS:
            raise PreconditionFailed(f"invalid overflow '{settings.overflow}' for queue '{name}'")
        async with self._lock:
            if name in self.queues:
                return self.queues[name]
            levels = 1 if settings.max_priority is None else settings.max_priority + 1
            configs = {
                "retention.acked": "true",
                "retention.ms": str(settings.retention_ms or -1),
                "max.message.bytes": str(QUEUE_MAX_BATCH_BYTES),
            }
            if settings.stream:
                del configs["retention.acked"]  # consuming does not remove
                if settings.retention_bytes is not None:
                    configs["retention.bytes"] = str(settings.retention_bytes)
            if not durable or exclusive_owner is not None:
                configs["flush.policy"] = "never"  # transient: gone at restart anyway
            try:
                await self.topics.create_topic(name, levels, configs)
            except TopicExists:
                pass  # a log topic of that name: the queue reads it
            meta = {
                "durable": durable and exclusive_owner is None,
                "auto_delete": auto_delete,
                "arguments": plain_arguments(arguments),
                "settings": settings.to_json(),
            }
            await self.catalog.put("queue", name, meta)
            queue = self._open_queue(name, meta)
            queue.exclusive_owner = exclusive_owner
            queue.durable = durable
            return queue

    async def update_settings(
        self,
        name: str,
        settings: QueueSettings,
        arguments: Mapping[str, Any] | None = None,
    ) -> Queue:
        """Change a queue's settings in place (SQS SetQueueAttributes, a
        Pub/Sub subscription update). Leases, delays and counts already
        given keep their values; what is decided from now on follows the new
        settings. Partitions (priority levels) and ordering cannot change."""
        queue = self.get_queue(name)
        old = queue.settings
        if settings.max_priority != old.max_priority or settings.ordered != old.ordered:
            raise PreconditionFailed(f"queue '{name}': priority levels and ordering cannot change")
        config = subscription_config(settings)
        config.filter = queue.subscription.config.filter
        queue.subscription.config = config
        queue.settings = settings
        if arguments is not None:
            queue.arguments = plain_arguments(arguments)
        if settings.expires_ms is not None and queue.expiry is None:
            queue.expiry = Alarm(self.clock, lambda q=queue: self._expiry_due(q))
        elif settings.expires_ms is None and queue.expiry is not None:
            queue.expiry.cancel()
            queue.expiry = None
        queue.touch()
        if queue.durable:
            meta = dict(self.catalog.get("queue", name) or {})
            meta["settings"] = settings.to_json()
            meta["arguments"] = queue.arguments
            await self.catalog.put("queue", name, meta)
        queue.subscription.config_changed()
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
        # there (TopicExists: "a log topic, the queue reads it") and got a
        # queue whose log this deletion then closed (reads and appends on a
        # closed file descriptor, found by the protocol fuzzer).
        async with self._lock:
            if queue is not None and self.queues.get(name) is not queue:
                return  # deleted meanwhile (and perhaps declared anew): not ours to delete
            gone = self.queues.pop(name, None)
            if gone is not None and gone.expiry is not None:
                gone.expiry.cancel()
            self.subscriptions.drop_subscription(f"queue:{name}")
            if self.catalog.get("queue", name) is not None:
                await self.catalog.delete("queue", name)
            topic = self.topics.topic(name)
            owned = gone is not None and gone.settings.stream
            if (
                delete_topic
                and topic is not None
                and (owned or topic.config("retention.acked") == "true")
            ):
                await self.topics.delete_topic(name)

    async def purge_queue(self, name: str, owner: object | None = None) -> int:
        return self.get_queue(name, owner).subscription.purge()

    async def owner_gone(self, owner: object) -> None:
        """A connection closed: its exclusive queues go with it."""
        for queue in list(self.queues.values()):
            if queue.exclusive_owner is owner:
                await self.delete_queue(queue.name)

    def consumer_added(self, queue: Queue, consumer: PushConsumer | None = None) -> None:
        """Count a consumer and, given a push consumer, start delivering to it
        (``ConsumerRefused`` next to an exclusive consumer)."""
        if consumer is not None:
            if queue.delivery is None:
                queue.delivery = ConsumerSet(
                    queue.subscription,
                    self.clock,
                    single_active=queue.settings.single_active_consumer,
                    name=queue.name,
                )
            queue.delivery.attach(consumer)
        queue.consumers += 1
        queue.had_consumer = True
        queue.touch()

    async def consumer_removed(self, queue: Queue) -> None:
        queue.consumers = max(0, queue.consumers - 1)
        queue.touch()
        unused = queue.auto_delete and queue.consumers == 0 and queue.had_consumer
        if unused and self.queues.get(queue.name) is queue:
            await self.delete_queue(queue.name)

    async def visible(self, queue: Queue) -> None:
        """Wait until what was published to ``queue`` before is visible (what
        every adapter does before a get, a count, a purge or a delete)."""
        await queue.settle_visible()

    # --- expiry -------------------------------------------------------------------

    def _expiry_due(self, queue: Queue) -> None:
        """The expiry alarm of ``queue`` fired: delete it if unused that long,
        else wait for the rest (consumers re-arm it when they leave)."""
        if self.queues.get(queue.name) is not queue or queue.settings.expires_ms is None:
            return
        if queue.consumers:
            return  # consumer_removed touches it, which arms the alarm again
        due = queue.last_used + queue.settings.expires_ms / 1000
        if self.clock.monotonic() < due:
            assert queue.expiry is not None
            queue.expiry.arm(due)
            return
        log.info("queue %s expired after %d ms unused", queue.name, queue.settings.expires_ms)
        self._spawn(self._expire(queue))

    async def _expire(self, queue: Queue) -> None:
        if self.queues.get(queue.name) is queue and not queue.consumers:
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
        dedup_ids: Sequence[str | None] | None = None,
    ) -> PublishResult:
        """Route records (sharing one routing key and headers) and store them
        in every queue they reach. Returns where they went."""
        names = self.route(exchange, routing_key, headers)
        return await self.enqueue(
            names, records, priority=priority, durable=durable, dedup_ids=dedup_ids
        )

    async def enqueue(
        self,
        names: set[str] | list[str],
        records: list[Record],
        *,
        priority: int | None = None,
        durable: bool = True,
        dedup_ids: Sequence[str | None] | None = None,
    ) -> PublishResult:
        result, waits = self.enqueue_now(
            names, records, priority=priority, durable=durable, dedup_ids=dedup_ids
        )
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
        dedup_ids: Sequence[str | None] | None = None,
    ) -> tuple[PublishResult, list[asyncio.Future[None]]]:
        """Store ``records`` in the named queues now, without awaiting anything.

        Returns where they went and, when ``durable``, the futures that
        complete once each append is on disk (the group commit). Protocol
        adapters call this from their read path so that a burst of publishes
        is appended in arrival order, one append per queue per batch, and
        acknowledge when the futures are done.

        When a target queue refuses records once full, the batch is decided
        record by record: ``PublishResult.outcomes`` says which were refused.

        ``dedup_ids`` (one per record, None for none) are checked against the
        window of each queue that has ``dedup_window_ms``: a repeat inside the
        window is not stored again, and ``PublishResult.duplicates`` names
        the record it repeats.
        """
        if dedup_ids is not None and len(dedup_ids) != len(records):
            raise ValueError("one dedup id (or None) per record")
        if len(records) > 1 and self._refuses_when_full(names):
            return self._enqueue_each(names, records, priority, durable, dedup_ids)
        return self._enqueue_batch(names, records, priority, durable, dedup_ids)

    def _refuses_when_full(self, names: set[str] | list[str]) -> bool:
        queues = self.queues
        for name in names:
            queue = queues.get(name)
            if queue is not None and queue.settings.refuses_when_full:
                return True
        return False

    def _enqueue_each(
        self,
        names: set[str] | list[str],
        records: list[Record],
        priority: int | None,
        durable: bool,
        dedup_ids: Sequence[str | None] | None,
    ) -> tuple[PublishResult, list[asyncio.Future[None]]]:
        stored: dict[str, None] = {}
        rejected: dict[str, None] = {}
        waits: list[asyncio.Future[None]] = []
        outcomes: list[tuple[int, bool]] = []
        duplicates: dict[str, list[Duplicate | None]] = {}
        for index, record in enumerate(records):
            ids = None if dedup_ids is None else [dedup_ids[index]]
            one, one_waits = self._enqueue_batch(names, [record], priority, durable, ids)
            for name, verdicts in one.duplicates.items():
                duplicates.setdefault(name, [None] * index).extend(verdicts)
            for verdicts in duplicates.values():
                if len(verdicts) <= index:
                    verdicts.append(None)  # refused by this queue: not a repeat either
            stored.update(dict.fromkeys(one.queues))
            rejected.update(dict.fromkeys(one.rejected))
            waits += one_waits
            refused = bool(one.rejected)
            if outcomes and outcomes[-1][1] == refused:
                outcomes[-1] = (outcomes[-1][0] + 1, refused)
            else:
                outcomes.append((1, refused))
        return PublishResult(list(stored), list(rejected), outcomes, duplicates), waits

    def _enqueue_batch(
        self,
        names: set[str] | list[str],
        records: list[Record],
        priority: int | None,
        durable: bool,
        dedup_ids: Sequence[str | None] | None,
    ) -> tuple[PublishResult, list[asyncio.Future[None]]]:
        stored: list[str] = []
        rejected: list[str] = []
        waits: list[asyncio.Future[None]] = []
        duplicates: dict[str, list[Duplicate | None]] = {}
        for name in names:
            queue = self.queues.get(name)
            if queue is None:
                continue
            settings = queue.settings
            if settings.overflow != DROP_HEAD and self._full(queue, len(records)):
                rejected.append(name)
                if settings.overflow == REJECT_NEW_DEAD_LETTER:
                    for record in records:
                        self._spawn(self._dead_letter(name, record, "maxlen"))
                continue
            level = 0
            if settings.max_priority is not None and priority:
                level = min(max(priority, 0), settings.max_priority)
            partition = queue.topic.partitions[level]
            stored.append(name)
            window = None
            if dedup_ids is not None and settings.dedup_window_ms is not None:
                window = self.subscriptions.dedup_window(f"queue:{name}", settings.dedup_window_ms)
            if window is None:
                wait = partition.append_records_now(records, durable=durable)
            else:
                assert dedup_ids is not None
                verdicts, wait = self._append_new(
                    window, partition, level, records, dedup_ids, durable
                )
                duplicates[name] = verdicts
                if all(verdicts):
                    continue  # every record a repeat: nothing stored, nothing to trim
            if wait is not None:
                waits.append(wait)
            if settings.limited:
                # drop-head: only visible records can be dropped, so trim once
                # this append is visible (callbacks run in order: before anyone
                # awaiting the append resumes).
                if wait is None:
                    wait = partition.settle()
                if wait is not None:
                    wait.add_done_callback(lambda _f, q=queue: self._trim(q))
                else:
                    self._trim(queue)
        return PublishResult(stored, rejected, duplicates=duplicates), waits

    def _append_new(
        self,
        window: DedupWindow,
        partition: Partition,
        level: int,
        records: list[Record],
        ids: Sequence[str | None],
        durable: bool,
    ) -> tuple[list[Duplicate | None], asyncio.Future[None] | None]:
        """Append the records whose id is new in ``window``; returns, per
        record, what it repeats (None: stored) and the append's wait."""
        checked = [i for i in ids if i is not None]
        answers = iter(window.accept_ids(checked, self.clock.wall_ms()))
        verdicts: list[Duplicate | None] = []
        fresh: list[Record] = []
        fresh_ids: list[str | None] = []
        for record, message_id in zip(records, ids, strict=True):
            verdict = None if message_id is None else next(answers)
            verdicts.append(verdict)
            if verdict is None:
                fresh.append(record)
                fresh_ids.append(message_id)
        if not fresh:
            return verdicts, None
        # Appends are synchronous: the batch takes the offsets from the log end on.
        base = partition.log_end_offset
        reserved = [i for i in fresh_ids if i is not None]
        positions = [(level, base + n) for n, i in enumerate(fresh_ids) if i is not None]
        # The ids are written before their records: a crash right after the
        # append must find them (the client resends what got no answer). One
        # right before it leaves ids pointing past the log end, dropped when
        # the queue is opened again (``_open_queue``).
        window.record(reserved, positions)
        try:
            wait = partition.append_records_now(fresh, durable=durable)
        except BaseException:
            window.release(reserved)
            raise
        return verdicts, wait

    def _trim(self, queue: Queue) -> None:
        """Drop (dead-letter) the oldest records past a drop-head queue's limits."""
        if queue.settings.overflow != DROP_HEAD or self.queues.get(queue.name) is not queue:
            return
        excess = self._excess(queue)
        if excess:
            queue.subscription.drop_head(excess, "maxlen")

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _full(self, queue: Queue, incoming: int) -> bool:
        settings = queue.settings
        if settings.max_length is not None and queue.depth() + incoming > settings.max_length:
            return True
        return (
            settings.max_length_bytes is not None
            and queue.ready_bytes() > settings.max_length_bytes
        )

    def _excess(self, queue: Queue) -> int:
        settings = queue.settings
        excess = 0
        if settings.max_length is not None:
            excess = max(0, queue.message_count() - settings.max_length)
        if (
            settings.max_length_bytes is not None
            and queue.ready_bytes() > settings.max_length_bytes
        ):
            excess = max(excess, 1)
        return excess

    # --- dead letters ---------------------------------------------------------------

    async def _dead_letter(self, queue_name: str, record: Record, reason: str) -> None:
        queue = self.queues.get(queue_name)
        if queue is None:
            return
        settings = queue.settings
        if reason == EXPIRED and not settings.dead_letter_expired:
            return
        routing_key = (record.key or b"").decode("utf-8", "replace")
        exchange = _header(record, EXCHANGE_HEADER)
        now_ms = self.clock.wall_ms()
        headers = with_death(
            record.headers, queue_name, reason, exchange, routing_key, now=now_ms // 1000
        )
        if settings.dead_letter_queue is not None:
            if settings.dead_letter_queue in self.queues:
                moved = Record(record.value, key=record.key, headers=headers, timestamp=now_ms)
                await self.enqueue([settings.dead_letter_queue], [moved])
            return
        if settings.dead_letter_exchange is None:
            return
        target = settings.dead_letter_exchange
        target_key = settings.dead_letter_routing_key or routing_key
        if target not in self.router.exchanges:
            log.warning(
                "dead-letter exchange '%s' of queue '%s' does not exist; dropped",
                target,
                queue_name,
            )
            return
        # Re-published through the dead-letter exchange: it and the key used
        # there are what a consumer sees (the death entry keeps the original ones).
        headers = [(k, v) for k, v in headers if k != EXCHANGE_HEADER]
        if target:
            headers.append((EXCHANGE_HEADER, target.encode()))
        moved = Record(record.value, key=target_key.encode(), headers=headers, timestamp=now_ms)
        names = self.route(target, target_key, application_headers(moved.headers))
        if queue_name in names and cycles(record, queue_name):
            # Dead-lettered back into this queue with no rejection in between:
            # dropped there rather than looping forever (as RabbitMQ does).
            names.discard(queue_name)
        if names:
            await self.enqueue(names, [moved])


def _header(record: Record, name: str) -> str:
    for key, value in record.headers:
        if key == name and value is not None:
            return value.decode("utf-8", "replace")
    return ""


def plain_arguments(arguments: Mapping[str, Any] | None) -> dict[str, Any]:
    """Arguments as JSON-storable plain values (adapters' tables may carry bytes)."""
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
        return plain_arguments(value)
    if isinstance(value, list | tuple):
        return [_plain_value(v) for v in value]
    if isinstance(value, int | float | str | bool) or value is None:
        return value
    return str(value)

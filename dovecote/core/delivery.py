"""Push delivery with credit: what every push protocol's consumer loop shares.

A protocol adapter (every push-style consume of a client protocol) makes a
:class:`PushConsumer` around a :class:`DeliverySink` of its own and attaches
it to a queue's :class:`ConsumerSet`. The core then pushes: one
:class:`Dispatcher` per source (a queue's subscription, shared by competing
consumers; or one private cursor per stream consumer) leases as many
records as the chosen consumer has credit for in one ``pull``, hands them to
its sink as one burst, and sleeps until something changes: new data in the
source, credit returned by acks, a sink that can take writes again. So the
cost is per burst, not per record, and a slow client is never pushed more
than its credit and its transport's buffer.

Choosing the consumer: the highest ``priority`` among those with credit and
a writable sink; equal priorities take turns burst by burst. With
``single_active`` only the earliest attached consumer receives; when it
leaves, the next in attachment order takes over. An ``exclusive`` consumer
refuses every other (and is refused where others are attached).

Credit comes back in bursts: a consumer whose client settles one record at
a time is topped up at once if an eighth of its window is free when credit
first comes back, else ``REFILL_DELAY`` later with all that came back
meanwhile (on the injected :class:`~dovecote.core.clock.Clock`).

A consumer may also have a window of body bytes (``max_bytes``: Pub/Sub's
``max_outstanding_bytes``); a full one counts as no credit, and bytes come
back through :meth:`PushConsumer.returned` with the count.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Protocol

from dovecote.core.clock import Alarm, Clock
from dovecote.core.errors import BrokerError
from dovecote.core.subscription_state import Delivery

log = logging.getLogger(__name__)

PULL_MAX = 2000  # records leased per burst at most (auto-ack or unlimited credit)
BURST_BYTES = 1 << 20  # and about this many body bytes, so one burst never floods memory
PULL_STEP = 256  # a burst is pulled in steps of at most this many records
IDLE_WAIT = 30.0  # seconds between re-checks of an idle source (leases, delays)
REFILL_FRACTION = 8  # top a consumer up once 1/8 of its window is free...
REFILL_DELAY = 0.005  # ...or this many seconds after credit came back, whichever is first


class ConsumerRefused(BrokerError):
    """The queue has an exclusive consumer, or an exclusive one was asked for
    where others already consume."""


class Source(Protocol):
    """Where a dispatcher pulls from: a :class:`~dovecote.core.subscription.Subscription`
    (leases) or a :class:`~dovecote.core.cursor.StreamCursor` (no leases)."""

    closed: bool

    def pull(self, max_records: int, owner: object) -> list[Delivery]: ...

    def ack(self, items: Iterable[tuple[int, int]]) -> int: ...

    def nack(self, items: Iterable[tuple[int, int]], *, requeue: bool = True) -> int: ...

    async def wait(self, timeout: float) -> bool: ...

    def on_close(self, callback: Callable[[], None]) -> Callable[[], None]: ...


class DeliverySink(Protocol):
    """What the adapter gives the core for one consumer."""

    def deliver(self, deliveries: list[Delivery]) -> None:
        """Send a burst to the client now (buffered writes, no awaiting)."""
        ...

    def writable(self) -> bool:
        """Whether the transport takes more (False while its buffer is full)."""
        ...

    def wait_writable(self) -> Awaitable[None]:
        """Completes when the transport drains. The core cancels it when
        woken otherwise, so it must not be shared unshielded."""
        ...

    def cancelled(self, error: BaseException | None) -> None:
        """The core stopped this consumer: its source went away (``None``:
        tell the client the server cancelled it) or delivering
        failed (``error``). The adapter detaches the consumer."""
        ...


class CreditPool:
    """Credit shared by several consumers (a limit per client session):
    ``limit`` in flight at most (0 = unlimited), ``used()`` says how many are."""

    __slots__ = ("limit", "used")

    def __init__(self, limit: int = 0, used: Callable[[], int] = lambda: 0) -> None:
        self.limit = limit
        self.used = used


class PushConsumer:
    """One consumer: its credit, priority and flags; the adapter keeps the rest."""

    __slots__ = (
        "auto_ack",
        "avg_size",
        "bytes_in_flight",
        "dispatcher",
        "exclusive",
        "in_flight",
        "max_bytes",
        "owner",
        "pool",
        "prefetch",
        "priority",
        "serial",
        "sink",
        "source",
    )

    def __init__(
        self,
        sink: DeliverySink,
        owner: object,
        *,
        prefetch: int = 0,
        pool: CreditPool | None = None,
        auto_ack: bool = False,
        priority: int = 0,
        exclusive: bool = False,
        source: Source | None = None,
        max_bytes: int = 0,
    ) -> None:
        self.sink = sink
        self.owner = owner  # lease owner: releasing it requeues what it holds
        self.prefetch = prefetch  # own window; 0 = unlimited
        self.pool = pool
        self.auto_ack = auto_ack  # settled as delivered: no credit needed
        self.priority = priority
        self.exclusive = exclusive
        self.source = source  # a private source (stream cursor); None = the queue's
        self.in_flight = 0
        # Body bytes in flight and their window (0 = unlimited): a burst is
        # sized by the mean body seen so far and delivery stops once the window
        # is full, so it is passed by about one record (more only when bodies
        # suddenly grow within one pull step).
        self.max_bytes = max_bytes
        self.bytes_in_flight = 0
        self.avg_size = 65536.0  # running mean body size (pessimistic at first)
        self.serial = 0  # attachment order, set by the ConsumerSet
        self.dispatcher: Dispatcher | None = None

    def __repr__(self) -> str:
        return f"<PushConsumer of {self.sink!r} prio={self.priority}>"

    def window(self) -> int:
        """The most this consumer may have in flight."""
        window = self.prefetch or PULL_MAX
        pool = self.pool
        if pool is not None and pool.limit:
            window = min(window, pool.limit)
        return window

    def credit(self) -> int:
        """How many more deliveries the consumer may have in flight now."""
        if self.auto_ack:
            return PULL_MAX
        if self.max_bytes and self.bytes_in_flight >= self.max_bytes:
            return 0
        credit = PULL_MAX
        if self.prefetch:
            credit = min(credit, self.prefetch - self.in_flight)
        pool = self.pool
        if pool is not None and pool.limit:
            credit = min(credit, pool.limit - pool.used())
        return credit

    def returned(self, count: int = 1, nbytes: int = 0) -> None:
        """``count`` deliveries (``nbytes`` of bodies) were settled by the
        client: their credit is free again. Cheap; call :meth:`refill` once
        per batch of these."""
        self.in_flight -= count
        self.bytes_in_flight -= nbytes

    def byte_credit(self) -> int:
        """How many more body bytes may go out in the next burst."""
        if not self.max_bytes:
            return BURST_BYTES
        return min(BURST_BYTES, self.max_bytes - self.bytes_in_flight)

    def refill(self) -> None:
        """Credit came back: top the consumer up now or shortly (see module doc)."""
        dispatcher = self.dispatcher
        if dispatcher is not None:
            dispatcher.refill(self)

    def kick(self) -> None:
        """Look again now (limits changed, records were requeued)."""
        dispatcher = self.dispatcher
        if dispatcher is not None:
            dispatcher.kick()

    def stop(self) -> None:
        """Stop delivering to this consumer (cancelled, or its client went away)."""
        dispatcher = self.dispatcher
        if dispatcher is not None:
            dispatcher.remove(self)


class Dispatcher:
    """The delivery loop of one source and the consumers it feeds."""

    def __init__(
        self, source: Source, clock: Clock, *, single_active: bool = False, name: str = ""
    ) -> None:
        self.source = source
        self.clock = clock
        self.single_active = single_active
        self.name = name
        self.consumers: list[PushConsumer] = []  # attachment order
        self._order: list[PushConsumer] = []  # by priority, turns taken within one
        self._task: asyncio.Task[None] | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._refill = Alarm(clock, self.kick)
        self._unwatch: Callable[[], None] | None = None

    def __repr__(self) -> str:
        return f"<Dispatcher {self.name} x{len(self.consumers)}>"

    # --- membership -------------------------------------------------------------

    def add(self, consumer: PushConsumer) -> None:
        consumer.dispatcher = self
        self.consumers.append(consumer)
        order = self._order
        index = len(order)
        while index and order[index - 1].priority < consumer.priority:
            index -= 1
        order.insert(index, consumer)
        if self._task is None:
            if self._unwatch is None:
                self._unwatch = self.source.on_close(self.kick)
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name=f"delivery {self.name}"
            )
        else:
            self.kick()

    def remove(self, consumer: PushConsumer) -> bool:
        if consumer.dispatcher is not self:
            return False
        consumer.dispatcher = None
        self.consumers.remove(consumer)
        self._order.remove(consumer)
        if not self.consumers:
            self._stop()
        else:
            self.kick()  # a single-active successor, or a lower priority, may go now
        return True

    def _stop(self) -> None:
        self._refill.cancel()
        if self._unwatch is not None:
            self._unwatch()
            self._unwatch = None
        task, self._task = self._task, None
        if task is not None and task is not asyncio.current_task():
            task.cancel()

    # --- waking ---------------------------------------------------------------------

    def kick(self) -> None:
        """Something changed (credit, consumers, the source closed): look again."""
        self._refill.cancel()
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def refill(self, consumer: PushConsumer) -> None:
        """Credit came back to ``consumer``. When the loop is waiting for
        credit, wake it once an eighth of the window is free, else arm a
        short timer: a client settling one record at a time then costs one
        wake-up, pull and write per burst, not per record."""
        if self._waiter is None or self._refill.when is not None:
            return  # not waiting for credit, or a top-up is already due
        credit = consumer.credit()
        if credit <= 0:
            return
        if credit >= max(1, consumer.window() // REFILL_FRACTION):
            self.kick()
        else:
            self._refill.arm(self.clock.monotonic() + REFILL_DELAY)

    # --- the loop ---------------------------------------------------------------------

    def _candidates(self) -> list[PushConsumer]:
        if self.single_active:
            return self.consumers[:1]
        return self._order

    def _pick(self) -> tuple[PushConsumer | None, int]:
        """The first consumer by priority (turns within one) with credit and a
        writable sink, and its credit."""
        for consumer in self._candidates():
            credit = consumer.credit()
            if credit > 0 and consumer.sink.writable():
                return consumer, credit
        return None, 0

    def _took_turn(self, consumer: PushConsumer) -> None:
        """Move ``consumer`` behind the others of its priority."""
        order = self._order
        if len(order) < 2:
            return
        index = order.index(consumer)
        end = index + 1
        while end < len(order) and order[end].priority == consumer.priority:
            end += 1
        if end - index > 1:
            order.insert(end - 1, order.pop(index))

    def _pull_burst(self, consumer: PushConsumer, credit: int) -> tuple[list[Delivery], int]:
        """Lease up to ``credit`` records but only about BURST_BYTES of bodies
        (or the consumer's byte credit, if less), in steps sized by the bodies
        seen so far. Returns the records and their body bytes."""
        pull = self.source.pull
        owner = consumer.owner
        budget = consumer.byte_credit()
        out: list[Delivery] = []
        size = 0
        while len(out) < credit and size < budget:
            room = int((budget - size) / consumer.avg_size)
            step = max(1, min(PULL_STEP, credit - len(out), room))
            got = pull(step, owner)
            if not got:
                break
            got_size = sum(len(d.record.value or b"") for d in got)
            consumer.avg_size = max(64.0, 0.5 * consumer.avg_size + 0.5 * got_size / len(got))
            size += got_size
            out += got
        return out, size

    async def _wait_for_consumer(self) -> None:
        """Sleep until a consumer may take records: credit came back, a sink drained,
        consumers changed or the source closed."""
        waiter = self._waiter = asyncio.get_running_loop().create_future()
        drains = [
            asyncio.ensure_future(c.sink.wait_writable())
            for c in self._candidates()
            if c.credit() > 0 and not c.sink.writable()
        ]
        try:
            if drains:
                await asyncio.wait([waiter, *drains], return_when=asyncio.FIRST_COMPLETED)
            else:
                await waiter
        finally:
            self._waiter = None
            for drain in drains:
                drain.cancel()

    def _deliver(self, consumer: PushConsumer, deliveries: list[Delivery], size: int = 0) -> None:
        if not consumer.auto_ack:
            consumer.in_flight += len(deliveries)
            if consumer.max_bytes:
                consumer.bytes_in_flight += size
        try:
            consumer.sink.deliver(deliveries)
        except Exception as exc:
            log.exception("delivering to %r from %s failed", consumer, self.name)
            if not consumer.auto_ack:
                consumer.in_flight -= len(deliveries)
                if consumer.max_bytes:
                    consumer.bytes_in_flight -= size
            self.source.nack([(d.partition, d.offset) for d in deliveries], requeue=True)
            self.remove(consumer)
            consumer.sink.cancelled(exc)
            return
        if consumer.auto_ack:
            self.source.ack([(d.partition, d.offset) for d in deliveries])

    async def _run(self) -> None:
        try:
            await self._loop()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("delivery from %s failed", self.name)
            for consumer in list(self.consumers):
                self.remove(consumer)
                consumer.sink.cancelled(exc)

    async def _loop(self) -> None:
        source = self.source
        while self.consumers:
            if source.closed:
                for consumer in list(self.consumers):
                    self.remove(consumer)
                    consumer.sink.cancelled(None)
                return
            consumer, credit = self._pick()
            if consumer is None:
                await self._wait_for_consumer()
                continue
            deliveries, size = self._pull_burst(consumer, credit)
            if deliveries:
                self._deliver(consumer, deliveries, size)
                self._took_turn(consumer)
                await asyncio.sleep(0)  # let the burst go out and acks come in
            else:
                await source.wait(IDLE_WAIT)


class ConsumerSet:
    """A queue's consumers: who may attach (exclusivity), and the dispatchers
    that feed them (one for the queue's subscription, one per private source)."""

    def __init__(
        self, source: Source, clock: Clock, *, single_active: bool = False, name: str = ""
    ) -> None:
        self.name = name
        self.clock = clock
        self.shared = Dispatcher(source, clock, single_active=single_active, name=name)
        self._attached: list[PushConsumer] = []
        self._serial = 0

    def __len__(self) -> int:
        return len(self.consumers)

    @property
    def consumers(self) -> list[PushConsumer]:
        """Attached consumers in attachment order (a dispatcher may have
        dropped one on its own: its source closed, or its sink failed)."""
        attached = self._attached
        if any(c.dispatcher is None for c in attached):
            attached = self._attached = [c for c in attached if c.dispatcher is not None]
        return attached

    @property
    def exclusive(self) -> PushConsumer | None:
        """The exclusive consumer, if one holds the queue."""
        consumers = self.consumers
        return consumers[0] if len(consumers) == 1 and consumers[0].exclusive else None

    def attach(self, consumer: PushConsumer) -> None:
        """Start delivering to ``consumer``; refused next to an exclusive one."""
        if self.exclusive is not None or (consumer.exclusive and self.consumers):
            raise ConsumerRefused(f"queue '{self.name}' in exclusive use")
        self._serial += 1
        consumer.serial = self._serial
        self._attached.append(consumer)
        if consumer.source is None:
            self.shared.add(consumer)
        else:
            Dispatcher(consumer.source, self.clock, name=f"{self.name} (own cursor)").add(consumer)

    def detach(self, consumer: PushConsumer) -> bool:
        """Stop delivering to ``consumer``; False if it was not attached."""
        consumer.stop()
        try:
            self._attached.remove(consumer)
        except ValueError:
            return False
        return True

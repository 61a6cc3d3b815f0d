"""The broker core: one facade over topics, partitions and their logs.

Adapters call this and nothing below it. It owns the data directory: the
catalog of durable metadata, one log per partition, the group-commit flusher
and the background work (retention, periodic flush).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import fcntl
import logging
import os
import shutil
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import quote

from dovecote.core.alarms import ResourceMonitor
from dovecote.core.catalog import Catalog
from dovecote.core.clock import Clock, SystemClock
from dovecote.core.config import (
    FLUSH_INTERVAL,
    TOPIC_CONFIGS,
    BrokerConfig,
    validate_topic_configs,
)
from dovecote.core.dedup import DedupWindow
from dovecote.core.errors import (
    InvalidConfig,
    InvalidPartitions,
    InvalidTopicName,
    PolicyViolation,
    TopicExists,
    UnknownPartition,
    UnknownTopic,
)
from dovecote.core.groups import (
    OFFSETS_TOPIC,
    OFFSETS_TOPIC_CONFIGS,
    GroupCoordinator,
    GroupSettings,
)
from dovecote.core.memory import MemoryBudget
from dovecote.core.queues import QueueManager
from dovecote.core.quotas import ByteRateQuotas
from dovecote.core.subscription import Subscription
from dovecote.core.subscription_state import DeadLetterHandler, SubscriptionConfig
from dovecote.core.substate import STATE_CONFIGS, STATE_TOPIC, SubscriptionStore
from dovecote.core.topic import Partition, Topic
from dovecote.storage import compaction
from dovecote.storage.flush import Flusher
from dovecote.storage.fsutil import fsync_dir
from dovecote.storage.log import Log, RecoveryReport

log = logging.getLogger(__name__)

CLEAN_SHUTDOWN = ".clean-shutdown"
LOCK_FILE = ".lock"
MAX_PARTITIONS = 10_000
MAX_NAME_BYTES = 255
PRODUCER_ID_BLOCK = 1000


def topic_dir_name(name: str) -> str:
    """A file-system-safe, reversible directory name for a topic."""
    encoded = quote(name, safe="-_.")
    if encoded.startswith("."):
        encoded = "%2E" + encoded[1:]
    return encoded


class BrokerCore:
    def __init__(self, config: BrokerConfig, clock: Clock | None = None) -> None:
        self.config = config
        # Every manager below takes its time from here (tests pass a FakeClock).
        self.clock: Clock = clock or SystemClock()
        self.data_dir = Path(config.data_dir)
        self.catalog = Catalog(self.data_dir)
        self.flusher = Flusher(syncfs_min_logs=config.flush_syncfs_min_logs)
        # Shared by every protocol adapter: bytes of requests in flight.
        self.memory = MemoryBudget(config.max_inflight_bytes)
        # disk and memory alarms; adapters subscribe (core/alarms.py)
        self.resources = ResourceMonitor(
            self.data_dir,
            disk_free_limit=config.disk_free_limit_bytes,
            memory_limit=config.memory_limit_bytes,
            interval=config.alarm_check_interval_ms / 1000,
            clock=self.clock,
        )
        self.produce_quotas = ByteRateQuotas(
            config.produce_quota_bytes_per_sec, window_ms=config.quota_window_ms
        )
        self.topics: dict[str, Topic] = {}
        self.recovery: list[RecoveryReport] = []
        self.started_ms = 0
        self._admin_lock = asyncio.Lock()
        self._tasks: list[asyncio.Task[None]] = []
        self._lock_fd: int | None = None
        self.loading = True
        self.subscriptions: dict[str, Subscription] = {}
        self.substate = SubscriptionStore(self.clock)
        self.queues = QueueManager(self.catalog, self.clock, topics=self, subscriptions=self)
        self.groups = GroupCoordinator(
            self.clock,
            self.partition_count,
            GroupSettings(
                min_session_timeout_ms=config.group_min_session_timeout_ms,
                max_session_timeout_ms=config.group_max_session_timeout_ms,
                initial_rebalance_delay_ms=config.group_initial_rebalance_delay_ms,
                offsets_retention_ms=config.offsets_retention_ms,
            ),
        )
        self._next_producer_id = 0
        self._producer_id_limit = 0  # end of the block reserved in the catalog

    # --- lifecycle ----------------------------------------------------------

    async def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._take_lock()
        marker = self.data_dir / CLEAN_SHUTDOWN
        clean = marker.exists()
        if clean:
            marker.unlink()
            fsync_dir(self.data_dir)
        elif (self.data_dir / "topics").exists():
            log.warning("%s was not shut down cleanly: validating log tails", self.data_dir)
        self.catalog.load()
        started = time.monotonic()
        for name, meta in sorted(self.catalog.items("topic").items()):
            self._open_topic(name, meta, clean=clean)
        cut = [r for r in self.recovery if r.bytes_cut]
        log.info(
            "opened %d topics in %.2fs%s",
            len(self.topics),
            time.monotonic() - started,
            f"; cut damaged tails in {len(cut)} partitions" if cut else "",
        )
        await self.substate.load(await self.internal_partition(STATE_TOPIC, STATE_CONFIGS))
        await self.queues.load()
        await self.groups.load(await self.internal_partition(OFFSETS_TOPIC, OFFSETS_TOPIC_CONFIGS))
        self.started_ms = int(time.time() * 1000)
        self.loading = False
        self.resources.start()
        self._tasks.append(asyncio.create_task(self._retention_loop(), name="retention"))
        self._tasks.append(asyncio.create_task(self._interval_flush_loop(), name="interval-flush"))

    async def stop(self) -> None:
        """Flush everything and close cleanly, leaving the marker that makes the next start fast."""
        self.resources.close()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        await self.queues.close()
        await self.groups.close()
        for subscription in self.subscriptions.values():
            subscription.close()
        await self.substate.drain()
        await self.flusher.drain()
        for topic in self.topics.values():
            for partition in topic.partitions:
                partition.log.close()
        self.flusher.close()
        self.catalog.close()
        try:
            (self.data_dir / CLEAN_SHUTDOWN).write_text(str(int(time.time() * 1000)))
            fsync_dir(self.data_dir)
        except OSError as err:  # disk full: every log is closed; the next start just checks more
            log.warning(
                "clean-shutdown marker not written (%s): the next start checks log tails", err
            )
        self._release_lock()

    def _take_lock(self) -> None:
        fd = os.open(self.data_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise RuntimeError(f"another broker is using {self.data_dir}") from None
        self._lock_fd = fd

    def _release_lock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    # --- what operators watch ----------------------------------------------------

    @property
    def flush_rounds(self) -> int:
        """Group-commit fsync rounds run since start (metrics)."""
        return self.flusher.rounds

    # --- topics -------------------------------------------------------------

    def topic(self, name: str) -> Topic | None:
        return self.topics.get(name)

    def get_topic(self, name: str) -> Topic:
        topic = self.topics.get(name)
        if topic is None:
            raise UnknownTopic(name)
        return topic

    def partition(self, topic_name: str, index: int) -> Partition:
        topic = self.get_topic(topic_name)
        if not 0 <= index < len(topic.partitions):
            raise UnknownPartition(f"{topic_name}-{index}")
        return topic.partitions[index]

    def partition_count(self, name: str) -> int:
        """How many partitions topic ``name`` has; 0 when there is no such topic."""
        topic = self.topics.get(name)
        return 0 if topic is None else len(topic.partitions)

    async def internal_partition(self, name: str, configs: Mapping[str, str]) -> Partition:
        """The one partition of internal topic ``name`` (where a manager keeps
        its durable state), created with ``configs`` when missing and given
        them when it has others."""
        topic = self.topics.get(name)
        if topic is None:
            topic = await self.create_topic(name, 1, configs, internal=True)
        elif any(topic.configs.get(k) != v for k, v in configs.items()):
            # Made by an older version with other settings: bring it up to date.
            await self.alter_topic_configs(name, configs)
        assert topic is not None
        return topic.partitions[0]

    def _topic_dir(self, name: str) -> Path:
        return self.data_dir / "topics" / topic_dir_name(name)

    def _open_topic(self, name: str, meta: Mapping, clean: bool) -> Topic:
        topic = Topic(
            name,
            meta["id"],
            dict(meta.get("configs", {})),
            self.config,
            self.flusher,
            internal=meta.get("internal", False),
        )
        log_config = self.config.log_config(topic.configs)
        directory = self._topic_dir(name)
        for index in range(meta["partitions"]):
            partition_log, report = Log.open(directory / str(index), log_config, clean=clean)
            if report:
                self.recovery.append(report)
            topic.partitions.append(Partition(topic, index, partition_log))
        self.topics[name] = topic
        return topic

    def check_topic_name(self, name: str) -> None:
        if not name or len(name.encode()) > MAX_NAME_BYTES or "\x00" in name:
            raise InvalidTopicName(f"invalid topic name {name!r}")

    async def create_topic(
        self,
        name: str,
        partitions: int | None = None,
        configs: Mapping[str, str] | None = None,
        *,
        validate_only: bool = False,
        internal: bool = False,
    ) -> Topic | None:
        self.check_topic_name(name)
        count = self.config.num_partitions if partitions is None or partitions == -1 else partitions
        if not 1 <= count <= MAX_PARTITIONS:
            raise InvalidPartitions(f"partitions must be between 1 and {MAX_PARTITIONS}")
        checked = validate_topic_configs(configs or {})
        async with self._admin_lock:
            if name in self.topics:
                raise TopicExists(f"topic {name!r} already exists")
            if validate_only:
                return None
            meta = {
                "id": str(uuid.uuid4()),
                "partitions": count,
                "configs": checked,
                "created_ms": int(time.time() * 1000),
                "internal": internal,
            }
            await self.catalog.put("topic", name, meta)
            try:
                topic = self._open_topic(name, meta, clean=True)
            except OSError as err:
                # No room for its files: take the topic back out of the catalog
                # (if that fails too, it appears, empty, on the next start).
                log.error("creating topic %s failed: %s", name, err)
                self.topics.pop(name, None)
                with contextlib.suppress(OSError):
                    await self.catalog.delete("topic", name)
                raise
            log.info("created topic %s with %d partitions", name, count)
            return topic

    async def ensure_topic(self, name: str, partitions: int | None = None) -> Topic:
        """The topic, created with defaults when missing (auto-creation)."""
        topic = self.topics.get(name)
        if topic is not None:
            return topic
        try:
            created = await self.create_topic(name, partitions)
        except TopicExists:
            return self.topics[name]
        assert created is not None
        return created

    async def delete_topic(self, name: str) -> None:
        async with self._admin_lock:
            topic = self.get_topic(name)
            if topic.internal and name.startswith("__"):
                raise PolicyViolation(f"internal topic {name} cannot be deleted")
            await self.catalog.delete("topic", name)
            del self.topics[name]
            for partition in topic.partitions:
                partition.log.close()
                partition._wake()
            directory = self._topic_dir(name)
            trash = self.data_dir / "trash" / f"{topic_dir_name(name)}-{topic.id}"
            trash.parent.mkdir(exist_ok=True)
            if directory.exists():
                os.replace(directory, trash)
            await asyncio.get_running_loop().run_in_executor(
                None, lambda: shutil.rmtree(trash, ignore_errors=True)
            )
            log.info("deleted topic %s", name)

    async def create_partitions(
        self, name: str, total: int, *, validate_only: bool = False
    ) -> None:
        async with self._admin_lock:
            topic = self.get_topic(name)
            current = len(topic.partitions)
            if total <= current:
                raise InvalidPartitions(
                    f"topic {name} has {current} partitions; the new count must be larger"
                )
            if total > MAX_PARTITIONS:
                raise InvalidPartitions(f"at most {MAX_PARTITIONS} partitions")
            if validate_only:
                return
            meta = dict(self.catalog.get("topic", name) or {})
            meta["partitions"] = total
            await self.catalog.put("topic", name, meta)
            log_config = self.config.log_config(topic.configs)
            for index in range(current, total):
                partition_log, _ = Log.open(
                    self._topic_dir(name) / str(index), log_config, clean=True
                )
                topic.partitions.append(Partition(topic, index, partition_log))

    async def alter_topic_configs(
        self,
        name: str,
        set_configs: Mapping[str, str] | None = None,
        delete: list[str] | tuple[str, ...] = (),
        *,
        replace: bool = False,
        validate_only: bool = False,
    ) -> None:
        """Change a topic's configs. ``replace`` drops every config not in
        ``set_configs`` (the legacy AlterConfigs semantics)."""
        async with self._admin_lock:
            topic = self.get_topic(name)
            checked = validate_topic_configs(set_configs or {})
            new = {} if replace else dict(topic.configs)
            new.update(checked)
            for key in delete:
                if key not in TOPIC_CONFIGS:
                    raise InvalidConfig(f"unknown topic config {key!r}")
                new.pop(key, None)
            if validate_only:
                return
            meta = dict(self.catalog.get("topic", name) or {})
            meta["configs"] = new
            await self.catalog.put("topic", name, meta)
            topic.configs = new
            topic.refresh_configs()

    # --- subscriptions ----------------------------------------------------------

    def open_subscription(
        self,
        sub_id: str,
        topic_name: str,
        config: SubscriptionConfig | None = None,
        on_dead_letter: DeadLetterHandler | None = None,
    ) -> Subscription:
        """Start (or resume, with its saved progress) queue-style delivery
        from a topic. The owner (a queue of any protocol, a
        subscription) keeps the definition; the core keeps the progress."""
        existing = self.subscriptions.get(sub_id)
        if existing is not None:
            return existing
        subscription = Subscription(
            sub_id,
            self.get_topic(topic_name),
            config,
            self.substate,
            on_dead_letter,
            clock=self.clock,
        )
        self.subscriptions[sub_id] = subscription
        return subscription

    def subscription(self, sub_id: str) -> Subscription | None:
        return self.subscriptions.get(sub_id)

    def dedup_window(self, name: str, window_ms: int) -> DedupWindow:
        """The durable dedup window ``name``, kept with subscription progress
        (and dropped with the subscription of the same name)."""
        return self.substate.dedup_window(name, window_ms)

    def delete_snapshot(self, name: str) -> bool:
        """Forget the snapshot ``Subscription.snapshot(name)`` saved."""
        return self.substate.delete_snapshot(name)

    def drop_subscription(self, sub_id: str) -> None:
        """Delete a subscription and its saved progress."""
        subscription = self.subscriptions.pop(sub_id, None)
        if subscription is not None:
            subscription.close()
        self.substate.forget(sub_id)

    # --- identity ---------------------------------------------------------------

    async def cluster_id(self) -> str:
        """This cluster's id, made once and kept in the catalog."""
        entry = self.catalog.get("cluster", "id")
        if entry is None:
            entry = {"id": base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")}
            await self.catalog.put("cluster", "id", entry)
        return entry["id"]

    # --- producers ------------------------------------------------------------

    async def allocate_producer_id(self) -> int:
        """A producer id never handed out before, even across restarts: ids
        are reserved in blocks recorded in the catalog before use."""
        if self._next_producer_id >= self._producer_id_limit:
            async with self._admin_lock:
                if self._next_producer_id >= self._producer_id_limit:
                    reserved = (self.catalog.get("counter", "producer_id") or {}).get("next", 0)
                    await self.catalog.put(
                        "counter", "producer_id", {"next": reserved + PRODUCER_ID_BLOCK}
                    )
                    self._next_producer_id = reserved
                    self._producer_id_limit = reserved + PRODUCER_ID_BLOCK
        pid = self._next_producer_id
        self._next_producer_id += 1
        return pid

    # --- background work -----------------------------------------------------

    async def _retention_loop(self) -> None:
        while True:
            await self.clock.sleep(self.config.retention_check_interval_ms / 1000)
            self.apply_retention()
            await self.compact()

    async def compact(self) -> int:
        """One compaction pass over every topic with cleanup.policy=compact;
        returns how many records were removed."""
        removed = 0
        loop = asyncio.get_running_loop()
        for topic in list(self.topics.values()):
            if "compact" not in topic.config("cleanup.policy"):
                continue
            now = int(time.time() * 1000)
            for partition in topic.partitions:
                work = compaction.plan(partition.log, now, topic.config("min.compaction.lag.ms"))
                if work is None:
                    continue
                try:
                    rewritten = await loop.run_in_executor(
                        None, compaction.rewrite, work, now, topic.config("delete.retention.ms")
                    )
                except (OSError, ValueError) as err:
                    log.error("compacting %r failed: %s", partition, err)
                    continue
                if partition.log.closed:
                    continue
                result = compaction.swap(partition.log, rewritten)
                removed += result.records_removed
                if result.segments_rewritten:
                    log.info(
                        "compacted %r: %d records removed, %d -> %d bytes",
                        partition,
                        result.records_removed,
                        result.bytes_before,
                        result.bytes_after,
                    )
        return removed

    def apply_retention(self) -> int:
        deleted = 0
        now = int(time.time() * 1000)
        # Subscriptions by topic once per pass: not a scan of all of them per
        # topic (with 10,000 queues that was 3 s of blocked event loop).
        subs_of: dict[int, list[Subscription]] = {}
        for sub in self.subscriptions.values():
            subs_of.setdefault(id(sub.topic), []).append(sub)
        for topic in list(self.topics.values()):
            floors = (
                self._settled_floors(topic, subs_of.get(id(topic), []))
                if topic.config("retention.acked") == "true"
                else None
            )
            for partition in topic.partitions:
                try:
                    deleted += partition.log.apply_retention(now)
                    if floors is not None and partition.index < len(floors):
                        before = len(partition.log.segments)
                        partition.log.delete_records_before(floors[partition.index])
                        deleted += max(0, before - len(partition.log.segments))
                except OSError as err:
                    log.error("retention on %r failed: %s", partition, err)
        if deleted:
            log.info("retention deleted %d segments", deleted)
        return deleted

    def _settled_floors(
        self, topic: Topic, subs: list[Subscription] | None = None
    ) -> list[int] | None:
        """Per partition, the offset below which every subscription of the
        topic (``subs``, if already known) has settled everything (None: no
        subscription, keep all)."""
        if subs is None:
            subs = [s for s in self.subscriptions.values() if s.topic is topic]
        if not subs:
            return None
        for sub in subs:
            sub.sync_partitions()
        return [min(s.cursors[i].floor for s in subs) for i in range(len(topic.partitions))]

    async def _interval_flush_loop(self) -> None:
        """fsync topics whose flush.policy is ``interval`` every flush.ms."""
        last: dict[str, float] = {}
        while True:
            interval_topics = [t for t in self.topics.values() if t.flush_policy == FLUSH_INTERVAL]
            period = min((t.flush_ms for t in interval_topics), default=1000) / 1000
            await self.clock.sleep(max(0.05, period))
            now = self.clock.monotonic()
            for topic in interval_topics:
                if now - last.get(topic.name, 0) < topic.flush_ms / 1000:
                    continue
                last[topic.name] = now
                for partition in topic.partitions:
                    partition_log = partition.log
                    if (
                        partition_log.active.synced_size < partition_log.active.size
                        or partition_log.unsynced
                    ):
                        self.flusher.schedule(partition_log)

"""A consumer-group member that lives in the broker on behalf of a client
that has no Kafka connection: ``dovecote consume --group`` over the admin
API. It joins, syncs and heartbeats through the same coordinator as every
Kafka consumer, so it shares a group's partitions with them, and it leads
the group (range or roundrobin) when chosen to.

Its liveness is its client's: the client polls :meth:`LocalMember.poll`
(each poll is a heartbeat by proxy); a client silent for the session
timeout is taken out of the group as a crashed Kafka consumer would be.
Its time is the coordinator's clock, so tests move it with FakeClock.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable

from dovecote.core.clock import Clock
from dovecote.core.consumer_protocol import (
    ASSIGNORS,
    ProtocolError,
    assign,
    decode_assignment,
    decode_subscription,
    encode_assignment,
    encode_subscription,
)
from dovecote.core.groups import GroupCoordinator, GroupError

log = logging.getLogger(__name__)

_REJOIN = {
    GroupError.REBALANCE_IN_PROGRESS,
    GroupError.ILLEGAL_GENERATION,
    GroupError.UNKNOWN_MEMBER_ID,
}


class LocalMember:
    def __init__(
        self,
        coordinator: GroupCoordinator,
        group_id: str,
        topics: list[str],
        client_id: str = "dovecote-cli",
        client_host: str = "/127.0.0.1",
        session_timeout_ms: int = 10_000,
    ) -> None:
        self.coordinator = coordinator
        self.clock: Clock = coordinator.clock
        self.group_id = group_id
        self.topics = sorted(set(topics))
        self.client_id = client_id
        self.client_host = client_host
        self.session_timeout_ms = session_timeout_ms
        self.session_id = uuid.uuid4().hex  # stays while member ids come and go
        self.member_id = ""
        self.generation = -1
        self.assignment: dict[str, list[int]] = {}
        self.error: GroupError | None = None  # set when it gave up
        self.closed = False
        self._assigned = asyncio.Event()
        self._last_poll = self.clock.monotonic()
        self._task: asyncio.Task[None] | None = None

    # --- what the admin API calls ------------------------------------------------------

    async def start(self, timeout: float) -> None:
        """Join the group; return once the first assignment (or an error) is in."""
        self._task = asyncio.get_running_loop().create_task(
            self._run(), name=f"local-member-{self.group_id}"
        )
        await self._within(self._assigned.wait(), timeout)

    def poll(self) -> dict[str, object]:
        """The client is alive; what it may consume now (empty while rebalancing)."""
        self._last_poll = self.clock.monotonic()
        return {
            "session_id": self.session_id,
            "member_id": self.member_id,
            "generation": self.generation,
            "assignment": [
                {"topic": t, "partition": p}
                for t in sorted(self.assignment)
                for p in self.assignment[t]
            ],
            "error": self.error.value if self.error is not None else None,
            "stable": self._assigned.is_set(),
        }

    async def close(self) -> None:
        """Leave the group (the client is done or gone)."""
        if self.closed:
            return
        self.closed = True
        if self._task is not None:
            self._task.cancel()
            # Leaving must not wait on a join or sync stuck elsewhere.
            with contextlib.suppress(asyncio.CancelledError):
                await self._within(asyncio.shield(self._task), 2)
        if self.member_id:
            await self.coordinator.leave(self.group_id, [(self.member_id, None)])

    @property
    def expired(self) -> bool:
        return self.clock.monotonic() - self._last_poll > self.session_timeout_ms / 1000

    async def _within(self, awaitable: Awaitable[object], timeout: float) -> None:
        """Wait for ``awaitable`` at most ``timeout`` seconds of the clock
        (cancelled when the time is up)."""
        work = asyncio.ensure_future(awaitable)
        timer = asyncio.ensure_future(self.clock.sleep(timeout))
        try:
            await asyncio.wait({work, timer}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            timer.cancel()
            if not work.done():
                work.cancel()
        if not work.cancelled():
            work.result()

    # --- the member's life ---------------------------------------------------------

    async def _run(self) -> None:
        try:
            while not self.closed:
                if not await self._join_and_sync():
                    return
                await self._heartbeat_until_rebalance()
        except Exception:  # a member must not die silently
            log.exception("broker-side member of group %s failed", self.group_id)
            self.error = GroupError.UNKNOWN_SERVER_ERROR
            self._assigned.set()

    async def _join_and_sync(self) -> bool:
        """One JoinGroup + SyncGroup round; False when the member gives up."""
        subscription = encode_subscription(self.topics)
        while not self.closed:
            self.assignment, self._assigned = {}, _fresh(self._assigned)
            joined = await self.coordinator.join(
                self.group_id,
                self.member_id,
                None,
                self.client_id,
                self.client_host,
                self.session_timeout_ms,
                self.session_timeout_ms,
                "consumer",
                [(name, subscription) for name in ASSIGNORS],
                require_known_member=False,
            )
            if joined.error == GroupError.UNKNOWN_MEMBER_ID:
                self.member_id = ""
                continue
            if joined.error in (GroupError.COORDINATOR_LOAD_IN_PROGRESS,):
                await self.clock.sleep(0.2)
                continue
            if joined.error != GroupError.NONE:
                return self._give_up(joined.error)
            self.member_id, self.generation = joined.member_id, joined.generation
            assignments: dict[str, bytes] = {}
            if joined.leader == self.member_id and not joined.skip_assignment:
                assignments = self._lead(joined.protocol_name or "", joined.members)
            synced = await self.coordinator.sync(
                self.group_id,
                self.generation,
                self.member_id,
                None,
                "consumer",
                joined.protocol_name,
                assignments,
            )
            if synced.error in _REJOIN:
                if synced.error == GroupError.UNKNOWN_MEMBER_ID:
                    self.member_id = ""
                continue
            if synced.error != GroupError.NONE:
                return self._give_up(synced.error)
            try:
                mine = decode_assignment(synced.assignment)
            except ProtocolError:
                return self._give_up(GroupError.INCONSISTENT_GROUP_PROTOCOL)
            self.assignment = {t: ps for t, ps in mine.items() if ps}
            self._assigned.set()
            return True
        return False

    def _lead(
        self, protocol: str, members: list[tuple[str, str | None, bytes]]
    ) -> dict[str, bytes]:
        subscriptions = {}
        for member_id, _instance, metadata in members:
            try:
                subscriptions[member_id] = decode_subscription(metadata)
            except ProtocolError:
                subscriptions[member_id] = []

        plan = assign(protocol, subscriptions, self.coordinator.partition_count)
        return {member: encode_assignment(parts) for member, parts in plan.items()}

    async def _heartbeat_until_rebalance(self) -> None:
        interval = self.session_timeout_ms / 3000
        while not self.closed:
            await self.clock.sleep(interval)
            if self.expired:
                log.info(
                    "broker-side member %s of group %s: client silent, leaving",
                    self.member_id,
                    self.group_id,
                )
                self.closed = True
                await self.coordinator.leave(self.group_id, [(self.member_id, None)])
                self.member_id = ""
                return
            error = self.coordinator.heartbeat(self.group_id, self.generation, self.member_id, None)
            if error == GroupError.NONE:
                continue
            if error == GroupError.UNKNOWN_MEMBER_ID:
                self.member_id = ""
            if error in _REJOIN:
                return
            self._give_up(error)
            return

    def _give_up(self, error: GroupError) -> bool:
        log.warning("broker-side member of group %s gives up: %s", self.group_id, error.value)
        self.error = error
        self.closed = True
        self.assignment = {}
        self._assigned.set()
        return False


def _fresh(event: asyncio.Event) -> asyncio.Event:
    """A cleared event (the old one may have waiters that saw it set)."""
    if event.is_set():
        return asyncio.Event()
    return event

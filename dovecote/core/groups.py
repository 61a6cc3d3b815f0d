"""Consumer groups: Kafka's classic group protocol and committed offsets.

The coordinator runs the group state machine (Empty -> PreparingRebalance ->
CompletingRebalance -> Stable, and Dead), with generations, session and
rebalance timeouts, leader-driven assignment (the broker never reads the
assignment bytes, so range, roundrobin, sticky and cooperative-sticky all work
as the clients choose), static membership (group.instance.id) and member ids
handed out by the broker (KIP-394).

Committed offsets and group assignments are records in the internal topic
``__consumer_offsets`` (keyed, so compaction keeps the latest), replayed on
start. An empty group's offsets expire after ``offsets_retention_ms``.

Time comes from the injected :class:`~dovecote.core.clock.Clock`, and every
deadline is a timer at its due time (no polling): a member's session
timeout, a group's initial rebalance delay and rebalance timeout, and an
empty group's offset expiry. Tests drive them with ``FakeClock.advance``.

Errors are :class:`GroupError` names, the same as Kafka's error names; the
Kafka adapter maps them to codes.
"""

from __future__ import annotations

import asyncio
import enum
import json
import logging
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from dovecote.core.clock import Alarm, Clock
from dovecote.core.consumer_protocol import ProtocolError, decode_subscription
from dovecote.core.topic import Partition
from dovecote.storage.batch import Record

log = logging.getLogger(__name__)

OFFSETS_TOPIC = "__consumer_offsets"
# Keyed records, so compaction keeps the latest of each; never deleted by time.
OFFSETS_TOPIC_CONFIGS = {
    "cleanup.policy": "compact",
    "retention.ms": "-1",
    "segment.bytes": str(16 << 20),
}

# Partitions of a topic, 0 when there is no such topic.
PartitionCount = Callable[[str], int]


class GroupError(enum.Enum):
    NONE = "NONE"
    UNKNOWN_MEMBER_ID = "UNKNOWN_MEMBER_ID"
    ILLEGAL_GENERATION = "ILLEGAL_GENERATION"
    REBALANCE_IN_PROGRESS = "REBALANCE_IN_PROGRESS"
    INCONSISTENT_GROUP_PROTOCOL = "INCONSISTENT_GROUP_PROTOCOL"
    INVALID_SESSION_TIMEOUT = "INVALID_SESSION_TIMEOUT"
    MEMBER_ID_REQUIRED = "MEMBER_ID_REQUIRED"
    FENCED_INSTANCE_ID = "FENCED_INSTANCE_ID"
    GROUP_ID_NOT_FOUND = "GROUP_ID_NOT_FOUND"
    NON_EMPTY_GROUP = "NON_EMPTY_GROUP"
    INVALID_GROUP_ID = "INVALID_GROUP_ID"
    COORDINATOR_LOAD_IN_PROGRESS = "COORDINATOR_LOAD_IN_PROGRESS"
    NOT_COORDINATOR = "NOT_COORDINATOR"
    UNKNOWN_TOPIC_OR_PARTITION = "UNKNOWN_TOPIC_OR_PARTITION"
    GROUP_SUBSCRIBED_TO_TOPIC = "GROUP_SUBSCRIBED_TO_TOPIC"
    GROUP_MAX_SIZE_REACHED = "GROUP_MAX_SIZE_REACHED"
    UNKNOWN_SERVER_ERROR = "UNKNOWN_SERVER_ERROR"


class State(enum.Enum):
    EMPTY = "Empty"
    PREPARING_REBALANCE = "PreparingRebalance"
    COMPLETING_REBALANCE = "CompletingRebalance"
    STABLE = "Stable"
    DEAD = "Dead"


@dataclass
class GroupSettings:
    min_session_timeout_ms: int = 6_000
    max_session_timeout_ms: int = 1_800_000
    initial_rebalance_delay_ms: int = 300  # Kafka: group.initial.rebalance.delay.ms (3000)
    offsets_retention_ms: int = 7 * 24 * 3600 * 1000
    max_size: int = 1_000


@dataclass
class Member:
    member_id: str
    instance_id: str | None
    client_id: str
    client_host: str
    session_timeout_ms: int
    rebalance_timeout_ms: int
    protocol_type: str
    protocols: list[tuple[str, bytes]]
    assignment: bytes = b""
    deadline: float = 0.0
    join_future: asyncio.Future[JoinResult] | None = None
    sync_future: asyncio.Future[SyncResult] | None = None
    is_new: bool = False
    alarm: Alarm | None = field(default=None, repr=False, compare=False)  # session timeout

    def metadata(self, protocol: str) -> bytes:
        for name, data in self.protocols:
            if name == protocol:
                return data
        return b""


@dataclass(slots=True)
class JoinResult:
    error: GroupError
    generation: int = -1
    protocol_type: str | None = None
    protocol_name: str | None = None
    leader: str = ""
    member_id: str = ""
    members: list[tuple[str, str | None, bytes]] = field(default_factory=list)
    skip_assignment: bool = False


@dataclass(slots=True)
class SyncResult:
    error: GroupError
    protocol_type: str | None = None
    protocol_name: str | None = None
    assignment: bytes = b""


@dataclass(slots=True)
class CommittedOffset:
    offset: int
    leader_epoch: int
    metadata: str | None
    commit_ms: int


@dataclass
class Group:
    group_id: str
    state: State = State.EMPTY
    generation: int = 0
    protocol_type: str | None = None
    protocol_name: str | None = None
    leader: str | None = None
    members: dict[str, Member] = field(default_factory=dict)
    static: dict[str, str] = field(default_factory=dict)  # instance id -> member id
    offsets: dict[tuple[str, int], CommittedOffset] = field(default_factory=dict)
    pending_members: set[str] = field(default_factory=set)  # ids given out, not yet joined
    join_not_before: float = 0.0  # monotonic: end of the initial rebalance delay
    rebalance_deadline: float = 0.0  # monotonic: end of the rebalance timeout
    empty_since_ms: int = 0  # wall clock
    rebalance_alarm: Alarm | None = field(default=None, repr=False, compare=False)
    expiry_alarm: Alarm | None = field(default=None, repr=False, compare=False)

    def all_rejoined(self, now: float) -> bool:
        if now < self.join_not_before:
            return False
        return all(m.join_future is not None for m in self.members.values())

    def choose_protocol(self) -> str | None:
        """The protocol every member supports with the most first-choice votes."""
        members = list(self.members.values())
        if not members:
            return None
        common = set(name for name, _ in members[0].protocols)
        for member in members[1:]:
            common &= {name for name, _ in member.protocols}
        if not common:
            return None
        votes: dict[str, int] = {}
        for member in members:
            for name, _ in member.protocols:
                if name in common:
                    votes[name] = votes.get(name, 0) + 1
                    break
        return max(sorted(common), key=lambda n: votes.get(n, 0))

    def subscribed_topics(self) -> set[str] | None:
        """Topics the members' consumer-protocol metadata subscribes to, if readable."""
        if self.protocol_type != "consumer" or not self.protocol_name:
            return None
        topics: set[str] = set()
        for member in self.members.values():
            topics |= _consumer_topics(member.metadata(self.protocol_name))
        return topics


def _consumer_topics(metadata: bytes) -> set[str]:
    """Topics of a member's subscription; unreadable -> none."""
    try:
        return set(decode_subscription(metadata))
    except ProtocolError:
        return set()


class GroupCoordinator:
    """Runs every group; takes its time from ``clock`` and asks
    ``partition_count`` which topics and partitions exist."""

    def __init__(
        self,
        clock: Clock,
        partition_count: PartitionCount,
        settings: GroupSettings | None = None,
    ) -> None:
        self.clock = clock
        self.partition_count = partition_count
        self.settings = settings or GroupSettings()
        self.groups: dict[str, Group] = {}
        self.loading = True
        self._log: Partition | None = None  # the offsets topic's partition

    def _group_for(self, group_id: str) -> Group:
        """The group, made (empty, its expiry timer set) when new."""
        group = self.groups.get(group_id)
        if group is None:
            group = self.groups[group_id] = Group(group_id, empty_since_ms=self.clock.wall_ms())
            self._arm_expiry(group)
        return group

    # --- persistence ---------------------------------------------------------------

    async def load(self, offsets_log: Partition) -> None:
        """Replay committed offsets and groups from ``offsets_log`` (the
        partition of :data:`OFFSETS_TOPIC`), then start taking requests."""
        self._log = offsets_log
        for record in offsets_log.all_records():
            self._replay(record)
        for group in self.groups.values():
            self._arm_expiry(group)
        self.loading = False
        log.info("loaded %d consumer groups", len(self.groups))

    def _replay(self, record: Record) -> None:
        try:
            key = json.loads(record.key or b"{}")
        except ValueError:
            return
        group = self.groups.get(key.get("g", ""))
        if key.get("t") == "offset":
            tp = (key["topic"], key["partition"])
            if record.value is None:
                if group is not None:
                    group.offsets.pop(tp, None)
                return
            value = json.loads(record.value)
            group = self._replayed(key["g"])
            group.offsets[tp] = CommittedOffset(
                value["offset"], value.get("epoch", -1), value.get("metadata"), value.get("ts", 0)
            )
        elif key.get("t") == "group":
            if record.value is None:
                self.groups.pop(key["g"], None)
                return
            value = json.loads(record.value)
            group = self._replayed(key["g"])
            group.generation = value.get("generation", 0)
            group.protocol_type = value.get("protocol_type")
            group.protocol_name = value.get("protocol")
            group.empty_since_ms = value.get("empty_since", self.clock.wall_ms())

    def _replayed(self, group_id: str) -> Group:
        group = self.groups.get(group_id)
        if group is None:
            group = self.groups[group_id] = Group(group_id, empty_since_ms=self.clock.wall_ms())
        return group

    async def _write(self, records: list[Record]) -> None:
        assert self._log is not None, "the coordinator is not loaded"
        await self._log.append_records(records, durable=True)

    def _group_record(self, group: Group) -> Record:
        key = json.dumps({"t": "group", "g": group.group_id}).encode()
        value = json.dumps(
            {
                "generation": group.generation,
                "protocol_type": group.protocol_type,
                "protocol": group.protocol_name,
                "leader": group.leader,
                "members": [
                    {
                        "id": m.member_id,
                        "instance": m.instance_id,
                        "client": m.client_id,
                        "host": m.client_host,
                    }
                    for m in group.members.values()
                ],
                "empty_since": group.empty_since_ms,
            }
        ).encode()
        return Record(value, key=key)

    async def close(self) -> None:
        for group in self.groups.values():
            for alarm in (group.rebalance_alarm, group.expiry_alarm):
                if alarm is not None:
                    alarm.cancel()
            for member in group.members.values():
                if member.alarm is not None:
                    member.alarm.cancel()
                for future in (member.join_future, member.sync_future):
                    if future is not None and not future.done():
                        future.cancel()

    # --- join ------------------------------------------------------------------------

    async def join(
        self,
        group_id: str,
        member_id: str,
        instance_id: str | None,
        client_id: str,
        client_host: str,
        session_timeout_ms: int,
        rebalance_timeout_ms: int,
        protocol_type: str,
        protocols: list[tuple[str, bytes]],
        require_known_member: bool = True,
    ) -> JoinResult:
        if self.loading:
            return JoinResult(GroupError.COORDINATOR_LOAD_IN_PROGRESS)
        if not group_id:
            return JoinResult(GroupError.INVALID_GROUP_ID)
        s = self.settings
        if not s.min_session_timeout_ms <= session_timeout_ms <= s.max_session_timeout_ms:
            return JoinResult(GroupError.INVALID_SESSION_TIMEOUT)
        group = self._group_for(group_id)
        if group.state == State.DEAD:
            return JoinResult(GroupError.UNKNOWN_MEMBER_ID)
        if group.members and group.protocol_type not in (None, protocol_type):
            return JoinResult(GroupError.INCONSISTENT_GROUP_PROTOCOL)
        names = {name for name, _ in protocols}
        if not protocols or (group.members and not self._supports_common(group, names, member_id)):
            return JoinResult(GroupError.INCONSISTENT_GROUP_PROTOCOL)

        if not member_id:
            if instance_id is not None and instance_id in group.static:
                return await self._rejoin_static(
                    group,
                    instance_id,
                    client_id,
                    client_host,
                    session_timeout_ms,
                    rebalance_timeout_ms,
                    protocols,
                )
            if len(group.members) >= s.max_size:
                return JoinResult(GroupError.GROUP_MAX_SIZE_REACHED)
            new_id = f"{client_id or 'member'}-{uuid.uuid4()}"
            if require_known_member and instance_id is None:
                # KIP-394: hand out an id; the client joins again with it.
                group.pending_members.add(new_id)
                return JoinResult(GroupError.MEMBER_ID_REQUIRED, member_id=new_id)
            member_id = new_id
        else:
            known = member_id in group.members or member_id in group.pending_members
            if not known:
                return JoinResult(GroupError.UNKNOWN_MEMBER_ID, member_id=member_id)
            if instance_id is not None and group.static.get(instance_id, member_id) != member_id:
                return JoinResult(GroupError.FENCED_INSTANCE_ID, member_id=member_id)

        group.pending_members.discard(member_id)
        member = group.members.get(member_id)
        loop = asyncio.get_running_loop()
        if member is None:
            member = Member(
                member_id,
                instance_id,
                client_id,
                client_host,
                session_timeout_ms,
                rebalance_timeout_ms,
                protocol_type,
                protocols,
                is_new=True,
            )
            group.members[member_id] = member
            if instance_id is not None:
                group.static[instance_id] = member_id
            if group.protocol_type is None:
                group.protocol_type = protocol_type
            changed = True
        else:
            changed = member.protocols != protocols
            member.protocols = protocols
            member.session_timeout_ms = session_timeout_ms
            member.rebalance_timeout_ms = rebalance_timeout_ms
            member.client_id, member.client_host = client_id, client_host
        self._touch(group, member)
        if member.join_future is not None and not member.join_future.done():
            member.join_future.cancel()
        member.join_future = loop.create_future()
        future = member.join_future

        if (
            group.state == State.STABLE
            and not changed
            and member_id != group.leader
            and not member.is_new
        ):
            # A follower rejoining with nothing new: answer at once (Kafka does too).
            future.set_result(self._join_result(group, member))
        elif group.state in (State.EMPTY, State.STABLE, State.COMPLETING_REBALANCE):
            self._prepare_rebalance(group, f"{member_id} joined")
        elif group.all_rejoined(self.clock.monotonic()):
            self._complete_join(group)
        return await future

    def _supports_common(self, group: Group, names: set[str], member_id: str) -> bool:
        others = [m for mid, m in group.members.items() if mid != member_id]
        if not others:
            return True
        common = set(names)
        for member in others:
            common &= {name for name, _ in member.protocols}
        return bool(common)

    async def _rejoin_static(
        self,
        group: Group,
        instance_id: str,
        client_id: str,
        client_host: str,
        session_timeout_ms: int,
        rebalance_timeout_ms: int,
        protocols: list[tuple[str, bytes]],
    ) -> JoinResult:
        """A static member came back with a new process: it takes over its old
        identity under a new member id, without a rebalance when nothing changed."""
        old_id = group.static[instance_id]
        old = group.members.pop(old_id, None)
        new_id = f"{client_id or 'member'}-{uuid.uuid4()}"
        member = Member(
            new_id,
            instance_id,
            client_id,
            client_host,
            session_timeout_ms,
            rebalance_timeout_ms,
            old.protocol_type if old else "consumer",
            protocols,
        )
        if old is not None:
            member.assignment = old.assignment
            for future in (old.join_future, old.sync_future):
                if future is not None and not future.done():
                    future.set_result(
                        JoinResult(GroupError.FENCED_INSTANCE_ID)
                        if future is old.join_future
                        else SyncResult(GroupError.FENCED_INSTANCE_ID)
                    )
        group.members[new_id] = member
        group.static[instance_id] = new_id
        if group.leader == old_id:
            group.leader = new_id
        if old is not None and old.alarm is not None:
            old.alarm.cancel()
        self._touch(group, member)
        member.join_future = asyncio.get_running_loop().create_future()
        if group.state == State.STABLE and old is not None and old.protocols == protocols:
            await self._write([self._group_record(group)])
            result = self._join_result(group, member)
            result.skip_assignment = True
            return result
        self._prepare_rebalance(group, f"static member {instance_id} rejoined")
        return await member.join_future

    def _prepare_rebalance(self, group: Group, reason: str) -> None:
        now = self.clock.monotonic()
        if group.state == State.PREPARING_REBALANCE:
            if group.all_rejoined(now):
                self._complete_join(group)
            return
        if group.state == State.COMPLETING_REBALANCE:
            # Followers waiting in SyncGroup must rejoin.
            for member in group.members.values():
                if member.sync_future is not None and not member.sync_future.done():
                    member.sync_future.set_result(SyncResult(GroupError.REBALANCE_IN_PROGRESS))
        log.debug("group %s rebalancing: %s", group.group_id, reason)
        was_empty = group.state == State.EMPTY
        group.state = State.PREPARING_REBALANCE
        timeout = max((m.rebalance_timeout_ms for m in group.members.values()), default=0) / 1000
        # From empty, wait a little so members that start together join one
        # generation, not one each.
        delay = self.settings.initial_rebalance_delay_ms / 1000 if was_empty else 0
        group.join_not_before = now + delay
        group.rebalance_deadline = group.join_not_before + timeout
        if group.rebalance_alarm is None:
            group.rebalance_alarm = Alarm(self.clock, lambda: self._rebalance_due(group))
        group.rebalance_alarm.cancel()
        group.rebalance_alarm.arm(group.join_not_before if delay else group.rebalance_deadline)
        if not delay and group.all_rejoined(now):
            self._complete_join(group)

    def _rebalance_due(self, group: Group) -> None:
        """The initial delay or the rebalance timeout has passed."""
        if group.state != State.PREPARING_REBALANCE or self.groups.get(group.group_id) is not group:
            return
        assert group.rebalance_alarm is not None
        now = self.clock.monotonic()
        if now < group.join_not_before:
            # The event loop may run a timer a hair before its time: look again then.
            group.rebalance_alarm.arm(group.join_not_before)
            return
        if group.all_rejoined(now):
            self._complete_join(group)
            return
        if now < group.rebalance_deadline:
            group.rebalance_alarm.arm(group.rebalance_deadline)
            return
        # Whoever has not rejoined within the rebalance timeout is out.
        for member_id, member in list(group.members.items()):
            if member.join_future is None:
                self._remove_member(group, member_id)
        self._complete_join(group)

    def _complete_join(self, group: Group) -> None:
        if group.state != State.PREPARING_REBALANCE:
            return
        if group.rebalance_alarm is not None:
            group.rebalance_alarm.cancel()
        if not group.members:
            group.state = State.EMPTY
            group.generation += 1
            group.protocol_name = None
            group.leader = None
            group.empty_since_ms = self.clock.wall_ms()
            self._spawn_write(group)
            self._arm_expiry(group)
            return
        group.generation += 1
        group.protocol_name = group.choose_protocol()
        if group.leader not in group.members:
            group.leader = next(iter(group.members))
        group.state = State.COMPLETING_REBALANCE
        for member in group.members.values():
            member.is_new = False
            member.assignment = b""
            if member.join_future is not None and not member.join_future.done():
                member.join_future.set_result(self._join_result(group, member))
            member.join_future = None
            self._touch(group, member)

    def _join_result(self, group: Group, member: Member) -> JoinResult:
        members = []
        if member.member_id == group.leader:
            members = [
                (m.member_id, m.instance_id, m.metadata(group.protocol_name or ""))
                for m in group.members.values()
            ]
        return JoinResult(
            GroupError.NONE,
            group.generation,
            group.protocol_type,
            group.protocol_name,
            group.leader or "",
            member.member_id,
            members,
        )

    # --- sync -------------------------------------------------------------------------

    async def sync(
        self,
        group_id: str,
        generation: int,
        member_id: str,
        instance_id: str | None,
        protocol_type: str | None,
        protocol_name: str | None,
        assignments: dict[str, bytes],
    ) -> SyncResult:
        if self.loading:
            return SyncResult(GroupError.COORDINATOR_LOAD_IN_PROGRESS)
        group = self.groups.get(group_id)
        error = self._check_member(group, member_id, instance_id, generation)
        if error is not None:
            return SyncResult(error)
        assert group is not None
        if protocol_type is not None and protocol_type != group.protocol_type:
            return SyncResult(GroupError.INCONSISTENT_GROUP_PROTOCOL)
        if protocol_name is not None and protocol_name != group.protocol_name:
            return SyncResult(GroupError.INCONSISTENT_GROUP_PROTOCOL)
        member = group.members[member_id]
        self._touch(group, member)
        if group.state == State.PREPARING_REBALANCE:
            return SyncResult(GroupError.REBALANCE_IN_PROGRESS)
        if group.state == State.STABLE:
            return SyncResult(
                GroupError.NONE, group.protocol_type, group.protocol_name, member.assignment
            )
        # CompletingRebalance: the leader brings the assignment; everyone waits for it.
        if member.sync_future is not None and not member.sync_future.done():
            # A repeated SyncGroup replaces the one waiting; that one gets an
            # answer too (left unanswered it would hold up its connection).
            member.sync_future.set_result(SyncResult(GroupError.REBALANCE_IN_PROGRESS))
        future = asyncio.get_running_loop().create_future()
        member.sync_future = future
        if member_id == group.leader:
            for mid, m in group.members.items():
                m.assignment = assignments.get(mid, b"")
            try:
                await self._write([self._group_record(group)])
            except Exception:
                log.exception("storing group %s failed", group_id)
            if group.state == State.COMPLETING_REBALANCE and group.generation == generation:
                group.state = State.STABLE
                for m in group.members.values():
                    if m.sync_future is not None and not m.sync_future.done():
                        m.sync_future.set_result(
                            SyncResult(
                                GroupError.NONE,
                                group.protocol_type,
                                group.protocol_name,
                                m.assignment,
                            )
                        )
                    m.sync_future = None
        return await future

    # --- heartbeat and leave -------------------------------------------------------------

    def heartbeat(
        self, group_id: str, generation: int, member_id: str, instance_id: str | None
    ) -> GroupError:
        if self.loading:
            return GroupError.COORDINATOR_LOAD_IN_PROGRESS
        group = self.groups.get(group_id)
        error = self._check_member(group, member_id, instance_id, generation)
        if error is not None:
            return error
        assert group is not None
        self._touch(group, group.members[member_id])
        if group.state == State.PREPARING_REBALANCE:
            return GroupError.REBALANCE_IN_PROGRESS
        return GroupError.NONE

    async def leave(
        self, group_id: str, members: list[tuple[str, str | None]]
    ) -> tuple[GroupError, list[GroupError]]:
        group = self.groups.get(group_id)
        if group is None:
            return GroupError.UNKNOWN_MEMBER_ID, [GroupError.UNKNOWN_MEMBER_ID for _ in members]
        results = []
        for member_id, instance_id in members:
            if instance_id is not None:
                current = group.static.get(instance_id)
                if current is None:
                    results.append(GroupError.UNKNOWN_MEMBER_ID)
                    continue
                if member_id and member_id != current:
                    results.append(GroupError.FENCED_INSTANCE_ID)
                    continue
                member_id = current
            if member_id not in group.members:
                results.append(GroupError.UNKNOWN_MEMBER_ID)
                continue
            self._remove_member(group, member_id)
            results.append(GroupError.NONE)
        if any(r == GroupError.NONE for r in results):
            self._members_changed(group, "member left")
        error = GroupError.NONE if len(members) != 1 else results[0]
        return error, results

    def _remove_member(self, group: Group, member_id: str) -> None:
        member = group.members.pop(member_id, None)
        if member is None:
            return
        if member.alarm is not None:
            member.alarm.cancel()
        if member.instance_id is not None and group.static.get(member.instance_id) == member_id:
            del group.static[member.instance_id]
        for future, result in (
            (member.join_future, JoinResult(GroupError.UNKNOWN_MEMBER_ID)),
            (member.sync_future, SyncResult(GroupError.UNKNOWN_MEMBER_ID)),
        ):
            if future is not None and not future.done():
                future.set_result(result)
        if group.leader == member_id:
            group.leader = next(iter(group.members), None)

    def _members_changed(self, group: Group, reason: str) -> None:
        if group.state in (State.STABLE, State.COMPLETING_REBALANCE):
            self._prepare_rebalance(group, reason)
        elif group.state == State.PREPARING_REBALANCE and group.all_rejoined(
            self.clock.monotonic()
        ):
            self._complete_join(group)
        elif group.state == State.EMPTY:
            pass
        if not group.members and group.state == State.PREPARING_REBALANCE:
            self._complete_join(group)

    def _check_member(
        self, group: Group | None, member_id: str, instance_id: str | None, generation: int
    ) -> GroupError | None:
        if group is None or member_id not in group.members:
            if group is not None and instance_id is not None and instance_id in group.static:
                return GroupError.FENCED_INSTANCE_ID
            return GroupError.UNKNOWN_MEMBER_ID
        if instance_id is not None and group.static.get(instance_id) != member_id:
            return GroupError.FENCED_INSTANCE_ID
        if generation != group.generation:
            return GroupError.ILLEGAL_GENERATION
        return None

    # --- session timeouts and offset expiry ---------------------------------------------------

    def _touch(self, group: Group, member: Member) -> None:
        """The member showed life: its session lasts one more session timeout.

        Cheap on every heartbeat: the member's alarm stays at the earlier
        deadline and, when it fires, moves on to the current one."""
        member.deadline = self.clock.monotonic() + member.session_timeout_ms / 1000
        if member.alarm is None:
            member.alarm = Alarm(self.clock, lambda: self._session_due(group, member))
        member.alarm.arm(member.deadline)

    def _session_due(self, group: Group, member: Member) -> None:
        if group.members.get(member.member_id) is not member:
            return
        assert member.alarm is not None
        now = self.clock.monotonic()
        if now < member.deadline:
            member.alarm.arm(member.deadline)
            return
        if member.join_future is not None and not member.join_future.done():
            # Waiting in JoinGroup: the rebalance timeout decides; look again later.
            member.alarm.arm(now + member.session_timeout_ms / 1000)
            return
        log.info("group %s: member %s session timed out", group.group_id, member.member_id)
        self._remove_member(group, member.member_id)
        self._members_changed(group, "session timeout")

    def _arm_expiry(self, group: Group) -> None:
        """An empty group's offsets expire ``offsets_retention_ms`` after the
        group became empty and after their commit; set its timer for the
        first of them (the group itself goes with its last offset)."""
        if group.members or group.state != State.EMPTY:
            return  # armed again when the group is empty again
        retention = self.settings.offsets_retention_ms
        oldest = min((c.commit_ms for c in group.offsets.values()), default=group.empty_since_ms)
        due_ms = max(group.empty_since_ms, oldest) + retention
        if group.expiry_alarm is None:
            group.expiry_alarm = Alarm(self.clock, lambda: self._expiry_due(group))
        clock = self.clock
        group.expiry_alarm.arm(clock.monotonic() + (due_ms - clock.wall_ms()) / 1000)

    def _expiry_due(self, group: Group) -> None:
        if self.groups.get(group.group_id) is not group:
            return
        if group.members or group.state != State.EMPTY:
            return
        retention = self.settings.offsets_retention_ms
        now_ms = self.clock.wall_ms()
        if now_ms - group.empty_since_ms >= retention:
            tombstones = []
            for (topic, partition), committed in list(group.offsets.items()):
                if now_ms - committed.commit_ms >= retention:
                    del group.offsets[(topic, partition)]
                    tombstones.append(_offset_tombstone(group.group_id, topic, partition))
            if not group.offsets:
                del self.groups[group.group_id]
                tombstones.append(
                    Record(None, key=json.dumps({"t": "group", "g": group.group_id}).encode())
                )
            if tombstones:
                self._spawn(self._write(tombstones))
            if not group.offsets:
                return
        self._arm_expiry(group)

    def _spawn(self, write) -> None:
        task = asyncio.create_task(write)
        task.add_done_callback(_log_failure)

    def _spawn_write(self, group: Group) -> None:
        self._spawn(self._write([self._group_record(group)]))

    # --- offsets -----------------------------------------------------------------------

    async def commit_offsets(
        self,
        group_id: str,
        generation: int,
        member_id: str,
        instance_id: str | None,
        offsets: dict[tuple[str, int], tuple[int, int, str | None]],
    ) -> dict[tuple[str, int], GroupError]:
        """Store (offset, leader epoch, metadata) per partition. Members must
        be current; a group without members takes commits from anyone
        (standalone consumers using assign())."""
        if self.loading:
            return dict.fromkeys(offsets, GroupError.COORDINATOR_LOAD_IN_PROGRESS)
        group = self.groups.get(group_id)
        if group is not None and group.members:
            error = self._check_member(group, member_id, instance_id, generation)
            # As Kafka: commits with the current generation are taken while a
            # rebalance is being prepared (consumers commit as partitions are
            # revoked), but not between JoinGroup and SyncGroup.
            if error is None and group.state == State.COMPLETING_REBALANCE:
                error = GroupError.REBALANCE_IN_PROGRESS
            if error is not None:
                return dict.fromkeys(offsets, error)
            self._touch(group, group.members[member_id])
        elif generation >= 0 and group is None:
            return dict.fromkeys(
                offsets,
                GroupError.ILLEGAL_GENERATION if member_id else GroupError.UNKNOWN_MEMBER_ID,
            )
        if group is None:
            group = self._group_for(group_id)
        results: dict[tuple[str, int], GroupError] = {}
        records = []
        now_ms = self.clock.wall_ms()
        accepted = {}
        for (topic, partition), (offset, epoch, metadata) in offsets.items():
            if not 0 <= partition < self.partition_count(topic):
                results[(topic, partition)] = GroupError.UNKNOWN_TOPIC_OR_PARTITION
                continue
            accepted[(topic, partition)] = CommittedOffset(offset, epoch, metadata, now_ms)
            records.append(
                _offset_record(group_id, topic, partition, offset, epoch, metadata, now_ms)
            )
            results[(topic, partition)] = GroupError.NONE
        if records:
            try:
                await self._write(records)
            except OSError as err:
                # Not stored, so not committed. As Kafka does for a storage
                # error, the client is told to find its coordinator again and
                # retry.
                log.warning("storing offsets of group %s failed: %s", group_id, err)
                return {
                    tp: GroupError.NOT_COORDINATOR if error == GroupError.NONE else error
                    for tp, error in results.items()
                }
            group.offsets.update(accepted)
            self._arm_expiry(group)
        return results

    def fetch_offsets(
        self, group_id: str, partitions: Iterable[tuple[str, int]] | None
    ) -> dict[tuple[str, int], CommittedOffset | None]:
        group = self.groups.get(group_id)
        offsets = group.offsets if group is not None else {}
        if partitions is None:
            return dict(offsets)
        return {tp: offsets.get(tp) for tp in partitions}

    async def delete_offsets(
        self, group_id: str, partitions: list[tuple[str, int]]
    ) -> tuple[GroupError, dict[tuple[str, int], GroupError]]:
        group = self.groups.get(group_id)
        if group is None:
            return GroupError.GROUP_ID_NOT_FOUND, {}
        subscribed = group.subscribed_topics() or set()
        results = {}
        tombstones = []
        for topic, partition in partitions:
            if group.members and topic in subscribed:
                results[(topic, partition)] = GroupError.GROUP_SUBSCRIBED_TO_TOPIC
                continue
            if group.offsets.pop((topic, partition), None) is not None:
                tombstones.append(_offset_tombstone(group_id, topic, partition))
            results[(topic, partition)] = GroupError.NONE
        if tombstones:
            await self._write(tombstones)
        return GroupError.NONE, results

    # --- admin ------------------------------------------------------------------------

    def list_groups(self) -> list[Group]:
        return [g for g in self.groups.values() if g.state != State.DEAD]

    async def delete_groups(self, group_ids: list[str]) -> dict[str, GroupError]:
        results = {}
        for group_id in group_ids:
            group = self.groups.get(group_id)
            if group is None:
                results[group_id] = GroupError.GROUP_ID_NOT_FOUND
                continue
            if group.members:
                results[group_id] = GroupError.NON_EMPTY_GROUP
                continue
            records = [_offset_tombstone(group_id, t, p) for t, p in group.offsets]
            records.append(Record(None, key=json.dumps({"t": "group", "g": group_id}).encode()))
            await self._write(records)
            group.state = State.DEAD
            if group.expiry_alarm is not None:
                group.expiry_alarm.cancel()
            if self.groups.get(group_id) is group:
                del self.groups[group_id]
            results[group_id] = GroupError.NONE
        return results


def _log_failure(task: asyncio.Task) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("storing group state failed: %s", task.exception())


def _offset_key(group_id: str, topic: str, partition: int) -> bytes:
    return json.dumps(
        {"t": "offset", "g": group_id, "topic": topic, "partition": partition}
    ).encode()


def _offset_record(
    group_id: str,
    topic: str,
    partition: int,
    offset: int,
    epoch: int,
    metadata: str | None,
    now_ms: int,
) -> Record:
    value = json.dumps(
        {"offset": offset, "epoch": epoch, "metadata": metadata, "ts": now_ms}
    ).encode()
    return Record(value, key=_offset_key(group_id, topic, partition))


def _offset_tombstone(group_id: str, topic: str, partition: int) -> Record:
    return Record(None, key=_offset_key(group_id, topic, partition))

"""The group coordinator driven the way Kafka clients drive it.

Time is a FakeClock: session timeouts, the initial rebalance delay, the
rebalance timeout and offset expiry fire when the test moves the clock, and
no test sleeps.
"""

from __future__ import annotations

import asyncio

from dovecote.core.broker import BrokerCore
from dovecote.core.clock import FakeClock
from dovecote.core.config import BrokerConfig
from dovecote.core.groups import GroupError, State
from dovecote.core.local_member import LocalMember

INITIAL_DELAY = 0.3  # group_initial_rebalance_delay_ms by default


def new_core(path) -> BrokerCore:
    return BrokerCore(BrokerConfig.load(env={}, overrides={"data_dir": path}), clock=FakeClock())


async def after_delay(core: BrokerCore, *joins):
    """Run joins into an empty group: they answer once the initial delay passed."""
    tasks = [asyncio.ensure_future(j) for j in joins]
    await core.clock.advance(INITIAL_DELAY)
    assert all(task.done() for task in tasks), "the joins did not answer after the delay"
    return await asyncio.gather(*tasks)


PROTOCOLS = [("range", b"meta-range"), ("roundrobin", b"meta-rr")]


async def join(groups, member_id="", instance=None, session=6000, protocols=PROTOCOLS):
    result = await groups.join(
        "g", member_id, instance, "client", "/127.0.0.1", session, 3000, "consumer", protocols
    )
    if result.error == GroupError.MEMBER_ID_REQUIRED:
        result = await groups.join(
            "g",
            result.member_id,
            instance,
            "client",
            "/127.0.0.1",
            session,
            3000,
            "consumer",
            protocols,
        )
    return result


async def sync_all(groups, joined):
    leader = next(j for j in joined if j.member_id == j.leader)
    assignments = {mid: f"assign-{mid}".encode() for mid, _, _ in leader.members}
    results = await asyncio.gather(
        *(
            groups.sync(
                "g",
                j.generation,
                j.member_id,
                None,
                "consumer",
                j.protocol_name,
                assignments if j is leader else {},
            )
            for j in joined
        )
    )
    return results


def test_three_members_join_sync_heartbeat_and_leave(tmp_path):
    async def main():
        core = new_core(tmp_path)
        await core.start()
        groups = core.groups
        joined = await after_delay(core, join(groups), join(groups), join(groups))
        assert {j.error for j in joined} == {GroupError.NONE}
        assert len({j.generation for j in joined}) == 1
        leader = [j for j in joined if j.member_id == j.leader]
        assert len(leader) == 1 and len(leader[0].members) == 3
        assert all(j.protocol_name == "range" for j in joined)
        synced = await sync_all(groups, joined)
        assert [s.assignment for s in synced] == [f"assign-{j.member_id}".encode() for j in joined]
        assert groups.groups["g"].state == State.STABLE
        gen = joined[0].generation
        assert groups.heartbeat("g", gen, joined[0].member_id, None) == GroupError.NONE
        assert (
            groups.heartbeat("g", gen - 1, joined[0].member_id, None)
            == GroupError.ILLEGAL_GENERATION
        )
        assert groups.heartbeat("g", gen, "stranger", None) == GroupError.UNKNOWN_MEMBER_ID
        # One leaves: the others see a rebalance and rejoin into the next generation.
        await groups.leave("g", [(joined[2].member_id, None)])
        assert (
            groups.heartbeat("g", gen, joined[0].member_id, None)
            == GroupError.REBALANCE_IN_PROGRESS
        )
        again = await asyncio.gather(
            join(groups, joined[0].member_id), join(groups, joined[1].member_id)
        )
        assert {j.generation for j in again} == {gen + 1}
        await sync_all(groups, again)
        assert groups.groups["g"].state == State.STABLE
        await core.stop()

    asyncio.run(main())


def test_session_timeout_removes_a_silent_member(tmp_path):
    async def main():
        core = new_core(tmp_path)
        await core.start()
        groups = core.groups
        groups.settings.min_session_timeout_ms = 100
        a, b = await after_delay(core, join(groups, session=300), join(groups, session=300))
        await sync_all(groups, [a, b])
        # a heartbeats, b is silent: b's session ends 300 ms after its SyncGroup.
        for _ in range(5):
            await core.clock.advance(0.05)
            assert groups.heartbeat("g", a.generation, a.member_id, None) == GroupError.NONE
        await core.clock.advance(0.049)
        assert b.member_id in groups.groups["g"].members
        await core.clock.advance(0.002)
        assert b.member_id not in groups.groups["g"].members
        assert groups.groups["g"].state == State.PREPARING_REBALANCE
        rejoined = await join(groups, a.member_id, session=300)
        assert rejoined.generation == a.generation + 1 and rejoined.leader == a.member_id
        await core.stop()

    asyncio.run(main())


def test_static_member_rejoins_without_rebalance(tmp_path):
    async def main():
        core = new_core(tmp_path)
        await core.start()
        groups = core.groups
        a, b = await after_delay(core, join(groups, instance="i-a"), join(groups, instance="i-b"))
        await sync_all(groups, [a, b])
        gen = a.generation
        # i-b restarts: a new process with no member id takes over its identity.
        back = await join(groups, instance="i-b")
        assert back.error == GroupError.NONE and back.generation == gen
        assert back.member_id != b.member_id
        assert groups.groups["g"].state == State.STABLE
        # The old process is fenced.
        assert groups.heartbeat("g", gen, b.member_id, "i-b") == GroupError.FENCED_INSTANCE_ID
        await core.stop()

    asyncio.run(main())


def test_offsets_survive_restart_and_generation_is_checked(tmp_path):
    async def first():
        core = new_core(tmp_path)
        await core.start()
        await core.create_topic("t", 2)
        groups = core.groups
        (a,) = await after_delay(core, join(groups))
        await sync_all(groups, [a])
        ok = await groups.commit_offsets(
            "g",
            a.generation,
            a.member_id,
            None,
            {("t", 0): (42, 3, "meta"), ("t", 1): (7, -1, None)},
        )
        assert set(ok.values()) == {GroupError.NONE}
        stale = await groups.commit_offsets(
            "g", a.generation - 1, a.member_id, None, {("t", 0): (1, -1, None)}
        )
        assert stale == {("t", 0): GroupError.ILLEGAL_GENERATION}
        missing = await groups.commit_offsets(
            "g", a.generation, a.member_id, None, {("nope", 0): (1, -1, None)}
        )
        assert missing == {("nope", 0): GroupError.UNKNOWN_TOPIC_OR_PARTITION}
        # A standalone consumer (no group membership) may commit to an empty group.
        solo = await groups.commit_offsets("solo", -1, "", None, {("t", 0): (5, -1, None)})
        assert solo == {("t", 0): GroupError.NONE}
        await core.stop()

    async def second():
        core = new_core(tmp_path)
        await core.start()
        groups = core.groups
        got = groups.fetch_offsets("g", [("t", 0), ("t", 1), ("t", 9)])
        assert got[("t", 0)].offset == 42 and got[("t", 0)].metadata == "meta"
        assert got[("t", 0)].leader_epoch == 3
        assert got[("t", 1)].offset == 7 and got[("t", 9)] is None
        assert groups.fetch_offsets("solo", None)[("t", 0)].offset == 5
        assert await groups.delete_groups(["g", "nope"]) == {
            "g": GroupError.NONE,
            "nope": GroupError.GROUP_ID_NOT_FOUND,
        }
        await core.stop()

    async def third():
        core = new_core(tmp_path)
        await core.start()
        assert "g" not in core.groups.groups
        assert "solo" in core.groups.groups
        await core.stop()

    asyncio.run(first())
    asyncio.run(second())
    asyncio.run(third())


def test_member_id_required_and_inconsistent_protocols(tmp_path):
    async def main():
        core = new_core(tmp_path)
        await core.start()
        groups = core.groups
        first = await groups.join("g", "", None, "c", "h", 6000, 3000, "consumer", PROTOCOLS)
        assert first.error == GroupError.MEMBER_ID_REQUIRED and first.member_id
        (a,) = await after_delay(core, join(groups))
        await sync_all(groups, [a])
        odd = await groups.join(
            "g",
            "",
            None,
            "c",
            "h",
            6000,
            3000,
            "consumer",
            [("other", b"")],
            require_known_member=False,
        )
        assert odd.error == GroupError.INCONSISTENT_GROUP_PROTOCOL
        bad = await groups.join("g", "", None, "c", "h", 10, 3000, "consumer", PROTOCOLS)
        assert bad.error == GroupError.INVALID_SESSION_TIMEOUT
        await core.stop()

    asyncio.run(main())


def test_initial_rebalance_delay_gathers_members_into_one_generation(tmp_path):
    async def main():
        core = new_core(tmp_path)
        await core.start()
        groups = core.groups
        first = asyncio.ensure_future(join(groups))
        await core.clock.advance(INITIAL_DELAY - 0.01)
        assert not first.done()
        second = asyncio.ensure_future(join(groups))  # in time for the same generation
        await core.clock.advance(0.01)
        a, b = await asyncio.gather(first, second)
        assert a.generation == b.generation == 1 and a.leader == b.leader
        assert groups.groups["g"].state == State.COMPLETING_REBALANCE
        await core.stop()

    asyncio.run(main())


def test_rebalance_timeout_removes_a_member_that_does_not_rejoin(tmp_path):
    async def main():
        core = new_core(tmp_path)
        await core.start()
        groups = core.groups
        a, b = await after_delay(core, join(groups), join(groups))
        await sync_all(groups, [a, b])
        # A third member arrives: a rejoins, b never does (rebalance timeout 3 s).
        c = asyncio.ensure_future(join(groups))
        a_again = asyncio.ensure_future(join(groups, a.member_id))
        await core.clock.advance(2.99)
        assert not c.done() and not a_again.done()
        assert groups.groups["g"].state == State.PREPARING_REBALANCE
        await core.clock.advance(0.02)
        c_joined, a_joined = await asyncio.gather(c, a_again)
        assert c_joined.generation == a_joined.generation == a.generation + 1
        assert set(groups.groups["g"].members) == {a.member_id, c_joined.member_id}
        await core.stop()

    asyncio.run(main())


def test_offsets_of_an_empty_group_expire_after_retention(tmp_path):
    async def first():
        core = new_core(tmp_path)
        await core.start()
        await core.create_topic("t", 2)
        groups = core.groups
        groups.settings.offsets_retention_ms = 1000
        assert await groups.commit_offsets("solo", -1, "", None, {("t", 0): (5, -1, None)}) == {
            ("t", 0): GroupError.NONE
        }
        await core.clock.advance(0.5)
        # A later commit of another partition expires a second later than the first.
        await groups.commit_offsets("solo", -1, "", None, {("t", 1): (1, -1, None)})
        await core.clock.advance(0.499)
        assert set(groups.fetch_offsets("solo", None)) == {("t", 0), ("t", 1)}
        await core.clock.advance(0.002)
        assert set(groups.fetch_offsets("solo", None)) == {("t", 1)}
        await core.clock.advance(0.5)
        assert "solo" not in groups.groups
        await core.stop()

    async def second():
        core = new_core(tmp_path)
        await core.start()
        assert "solo" not in core.groups.groups
        await core.stop()

    asyncio.run(first())
    asyncio.run(second())


def test_group_timers_are_idle_without_groups(tmp_path):
    """No polling: groups keep timers only for what is due (here: none left)."""

    async def main():
        core = new_core(tmp_path)
        await core.start()
        await core.create_topic("t", 1)
        idle = core.clock.pending()
        await core.groups.commit_offsets("solo", -1, "", None, {("t", 0): (5, -1, None)})
        assert core.clock.pending() == idle + 1  # the offsets' expiry
        assert await core.groups.delete_groups(["solo"]) == {"solo": GroupError.NONE}
        assert core.clock.pending() == idle
        await core.stop()

    asyncio.run(main())


def test_broker_side_member_leaves_when_its_client_goes_silent(tmp_path):
    async def main():
        core = new_core(tmp_path)
        await core.start()
        await core.create_topic("t", 2)
        member = LocalMember(core.groups, "g", ["t"], session_timeout_ms=6000)
        started = asyncio.ensure_future(member.start(timeout=30))
        await core.clock.advance(INITIAL_DELAY)
        await started
        polled = member.poll()
        assert polled["stable"] and polled["error"] is None
        assert polled["assignment"] == [
            {"topic": "t", "partition": 0},
            {"topic": "t", "partition": 1},
        ]
        # Polled in time: still in. It heartbeats every 2 s for the client.
        for _ in range(4):
            await core.clock.advance(5)
            member.poll()
        assert member.member_id in core.groups.groups["g"].members
        # Silent for longer than the session timeout: it leaves the group.
        await core.clock.advance(8)
        assert member.closed and not core.groups.groups["g"].members
        await member.close()
        await core.stop()

    asyncio.run(main())


class EarlyClock(FakeClock):
    """Runs a timer 100 µs before its time (once per due time: real time moves
    on), as uvloop's millisecond timers can."""

    def __init__(self) -> None:
        super().__init__()
        self.early: set[float] = set()

    def call_at(self, when, callback):
        if when not in self.early:
            self.early.add(when)
            when -= 0.0001
        return super().call_at(when, callback)


def test_a_timer_that_fires_early_does_not_stretch_the_initial_delay(tmp_path):
    async def main():
        config = BrokerConfig.load(env={}, overrides={"data_dir": tmp_path})
        core = BrokerCore(config, clock=EarlyClock())
        await core.start()
        (joined,) = await after_delay(core, join(core.groups))
        assert joined.error == GroupError.NONE and joined.generation == 1
        await core.stop()

    asyncio.run(main())


def test_a_member_waiting_in_join_outlives_its_session_timeout(tmp_path):
    """As in Kafka, the rebalance timeout, not the session, bounds a member
    waiting in JoinGroup; its session timer keeps watching it."""

    async def main():
        core = new_core(tmp_path)
        await core.start()
        groups = core.groups

        async def join_as(member_id: str, session: int):
            return await groups.join(
                "g", member_id, None, "c", "h", session, 20_000, "consumer", PROTOCOLS, False
            )

        a, b = await after_delay(core, join_as("", 6000), join_as("", 10_000))
        await sync_all(groups, [a, b])
        a_again = asyncio.ensure_future(join_as(a.member_id, 6000))  # b does not rejoin
        await core.clock.advance(6.5)
        group = groups.groups["g"]
        assert not a_again.done() and a.member_id in group.members
        alarm = group.members[a.member_id].alarm
        assert alarm is not None and alarm.when is not None
        # b's session (10 s from its SyncGroup) ends: the rebalance completes without it.
        await core.clock.advance(4)
        joined = await a_again
        assert joined.generation == a.generation + 1 and set(group.members) == {a.member_id}
        await core.stop()

    asyncio.run(main())

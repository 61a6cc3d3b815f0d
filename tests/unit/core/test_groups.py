"""The group coordinator driven the way Kafka clients drive it."""

from __future__ import annotations

import asyncio

from dovecote.core.broker import BrokerCore
from dovecote.core.config import BrokerConfig
from dovecote.core.groups import GroupError, State


def new_core(path) -> BrokerCore:
    return BrokerCore(BrokerConfig.load(env={}, overrides={"data_dir": path}))


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
        joined = await asyncio.gather(join(groups), join(groups), join(groups))
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
        a, b = await asyncio.gather(join(groups, session=300), join(groups, session=300))
        await sync_all(groups, [a, b])
        for _ in range(12):  # a heartbeats, b is silent
            await asyncio.sleep(0.05)
            groups.heartbeat("g", a.generation, a.member_id, None)
        assert b.member_id not in groups.groups["g"].members
        rejoined = await join(groups, a.member_id, session=300)
        assert rejoined.generation == a.generation + 1 and rejoined.leader == a.member_id
        await core.stop()

    asyncio.run(main())


def test_static_member_rejoins_without_rebalance(tmp_path):
    async def main():
        core = new_core(tmp_path)
        await core.start()
        groups = core.groups
        a, b = await asyncio.gather(join(groups, instance="i-a"), join(groups, instance="i-b"))
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
        a = await join(groups)
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
        a = await join(groups)
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

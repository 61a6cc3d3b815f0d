"""Property test of the group coordinator on a FakeClock.

Random joins, rejoins, heartbeats, syncs, leaves and clock moves. With no
polling loop left, every deadline must be a pending timer: a member always
has its session alarm, a rebalance in preparation always has its alarm.
And nothing hangs: once the clients go quiet, time alone empties the group
and answers every request still waiting.
"""

from __future__ import annotations

import asyncio

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dovecote.core.clock import FakeClock
from dovecote.core.groups import GroupCoordinator, GroupSettings, State
from dovecote.storage.batch import Record

PROTOCOLS = [("range", b"r"), ("roundrobin", b"rr")]


class MemoryLog:
    """Stands in for the offsets partition: keeps what is written."""

    def __init__(self) -> None:
        self.records: list[Record] = []

    def all_records(self):
        return iter(self.records)

    async def append_records(self, records: list[Record], *, durable: bool = True) -> None:
        self.records.extend(records)


OPS = st.lists(
    st.one_of(
        st.tuples(st.just("join"), st.sampled_from([6000, 10000]), st.sampled_from([3000, 20000])),
        st.tuples(st.just("rejoin"), st.integers(0, 5)),
        st.tuples(st.just("heartbeat"), st.integers(0, 5)),
        st.tuples(st.just("sync"), st.integers(0, 5)),
        st.tuples(st.just("leave"), st.integers(0, 5)),
        st.tuples(st.just("advance"), st.sampled_from([0.0, 0.1, 0.3, 1.0, 3.0, 7.0])),
    ),
    max_size=30,
)


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


def check(coordinator: GroupCoordinator, generations: list[int]) -> None:
    group = coordinator.groups.get("g")
    if group is None:
        return
    if group.state == State.EMPTY:
        assert not group.members
    if group.state in (State.COMPLETING_REBALANCE, State.STABLE):
        assert group.leader in group.members
    if group.state == State.PREPARING_REBALANCE:
        assert group.rebalance_alarm is not None and group.rebalance_alarm.when is not None
    for member in group.members.values():
        assert member.alarm is not None and member.alarm.when is not None, member.member_id
    assert not generations or group.generation >= generations[-1]
    generations.append(group.generation)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(OPS)
def test_every_deadline_is_a_timer_and_time_alone_settles_the_group(ops):
    async def main():
        clock = FakeClock()
        coordinator = GroupCoordinator(
            clock, lambda topic: 1, GroupSettings(initial_rebalance_delay_ms=300)
        )
        await coordinator.load(MemoryLog())  # type: ignore[arg-type]
        tasks: list[asyncio.Future] = []
        generations: list[int] = []

        def member_at(index: int):
            group = coordinator.groups.get("g")
            if group is None or not group.members:
                return None
            ids = list(group.members)  # join order: the same on every run
            return group.members[ids[index % len(ids)]]

        for op in ops:
            kind = op[0]
            member = member_at(op[1]) if kind in ("rejoin", "heartbeat", "sync", "leave") else None
            group = coordinator.groups.get("g")
            if kind == "join":
                tasks.append(
                    asyncio.ensure_future(
                        coordinator.join(
                            "g", "", None, "c", "h", op[1], op[2], "consumer", PROTOCOLS, False
                        )
                    )
                )
            elif kind == "advance":
                await clock.advance(op[1])
            elif member is not None and group is not None:
                if kind == "rejoin":
                    tasks.append(
                        asyncio.ensure_future(
                            coordinator.join(
                                "g",
                                member.member_id,
                                None,
                                "c",
                                "h",
                                member.session_timeout_ms,
                                member.rebalance_timeout_ms,
                                "consumer",
                                PROTOCOLS,
                            )
                        )
                    )
                elif kind == "heartbeat":
                    coordinator.heartbeat("g", group.generation, member.member_id, None)
                elif kind == "sync":
                    assignments = {mid: b"a" for mid in group.members}
                    tasks.append(
                        asyncio.ensure_future(
                            coordinator.sync(
                                "g",
                                group.generation,
                                member.member_id,
                                None,
                                "consumer",
                                group.protocol_name,
                                assignments if member.member_id == group.leader else {},
                            )
                        )
                    )
                elif kind == "leave":
                    await coordinator.leave("g", [(member.member_id, None)])
            await settle()
            check(coordinator, generations)
        # The clients go quiet: sessions and rebalances run out on their own.
        for _ in range(10):
            await clock.advance(25)
            check(coordinator, generations)
        group = coordinator.groups.get("g")
        assert group is None or (group.state == State.EMPTY and not group.members)
        assert all(task.done() for task in tasks)
        await coordinator.close()

    asyncio.run(main())

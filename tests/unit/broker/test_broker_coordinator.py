"""The group coordinator's state machine, over a real SQLite metadata store."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from plait.broker import errors as E
from plait.broker.coordinator import CoordinatorConfig, GroupCoordinator, GroupPhase
from plait.groups import FencedCommitError, GroupStore
from plait.meta.url import open_meta

PROTOS = [("range", b"meta-r"), ("roundrobin", b"meta-rr")]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[GroupStore]:
    meta = open_meta(f"sqlite:{tmp_path / 'meta.sqlite'}")
    yield GroupStore(meta)
    meta.close()


def _coord(store: GroupStore, delay_ms: int = 0) -> GroupCoordinator:
    return GroupCoordinator(store, CoordinatorConfig(initial_rebalance_delay_ms=delay_ms))


async def _join(c: GroupCoordinator, member: str = "", session_ms: int = 6000,
                protos: list[tuple[str, bytes]] = PROTOS):  # type: ignore[no-untyped-def]
    return await c.join("g", member, None, "client", "host", session_ms, 3000, "consumer", protos)


def test_two_members_rebalance_through_every_state(store: GroupStore) -> None:
    async def run() -> None:
        c = _coord(store, delay_ms=100)
        a, b = await asyncio.gather(_join(c), _join(c))
        assert a.error == b.error == 0
        assert a.generation == b.generation == 1
        assert a.protocol == "range"
        leader, follower = (a, b) if a.member_id == a.leader else (b, a)
        assert {m for m, _g, _meta in leader.members} == {a.member_id, b.member_id}
        assert follower.members == []
        g = c.group("g")
        assert g.phase is GroupPhase.COMPLETING
        plan = {a.member_id: b"A", b.member_id: b"B"}
        follower_sync = asyncio.ensure_future(c.sync("g", 1, follower.member_id, {}))
        await asyncio.sleep(0)
        code, mine, _ = await c.sync("g", 1, leader.member_id, plan)
        assert code == 0 and mine == plan[leader.member_id]
        assert (await follower_sync)[:2] == (0, plan[follower.member_id])
        assert g.phase is GroupPhase.STABLE
        assert c.heartbeat("g", 1, a.member_id) == 0
        assert c.heartbeat("g", 0, a.member_id) == E.IllegalGeneration.errno
        assert c.heartbeat("g", 1, "nobody") == E.UnknownMemberId.errno
        # A leave sends the survivor back through a rebalance into generation 2.
        assert c.leave("g", [follower.member_id]) == {follower.member_id: 0}
        assert c.heartbeat("g", 1, leader.member_id) == E.RebalanceInProgress.errno
        again = await _join(c, leader.member_id)
        assert (again.error, again.generation, again.leader) == (0, 2, leader.member_id)
        assert store.load("g").generation == 2  # type: ignore[union-attr]

    asyncio.run(run())


def test_session_expiry_removes_a_silent_member(store: GroupStore) -> None:
    async def run() -> None:
        c = _coord(store)
        a = await _join(c, session_ms=1000)
        await c.sync("g", a.generation, a.member_id, {a.member_id: b"x"})
        c.expire_sessions(now=10**9)
        g = c.group("g")
        assert g.members == {} and g.phase is GroupPhase.EMPTY
        assert g.generation == a.generation + 1

    asyncio.run(run())


def test_commits_are_fenced_by_generation(store: GroupStore) -> None:
    async def run() -> None:
        c = _coord(store)
        a = await _join(c)
        assert c.check_commit("g", a.generation, a.member_id) == E.RebalanceInProgress.errno
        await c.sync("g", a.generation, a.member_id, {a.member_id: b"x"})
        assert c.check_commit("g", a.generation, a.member_id) == 0
        assert c.check_commit("g", a.generation - 1, a.member_id) == E.IllegalGeneration.errno
        assert c.check_commit("g", -1, "") == E.RebalanceInProgress.errno
        store.commit_offsets("g", a.generation, {("t", 0): (42, "m")})
        with pytest.raises(FencedCommitError):
            store.commit_offsets("g", a.generation - 1, {("t", 0): (7, "")})
        assert store.fetch_offsets("g") == {("t", 0): (42, "m")}

    asyncio.run(run())


def test_group_state_survives_a_restart(store: GroupStore) -> None:
    async def first() -> tuple[str, int]:
        c = _coord(store)
        a = await _join(c)
        await c.sync("g", a.generation, a.member_id, {a.member_id: b"plan"})
        return a.member_id, a.generation

    member, gen = asyncio.run(first())

    async def second() -> None:
        c = _coord(store)  # a new broker process over the same store
        assert c.heartbeat("g", gen, member) == 0
        code, assignment, _ = await c.sync("g", gen, member, {})
        assert (code, assignment) == (0, b"plan")
        assert c.group("g").phase is GroupPhase.STABLE

    asyncio.run(second())


def test_rejects_bad_joins(store: GroupStore) -> None:
    async def run() -> None:
        c = _coord(store)
        assert (await _join(c, session_ms=10)).error == E.InvalidSessionTimeout.errno
        assert (await _join(c, member="ghost")).error == E.UnknownMemberId.errno
        await _join(c)
        other = await _join(c, protos=[("sticky", b"")])
        assert other.error == E.InconsistentGroupProtocol.errno

    asyncio.run(run())


def test_member_that_does_not_rejoin_is_dropped_at_the_rebalance_timeout(store: GroupStore) -> None:
    async def run() -> None:
        c = _coord(store, delay_ms=50)
        a, b = await asyncio.gather(
            c.join("g", "", None, "a", "h", 6000, 200, "consumer", PROTOS),
            c.join("g", "", None, "b", "h", 6000, 200, "consumer", PROTOS),
        )
        leader = a if a.member_id == a.leader else b
        await c.sync("g", 1, leader.member_id, {a.member_id: b"A", b.member_id: b"B"})
        # Only a rejoins; b stays silent past the 200 ms rebalance timeout.
        again = await asyncio.wait_for(
            c.join("g", a.member_id, None, "a", "h", 6000, 200, "consumer", PROTOS), 5)
        assert again.error == 0 and again.generation == 2
        assert set(c.group("g").members) == {a.member_id}
        assert c.heartbeat("g", 1, b.member_id) == E.UnknownMemberId.errno

    asyncio.run(run())


def test_static_member_restart_fences_its_old_id(store: GroupStore) -> None:
    async def run() -> None:
        c = _coord(store)
        first = await c.join("g", "", "instance-1", "a", "h", 6000, 3000, "consumer", PROTOS)
        await c.sync("g", first.generation, first.member_id, {first.member_id: b"x"})
        second = await c.join("g", "", "instance-1", "a", "h", 6000, 3000, "consumer", PROTOS)
        assert second.error == 0 and second.member_id != first.member_id
        assert list(c.group("g").members) == [second.member_id]
        assert c.heartbeat("g", second.generation, first.member_id) == E.UnknownMemberId.errno

    asyncio.run(run())


def test_lookups_of_unknown_groups_are_not_remembered(store: GroupStore) -> None:
    c = _coord(store)
    for i in range(50):
        assert c.heartbeat(f"random-{i}", 1, "m") == E.UnknownMemberId.errno
        assert c.describe(f"other-{i}").members == {}
    assert c.groups == {}

"""Group membership conformance, on SQLite and on a real etcd (the same suite).

Each GroupMembership below has its own store handle, as a separate process would:
nothing is shared between "processes" but the metadata store itself.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from plait.groups import FencedCommitError
from plait.groups.membership import GroupMembership, live_members
from plait.meta.interface import MetaStore

TTL = 1.0  # etcd's minimum lease TTL with the test cluster's election timeout
PARTS = {"t": 4, "u": 2}


def counts(topic: str) -> int:
    return PARTS[topic]


def wait_until(pred: Callable[[], bool], timeout: float = 10.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)


def member(store: MetaStore, group: str) -> GroupMembership:
    return GroupMembership(store, group, counts, session_timeout_s=TTL)


def owned(m: GroupMembership, mid: str) -> list[tuple[str, int]]:
    return sorted(m.current(mid)[1])


def test_join_rebalance_and_leave(open_store, group):
    a, b = member(open_store(), group), member(open_store(), group)
    try:
        ida = a.join(["t"])
        gen1, parts = a.current(ida)
        assert sorted(parts) == [("t", p) for p in range(4)]
        idb = b.join(["t"])
        # b returns once a generation with b is stored; a adopts it from its watch.
        wait_until(lambda: a.generation == b.generation, what="a to adopt b's join")
        assert a.generation > gen1
        both = owned(a, ida) + owned(b, idb)
        assert sorted(both) == [("t", p) for p in range(4)]
        assert not set(owned(a, ida)) & set(owned(b, idb))
        assert len(owned(a, ida)) == len(owned(b, idb)) == 2
        gen2 = b.generation
        b.leave(idb)
        wait_until(lambda: a.generation > gen2, what="a to adopt b's leave")
        assert owned(a, ida) == [("t", p) for p in range(4)]
        assert set(live_members(a.meta, group)) == {ida}
    finally:
        a.close()
        b.close()


def test_subscription_change_reassigns(open_store, group):
    a, b = member(open_store(), group), member(open_store(), group)
    try:
        ida = a.join(["t"])
        idb = b.join(["t"])
        b.update(idb, ["t", "u"])
        wait_until(lambda: a.generation == b.generation, what="a to adopt the update")
        # u has one subscriber (b): it gets both partitions; t stays split.
        assert [tp for tp in owned(b, idb) if tp[0] == "u"] == [("u", 0), ("u", 1)]
        assert not [tp for tp in owned(a, ida) if tp[0] == "u"]
    finally:
        a.close()
        b.close()


def test_expired_member_is_removed_and_its_late_commit_fenced(open_store, group):
    a, b = member(open_store(), group), member(open_store(), group)
    try:
        ida = a.join(["t"])
        idb = b.join(["t"])
        wait_until(lambda: a.generation == b.generation, what="a to adopt b's join")
        zombie_gen = a.generation
        a_parts = owned(a, ida)
        a.store.commit_offsets(group, zombie_gen, {tp: (10, "") for tp in a_parts})
        a.abandon()  # a freezes: no more heartbeats, no more watches
        started = time.monotonic()
        wait_until(lambda: owned(b, idb) == [("t", p) for p in range(4)], timeout=15,
                   what="b to take over after a's lease expired")
        # Not before the lease could have expired (SQLite TTLs are exact, etcd's >= 1 s).
        assert time.monotonic() - started >= TTL * 0.5
        assert ida not in live_members(b.meta, group)
        assert b.generation > zombie_gen
        with pytest.raises(FencedCommitError) as info:
            a.store.commit_offsets(group, zombie_gen, {a_parts[0]: (3, "")})
        assert info.value.current == b.generation
        # The zombie's commit changed nothing: the offset did not go backwards.
        assert b.store.fetch_offsets(group, [a_parts[0]]) == {a_parts[0]: (10, "")}
        b.store.commit_offsets(group, b.generation, {a_parts[0]: (11, "")})
        assert b.store.fetch_offsets(group, [a_parts[0]]) == {a_parts[0]: (11, "")}
    finally:
        a.close()
        b.close()


def test_process_whose_lease_expired_rejoins_under_a_new_generation(open_store, group):
    store = open_store()
    a = member(store, group)
    try:
        ida = a.join(["t"])
        gen = a.generation
        store.lease_revoke(a._lease)  # as if the lease expired while a was cut off
        wait_until(lambda: a.generation > gen and ida in live_members(store, group),
                   what="a to rejoin with a fresh lease")
        assert owned(a, ida) == [("t", p) for p in range(4)]
        with pytest.raises(FencedCommitError):
            a.store.commit_offsets(group, gen, {("t", 0): (1, "")})
    finally:
        a.close()


def test_static_member_replaces_its_previous_incarnation_at_once(open_store, group):
    a = member(open_store(), group)
    b = member(open_store(), group)
    try:
        a.join(["t"], member_id="worker-1")
        old_gen = a.generation
        a.abandon()  # crashed; its lease is still alive for up to TTL
        b.join(["t"], member_id="worker-1")  # the restarted process, same static id
        assert b.generation > old_gen  # a new incarnation is a new generation: old one fenced
        assert owned(b, "worker-1") == [("t", p) for p in range(4)]
        assert set(live_members(b.meta, group)) == {"worker-1"}
    finally:
        a.close()
        b.close()


def test_commits_never_go_backwards_across_rebalances(open_store, group):
    """Members commit increasing offsets while others join and leave; every commit
    either lands (and is >= what was there) or is fenced."""
    coords = [member(open_store(), group) for _ in range(3)]
    ids: list[str | None] = [None, None, None]
    progress = {("t", p): 0 for p in range(4)}
    history: dict[tuple[str, int], list[int]] = {tp: [] for tp in progress}
    fenced = 0
    try:
        ids[0] = coords[0].join(["t"])
        for step in range(12):
            if step == 3:
                ids[1] = coords[1].join(["t"])
            if step == 6:
                ids[2] = coords[2].join(["t"])
            if step == 9:
                coords[1].leave(ids[1])  # type: ignore[arg-type]
                ids[1] = None
            for c, mid in zip(coords, ids):
                if mid is None:
                    continue
                gen, parts = c.current(mid)
                offsets = {}
                for tp in parts:
                    # resume from the committed offset, as a consumer does
                    got = c.store.fetch_offsets(group, [tp])
                    offsets[tp] = (got[tp][0] if got else 0) + 5
                try:
                    c.store.commit_offsets(group, gen, {tp: (o, "") for tp, o in offsets.items()})
                except FencedCommitError:
                    fenced += 1
                for tp, (off, _) in coords[0].store.fetch_offsets(group).items():
                    history[tp].append(off)
        for tp, seen in history.items():
            assert seen == sorted(seen), f"{tp} went backwards: {seen}"
            assert seen and seen[-1] > 0
    finally:
        for c in coords:
            c.close()


def test_commits_of_more_partitions_than_one_etcd_txn_allows(open_store, group):
    """etcd caps a txn at 128 operations; a 300-partition commit still lands, fenced."""
    a = GroupMembership(open_store(), group, lambda t: 300, session_timeout_s=TTL)
    try:
        mid = a.join(["wide"])
        gen, parts = a.current(mid)
        assert len(parts) == 300
        a.store.commit_offsets(group, gen, {tp: (tp[1] + 1, "") for tp in parts})
        stored = a.store.fetch_offsets(group)
        assert {tp: off for tp, (off, _) in stored.items()} == {tp: tp[1] + 1 for tp in parts}
        with pytest.raises(FencedCommitError):
            a.store.commit_offsets(group, gen - 1, {tp: (0, "") for tp in parts})
        assert a.store.fetch_offsets(group) == stored
    finally:
        a.close()

"""The MetaStore conformance suite: every backend must pass every test here.

A backend's test module does ``from .conformance import *`` and defines two fixtures:
``meta_url`` (a URL ``open_meta`` accepts, also opened by child processes) and
``store`` (an open store on that URL). Tests keep to their own key prefix (``ns``)
so one server can be shared by a whole module.
"""

from __future__ import annotations

import multiprocessing
import time
import uuid

import pytest

from plait.meta.errors import LeaseNotFoundError, TxnError, WatchCancelledError
from plait.meta.interface import (
    Compare,
    CompareOp,
    CompareTarget,
    Delete,
    EventType,
    Get,
    KeyValue,
    MetaStore,
    Put,
    WatchEvent,
)
from plait.meta.url import open_meta


@pytest.fixture
def ns() -> bytes:
    """A fresh key prefix per test."""
    return f"/plait/test/{uuid.uuid4().hex}/".encode()


def collect(watch: object, n: int, timeout: float = 10.0) -> list[WatchEvent]:
    """Gather exactly ``n`` events (or fail listing what arrived)."""
    got: list[WatchEvent] = []
    deadline = time.monotonic() + timeout
    while len(got) < n and time.monotonic() < deadline:
        got.extend(watch.get(timeout=0.2))  # type: ignore[attr-defined]
    assert len(got) >= n, (
        f"expected {n} events within {timeout}s, got {len(got)}: {got}"
    )
    return got


def wait_until(cond: object, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():  # type: ignore[operator]
            return True
        time.sleep(0.05)
    return bool(cond())  # type: ignore[operator]


# -- get / put / delete / range ----------------------------------------------------


def test_store_is_a_metastore(store: MetaStore) -> None:
    assert isinstance(store, MetaStore)


def test_put_get_tracks_revisions_and_versions(store: MetaStore, ns: bytes) -> None:
    k = ns + b"k"
    before = store.revision
    r1 = store.put(k, b"one")
    assert r1 > before
    assert store.get(k) == KeyValue(k, b"one", r1, r1, 1, 0)
    r2 = store.put(k, b"two")
    assert r2 == r1 + 1
    assert store.get(k) == KeyValue(k, b"two", r1, r2, 2, 0)
    assert store.revision == r2


def test_missing_key_and_noop_delete(store: MetaStore, ns: bytes) -> None:
    assert store.get(ns + b"nope") is None
    rev = store.revision
    assert store.delete(ns + b"nope") == 0
    assert store.delete(ns + b"nope/", prefix=True) == 0
    assert store.revision == rev, (
        "a delete that matched nothing must not bump the revision"
    )


def test_delete_then_recreate_resets_history(store: MetaStore, ns: bytes) -> None:
    k = ns + b"k"
    store.put(k, b"a")
    store.put(k, b"b")
    assert store.delete(k) == 1
    assert store.get(k) is None
    r = store.put(k, b"c")
    assert store.get(k) == KeyValue(k, b"c", r, r, 1, 0)


def test_range_is_sorted_and_bounded_by_prefix(store: MetaStore, ns: bytes) -> None:
    keys = [ns + b"a/" + s for s in (b"\xff\x00", b"b", b"a", b"\x00", b"ab", b"\xff")]
    for i, k in enumerate(keys):
        store.put(k, str(i).encode())
    store.put(ns + b"a", b"outside")  # the prefix itself without the slash
    store.put(ns + b"b/a", b"outside")
    got = store.range(ns + b"a/")
    assert [kv.key for kv in got] == sorted(keys)
    assert {kv.key: kv.value for kv in got} == {
        k: str(i).encode() for i, k in enumerate(keys)
    }
    assert [kv.key for kv in store.range(ns + b"a/\xff")] == [
        ns + b"a/\xff",
        ns + b"a/\xff\x00",
    ]
    assert store.range(ns + b"zzz") == []


def test_delete_prefix_counts_and_spares_neighbours(
    store: MetaStore, ns: bytes
) -> None:
    for s in (b"d/1", b"d/2", b"d/3/x", b"e/1"):
        store.put(ns + s, b"v")
    assert store.delete(ns + b"d/", prefix=True) == 3
    assert [kv.key for kv in store.range(ns)] == [ns + b"e/1"]


# -- transactions ------------------------------------------------------------------


def _fixture_key(store: MetaStore, k: bytes) -> KeyValue:
    store.put(k, b"m")
    store.put(k, b"m")
    kv = store.get(k)
    assert kv is not None and kv.version == 2
    return kv


def _operand(kv: KeyValue, target: CompareTarget, rel: int) -> bytes | int:
    """The actual value shifted by ``rel`` (for bytes: b"l" < b"m" < b"n")."""
    if target is CompareTarget.VALUE:
        return {0: b"m", 1: b"n", -1: b"l"}[rel]
    actual = {
        CompareTarget.VERSION: kv.version,
        CompareTarget.CREATE_REVISION: kv.create_revision,
        CompareTarget.MOD_REVISION: kv.mod_revision,
    }[target]
    return actual + rel


@pytest.mark.parametrize("target", list(CompareTarget), ids=lambda t: t.value)
@pytest.mark.parametrize(
    ("op", "rel", "expected"),
    [
        ("==", 0, True),
        ("==", 1, False),
        ("!=", 0, False),
        ("!=", 1, True),
        ("<", 1, True),
        ("<", 0, False),
        ("<", -1, False),
        (">", -1, True),
        (">", 0, False),
        (">", 1, False),
    ],
)
def test_compare_every_target_and_op(
    store: MetaStore,
    ns: bytes,
    target: CompareTarget,
    op: CompareOp,
    rel: int,
    expected: bool,
) -> None:
    k = ns + b"k"
    kv = _fixture_key(store, k)
    res = store.txn(
        [Compare(k, target, op, _operand(kv, target, rel))],
        [Get(k)],
        [Get(ns + b"none")],
    )
    assert res.succeeded is expected
    assert res.responses == [[kv] if expected else []]


def test_compare_on_missing_key(store: MetaStore, ns: bytes) -> None:
    k = ns + b"missing"
    assert store.txn([Compare.absent(k)]).succeeded
    assert store.txn([Compare.version(k, "==", 0)]).succeeded
    assert store.txn([Compare.mod_revision(k, "<", 1)]).succeeded
    # a VALUE compare on a missing key is false whatever the operator (etcd's rule)
    assert not store.txn([Compare.value(k, "==", b"")]).succeeded
    assert not store.txn([Compare.value(k, "!=", b"x")]).succeeded


def test_txn_applies_ops_at_one_revision(store: MetaStore, ns: bytes) -> None:
    store.put(ns + b"old/1", b"x")
    store.put(ns + b"old/2", b"x")
    before = store.revision
    res = store.txn(
        [Compare.absent(ns + b"a")],
        [
            Put(ns + b"a", b"1"),
            Put(ns + b"b", b"2"),
            Delete(ns + b"old/", prefix=True),
            Get(ns, prefix=True),
        ],
    )
    assert res.succeeded
    assert res.revision == before + 1 == store.revision
    assert res.responses[0] is None and res.responses[1] is None
    assert res.responses[2] == 2
    seen = res.responses[3]
    assert isinstance(seen, list)
    assert [(kv.key, kv.value, kv.mod_revision) for kv in seen] == [
        (ns + b"a", b"1", res.revision),
        (ns + b"b", b"2", res.revision),
    ], "a Get later in the branch sees the branch's own writes"


def test_txn_failure_branch_applies_and_success_does_not(
    store: MetaStore, ns: bytes
) -> None:
    gen = ns + b"generation"
    store.put(gen, b"7")
    res = store.txn(
        [Compare.value(gen, "==", b"6")],
        [Put(ns + b"offset", b"100")],
        [Put(ns + b"fenced", b"yes"), Get(gen)],
    )
    assert not res.succeeded
    assert store.get(ns + b"offset") is None
    fenced = store.get(ns + b"fenced")
    assert fenced is not None and fenced.value == b"yes"
    got = res.responses[1]
    assert isinstance(got, list) and got[0].value == b"7"


def test_txn_needs_every_compare(store: MetaStore, ns: bytes) -> None:
    store.put(ns + b"a", b"1")
    store.put(ns + b"b", b"2")
    both = [Compare.value(ns + b"a", "==", b"1"), Compare.value(ns + b"b", "==", b"2")]
    one_wrong = [
        Compare.value(ns + b"a", "==", b"1"),
        Compare.value(ns + b"b", "==", b"3"),
    ]
    assert store.txn(both).succeeded
    assert not store.txn(one_wrong, [Put(ns + b"c", b"x")]).succeeded
    assert store.get(ns + b"c") is None


def test_txn_without_writes_keeps_revision(store: MetaStore, ns: bytes) -> None:
    store.put(ns + b"a", b"1")
    rev = store.revision
    res = store.txn([Compare.value(ns + b"a", "==", b"1")], [Get(ns + b"a")])
    assert res.revision == rev == store.revision


def test_txn_rejects_two_writes_to_one_key(store: MetaStore, ns: bytes) -> None:
    with pytest.raises(TxnError):
        store.txn([], [Put(ns + b"a", b"1"), Put(ns + b"a", b"2")])
    with pytest.raises(TxnError):
        store.txn([], [Put(ns + b"a/x", b"1"), Delete(ns + b"a/", prefix=True)])
    assert store.get(ns + b"a") is None and store.get(ns + b"a/x") is None


def test_txn_rejects_mistyped_operand(store: MetaStore, ns: bytes) -> None:
    with pytest.raises(TxnError):
        store.txn([Compare(ns + b"a", CompareTarget.VERSION, "==", b"1")])
    with pytest.raises(TxnError):
        store.txn([Compare(ns + b"a", CompareTarget.VALUE, "==", 1)])


def _cas_worker(url: str, key: bytes, n: int) -> None:
    store = open_meta(url)
    try:
        done = 0
        while done < n:
            kv = store.get(key)
            assert kv is not None
            nxt = str(int(kv.value) + 1).encode()
            if store.txn(
                [Compare.mod_revision(key, "==", kv.mod_revision)], [Put(key, nxt)]
            ).succeeded:
                done += 1
    finally:
        store.close()


def test_compare_and_swap_from_four_processes_loses_nothing(
    store: MetaStore, meta_url: str, ns: bytes
) -> None:
    key, per_proc, procs = ns + b"counter", 25, 4
    store.put(key, b"0")
    ctx = multiprocessing.get_context("spawn")
    workers = [
        ctx.Process(target=_cas_worker, args=(meta_url, key, per_proc))
        for _ in range(procs)
    ]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=120)
    assert [w.exitcode for w in workers] == [0] * procs
    kv = store.get(key)
    assert kv is not None
    assert kv.value == str(per_proc * procs).encode()
    assert kv.version == per_proc * procs + 1


# -- watches -----------------------------------------------------------------------


def _brief(events: list[WatchEvent]) -> list[tuple[EventType, bytes, bytes, int]]:
    return [(e.type, e.kv.key, e.kv.value, e.kv.mod_revision) for e in events]


def test_watch_sees_each_change_once_in_order(store: MetaStore, ns: bytes) -> None:
    watch = store.watch(ns)
    try:
        expected = []
        for i in range(10):
            r = store.put(ns + b"k%d" % (i % 3), b"v%d" % i)
            expected.append((EventType.PUT, ns + b"k%d" % (i % 3), b"v%d" % i, r))
        store.delete(ns + b"k0")
        r = store.revision
        expected.append((EventType.DELETE, ns + b"k0", b"", r))
        res = store.txn([], [Put(ns + b"t2", b"b"), Put(ns + b"t1", b"a")])
        expected += [
            (EventType.PUT, ns + b"t2", b"b", res.revision),
            (EventType.PUT, ns + b"t1", b"a", res.revision),
        ]
        got = collect(watch, len(expected))
        assert _brief(got) == expected
        assert watch.get(timeout=0.3) == [], "no duplicates after the last change"
        put = got[0].kv
        assert put.create_revision == put.mod_revision and put.version == 1
    finally:
        watch.cancel()


def test_watch_from_start_revision_replays_history(store: MetaStore, ns: bytes) -> None:
    r1 = store.put(ns + b"a", b"1")
    r2 = store.put(ns + b"a", b"2")
    r3 = store.put(ns + b"b", b"3")
    watch = store.watch(ns, start_revision=r2)
    try:
        r4 = store.put(ns + b"a", b"4")
        got = collect(watch, 3)
        assert [(e.kv.key, e.kv.value, e.kv.mod_revision) for e in got] == [
            (ns + b"a", b"2", r2),
            (ns + b"b", b"3", r3),
            (ns + b"a", b"4", r4),
        ]
        assert r1 < r2
        assert watch.get(timeout=0.2) == []
    finally:
        watch.cancel()


def test_watch_is_isolated_to_its_prefix(store: MetaStore, ns: bytes) -> None:
    watch = store.watch(ns + b"a/")
    try:
        store.put(ns + b"a", b"no")
        store.put(ns + b"b/x", b"no")
        store.put(ns + b"a0", b"no")
        r = store.put(ns + b"a/x", b"yes")
        got = collect(watch, 1)
        assert _brief(got) == [(EventType.PUT, ns + b"a/x", b"yes", r)]
        assert watch.get(timeout=0.3) == []
    finally:
        watch.cancel()


def test_cancelled_watch_delivers_nothing(store: MetaStore, ns: bytes) -> None:
    watch = store.watch(ns)
    store.put(ns + b"a", b"1")
    assert len(collect(watch, 1)) == 1
    watch.cancel()
    store.put(ns + b"a", b"2")
    time.sleep(0.1)
    with pytest.raises(WatchCancelledError):
        watch.get(timeout=0.2)
    assert list(watch) == [], "iterating a watch its owner cancelled ends quietly"


def _writer_proc(url: str, ns: bytes, n: int) -> None:
    store = open_meta(url)
    try:
        for i in range(n):
            store.put(ns + b"p/%03d" % i, b"%d" % i)
    finally:
        store.close()


def test_watch_sees_changes_made_by_another_process(
    store: MetaStore, meta_url: str, ns: bytes
) -> None:
    watch = store.watch(ns + b"p/")
    try:
        proc = multiprocessing.get_context("spawn").Process(
            target=_writer_proc, args=(meta_url, ns, 30)
        )
        proc.start()
        proc.join(timeout=60)
        assert proc.exitcode == 0
        got = collect(watch, 30)
        assert [e.kv.key for e in got] == [ns + b"p/%03d" % i for i in range(30)]
        revs = [e.kv.mod_revision for e in got]
        assert revs == sorted(revs) and len(set(revs)) == 30
        assert watch.get(timeout=0.3) == []
    finally:
        watch.cancel()


# -- leases ------------------------------------------------------------------------


def test_lease_expiry_deletes_keys_with_events(store: MetaStore, ns: bytes) -> None:
    lease = store.lease_grant(1)
    store.put(ns + b"member", b"alive", lease=lease)
    kv = store.get(ns + b"member")
    assert kv is not None and kv.lease == lease
    watch = store.watch(ns)
    try:
        got = collect(watch, 1, timeout=10)
        assert got[0].type is EventType.DELETE and got[0].kv.key == ns + b"member"
    finally:
        watch.cancel()
    assert store.get(ns + b"member") is None
    with pytest.raises(LeaseNotFoundError):
        store.lease_keepalive(lease)
    with pytest.raises(LeaseNotFoundError):
        store.put(ns + b"late", b"x", lease=lease)


def test_keepalive_extends_then_revoke_deletes(store: MetaStore, ns: bytes) -> None:
    lease = store.lease_grant(2)
    store.put(ns + b"a", b"1", lease=lease)
    store.put(ns + b"b", b"2", lease=lease)
    store.put(ns + b"plain", b"3")
    for _ in range(4):  # 3.2 s in all, well past the 2 s TTL
        time.sleep(0.8)
        store.lease_keepalive(lease)
    assert {kv.key for kv in store.range(ns)} == {ns + b"a", ns + b"b", ns + b"plain"}
    watch = store.watch(ns)
    try:
        store.lease_revoke(lease)
        got = collect(watch, 2)
        assert sorted((e.type, e.kv.key) for e in got) == [
            (EventType.DELETE, ns + b"a"),
            (EventType.DELETE, ns + b"b"),
        ]
    finally:
        watch.cancel()
    assert [kv.key for kv in store.range(ns)] == [ns + b"plain"]
    with pytest.raises(LeaseNotFoundError):
        store.lease_revoke(lease)


def test_unknown_lease_is_rejected(store: MetaStore, ns: bytes) -> None:
    with pytest.raises(LeaseNotFoundError):
        store.put(ns + b"a", b"1", lease=0x7FFF_0000_1234)
    with pytest.raises(LeaseNotFoundError):
        store.lease_keepalive(0x7FFF_0000_1234)
    assert store.get(ns + b"a") is None


__all__ = [name for name in dir() if name.startswith("test_")] + ["ns"]

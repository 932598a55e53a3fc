"""Offset commits on a 3-member etcd cluster while its leader is SIGKILLed.

The promise under test (DESIGN.md, "consistent offsets"): a committed offset never goes
backwards and a fenced member cannot commit, even across a leader election.
"""

from __future__ import annotations

import threading
import time

from plait.meta.errors import MetaUnavailableError
from plait.meta.interface import Compare, EventType, MetaStore, Put
from plait.meta.url import open_meta

try:
    from tests.servers.etcd import EtcdCluster
except ImportError:
    from servers.etcd import EtcdCluster

PARTITIONS = 4
NS = b"/plait/groups/g1/"
GEN = NS + b"generation"


def offset_key(p: int) -> bytes:
    return NS + b"offsets/%d" % p


def commit(store: MetaStore, generation: bytes, n: int) -> bool:
    """One fenced commit of offset ``n`` for every partition."""
    res = store.txn(
        [Compare.value(GEN, "==", generation)],
        [Put(offset_key(p), b"%d" % n) for p in range(PARTITIONS)],
    )
    return res.succeeded


class Writer(threading.Thread):
    """Commits 1, 2, 3, ... until stopped; an unknown outcome is resolved by retrying
    the same offsets, which is safe because rewriting offset n is idempotent."""

    def __init__(self, store: MetaStore) -> None:
        super().__init__(daemon=True)
        self.store = store
        self.committed = 0
        self.unavailable = 0
        self.stop = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            while not self.stop.is_set():
                n = self.committed + 1
                try:
                    ok = commit(self.store, b"1", n)
                except MetaUnavailableError:
                    self.unavailable += 1
                    time.sleep(0.05)
                    continue
                assert ok, (
                    "the writer holds the current generation; its commit must succeed"
                )
                self.committed = n
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread, which re-raises
            self.error = exc


def wait_for(cond: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():  # type: ignore[operator]
        assert time.monotonic() < deadline, (
            f"timed out after {timeout}s waiting for {what}"
        )
        time.sleep(0.02)


def test_commits_survive_leader_kill_and_fencing_holds(etcd3: EtcdCluster) -> None:
    store = open_meta(etcd3.url)
    observer = open_meta(etcd3.url)
    store.put(GEN, b"1")
    watch = observer.watch(NS + b"offsets/")
    writer = Writer(store)
    writer.start()
    try:
        wait_for(lambda: writer.committed >= 30, 20, "30 commits before the fault")
        killed = etcd3.kill_leader()
        at_kill = writer.committed
        wait_for(
            lambda: writer.committed >= at_kill + 30,
            30,
            "30 commits after the leader was killed",
        )
        new_leader = etcd3.leader()
        assert new_leader is not killed
    finally:
        writer.stop.set()
        writer.join(timeout=30)
    assert writer.error is None, repr(writer.error)
    final = writer.committed

    # every partition's history, as the watch saw it, only moves forward
    seen: dict[bytes, list[int]] = {offset_key(p): [] for p in range(PARTITIONS)}
    deadline = time.monotonic() + 20
    while (
        any(not v or v[-1] < final for v in seen.values())
        and time.monotonic() < deadline
    ):
        for e in watch.get(timeout=0.2):
            assert e.type is EventType.PUT
            seen[e.kv.key].append(int(e.kv.value))
    watch.cancel()
    for key, values in seen.items():
        assert values, f"no events for {key!r}"
        assert values == sorted(values), f"offset of {key!r} went backwards: {values}"
        assert values[-1] == final
        assert values[0] == 1, "the watch must not lose the first commits"
    for p in range(PARTITIONS):
        kv = store.get(offset_key(p))
        assert kv is not None and kv.value == b"%d" % final

    # a rebalance bumps the generation: the zombie writer's commit is rejected
    store.put(GEN, b"2")
    assert not commit(store, b"1", final + 100)
    assert all(
        store.get(offset_key(p)).value == b"%d" % final for p in range(PARTITIONS)
    )  # type: ignore[union-attr]
    assert commit(store, b"2", final + 1)

    # a key on an expired lease disappears (no keepalive: the member died)
    lease = store.lease_grant(1)
    store.put(NS + b"members/zombie", b"x", lease=lease)
    wait_for(
        lambda: store.get(NS + b"members/zombie") is None, 15, "the lease to expire"
    )

    # the killed member rejoins and serves the committed state
    etcd3.restart(killed)
    rejoined = open_meta(f"etcd://{killed.endpoint}")
    wait_for(
        lambda: (
            (kv := rejoined.get(offset_key(0))) is not None
            and kv.value == b"%d" % (final + 1)
        ),
        15,
        "the restarted member to catch up",
    )
    for s in (store, observer, rejoined):
        s.close()

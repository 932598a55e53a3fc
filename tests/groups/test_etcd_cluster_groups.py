"""A consumer group on a 3-member etcd cluster while its leader is SIGKILLed.

Two members (separate store handles, as separate processes) commit offsets through
the group API while the etcd leader dies. The promise: commits resume after the
election, and no committed offset ever goes backwards (an observer replays every
change to the offsets folder, in revision order, through a watch).
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Iterator

import pytest

from plait.groups import FencedCommitError
from plait.groups.membership import GroupMembership
from plait.groups.store import offsets_prefix
from plait.meta.errors import MetaError
from plait.meta.interface import EventType
from plait.meta.url import open_meta

try:
    from tests.servers.etcd import EtcdCluster, etcd_cluster
except ImportError:
    from servers.etcd import EtcdCluster, etcd_cluster

GROUP = "cluster-group"
TTL = 3.0  # longer than an election, so members keep their leases through it


@pytest.fixture(scope="module")
def etcd3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdCluster]:
    with etcd_cluster(tmp_path_factory.mktemp("etcd3"), 3) as cluster:
        yield cluster


class Committer(threading.Thread):
    """Commits ever larger offsets for whatever its member owns; logs successes by time."""

    def __init__(self, member: GroupMembership, member_id: str, counter: Iterator[int]) -> None:
        super().__init__(daemon=True)
        self.member, self.member_id, self.counter = member, member_id, counter
        self.stop = threading.Event()
        self.ok: list[float] = []
        self.fenced = 0
        self.errors: list[BaseException] = []
        self.meta_errors: list[tuple[float, str]] = []

    def run(self) -> None:
        while not self.stop.is_set():
            gen, parts = self.member.current(self.member_id)
            if not parts:
                time.sleep(0.01)
                continue
            n = next(self.counter)
            try:
                self.member.store.commit_offsets(GROUP, gen, {tp: (n, "") for tp in parts})
                self.ok.append(time.monotonic())
            except FencedCommitError:
                self.fenced += 1  # a rebalance raced us: adopt and go on
            except MetaError as exc:
                self.meta_errors.append((time.monotonic(), repr(exc)[:200]))
                time.sleep(0.02)  # no leader right now (outcome unknown): try again
            except BaseException as exc:  # noqa: BLE001 - re-raised by the test thread
                self.errors.append(exc)
                return


def test_group_commits_survive_leader_sigkill_and_never_go_back(etcd3):
    stores = [open_meta(etcd3.url) for _ in range(3)]
    members = [GroupMembership(s, GROUP, lambda t: 6, session_timeout_s=TTL) for s in stores[:2]]
    watch = stores[2].watch(offsets_prefix(GROUP))
    counter = itertools.count(1)
    committers: list[Committer] = []
    try:
        ids = [m.join(["t"]) for m in members]
        committers = [Committer(m, i, counter) for m, i in zip(members, ids)]
        for c in committers:
            c.start()
        time.sleep(1.0)
        before = sum(len(c.ok) for c in committers)
        assert before > 10, "commits did not flow before the fault"
        killed_at = time.monotonic()
        etcd3.kill_leader()
        # A request caught by the election may hang until etcd times it out (seconds):
        # wait for commits to flow again rather than for a fixed time.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if sum(1 for c in committers for t in c.ok if t > killed_at) > 50:
                break
            time.sleep(0.2)
        for c in committers:
            c.stop.set()
            c.join(timeout=10)
            assert not c.errors, c.errors
        after = [t for c in committers for t in c.ok if t > killed_at]
        assert len(after) > 50, f"commits did not resume after the election: {[c.meta_errors[-3:] for c in committers]}"
        # Both members kept their leases through the election: still one generation each.
        assert members[0].generation == members[1].generation
        # Replay every committed change in revision order: per partition, never backwards.
        last: dict[bytes, int] = {}
        puts = 0
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            events = watch.get(timeout=0.5)
            if not events:
                break
            for ev in events:
                assert ev.type is EventType.PUT
                off = json.loads(ev.kv.value)["offset"]
                assert off >= last.get(ev.kv.key, 0), f"{ev.kv.key!r} went back to {off}"
                last[ev.kv.key] = off
                puts += 1
        assert len(last) == 6 and puts >= before
    finally:
        for c in committers:
            c.stop.set()
        watch.cancel()
        for m in members:
            m.close()
        for s in stores:
            s.close()

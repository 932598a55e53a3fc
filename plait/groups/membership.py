"""Group membership across processes: leased member keys, generations stored by CAS.

Layout (beside GroupStore's keys, the same in SQLite and etcd)::

    /plait/groups/<group>/members/<member-id>   JSON {"topics", "incarnation"}, on a lease

Protocol. Each process holds one lease per group (TTL = session timeout) and keeps it
alive from a background thread every TTL/3; each of its members puts its key with that
lease. A process that stops heart-beating (crash, freeze, network partition) loses the
lease after the TTL and the store deletes its member keys. Every process watches the
members folder and the state key and *reconciles*: when the live member keys differ
from the members recorded in the stored state, it computes the range assignment for
the live set and stores generation + 1 with a compare-and-swap on the generation key
(GroupStore.save). The assignment is a pure function of the live set, so whichever
process wins the CAS, the stored answer is the same; losers re-read and adopt it.
Every process adopts the stored generation and assignment for its own members.

Fencing. Offset commits carry the committer's generation and are applied only while
it is the stored one (one transaction). A member whose lease expired is dropped from
the live set, the group moves to a new generation, and its late commits fail with
FencedCommitError; so a revoked partition's committed offset cannot be rewound by a
zombie. Revoked partitions: a member drops them when it adopts the new generation (at
its next poll); a new owner may begin reading before that, so two members can read one
partition for at most one poll interval of the old owner (or one session timeout if
the old owner is frozen), and only the new owner's commits land. Pipeline steps close
the remaining gap for their outputs with producer epochs (see plait.functions.step).
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import quote, unquote

from plait.errors import PlaitError
from plait.groups.assign import (
    TopicPartition,
    decode_assignment,
    encode_assignment,
    range_assign,
)
from plait.groups.errors import GroupJoinTimeoutError
from plait.groups.store import GroupState, GroupStore, _group_prefix, state_key
from plait.meta.errors import LeaseNotFoundError, MetaError, WatchCancelledError
from plait.meta.interface import MetaStore, Watch

log = logging.getLogger(__name__)

PROTOCOL = "plait-range"
DEFAULT_SESSION_TIMEOUT_S = 10.0
_SWEEP_S = 1.0  # reconcile at least this often even when no watch event arrives


def members_prefix(group: str) -> bytes:
    return _group_prefix(group) + b"members/"


def member_key(group: str, member_id: str) -> bytes:
    return members_prefix(group) + quote(member_id, safe="").encode()


def live_members(meta: MetaStore, group: str) -> dict[str, dict[str, Any]]:
    """Member id -> {"topics", "incarnation"} of every member whose lease is alive."""
    prefix = members_prefix(group)
    out: dict[str, dict[str, Any]] = {}
    for kv in meta.range(prefix):
        doc = json.loads(kv.value)
        out[unquote(kv.key[len(prefix) :].decode())] = {
            "topics": sorted(doc.get("topics", [])),
            "incarnation": str(doc.get("incarnation", "")),
        }
    return out


class GroupMembership:
    """This process's members of one group, and the group's adopted generation.

    ``partition_count(topic)`` sizes the assignment; it may raise PlaitError for a topic
    this process does not know (that topic is then left out). Thread-safe.
    """

    def __init__(
        self,
        meta: MetaStore,
        group: str,
        partition_count: Callable[[str], int],
        *,
        session_timeout_s: float = DEFAULT_SESSION_TIMEOUT_S,
        join_timeout_s: float | None = None,
    ) -> None:
        self.meta = meta
        self.group = group
        self.store = GroupStore(meta)
        self.session_timeout_s = session_timeout_s
        self.join_timeout_s = join_timeout_s or max(10.0, 2 * session_timeout_s)
        self._partition_count = partition_count
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._local: dict[str, dict[str, Any]] = {}
        self._assignment: dict[str, list[TopicPartition]] = {}
        self._state: GroupState | None = None
        self.generation = self.store.generation(group)
        self._lease = 0
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    # Members ------------------------------------------------------------------------
    def join(self, topics: Iterable[str], member_id: str | None = None) -> str:
        """Register a member and return once a stored generation includes it.

        A given ``member_id`` is static membership: it replaces a previous incarnation
        of the same id (say, before a crash) at once instead of after its lease expires.
        """
        mid = member_id or f"plait-{uuid.uuid4().hex[:12]}"
        with self._lock:
            self._ensure_started()
            self._local[mid] = {"topics": sorted(set(topics)), "incarnation": uuid.uuid4().hex[:12]}
            self._put_member(mid)
        self._await(mid, "join", lambda st: st.members.get(mid) == self._local.get(mid))
        return mid

    def update(self, member_id: str, topics: Iterable[str]) -> None:
        with self._lock:
            self._local[member_id] = {**self._local[member_id], "topics": sorted(set(topics))}
            self._put_member(member_id)
        self._await(
            member_id, "update", lambda st: st.members.get(member_id) == self._local.get(member_id)
        )

    def leave(self, member_id: str) -> None:
        with self._lock:
            if self._local.pop(member_id, None) is None:
                return
            self.meta.delete(member_key(self.group, member_id))
        self._await(member_id, "leave", lambda st: member_id not in st.members)

    def current(self, member_id: str) -> tuple[int, list[TopicPartition]]:
        """The adopted generation and ``member_id``'s partitions in it."""
        with self._lock:
            return self.generation, list(self._assignment.get(member_id, []))

    def state(self) -> GroupState | None:
        with self._lock:
            return self._state

    # Reconciliation -----------------------------------------------------------------
    def reconcile(self) -> GroupState | None:
        """Store a new generation if the live members differ from the stored ones; adopt."""
        with self._lock:
            state: GroupState | None = None
            for _ in range(20):
                members = live_members(self.meta, self.group)
                state = self.store.load(self.group)
                gen = state.generation if state is not None else self.store.generation(self.group)
                if state is not None and state.members == members:
                    break
                if state is None and not members:
                    break
                proposal = self._compute(members, gen + 1)
                if self.store.save(self.group, proposal, gen):
                    state = proposal
                    break
            if state is not None:
                self._adopt(state)
            return state

    def _compute(self, members: dict[str, dict[str, Any]], generation: int) -> GroupState:
        subs = {m: set(info["topics"]) for m, info in members.items()}
        counts: dict[str, int] = {}
        for topic in sorted(set().union(*subs.values()) if subs else set()):
            try:
                counts[topic] = self._partition_count(topic)
            except PlaitError as exc:  # unknown here: leave it out rather than stall the group
                log.warning("group %s: cannot size topic %r: %s", self.group, topic, exc)
        assignment = range_assign(subs, counts)
        return GroupState(
            generation=generation,
            protocol_type="consumer",
            protocol=PROTOCOL,
            leader=min(members) if members else None,
            members=members,
            assignments={m: encode_assignment(tps) for m, tps in assignment.items()},
        )

    def _adopt(self, state: GroupState) -> None:
        if self._state is not None and state.generation < self._state.generation:
            return  # a slow reader handed us an older state: generations never go back
        self._state = state
        self.generation = state.generation
        if state.protocol == PROTOCOL:
            self._assignment = {m: decode_assignment(a) for m, a in state.assignments.items()}
        else:
            self._assignment = {}
        self._changed.notify_all()

    def _await(self, member_id: str, what: str, done: Callable[[GroupState], bool]) -> None:
        deadline = time.monotonic() + self.join_timeout_s
        while True:
            try:
                state = self.reconcile()
            except MetaError as exc:  # etcd electing a leader: retry until the deadline
                log.debug("group %s: reconcile failed: %s", self.group, exc)
                state = None
            if state is not None and done(state):
                return
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise GroupJoinTimeoutError(self.group, member_id, what, self.join_timeout_s)
            with self._lock:
                self._changed.wait(min(0.05, remaining))

    # Lease and background thread ----------------------------------------------------
    def _put_member(self, member_id: str) -> None:
        doc = json.dumps(self._local[member_id], sort_keys=True).encode()
        self.meta.put(member_key(self.group, member_id), doc, lease=self._lease)

    def _ensure_started(self) -> None:
        if not self._lease:
            self._lease = self.meta.lease_grant(self.session_timeout_s)
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(
                target=self._run, name=f"plait-group-{self.group}", daemon=True
            )
            self._thread.start()

    def _renew_lost_lease(self) -> None:
        """Our lease expired (we were frozen or cut off): rejoin every local member.

        New incarnations force a new generation, so anything done under the old one is
        fenced; the consumers adopt the new generation at their next poll.
        """
        with self._lock:
            self._lease = self.meta.lease_grant(self.session_timeout_s)
            for mid in self._local:
                self._local[mid] = {**self._local[mid], "incarnation": uuid.uuid4().hex[:12]}
                self._put_member(mid)
        log.warning("group %s: lease expired, members rejoined with a new lease", self.group)

    def _open_watches(self) -> tuple[Watch, Watch]:
        return (
            self.meta.watch(members_prefix(self.group)),
            self.meta.watch(state_key(self.group)),
        )

    def _run(self) -> None:
        interval = max(0.05, self.session_timeout_s / 3)
        next_keepalive = time.monotonic() + interval
        next_sweep = 0.0
        watches: tuple[Watch, Watch] | None = None
        while not self._stop.is_set():
            try:
                if watches is None:
                    watches = self._open_watches()
                    next_sweep = 0.0
                changed = bool(watches[0].get(timeout=0.05)) | bool(watches[1].get(timeout=0))
                now = time.monotonic()
                if now >= next_keepalive and self._lease:
                    try:
                        self.meta.lease_keepalive(self._lease)
                    except LeaseNotFoundError:
                        self._renew_lost_lease()
                        changed = True
                    next_keepalive = now + interval
                if changed or now >= next_sweep:
                    self.reconcile()
                    next_sweep = now + _SWEEP_S
            except WatchCancelledError:
                if self._stop.is_set():
                    break
                watches = None  # compacted or the store failed over: reopen and re-read
            except MetaError as exc:
                if self._stop.is_set():
                    break
                log.debug("group %s: metadata store unavailable: %s", self.group, exc)
                self._stop.wait(0.1)
        if watches is not None:
            for w in watches:
                w.cancel()

    def abandon(self) -> None:
        """Stop heart-beating without leaving, as a crashed or frozen process would.

        The lease expires after the session timeout and the other members rebalance.
        """
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
        self._thread = None

    def close(self) -> None:
        """Leave with every local member now (revoke the lease) so the rest rebalance."""
        self.abandon()
        with self._lock:
            lease, self._lease = self._lease, 0
            had_members = bool(self._local)
            self._local.clear()
        if lease:
            try:
                self.meta.lease_revoke(lease)
                if had_members:
                    self.reconcile()
            except MetaError as exc:  # already expired, or the store is gone: nothing to do
                log.debug("group %s: close: %s", self.group, exc)

"""The consumer-group coordinator: Kafka's classic rebalance protocol on asyncio.

States follow Kafka's GroupCoordinator: Empty → PreparingRebalance (members join) →
CompletingRebalance (the leader's SyncGroup carries the assignment) → Stable. A join or
leave, or a member whose session expires, sends a group back to PreparingRebalance.
Assignment is client-side (range, roundrobin, cooperative-sticky all work): the broker
only relays the leader's plan.

Every generation change is saved through GroupStore with a compare-and-swap on the
generation, and offsets are committed fenced by it, so a restarted broker resumes each
group at the generation its members hold, and a zombie from an older generation cannot
commit. All methods run on the event loop thread; nothing here blocks except the
metadata-store writes, which are local SQLite transactions.
"""

from __future__ import annotations

import asyncio
import base64
import enum
import logging
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from plait.broker import errors as E
from plait.groups import GroupState, GroupStore

log = logging.getLogger(__name__)


class GroupPhase(str, enum.Enum):
    EMPTY = "Empty"
    PREPARING = "PreparingRebalance"
    COMPLETING = "CompletingRebalance"
    STABLE = "Stable"
    DEAD = "Dead"


@dataclass(slots=True)
class JoinResult:
    error: int
    generation: int = -1
    protocol_type: str | None = None
    protocol: str | None = None
    leader: str = ""
    member_id: str = ""
    members: list[tuple[str, str | None, bytes]] = field(default_factory=list)


@dataclass(slots=True)
class Member:
    member_id: str
    client_id: str
    client_host: str
    session_timeout_ms: int
    rebalance_timeout_ms: int
    protocol_type: str
    protocols: list[tuple[str, bytes]]
    group_instance_id: str | None = None
    assignment: bytes = b""
    last_seen: float = field(default_factory=time.monotonic)
    join_waiter: asyncio.Future[JoinResult] | None = None
    sync_waiter: asyncio.Future[tuple[int, bytes]] | None = None

    def to_doc(self) -> dict[str, Any]:
        return {
            "client_id": self.client_id,
            "client_host": self.client_host,
            "session_timeout_ms": self.session_timeout_ms,
            "rebalance_timeout_ms": self.rebalance_timeout_ms,
            "protocol_type": self.protocol_type,
            "group_instance_id": self.group_instance_id,
            "protocols": [[n, base64.b64encode(m).decode()] for n, m in self.protocols],
        }

    @classmethod
    def from_doc(cls, member_id: str, doc: dict[str, Any]) -> Member:
        return cls(
            member_id=member_id,
            client_id=str(doc.get("client_id", "")),
            client_host=str(doc.get("client_host", "")),
            session_timeout_ms=int(doc.get("session_timeout_ms", 10000)),
            rebalance_timeout_ms=int(doc.get("rebalance_timeout_ms", 30000)),
            protocol_type=str(doc.get("protocol_type", "consumer")),
            protocols=[(str(n), base64.b64decode(m)) for n, m in doc.get("protocols", [])],
            group_instance_id=doc.get("group_instance_id"),
        )


def _joined(m: Member) -> bool:
    """The member has a JoinGroup parked for this rebalance (a cancelled one, whose
    client went away, does not count)."""
    return m.join_waiter is not None and not m.join_waiter.cancelled()


@dataclass(slots=True)
class Group:
    group_id: str
    phase: GroupPhase = GroupPhase.EMPTY
    generation: int = 0
    stored_generation: int = 0
    protocol_type: str | None = None
    protocol: str | None = None
    leader: str | None = None
    members: dict[str, Member] = field(default_factory=dict)
    join_deadline: float = 0.0
    initial_until: float = 0.0
    join_timer: asyncio.TimerHandle | None = None


@dataclass(frozen=True, slots=True)
class CoordinatorConfig:
    initial_rebalance_delay_ms: int = 300
    min_session_timeout_ms: int = 1000
    max_session_timeout_ms: int = 1_800_000


class GroupCoordinator:
    """Owns every group of this broker; created once per server, on its loop."""

    def __init__(self, store: GroupStore, config: CoordinatorConfig | None = None) -> None:
        self.store = store
        self.config = config or CoordinatorConfig()
        self.groups: dict[str, Group] = {}
        self._reaper: asyncio.Task[None] | None = None

    # -- lifecycle -------------------------------------------------------------------

    def start(self) -> None:
        self._reaper = asyncio.get_running_loop().create_task(self._expire_loop())

    async def stop(self) -> None:
        if self._reaper is not None:
            self._reaper.cancel()
            try:
                await self._reaper
            except asyncio.CancelledError:
                pass

    def group(self, group_id: str, *, create: bool = False) -> Group:
        """The live group, loaded from the store on first use after a restart.

        A group that neither exists in memory nor in the store is only remembered when
        ``create`` (JoinGroup); lookups by other requests get a transient empty group,
        so requests naming random groups cannot grow the broker's memory.
        """
        g = self.groups.get(group_id)
        if g is not None:
            return g
        g = Group(group_id)
        state = self.store.load(group_id)
        if state is None and not create:
            g.generation = g.stored_generation = self.store.generation(group_id)
            return g
        if state is not None:
            g.generation = g.stored_generation = state.generation
            g.protocol_type = state.protocol_type or None
            g.protocol = state.protocol
            g.leader = state.leader
            for mid, doc in state.members.items():
                m = Member.from_doc(mid, doc)
                m.assignment = state.assignments.get(mid, b"")
                g.members[mid] = m
            # Members come back as they were: they keep heartbeating with their
            # generation, and each gets a full session timeout to reach us again.
            g.phase = GroupPhase.STABLE if g.members else GroupPhase.EMPTY
        else:
            g.stored_generation = self.store.generation(group_id)
            g.generation = g.stored_generation
        self.groups[group_id] = g
        return g

    def known_groups(self) -> list[str]:
        return sorted(set(self.store.list_groups()) | set(self.groups))

    # -- JoinGroup ---------------------------------------------------------------------

    async def join(
        self,
        group_id: str,
        member_id: str,
        group_instance_id: str | None,
        client_id: str,
        client_host: str,
        session_timeout_ms: int,
        rebalance_timeout_ms: int,
        protocol_type: str,
        protocols: list[tuple[str, bytes]],
    ) -> JoinResult:
        """Wait until the rebalance this join belongs to completes; answer its result."""
        if not group_id:
            return JoinResult(E.InvalidGroupId.errno, member_id=member_id)
        cfg = self.config
        if not cfg.min_session_timeout_ms <= session_timeout_ms <= cfg.max_session_timeout_ms:
            return JoinResult(E.InvalidSessionTimeout.errno, member_id=member_id)
        g = self.group(group_id, create=True)
        if not protocols or (g.members and g.protocol_type not in (None, protocol_type)):
            return JoinResult(E.InconsistentGroupProtocol.errno, member_id=member_id)
        if g.members and not self._compatible(g, [p for p, _ in protocols], member_id):
            return JoinResult(E.InconsistentGroupProtocol.errno, member_id=member_id)
        if member_id and member_id not in g.members:
            return JoinResult(E.UnknownMemberId.errno, member_id=member_id)
        if not member_id:
            member_id = f"{client_id or 'member'}-{uuid.uuid4()}"
            if group_instance_id is not None:
                # Static membership (KIP-345): a restarted instance takes its old place;
                # the old member id is fenced, so a zombie of it gets an error.
                for old_id, old in list(g.members.items()):
                    if old.group_instance_id == group_instance_id:
                        del g.members[old_id]
                        self._fail_waiters(old, E.FencedInstanceId.errno)
        m = g.members.get(member_id)
        if m is None:
            m = Member(
                member_id, client_id, client_host, session_timeout_ms,
                rebalance_timeout_ms, protocol_type, protocols, group_instance_id,
            )
            g.members[member_id] = m
        else:
            m.protocols = protocols
            m.session_timeout_ms = session_timeout_ms
            m.rebalance_timeout_ms = rebalance_timeout_ms
        m.last_seen = time.monotonic()
        if g.protocol_type is None:
            g.protocol_type = protocol_type
        if m.join_waiter is not None and not m.join_waiter.done():
            # A retried join replaces the earlier one, whose connection is likely gone.
            m.join_waiter.set_result(JoinResult(E.RebalanceInProgress.errno, member_id=member_id))
        waiter: asyncio.Future[JoinResult] = asyncio.get_running_loop().create_future()
        m.join_waiter = waiter
        self._prepare_rebalance(g)
        self._maybe_complete_join(g)
        return await waiter

    @staticmethod
    def _compatible(g: Group, names: list[str], member_id: str) -> bool:
        others = [m for mid, m in g.members.items() if mid != member_id]
        if not others:
            return True
        common = set(names)
        for m in others:
            common &= {p for p, _ in m.protocols}
        return bool(common)

    def _prepare_rebalance(self, g: Group) -> None:
        if g.phase is GroupPhase.PREPARING:
            return
        was_empty = g.phase is GroupPhase.EMPTY
        # A rebalance cancels any SyncGroup still waiting for the old leader's plan.
        for m in g.members.values():
            if m.sync_waiter is not None and not m.sync_waiter.done():
                m.sync_waiter.set_result((E.RebalanceInProgress.errno, b""))
            m.sync_waiter = None
        g.phase = GroupPhase.PREPARING
        loop = asyncio.get_running_loop()
        timeout_s = max((m.rebalance_timeout_ms for m in g.members.values()), default=0) / 1000
        g.join_deadline = loop.time() + timeout_s
        delay = self.config.initial_rebalance_delay_ms / 1000 if was_empty else timeout_s
        g.initial_until = loop.time() + delay if was_empty else 0.0
        if g.join_timer is not None:
            g.join_timer.cancel()
        # For an empty group, wait a moment so members starting together land in one
        # generation (Kafka's group.initial.rebalance.delay.ms); otherwise wait for the
        # slowest member's rebalance timeout at most.
        g.join_timer = loop.call_later(delay, self._join_timeout, g, was_empty)

    def _join_timeout(self, g: Group, initial: bool) -> None:
        g.join_timer = None
        g.initial_until = 0.0
        if g.phase is not GroupPhase.PREPARING:
            return
        if initial and not all(_joined(m) for m in g.members.values()):
            loop = asyncio.get_running_loop()
            g.join_timer = loop.call_at(g.join_deadline, self._join_timeout, g, False)
            return
        # Members that did not rejoin within the rebalance timeout leave the group.
        for mid in [mid for mid, m in g.members.items() if not _joined(m)]:
            del g.members[mid]
        self._complete_join(g)

    def _maybe_complete_join(self, g: Group) -> None:
        if g.phase is not GroupPhase.PREPARING:
            return
        if asyncio.get_running_loop().time() < g.initial_until:
            return  # the initial delay's timer completes the join
        if all(_joined(m) for m in g.members.values()):
            self._complete_join(g)

    def _complete_join(self, g: Group) -> None:
        if g.join_timer is not None:
            g.join_timer.cancel()
            g.join_timer = None
        g.generation += 1
        if not g.members:
            g.phase = GroupPhase.EMPTY
            g.protocol = g.leader = None
            g.protocol_type = None
            self._save(g)
            return
        if g.leader not in g.members:
            g.leader = next(iter(g.members))
        g.protocol = self._select_protocol(g)
        g.phase = GroupPhase.COMPLETING
        for m in g.members.values():
            m.assignment = b""
        self._save(g)
        everyone = [
            (mid, m.group_instance_id, dict(m.protocols).get(g.protocol or "", b""))
            for mid, m in g.members.items()
        ]
        for mid, m in g.members.items():
            m.last_seen = time.monotonic()
            waiter, m.join_waiter = m.join_waiter, None
            if waiter is not None and not waiter.done():
                waiter.set_result(
                    JoinResult(
                        0, g.generation, g.protocol_type, g.protocol, g.leader or "", mid,
                        everyone if mid == g.leader else [],
                    )
                )

    @staticmethod
    def _select_protocol(g: Group) -> str:
        """The leader's most preferred protocol that every member supports."""
        leader = g.members[g.leader or next(iter(g.members))]
        for name, _ in leader.protocols:
            if all(name in dict(m.protocols) for m in g.members.values()):
                return name
        return leader.protocols[0][0]

    # -- SyncGroup, Heartbeat, LeaveGroup -------------------------------------------------

    async def sync(
        self, group_id: str, generation: int, member_id: str, assignments: dict[str, bytes]
    ) -> tuple[int, bytes, Group | None]:
        """The member's assignment once the leader has sent the plan for ``generation``."""
        g = self.group(group_id)
        err = self._check_member(g, generation, member_id)
        if err:
            return err, b"", g
        if g.phase is GroupPhase.PREPARING:
            return E.RebalanceInProgress.errno, b"", g
        m = g.members[member_id]
        m.last_seen = time.monotonic()
        if g.phase is GroupPhase.STABLE:
            return 0, m.assignment, g
        if member_id == g.leader:
            for mid, member in g.members.items():
                member.assignment = assignments.get(mid, b"")
            g.phase = GroupPhase.STABLE
            self._save(g)
            for member in g.members.values():
                w, member.sync_waiter = member.sync_waiter, None
                if w is not None and not w.done():
                    w.set_result((0, member.assignment))
            return 0, m.assignment, g
        waiter: asyncio.Future[tuple[int, bytes]] = asyncio.get_running_loop().create_future()
        m.sync_waiter = waiter
        code, assignment = await waiter
        return code, assignment, g

    def heartbeat(self, group_id: str, generation: int, member_id: str) -> int:
        g = self.group(group_id)
        err = self._check_member(g, generation, member_id)
        if err:
            return err
        g.members[member_id].last_seen = time.monotonic()
        if g.phase is GroupPhase.PREPARING:
            return E.RebalanceInProgress.errno
        return 0

    def leave(self, group_id: str, member_ids: list[str]) -> dict[str, int]:
        """Remove members; the rest rebalance. Returns an error code per member."""
        g = self.group(group_id)
        result: dict[str, int] = {}
        for mid in member_ids:
            m = g.members.pop(mid, None)
            if m is None:
                result[mid] = E.UnknownMemberId.errno
                continue
            result[mid] = 0
            self._fail_waiters(m, E.UnknownMemberId.errno)
        if any(code == 0 for code in result.values()):
            self._membership_changed(g)
        return result

    def _membership_changed(self, g: Group) -> None:
        if g.phase is GroupPhase.PREPARING:
            self._maybe_complete_join(g)
            if g.phase is GroupPhase.PREPARING and not g.members:
                self._complete_join(g)
        elif not g.members:
            self._prepare_rebalance(g)
            self._complete_join(g)
        else:
            self._prepare_rebalance(g)

    @staticmethod
    def _fail_waiters(m: Member, code: int) -> None:
        if m.join_waiter is not None and not m.join_waiter.done():
            m.join_waiter.set_result(JoinResult(code, member_id=m.member_id))
        if m.sync_waiter is not None and not m.sync_waiter.done():
            m.sync_waiter.set_result((code, b""))

    @staticmethod
    def _check_member(g: Group, generation: int, member_id: str) -> int:
        if member_id not in g.members:
            return E.UnknownMemberId.errno
        if generation != g.generation:
            return E.IllegalGeneration.errno
        return 0

    # -- offsets -----------------------------------------------------------------------

    def check_commit(self, group_id: str, generation: int, member_id: str) -> int:
        """Error code for an OffsetCommit, before it reaches the fenced store write."""
        g = self.group(group_id)
        if generation < 0 and not member_id:
            return E.RebalanceInProgress.errno if g.members else 0
        # Kafka's order of checks: a group waiting for its leader's plan refuses every
        # commit as "rebalance in progress", which clients treat as retry-after-rejoin.
        if g.phase is GroupPhase.COMPLETING:
            return E.RebalanceInProgress.errno
        err = self._check_member(g, generation, member_id)
        if err:
            return err
        g.members[member_id].last_seen = time.monotonic()
        return 0

    # -- persistence and expiry --------------------------------------------------------

    def _save(self, g: Group) -> None:
        state = GroupState(
            generation=g.generation,
            protocol_type=g.protocol_type or "",
            protocol=g.protocol,
            leader=g.leader,
            members={mid: m.to_doc() for mid, m in g.members.items()},
            assignments={mid: m.assignment for mid, m in g.members.items() if m.assignment},
        )
        if not self.store.save(g.group_id, state, g.stored_generation):
            # Only one coordinator serves a data dir, so this means the store was
            # changed behind our back; adopt its generation so we fence, not corrupt.
            current = self.store.generation(g.group_id)
            log.error("group %s: stored generation moved to %s, expected %s",
                      g.group_id, current, g.stored_generation)
            state.generation = g.generation = max(g.generation, current + 1)
            self.store.save(g.group_id, state, current)
        g.stored_generation = g.generation

    async def _expire_loop(self) -> None:
        while True:
            await asyncio.sleep(0.25)
            self.expire_sessions(time.monotonic())

    def expire_sessions(self, now: float) -> None:
        """Drop members whose session timed out; members parked in a join are alive."""
        for g in list(self.groups.values()):
            dead = [
                mid for mid, m in g.members.items()
                if (m.join_waiter is None or m.join_waiter.done())
                and now - m.last_seen > m.session_timeout_ms / 1000
            ]
            if not dead:
                continue
            log.info("group %s: session expired for %s", g.group_id, dead)
            for mid in dead:
                self._fail_waiters(g.members.pop(mid), E.UnknownMemberId.errno)
            self._membership_changed(g)

    def describe(self, group_id: str) -> Group:
        return self.group(group_id)

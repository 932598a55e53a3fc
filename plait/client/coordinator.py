"""In-process group coordination for the embedded client.

Members of one group inside this process share a coordinator. Every join, leave or
subscription change starts a new generation: the coordinator assigns partitions
with Kafka's range strategy and stores the generation in the metadata store with a
compare-and-swap. A member adopts the new generation at its next poll; until then
it still holds the old one, so a commit it makes is fenced (FencedCommitError).
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterable
from typing import TYPE_CHECKING

from plait.groups import GroupState, GroupStore

if TYPE_CHECKING:
    from plait.client.connect import EmbeddedClient

TopicPartition = tuple[str, int]


def range_assign(
    subscriptions: dict[str, set[str]], partition_counts: dict[str, int]
) -> dict[str, list[TopicPartition]]:
    """Kafka's range assignor: per topic, contiguous partition ranges by sorted member id."""
    assignment: dict[str, list[TopicPartition]] = {m: [] for m in subscriptions}
    for topic in sorted(partition_counts):
        members = sorted(m for m, topics in subscriptions.items() if topic in topics)
        if not members:
            continue
        count = partition_counts[topic]
        per, extra = divmod(count, len(members))
        start = 0
        for i, member in enumerate(members):
            size = per + (1 if i < extra else 0)
            assignment[member].extend((topic, p) for p in range(start, start + size))
            start += size
    return assignment


class GroupCoordinator:
    """Generations and assignments of one group's members in this process."""

    def __init__(self, client: "EmbeddedClient", group: str) -> None:
        self._client = client
        self.group = group
        self.store = GroupStore(client.meta)
        self._lock = threading.Lock()
        self._subscriptions: dict[str, set[str]] = {}
        self._assignment: dict[str, list[TopicPartition]] = {}
        self.generation = self.store.generation(group)

    def join(self, topics: Iterable[str]) -> str:
        member_id = f"plait-{uuid.uuid4().hex[:12]}"
        with self._lock:
            self._subscriptions[member_id] = set(topics)
            self._rebalance()
        return member_id

    def update(self, member_id: str, topics: Iterable[str]) -> None:
        with self._lock:
            self._subscriptions[member_id] = set(topics)
            self._rebalance()

    def leave(self, member_id: str) -> None:
        with self._lock:
            if self._subscriptions.pop(member_id, None) is not None:
                self._rebalance()

    def current(self, member_id: str) -> tuple[int, list[TopicPartition]]:
        with self._lock:
            return self.generation, list(self._assignment.get(member_id, []))

    def _rebalance(self) -> None:
        topics = set().union(*self._subscriptions.values()) if self._subscriptions else set()
        counts = {t: self._client.log.describe(t).partitions for t in topics}
        assignment = range_assign(self._subscriptions, counts)
        while True:
            current = self.store.generation(self.group)
            state = GroupState(
                generation=current + 1,
                protocol_type="consumer",
                protocol="range",
                leader=min(self._subscriptions) if self._subscriptions else None,
                members={m: {"topics": sorted(t)} for m, t in self._subscriptions.items()},
                assignments={
                    m: ",".join(f"{t}:{p}" for t, p in tps).encode() for m, tps in assignment.items()
                },
            )
            if self.store.save(self.group, state, current):
                break
        self.generation = state.generation
        self._assignment = assignment


class CoordinatorRegistry:
    """One coordinator per group name for a client."""

    def __init__(self, client: "EmbeddedClient") -> None:
        self._client = client
        self._lock = threading.Lock()
        self._coordinators: dict[str, GroupCoordinator] = {}

    def get(self, group: str) -> GroupCoordinator:
        with self._lock:
            coord = self._coordinators.get(group)
            if coord is None:
                coord = self._coordinators[group] = GroupCoordinator(self._client, group)
            return coord

    def close(self) -> None:
        with self._lock:
            self._coordinators.clear()

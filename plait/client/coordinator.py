"""Group coordination for the SDK's consumers, on the client's metadata store.

Each client keeps one :class:`~plait.groups.membership.GroupMembership` per group
name: it holds this process's lease for the group, registers the process's members
under it, and adopts the generations the group stores by compare-and-swap. Members in
other processes (other clients on the same SQLite file or the same etcd cluster) are
peers of the same group. See :mod:`plait.groups.membership` for the protocol and its
fencing argument.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from plait.groups.assign import range_assign
from plait.groups.membership import DEFAULT_SESSION_TIMEOUT_S, GroupMembership

GroupCoordinator = GroupMembership  # the name the consumer knows it by

__all__ = ["CoordinatorRegistry", "GroupCoordinator", "range_assign"]


def _partition_counter(client: Any) -> Callable[[str], int]:
    """How a client sizes a topic: the Kafka client asks the cluster, the embedded one its log."""
    count = getattr(client, "partition_count", None)
    if callable(count):
        return count
    return lambda topic: int(client.log.describe(topic).partitions)


class CoordinatorRegistry:
    """One coordinator per group name for a client; closing it leaves every group."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self._lock = threading.Lock()
        self._coordinators: dict[str, GroupMembership] = {}

    def get(self, group: str, *, session_timeout_s: float | None = None) -> GroupMembership:
        """The group's coordinator; ``session_timeout_s`` counts only for the first call."""
        with self._lock:
            coord = self._coordinators.get(group)
            if coord is None:
                coord = self._coordinators[group] = GroupMembership(
                    self._client.meta,
                    group,
                    _partition_counter(self._client),
                    session_timeout_s=session_timeout_s or DEFAULT_SESSION_TIMEOUT_S,
                )
            return coord

    def close(self) -> None:
        with self._lock:
            coords, self._coordinators = list(self._coordinators.values()), {}
        for coord in coords:
            coord.close()

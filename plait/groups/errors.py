"""Errors of consumer-group bookkeeping."""

from __future__ import annotations

from plait.errors import PlaitError


class GroupError(PlaitError):
    """Base class for consumer-group failures."""


class FencedCommitError(GroupError):
    """A commit carried a generation the group has moved past (a zombie member).

    Kafka answers this case with ILLEGAL_GENERATION; the commit is not applied.
    """

    def __init__(self, group: str, generation: int, current: int | None) -> None:
        self.group = group
        self.generation = generation
        self.current = current
        super().__init__(
            f"offset commit for group {group!r} rejected: member is at generation "
            f"{generation}, the group is at {current if current is not None else 'none'}"
        )


class GroupBusyError(GroupError):
    """A generation-less commit (-1) arrived while the group has active members."""

    def __init__(self, group: str) -> None:
        self.group = group
        super().__init__(
            f"offset commit without a generation for group {group!r} rejected: "
            "the group has active members"
        )


class GroupJoinTimeoutError(GroupError):
    """A join, subscription change or leave was not reflected in a stored generation in time.

    The member key is written; the group may still converge later. Usually the metadata
    store is unreachable or slow (an etcd election), or another member keeps winning.
    """

    def __init__(self, group: str, member_id: str, what: str, timeout_s: float) -> None:
        self.group = group
        self.member_id = member_id
        super().__init__(
            f"{what} of member {member_id!r} in group {group!r}: expected a stored "
            f"generation reflecting it within {timeout_s:g} s, none arrived"
        )

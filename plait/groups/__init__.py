"""Consumer groups: generations, members and fenced offset commits in the metadata store."""

from plait.groups.errors import FencedCommitError, GroupBusyError, GroupError
from plait.groups.store import GroupState, GroupStore

__all__ = ["FencedCommitError", "GroupBusyError", "GroupError", "GroupState", "GroupStore"]

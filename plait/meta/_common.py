"""Pieces both backends share: key ranges, compare evaluation, txn checks, watch queue.

Kept backend-neutral so SQLite and etcd agree on the corner cases (missing keys in
compares, duplicate writes in one branch) instead of drifting apart.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from types import TracebackType
from typing import Self

from plait.meta.errors import TxnError, WatchCancelledError
from plait.meta.interface import (
    Compare,
    CompareTarget,
    Delete,
    KeyValue,
    Op,
    Put,
    WatchEvent,
)


def prefix_end(prefix: bytes) -> bytes | None:
    """The smallest key above every key starting with ``prefix``; None means "no bound".

    Same rule as etcd's ``GetPrefixRangeEnd``: bump the last byte below 0xff and drop
    the 0xff bytes after it. An empty prefix or one of only 0xff bytes has no bound.
    """
    body = bytearray(prefix)
    while body:
        if body[-1] < 0xFF:
            body[-1] += 1
            return bytes(body)
        body.pop()
    return None


def in_range(key: bytes, start: bytes, prefix: bool) -> bool:
    """True when ``key`` is ``start`` itself, or lies under it when ``prefix`` is set."""
    return key.startswith(start) if prefix else key == start


def compare_holds(compare: Compare, kv: KeyValue | None) -> bool:
    """Evaluate one guard the way etcd does.

    A VALUE compare on a missing key is always false, whatever the operator: etcd's
    wire format cannot tell a missing value from an empty one, so it refuses to guess,
    and we copy that so a compare means the same thing on both backends.
    """
    if compare.target is CompareTarget.VALUE:
        if kv is None:
            return False
        left: bytes | int = kv.value
    elif compare.target is CompareTarget.VERSION:
        left = kv.version if kv else 0
    elif compare.target is CompareTarget.CREATE_REVISION:
        left = kv.create_revision if kv else 0
    else:
        left = kv.mod_revision if kv else 0
    right = compare.operand
    if type(left) is not type(right):
        raise TxnError(
            f"compare on {compare.key!r}: {compare.target.value} needs a "
            f"{type(left).__name__} operand, got {type(right).__name__}"
        )
    if compare.op == "==":
        return left == right
    if compare.op == "!=":
        return left != right
    if compare.op == "<":
        return left < right  # type: ignore[operator]
    if compare.op == ">":
        return left > right  # type: ignore[operator]
    raise TxnError(
        f"compare on {compare.key!r}: expected one of == != < >, got {compare.op!r}"
    )


def check_branch(ops: Sequence[Op], branch: str) -> None:
    """Reject a branch that writes one key twice, as etcd does.

    Two writes to one key in one revision would make the key's history (and the
    watch events) ambiguous, so etcd refuses them; refusing them here too keeps
    the SQLite reference from accepting what the distributed backend rejects.
    """
    puts: set[bytes] = set()
    deletes: list[Delete] = []
    for op in ops:
        if isinstance(op, Put):
            if op.key in puts:
                raise TxnError(
                    f"{branch} branch writes key {op.key!r} twice; expected one write per key"
                )
            puts.add(op.key)
        elif isinstance(op, Delete):
            deletes.append(op)
    for d in deletes:
        for key in puts:
            if in_range(key, d.key, d.prefix):
                raise TxnError(
                    f"{branch} branch both puts and deletes key {key!r}; expected one write per key"
                )


class QueueWatch:
    """A watch fed by a backend thread: events are queued, ``get`` drains them.

    Contract: events come out in the order the backend pushed them (revision order);
    after ``cancel`` nothing more is returned and ``get`` raises WatchCancelledError.
    A backend failure (compaction, store closed) also ends the watch with that error,
    after the events queued before it have been handed out.
    """

    def __init__(self, prefix: bytes, on_cancel: Callable[[QueueWatch], None]) -> None:
        self.prefix = prefix
        self._on_cancel = on_cancel
        self._cond = threading.Condition()
        self._events: deque[WatchEvent] = deque()
        self._error: WatchCancelledError | None = None
        self._cancelled_by_owner = False

    # backend side -------------------------------------------------------------
    def push(self, events: Sequence[WatchEvent]) -> None:
        if not events:
            return
        with self._cond:
            if self._error is None:
                self._events.extend(events)
                self._cond.notify_all()

    def fail(self, reason: str, *, compact_revision: int = 0) -> None:
        with self._cond:
            if self._error is None:
                self._error = WatchCancelledError(
                    self.prefix, reason, compact_revision=compact_revision
                )
                self._cond.notify_all()

    @property
    def done(self) -> bool:
        return self._error is not None

    # owner side ---------------------------------------------------------------
    def get(self, timeout: float | None = None) -> list[WatchEvent]:
        with self._cond:
            if not self._events and self._error is None:
                self._cond.wait_for(
                    lambda: bool(self._events) or self._error is not None, timeout
                )
            if self._events:
                out = list(self._events)
                self._events.clear()
                return out
            if self._error is not None:
                raise self._error
            return []

    def cancel(self) -> None:
        with self._cond:
            if self._error is not None:
                return
            self._cancelled_by_owner = True
            self._events.clear()
            self._error = WatchCancelledError(self.prefix, "cancelled by its owner")
            self._cond.notify_all()
        self._on_cancel(self)

    def __iter__(self) -> Iterator[WatchEvent]:
        """Yield events until cancelled; an owner's cancel ends the loop quietly."""
        while True:
            try:
                batch = self.get()
            except WatchCancelledError:
                if self._cancelled_by_owner:
                    return
                raise
            yield from batch

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        tp: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.cancel()


def check_compares(compares: Sequence[Compare]) -> None:
    """Reject malformed guards before anything runs, on every backend alike."""
    for c in compares:
        want: type = bytes if c.target is CompareTarget.VALUE else int
        if type(c.operand) is not want or c.op not in ("==", "!=", "<", ">"):
            raise TxnError(
                f"compare on {c.key!r}: expected {c.target.value} {{== != < >}} "
                f"{want.__name__}, got {c.op!r} {type(c.operand).__name__}"
            )

"""Sparse per-segment indexes, kept in memory and written out when a segment is sealed.

* ``.index``: entries ``(relative offset: u32, file position: u32)``, big-endian, one
  every ``index_interval_bytes`` of log data; ``lookup`` gives the position of a batch at
  or before the wanted offset, from which a header walk finds the exact batch.
* ``.timeindex``: entries ``(max timestamp so far: i64, relative offset: u32)`` with
  strictly growing timestamps. An entry ``(T, o)`` promises that every batch before
  offset ``o`` has a max timestamp <= ``T``, so a search for ``ts > T`` may start at ``o``.

Why in memory: the active segment's indexes are rebuilt on any unclean recovery anyway,
so they only need to reach disk when the segment is sealed (roll) or the log is closed.
A file that fails :meth:`sanity_check` is rebuilt from the segment, never trusted.
"""

from __future__ import annotations

import bisect
import os
import struct
from pathlib import Path

_OFFSET_ENTRY = struct.Struct(">II")
_TIME_ENTRY = struct.Struct(">qI")


class OffsetIndex:
    """Relative offset -> byte position, strictly increasing in both."""

    def __init__(self) -> None:
        self.offsets: list[int] = []
        self.positions: list[int] = []

    def append(self, relative_offset: int, position: int) -> None:
        self.offsets.append(relative_offset)
        self.positions.append(position)

    def lookup(self, relative_offset: int) -> tuple[int, int]:
        """The last entry at or before ``relative_offset``, or ``(0, 0)``."""
        i = bisect.bisect_right(self.offsets, relative_offset) - 1
        if i < 0:
            return 0, 0
        return self.offsets[i], self.positions[i]

    def truncate_to_position(self, position: int) -> None:
        """Drop entries that point at or past ``position`` (after a log truncation)."""
        i = bisect.bisect_left(self.positions, position)
        del self.offsets[i:], self.positions[i:]

    def to_bytes(self) -> bytes:
        return b"".join(_OFFSET_ENTRY.pack(o, p) for o, p in zip(self.offsets, self.positions))

    @classmethod
    def from_bytes(cls, data: bytes) -> OffsetIndex | None:
        """Parse and sanity-check; ``None`` when the bytes cannot be a valid index."""
        if len(data) % _OFFSET_ENTRY.size:
            return None
        index = cls()
        for o, p in _OFFSET_ENTRY.iter_unpack(data):
            if index.offsets and (o <= index.offsets[-1] or p <= index.positions[-1]):
                return None
            index.append(o, p)
        return index


class TimeIndex:
    """Max timestamp so far -> relative offset of the batch that reached it."""

    def __init__(self) -> None:
        self.timestamps: list[int] = []
        self.offsets: list[int] = []

    def maybe_append(self, max_timestamp: int, relative_offset: int) -> None:
        """Add an entry only if it raises the maximum (keeps timestamps strictly growing)."""
        if not self.timestamps or max_timestamp > self.timestamps[-1]:
            self.timestamps.append(max_timestamp)
            self.offsets.append(relative_offset)

    def lookup(self, timestamp: int) -> int:
        """Relative offset from which to scan for the first batch with max ts >= ``timestamp``."""
        i = bisect.bisect_left(self.timestamps, timestamp) - 1
        return self.offsets[i] if i >= 0 else 0

    @property
    def max_timestamp(self) -> int:
        return self.timestamps[-1] if self.timestamps else -1

    def truncate_to_offset(self, relative_offset: int) -> None:
        """Drop entries for offsets at or past ``relative_offset``."""
        i = bisect.bisect_left(self.offsets, relative_offset)
        del self.timestamps[i:], self.offsets[i:]

    def to_bytes(self) -> bytes:
        return b"".join(_TIME_ENTRY.pack(t, o) for t, o in zip(self.timestamps, self.offsets))

    @classmethod
    def from_bytes(cls, data: bytes) -> TimeIndex | None:
        if len(data) % _TIME_ENTRY.size:
            return None
        index = cls()
        for t, o in _TIME_ENTRY.iter_unpack(data):
            if index.timestamps and (t <= index.timestamps[-1] or o < index.offsets[-1]):
                return None
            index.timestamps.append(t)
            index.offsets.append(o)
        return index


def write_index_file(path: Path, data: bytes, *, durable: bool) -> None:
    """Write a sealed segment's index in place (a torn write fails the sanity check)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        if durable:
            os.fsync(fd)
    finally:
        os.close(fd)


def read_file(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None

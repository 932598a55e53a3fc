"""One segment: a file of RecordBatch v2 bytes plus its offset and time indexes.

A segment never decodes records: it reads the 61-byte batch header only. Its file is
named by the offset of its first batch (20 digits, like Kafka). Thread safety is the
owning :class:`~plait.log.partition.Partition`'s job; a segment holds no locks.
"""

from __future__ import annotations

import mmap
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from plait.log.errors import CorruptSegmentError
from plait.log.index import OffsetIndex, TimeIndex, read_file, write_index_file
from plait.protocol.batch_header import (
    HEADER_SIZE,
    BatchHeader,
    parse_header,
    verify_crc,
)
from plait.protocol.errors import InvalidRecordBatchError

_WALK_CHUNK = 64 * 1024


def segment_name(base_offset: int) -> str:
    return f"{base_offset:020d}"


@dataclass(frozen=True)
class Damage:
    """What recovery cut from a segment: ``dropped`` bytes from ``position`` on."""

    position: int
    dropped: int
    reason: str


class Segment:
    """A segment file opened for append (active) or read (sealed)."""

    def __init__(self, directory: Path, base_offset: int, index_interval_bytes: int) -> None:
        self.base_offset = base_offset
        self.path = directory / f"{segment_name(base_offset)}.log"
        self.index_path = directory / f"{segment_name(base_offset)}.index"
        self.timeindex_path = directory / f"{segment_name(base_offset)}.timeindex"
        self.index_interval_bytes = index_interval_bytes
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        self.size = os.fstat(self._fd).st_size
        self.flushed_size = self.size
        self.next_offset = base_offset  # known exactly for scanned segments only
        self.index = OffsetIndex()
        self.timeindex = TimeIndex()
        self.max_timestamp = -1
        self._offset_of_max_ts = 0
        self.first_batch_timestamp: int | None = None
        self._bytes_since_index = 0
        self._index_dirty = False  # index files written by seal() but not yet fsynced

    # -- writing ---------------------------------------------------------------

    def append(self, buf: bytes | bytearray, batches: list[tuple[int, BatchHeader]]) -> None:
        """Write whole batches (base offsets already assigned) with one ``write()``.

        On a failed or short write the file is cut back to its old size, so a batch is
        never half-visible; the OSError propagates.
        """
        start = self.size
        try:
            view = memoryview(buf)
            while view:
                view = view[os.write(self._fd, view):]
        except BaseException:
            os.ftruncate(self._fd, start)
            raise
        for pos, header in batches:
            self._track(start + pos, header)
        self.size = start + len(buf)

    def _track(self, position: int, header: BatchHeader) -> None:
        """Update indexes and counters for a batch stored at ``position``."""
        relative = header.base_offset - self.base_offset
        if self.first_batch_timestamp is None:
            self.first_batch_timestamp = header.max_timestamp
        if self._bytes_since_index >= self.index_interval_bytes and position > 0:
            self.index.append(relative, position)
            self._bytes_since_index = 0
            # The maximum over the batches *before* this one: see the TimeIndex contract.
            self.timeindex.maybe_append(self.max_timestamp, self._offset_of_max_ts)
        self._bytes_since_index += header.size
        if header.max_timestamp > self.max_timestamp:
            self.max_timestamp = header.max_timestamp
            self._offset_of_max_ts = relative
        self.next_offset = header.next_offset

    def flush(self, *, force: bool = False) -> int:
        """fsync the data written so far; returns the size now durable."""
        size = self.size
        if force or self.flushed_size < size:
            os.fsync(self._fd)
            self.flushed_size = size
        if self._index_dirty:
            for path in (self.index_path, self.timeindex_path):
                fd = os.open(path, os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
            self._index_dirty = False
        return size

    @property
    def dirty(self) -> bool:
        """True while some written bytes or sealed index files are not yet fsynced."""
        return self.flushed_size < self.size or self._index_dirty

    def seal(self, *, durable: bool) -> None:
        """Write the final time-index entry and both index files (at roll or close)."""
        if self.size:
            self.timeindex.maybe_append(self.max_timestamp, self._offset_of_max_ts)
        write_index_file(self.index_path, self.index.to_bytes(), durable=durable)
        write_index_file(self.timeindex_path, self.timeindex.to_bytes(), durable=durable)
        self._index_dirty = not durable

    # -- opening and recovery --------------------------------------------------

    def load_indexes(self, next_offset: int) -> bool:
        """Load the sealed index files; False when missing or inconsistent with the log."""
        index_data = read_file(self.index_path)
        time_data = read_file(self.timeindex_path)
        if index_data is None or time_data is None:
            return False
        index = OffsetIndex.from_bytes(index_data)
        timeindex = TimeIndex.from_bytes(time_data)
        if index is None or timeindex is None:
            return False
        span = next_offset - self.base_offset
        if self.size and not timeindex.timestamps:
            return False
        if timeindex.offsets and timeindex.offsets[-1] >= span:
            return False
        if index.offsets:
            if index.offsets[-1] >= span or index.positions[-1] >= self.size:
                return False
            try:
                header = parse_header(os.pread(self._fd, HEADER_SIZE, index.positions[-1]))
            except InvalidRecordBatchError:
                return False
            if header.base_offset != self.base_offset + index.offsets[-1]:
                return False
        self.index, self.timeindex = index, timeindex
        self.max_timestamp = timeindex.max_timestamp
        self.next_offset = next_offset
        return True

    def recover(self, *, truncate: bool) -> Damage | None:
        """Validate every batch (length, magic, CRC32C, contiguous offsets) and rebuild
        the indexes. At the first bad batch: with ``truncate`` cut the file there and
        return the :class:`Damage`; without, raise :class:`CorruptSegmentError`."""
        self.index, self.timeindex = OffsetIndex(), TimeIndex()
        self.max_timestamp, self._offset_of_max_ts = -1, 0
        self.first_batch_timestamp, self._bytes_since_index = None, 0
        self.next_offset = self.base_offset
        size = os.fstat(self._fd).st_size
        damage: Damage | None = None
        pos = 0
        if size:
            with mmap.mmap(self._fd, size, prot=mmap.PROT_READ) as mm:
                view = memoryview(mm)
                try:
                    while pos < size:
                        header, reason = _check_batch(view, pos, self.next_offset)
                        if header is None:
                            damage = Damage(pos, size - pos, reason)
                            break
                        self._track(pos, header)
                        pos += header.size
                finally:
                    view.release()
        if damage is not None:
            if not truncate:
                raise CorruptSegmentError(
                    f"sealed segment has a bad batch ({damage.reason}); expected only whole "
                    f"valid batches below the recovery point",
                    where=str(self.path), position=damage.position,
                )
            os.ftruncate(self._fd, damage.position)
            os.fsync(self._fd)
        self.size = self.flushed_size = pos
        return damage

    # -- reading ---------------------------------------------------------------

    def walk(self, position: int, end: int) -> Iterator[tuple[int, BatchHeader]]:
        """Yield ``(position, header)`` of the stored batches in ``[position, end)``."""
        while position + HEADER_SIZE <= end:
            chunk = os.pread(self._fd, min(_WALK_CHUNK, end - position), position)
            at = 0
            while at + HEADER_SIZE <= len(chunk):
                header = self._parse(chunk, at, position + at)
                yield position + at, header
                at += header.size
            if at == 0:  # pread came back short: the file is shorter than promised
                raise CorruptSegmentError(
                    f"expected a batch header, found {len(chunk)} bytes",
                    where=str(self.path), position=position,
                )
            position += at

    def _parse(self, buf: bytes, at: int, file_position: int) -> BatchHeader:
        try:
            return parse_header(buf, at)
        except InvalidRecordBatchError as exc:
            raise CorruptSegmentError(
                f"stored batch header is invalid: {exc}", where=str(self.path),
                position=file_position,
            ) from exc

    def position_of(self, offset: int, end: int) -> int | None:
        """File position of the batch containing ``offset`` (None if it is not here)."""
        _, start = self.index.lookup(offset - self.base_offset)
        for pos, header in self.walk(start, end):
            if header.last_offset >= offset:
                return pos
        return None

    def read(self, position: int, max_bytes: int, end: int, *, at_least_one: bool) -> bytes:
        """Whole batches from ``position`` up to ``max_bytes``; with ``at_least_one`` the
        first batch is returned even when it alone is larger than ``max_bytes``."""
        if position >= end:
            return b""
        data = os.pread(self._fd, min(max(max_bytes, HEADER_SIZE), end - position), position)
        limit = min(len(data), max_bytes)
        at = 0
        while at + HEADER_SIZE <= len(data):
            header = self._parse(data, at, position + at)
            if at + header.size > limit:
                break
            at += header.size
        if at == 0:
            if not at_least_one:
                return b""
            header = self._parse(data, 0, position)
            if position + header.size > end:
                raise CorruptSegmentError(
                    f"batch of {header.size} bytes runs past the segment end {end}",
                    where=str(self.path), position=position,
                )
            return os.pread(self._fd, header.size, position)
        return data[:at]

    def offset_for_timestamp(self, timestamp: int, end: int) -> int | None:
        """Base offset of the first batch here whose max timestamp >= ``timestamp``."""
        start_relative = self.timeindex.lookup(timestamp)
        _, start = self.index.lookup(start_relative)
        for _, header in self.walk(start, end):
            if header.max_timestamp >= timestamp:
                return header.base_offset
        return None

    # -- lifetime --------------------------------------------------------------

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def delete(self) -> None:
        """Close and remove the log and index files (missing files are fine)."""
        self.close()
        for path in (self.path, self.index_path, self.timeindex_path):
            try:
                path.unlink()
            except FileNotFoundError:
                pass


def _check_batch(
    view: memoryview, pos: int, expected_offset: int
) -> tuple[BatchHeader | None, str]:
    """Validate the batch at ``pos``; returns (header, "") or (None, why it is bad)."""
    try:
        header = parse_header(view, pos)
        verify_crc(view, pos, header)
    except InvalidRecordBatchError as exc:
        return None, str(exc)
    if header.base_offset != expected_offset:
        return None, f"batch base offset {header.base_offset}, expected {expected_offset}"
    return header, ""

"""One partition: an ordered list of segments, producer state, readers and listeners.

Locking (why two locks): ``_lock`` guards the segment list, offsets and producer state
and is held only for in-memory work, ``write()`` and ``pread()``; ``_flush_lock``
serialises fsyncs, which run *outside* ``_lock`` so readers and other appenders never wait
behind the disk. Order is always ``_flush_lock`` then ``_lock``. Listeners run under a
third lock, ``_notify_lock``, so they see appends in offset order without holding up
appends or reads.
"""

from __future__ import annotations

import bisect
import dataclasses
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

from plait.log.config import AppendResult, LogConfig
from plait.log.errors import (
    CorruptSegmentError,
    LogError,
    OffsetOutOfRangeError,
    OutOfOrderSequenceError,
    RecordTooLargeError,
)
from plait.log.fsutil import fsync_dir
from plait.log.producer_state import ProducerStateManager, write_snapshot
from plait.log.recovery import (
    read_recovery_point,
    recover_producer_state,
    recover_segments,
    write_recovery_point,
)
from plait.log.segment import Segment
from plait.protocol.batch_header import (
    BatchHeader,
    parse_header,
    set_base_offset,
    verify_crc,
)
from plait.protocol.errors import InvalidRecordBatchError

logger = logging.getLogger("plait.log")

#: ``callback(topic, partition, base_offset, last_offset, batch_bytes)``
AppendListener = Callable[[str, int, int, int, bytes], None]
_MAX_RELATIVE_OFFSET = 2**32 - 1


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


class Partition:
    """Append, read and wait on one partition of a topic; safe to share between threads."""

    def __init__(self, topic: str, index: int, directory: Path, config: LogConfig,
                 *, clean: bool, on_dirty: Callable[[Partition], None] | None = None) -> None:
        self.topic = topic
        # Under the ``interval`` policy: called after an append leaves this partition
        # with unflushed data, once per flush cycle (the Log's flusher then looks only at
        # such partitions, so idle ones cost nothing).
        self._on_dirty = on_dirty
        self._queued = False  # reported to on_dirty since the flusher last looked
        self.index = index
        self.directory = directory
        self.config = config
        self.where = f"partition {topic}-{index}"
        self._lock = threading.RLock()
        self._flush_lock = threading.Lock()
        self._notify_lock = threading.RLock()
        self._cond = threading.Condition(self._lock)
        directory.mkdir(parents=True, exist_ok=True)
        self._segments = recover_segments(directory, config.index_interval_bytes, clean)
        self._producers: ProducerStateManager = recover_producer_state(directory, self._segments)
        self._recovery_point = read_recovery_point(directory)
        self._leo = self._segments[-1].next_offset
        self._durable_offset = self._leo
        self._dir_dirty = False
        self._last_flush = time.monotonic()
        # Age-based roll counts from the first append into the active segment; after a
        # reopen, from the stored first batch's max timestamp (see LogConfig.segment_ms).
        self._roll_base_ms: int | None = self._segments[-1].first_batch_timestamp
        self._listeners: list[AppendListener] = []
        self._pending: deque[tuple[int, int, bytes]] = deque()
        self._closed = False
        self._flush_locked()  # records the recovery point recovery established

    # -- offsets ---------------------------------------------------------------

    @property
    def log_start_offset(self) -> int:
        """The first offset still stored; moves forward only, by retention."""
        with self._lock:
            return self._segments[0].base_offset

    @property
    def log_end_offset(self) -> int:
        """The offset the next appended record will get."""
        return self._leo

    # -- append ----------------------------------------------------------------

    def append(self, batches: bytes | bytearray | memoryview, *,
               now_ms: int | None = None) -> AppendResult:
        """Append one or more whole RecordBatch v2, all or nothing.

        Each batch is checked (length, magic, CRC32C, ``max_batch_bytes``, producer
        sequence) before anything is written; then the batches get consecutive offsets
        from ``log_end_offset`` and are written with one ``write()``. Under fsync
        ``always`` the bytes are on stable storage when this returns; readers may see
        them slightly earlier. A retried idempotent batch returns the original offsets
        with ``duplicate=True`` and writes nothing.
        """
        now = now_ms if now_ms is not None else wall_ms()
        buf = bytearray(batches)
        headers = self._validate(buf)
        with self._lock:
            self._check_open()
            metas = self._producers.check([h for _, h in headers], self.where)
            dups = [m for m in metas if m is not None]
            duplicate: AppendResult | None = None
            if dups:
                if len(dups) != len(metas):  # a retry must resend exactly what it sent
                    first = next(h for (_, h), m in zip(headers, metas) if m is not None)
                    raise OutOfOrderSequenceError(
                        self.where, first.producer_id,
                        self._producers.expected_sequence(first.producer_id),
                        first.base_sequence)
                duplicate = AppendResult(dups[0].first_offset, dups[-1].last_offset, now,
                                         self._segments[0].base_offset, duplicate=True)
            else:
                result, rolled = self._write_locked(buf, headers, now)
        if duplicate is not None:
            if self.config.fsync.mode == "always":
                self._flush_to(duplicate.last_offset + 1)  # the original may be mid-fsync
            return duplicate
        if self.config.fsync.mode == "always":
            self._flush_to(result.last_offset + 1)
        elif self._on_dirty is not None and not self._queued \
                and self.config.fsync.mode == "interval":
            self._queued = True  # after the write: a flush that clears this sees it
            self._on_dirty(self)
        if rolled:
            self.enforce_retention(now)
        self._deliver()
        return result

    def _write_locked(self, buf: bytearray, headers: list[tuple[int, BatchHeader]],
                      now: int) -> tuple[AppendResult, bool]:
        """Roll if due, assign offsets and write; called with ``_lock`` held."""
        rolled = self._maybe_roll(len(buf), headers, now)
        base = next_offset = self._leo
        placed: list[tuple[int, BatchHeader]] = []
        for pos, header in headers:
            set_base_offset(buf, pos, next_offset)
            placed.append((pos, dataclasses.replace(header, base_offset=next_offset)))
            next_offset += header.last_offset_delta + 1
        try:
            self._segments[-1].append(buf, placed)
        except OSError as exc:
            raise LogError(f"write of {len(buf)} bytes to {self._segments[-1].path} "
                           f"failed: {exc}") from exc
        for _, header in placed:
            self._producers.update(header)
        if self._roll_base_ms is None:
            self._roll_base_ms = now
        self._leo = next_offset
        if self._listeners:
            self._pending.append((base, next_offset - 1, bytes(buf)))
        self._cond.notify_all()
        return AppendResult(base, next_offset - 1, now, self._segments[0].base_offset), rolled

    def _validate(self, buf: bytearray) -> list[tuple[int, BatchHeader]]:
        if not buf:
            raise InvalidRecordBatchError("expected at least one record batch, got 0 bytes",
                                          where=f"append to {self.where}", position=0)
        headers = []
        pos = 0
        while pos < len(buf):
            try:
                header = parse_header(buf, pos)
                if header.size > self.config.max_batch_bytes:
                    raise RecordTooLargeError(self.where, header.size, self.config.max_batch_bytes)
                verify_crc(buf, pos, header)
            except InvalidRecordBatchError as exc:
                raise InvalidRecordBatchError(str(exc.args[0]), where=f"append to {self.where}",
                                              position=exc.position) from None
            headers.append((pos, header))
            pos += header.size
        return headers

    def _maybe_roll(self, size: int, headers: list[tuple[int, BatchHeader]], now: int) -> bool:
        active = self._segments[-1]
        if active.size == 0:
            return False
        span = self._leo + sum(h.last_offset_delta + 1 for _, h in headers) - active.base_offset
        full = active.size + size > self.config.segment_bytes
        old = self._roll_base_ms is not None and now - self._roll_base_ms >= self.config.segment_ms
        if not (full or old or span > _MAX_RELATIVE_OFFSET):
            return False
        active.seal(durable=False)  # fsynced by the next flush, before the recovery point moves
        self._segments.append(Segment(self.directory, self._leo, self.config.index_interval_bytes))
        self._roll_base_ms = None
        self._dir_dirty = True
        write_snapshot(self.directory, self._producers, self._leo,
                       durable=self.config.fsync.mode != "never")
        return True

    def _check_open(self) -> None:
        if self._closed:
            raise LogError(f"{self.where} is closed")

    # -- durability ------------------------------------------------------------

    def _flush_to(self, offset: int) -> None:
        with self._flush_lock:
            if self._durable_offset >= offset:
                return  # another appender's fsync already covered these bytes
            self._flush_locked()

    def flush(self) -> None:
        """fsync everything appended so far (data, sealed indexes, new directory entries)."""
        with self._flush_lock:
            self._flush_locked()

    def _flush_locked(self) -> None:
        with self._lock:
            if self._closed:
                return
            segments = list(self._segments)
            leo = self._leo
            dir_dirty, self._dir_dirty = self._dir_dirty, False
        try:
            for seg in segments:
                seg.flush()
            if dir_dirty:
                fsync_dir(self.directory)
        except OSError as exc:
            raise LogError(f"fsync of {self.where} failed: {exc}") from exc
        self._durable_offset = max(self._durable_offset, leo)
        self._last_flush = time.monotonic()
        point = segments[-1].base_offset
        if point != self._recovery_point:  # lower only after recovery dropped segments
            write_recovery_point(self.directory, point)
            self._recovery_point = point

    def flush_if_due(self, monotonic_now: float) -> float | None:
        """Called by the Log's flusher thread for ``interval`` policies: fsync when data
        is waiting and ``interval_ms`` has passed since the last fsync. Returns in how
        many seconds this partition is due, or None when nothing is left waiting."""
        fsync = self.config.fsync
        if fsync.mode != "interval" or self._closed:
            self._queued = False
            return None
        if not self._unflushed():  # flushed meanwhile (a roll, an explicit flush)
            self._queued = False
            if not self._unflushed():  # an append that saw the old flag did not report
                return None
            self._queued = True
        left = self._last_flush + fsync.interval_ms / 1000 - monotonic_now
        if left > 0:
            return left  # still reported: its appends need not wake the flusher again
        self._queued = False  # before the flush: an append from here on reports again
        self.flush()
        return None

    def _unflushed(self) -> bool:
        return self._durable_offset < self._leo or self._dir_dirty \
            or any(s.dirty for s in self._segments[-2:])

    # -- reads -----------------------------------------------------------------

    def _segment_for(self, offset: int) -> int:
        bases = [s.base_offset for s in self._segments]
        return bisect.bisect_right(bases, offset) - 1

    def read(self, offset: int, max_bytes: int = 1 << 20) -> bytes:
        """Stored batches from the one containing ``offset``, whole, up to ``max_bytes``
        (but at least one batch). ``b""`` at ``log_end_offset``; raises
        :class:`OffsetOutOfRangeError` outside ``[log_start_offset, log_end_offset]``.
        The first batch may start before ``offset``, as in Kafka; callers skip records."""
        with self._lock:
            self._check_open()
            start, end = self._segments[0].base_offset, self._leo
            if not start <= offset <= end:
                raise OffsetOutOfRangeError(self.where, offset, start, end)
            if offset == end:
                return b""
            i = self._segment_for(offset)
            seg = self._segments[i]
            pos = seg.position_of(offset, seg.size)
            if pos is None:
                raise CorruptSegmentError(
                    f"offset {offset} below the log end {end} is not in its segment",
                    where=str(seg.path))
            chunk = seg.read(pos, max_bytes, seg.size, at_least_one=True)
            parts = [chunk]
            remaining = max_bytes - len(chunk)
            # Continue into the next segment only once this one is used up, so the
            # result is always a gap-free run of batches.
            for seg in self._segments[i + 1:]:
                if remaining <= 0 or pos + len(chunk) < self._segments[i].size:
                    break
                i, pos = i + 1, 0
                chunk = seg.read(0, remaining, seg.size, at_least_one=False)
                if not chunk:
                    break
                parts.append(chunk)
                remaining -= len(chunk)
            return b"".join(parts)

    def offset_for_timestamp(self, timestamp_ms: int) -> int | None:
        """Base offset of the earliest stored batch whose max timestamp >= ``timestamp_ms``
        (batches are not decoded, so this is a batch boundary); None if there is none."""
        with self._lock:
            self._check_open()
            for seg in self._segments:
                if seg.size and seg.max_timestamp >= timestamp_ms:
                    found = seg.offset_for_timestamp(timestamp_ms, seg.size)
                    if found is not None:
                        return max(found, self._segments[0].base_offset)
            return None

    def wait_for_data(self, offset: int, timeout: float) -> bool:
        """Block until ``log_end_offset > offset`` (True) or ``timeout`` seconds pass or
        the partition closes (False)."""
        with self._cond:
            self._cond.wait_for(lambda: self._leo > offset or self._closed, timeout)
            return self._leo > offset

    # -- listeners -------------------------------------------------------------

    def add_listener(self, callback: AppendListener) -> None:
        """Call ``callback(topic, partition, base, last, batch_bytes)`` after each append,
        in offset order, once the append is durable under the fsync policy. A listener
        that raises is logged and otherwise ignored."""
        with self._lock:
            self._listeners.append(callback)

    def remove_listener(self, callback: AppendListener) -> None:
        with self._lock:
            if callback in self._listeners:
                self._listeners.remove(callback)

    def _deliver(self) -> None:
        if not self._pending:
            return
        with self._notify_lock:
            while True:
                with self._lock:
                    if not self._pending:
                        return
                    base, last, data = self._pending[0]
                    if self.config.fsync.mode == "always" and last >= self._durable_offset:
                        return  # its own appender delivers it after its fsync
                    self._pending.popleft()
                    listeners = list(self._listeners)
                for cb in listeners:
                    try:
                        cb(self.topic, self.index, base, last, data)
                    except Exception:
                        logger.exception("append listener %r failed on %s", cb, self.where)

    # -- retention and lifetime -------------------------------------------------

    def enforce_retention(self, now_ms: int | None = None) -> int:
        """Delete whole old segments past ``retention_ms`` / ``retention_bytes``, oldest
        first, never the active one; returns how many were deleted."""
        now = now_ms if now_ms is not None else wall_ms()
        cfg = self.config
        deleted = 0
        with self._flush_lock, self._lock:
            if self._closed:
                return 0
            total = sum(s.size for s in self._segments)
            while len(self._segments) > 1:
                oldest = self._segments[0]
                expired = cfg.retention_ms >= 0 and now - oldest.max_timestamp > cfg.retention_ms
                too_big = cfg.retention_bytes >= 0 and total - oldest.size >= cfg.retention_bytes
                if not (expired or too_big):
                    break
                oldest.delete()
                self._segments.pop(0)
                total -= oldest.size
                deleted += 1
        return deleted

    def close(self) -> None:
        """Flush, seal the active segment's indexes and snapshot producer state; idempotent."""
        with self._flush_lock:
            with self._lock:
                if self._closed:
                    return
            self._flush_locked()
            with self._lock:
                self._segments[-1].seal(durable=True)
                write_snapshot(self.directory, self._producers, self._leo, durable=True)
                self._close_files()

    def abandon(self) -> None:
        """Close the files without flushing (the topic is being deleted)."""
        with self._flush_lock, self._lock:
            if not self._closed:
                self._close_files()

    def _close_files(self) -> None:
        for seg in self._segments:
            seg.close()
        self._closed = True
        self._cond.notify_all()

    def __repr__(self) -> str:
        return f"<Partition {self.topic}-{self.index} [{self.log_start_offset}, {self._leo})>"

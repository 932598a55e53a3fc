"""The two-path low-latency consumer: fast lane first, the log as the source of truth.

Contract, per assigned partition:
- Events are returned in strictly increasing offset order, each exactly once, from
  the start position on: the consumer keeps the next expected offset and only ever
  moves it forward past what it returned (or past control records / compaction gaps).
- Fast-lane data is used when it starts at or before the expected offset; anything
  below it is dropped, a message that overlaps it is trimmed.
- A gap (lane data that starts above the expected offset) is filled at once by
  reading the log from the expected offset.
- While the lane is down (``connected`` is False), or silent for ``fallback_after``
  seconds while the log end moves, the consumer reads the log on every append
  (plain log-polling latency); it returns to the lane as soon as the lane carries
  the partition's messages again.
- Memory is bounded: lane data waiting to be returned is capped at
  ``max_buffer_bytes``; past it lane messages are dropped and the log fills the gap.

Positions are not committed here; a group-aware wrapper commits ``positions()``.
Callbacks from the lane only enqueue, so they never hold up the lane's thread.
"""

from __future__ import annotations

import bisect
import threading
import time
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, Self

import numpy as np

from plait.client.messages import ColumnBatch, Message
from plait.errors import CorruptDataError
from plait.fastlane.errors import FastLaneClosedError, InvalidSubjectError
from plait.fastlane.interface import BatchCallback, FastLane, Subscription
from plait.log.errors import OffsetOutOfRangeError
from plait.protocol.batch_header import iter_batches
from plait.protocol.records import ColumnBatch as DecodedColumns
from plait.protocol.records import decode_columns

if TYPE_CHECKING:
    from plait.client.connect import EmbeddedClient
    from plait.log import Partition

TopicPartition = tuple[str, int]
Start = Literal["earliest", "latest"] | Mapping[TopicPartition, int]


@dataclass
class LowLatencyStats:
    """What each path contributed; counts of events unless named ``*_messages``."""

    lane_events: int = 0
    log_events: int = 0
    lane_messages: int = 0
    below_expected_messages: int = 0
    trimmed_messages: int = 0
    overflow_messages: int = 0
    corrupt_messages: int = 0
    gap_fills: int = 0
    fallback_reads: int = 0


@dataclass(eq=False)
class _LaneMsg:
    base: int
    last: int
    data: bytes
    cols: DecodedColumns | None = None


@dataclass(eq=False)
class _PartState:
    tp: TopicPartition
    part: Partition
    next: int
    pending: list[_LaneMsg] = field(default_factory=list)  # sorted by base
    behind_since: float | None = None
    silent: bool = False  # lane judged silent: read the log until it speaks again
    lane_lost: bool = False  # the lane dropped data (overflow, corrupt): read the log now
    sub: Subscription | None = None


class LowLatencyConsumer:
    """Read ``partitions`` of ``client``'s log through ``fastlane`` (see module docs).

    ``start``: "earliest", "latest", or a mapping of partition to offset (partitions
    missing from it start at the latest offset). An offset outside the stored range is
    clamped into it.
    """

    def __init__(
        self,
        client: EmbeddedClient,
        partitions: Iterable[TopicPartition],
        fastlane: FastLane,
        *,
        start: Start = "latest",
        fallback_after: float = 0.05,
        max_buffer_bytes: int = 32 << 20,
        max_poll_records: int = 10_000,
        fetch_max_bytes: int = 4 << 20,
    ) -> None:
        if isinstance(start, str) and start not in ("earliest", "latest"):
            raise ValueError(f"start must be 'earliest', 'latest' or a mapping, not {start!r}")
        self._log = client.log
        self._lane = fastlane
        self._fallback_after = fallback_after
        self._max_buffer = max_buffer_bytes
        self._max_records = max_poll_records
        self._fetch_max_bytes = fetch_max_bytes
        self.stats = LowLatencyStats()
        self._wake = threading.Event()
        self._inbox: deque[tuple[_PartState, _LaneMsg]] = deque()
        self._inbox_lock = threading.Lock()
        self._buffered = 0  # bytes of lane data in the inbox and in pending lists
        self._rr = 0
        self._closed = False
        self._states: dict[TopicPartition, _PartState] = {}
        for tp in dict.fromkeys(partitions):
            part = self._log.partition(*tp)
            st = _PartState(tp, part, 0)
            self._states[tp] = st
            # Subscribe before reading the start offset: anything appended in between
            # then arrives on the lane or is read from the log, never missed.
            part.add_listener(self._on_log_append)
            try:
                st.sub = fastlane.subscribe(tp[0], tp[1], self._lane_callback(st))
            except InvalidSubjectError:
                st.sub = None  # no subject for this name: log only
            lo, hi = part.log_start_offset, part.log_end_offset
            if isinstance(start, str):
                st.next = lo if start == "earliest" else hi
            else:
                st.next = min(max(start.get(tp, hi), lo), hi)

    # -- the lane's thread ---------------------------------------------------------

    def _lane_callback(self, st: _PartState) -> BatchCallback:
        def on_batch(base: int, last: int, data: bytes) -> None:
            with self._inbox_lock:
                if self._buffered + len(data) > self._max_buffer:
                    self.stats.overflow_messages += 1
                    st.lane_lost = True
                else:
                    self._buffered += len(data)
                    self._inbox.append((st, _LaneMsg(base, last, data)))
            self._wake.set()

        return on_batch

    def _on_log_append(self, *_: object) -> None:
        self._wake.set()

    # -- polling -------------------------------------------------------------------

    def poll_batch(self, timeout: float = 1.0, max_records: int | None = None) -> list[ColumnBatch]:
        """Up to ``max_records`` events as columnar batches, waiting up to ``timeout`` s.

        Returns ``[]`` on timeout. Each batch holds consecutive events of one partition.
        """
        if self._closed:
            raise FastLaneClosedError("poll on a closed low-latency consumer")
        limit = max_records or self._max_records
        deadline = time.monotonic() + max(0.0, timeout)
        while True:
            self._wake.clear()
            self._take_inbox()
            out = self._collect(limit)
            if out:
                return out
            now = time.monotonic()
            wait = deadline - now
            for st in self._states.values():
                if st.behind_since is not None:
                    wait = min(wait, st.behind_since + self._fallback_after - now)
            if deadline - now <= 0:
                return []
            self._wake.wait(max(wait, 0.0))

    def poll(self, timeout: float = 1.0, max_records: int | None = None) -> list[Message]:
        """Like poll_batch, but one Message per event."""
        return [m for b in self.poll_batch(timeout, max_records) for m in b.messages()]

    def positions(self) -> dict[TopicPartition, int]:
        """The next offset each partition will return (what a commit would store)."""
        return {tp: st.next for tp, st in self._states.items()}

    def _take_inbox(self) -> None:
        with self._inbox_lock:
            items = list(self._inbox)
            self._inbox.clear()
        for st, msg in items:
            self.stats.lane_messages += 1
            st.silent = False  # the lane speaks for this partition again
            if msg.last < st.next:
                self._discard(msg)
                self.stats.below_expected_messages += 1
            elif not st.pending or st.pending[-1].base <= msg.base:
                st.pending.append(msg)  # the usual case: arrival in offset order
            else:
                bisect.insort(st.pending, msg, key=lambda m: m.base)

    def _discard(self, msg: _LaneMsg) -> None:
        with self._inbox_lock:
            self._buffered -= len(msg.data)

    def _collect(self, limit: int) -> list[ColumnBatch]:
        states = list(self._states.values())
        out: list[ColumnBatch] = []
        budget = limit
        for i in range(len(states)):
            st = states[(self._rr + i) % len(states)]
            while budget > 0:
                batch = self._next_batch(st, budget)
                if batch is None:
                    break
                out.append(batch)
                budget -= len(batch)
        self._rr = (self._rr + 1) % max(1, len(states))
        return out

    def _next_batch(self, st: _PartState, budget: int) -> ColumnBatch | None:
        # Each round either returns events or moves past something (a dropped lane
        # message, control records), so the loop ends.
        while True:
            while st.pending and st.pending[0].last < st.next:
                self._discard(st.pending.pop(0))
                self.stats.below_expected_messages += 1
            if st.pending and st.pending[0].base <= st.next:
                batch = self._from_lane(st, budget)
            else:
                if not self._should_read_log(st):
                    return None
                before = st.next
                batch = self._from_log(st, budget)
                if batch is None and st.next == before:
                    return None
            if batch is not None:
                return batch

    def _should_read_log(self, st: _PartState) -> bool:
        """True to read the log now (a gap, the lane down or silent); False to wait."""
        if st.part.log_end_offset <= st.next:
            st.behind_since = None
            return False
        lane_up = st.sub is not None and self._lane.connected
        if st.pending:
            self.stats.gap_fills += 1
        elif st.lane_lost or st.silent or not lane_up:
            self.stats.fallback_reads += 1
            st.lane_lost = False
        else:
            # Behind the log with nothing from the lane yet: it is probably in flight.
            now = time.monotonic()
            if st.behind_since is None:
                st.behind_since = now
            if now - st.behind_since < self._fallback_after:
                return False
            st.silent = True  # until the lane delivers for this partition again
            self.stats.fallback_reads += 1
        st.behind_since = None
        return True

    def _from_lane(self, st: _PartState, budget: int) -> ColumnBatch | None:
        """Events from the first pending lane message (which starts at or before the
        expected offset); pops it once used up. None if it held nothing usable."""
        msg = st.pending[0]
        if msg.cols is None:
            cols = _decode_checked(msg)
            if cols is None:
                # Undecodable, or its headers and bytes disagree: the log fills.
                self.stats.corrupt_messages += 1
                self._discard(st.pending.pop(0))
                st.lane_lost = True
                return None
            msg.cols = cols
            if msg.base < st.next:
                self.stats.trimmed_messages += 1
        batch = _slice(st.tp, msg.cols, st.next, budget)
        if batch is None or batch.next_offset > msg.last:
            self._discard(st.pending.pop(0))
        if batch is None:
            st.next = msg.last + 1  # only control records at or past the expected offset
            return None
        st.next = batch.next_offset
        st.behind_since = None
        self.stats.lane_events += len(batch)
        return batch

    def _from_log(self, st: _PartState, budget: int) -> ColumnBatch | None:
        try:
            data = st.part.read(st.next, self._fetch_max_bytes)
        except OffsetOutOfRangeError:
            # Retention removed what we were about to read: resume at the log start,
            # as auto.offset.reset=earliest does; nothing still stored is skipped.
            st.next = st.part.log_start_offset
            return None
        if not data:
            return None
        cols = decode_columns(data)
        batch = _slice(st.tp, cols, st.next, budget)
        if batch is None:
            # Only control records or a compaction gap: step past the batches read
            # (by their headers, since control records are not decoded).
            end = max((h.next_offset for _, h in iter_batches(data)), default=st.next)
            st.next = max(st.next, end)
            return None
        st.next = batch.next_offset
        self.stats.log_events += len(batch)
        return batch

    # -- lifetime ------------------------------------------------------------------

    def close(self) -> None:
        """Unsubscribe from the lane (which stays open: it is not ours) and the log."""
        if self._closed:
            return
        self._closed = True
        for st in self._states.values():
            st.part.remove_listener(self._on_log_append)
            if st.sub is not None:
                st.sub.unsubscribe()
            st.pending.clear()
        with self._inbox_lock:
            self._inbox.clear()
            self._buffered = 0

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _decode_checked(msg: _LaneMsg) -> DecodedColumns | None:
    """Decode a lane message (CRC checked); None unless its events lie in base..last."""
    try:
        cols = decode_columns(msg.data)
    except CorruptDataError:
        return None
    offs = cols.offsets
    if len(offs) and (int(offs[0]) < msg.base or int(offs[-1]) > msg.last):
        return None
    return cols


def _slice(tp: TopicPartition, cols: DecodedColumns, start: int, limit: int) -> ColumnBatch | None:
    """The events of ``cols`` at offsets >= ``start``, at most ``limit``; None if none."""
    offsets = np.asarray(cols.offsets)
    lo = int(np.searchsorted(offsets, start, side="left"))
    hi = min(len(offsets), lo + limit)
    if lo >= hi:
        return None
    return ColumnBatch(
        tp[0], tp[1], offsets[lo:hi], np.asarray(cols.timestamps)[lo:hi],
        cols.keys.slice(lo, hi - lo), cols.values.slice(lo, hi - lo),
    )

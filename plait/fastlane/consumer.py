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

The log side is a :class:`plait.fastlane.logsource.LogSource`: the embedded segment
log (reads are local, the log end is known for free) or a Kafka-protocol broker
through confluent-kafka (:mod:`plait.fastlane.kafka_log`: reads are fetches, paused
while the lane serves). This module is the one reconciler for both. Where a source
cannot see the log end for free (``known_end()`` is None), the lane's end markers
stand in for it (plait.fastlane.interface; ``plait serve`` sends one for each partition
quiet for 0.2 s): while the latest lane event of a partition is a marker no older than
``lane_end_ttl`` and the lane is up, a marker that says the log ends at the expected
offset means caught up, and one that says more means the lane dropped what is in
between, which is read at once. Without a fresh marker, "silent while the log
moves" becomes "silent for ``fallback_after`` seconds": the source then fetches from
the expected offset until the lane speaks again, which costs an idle fetch, never a
duplicate event.
"""

from __future__ import annotations

import bisect
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, Self

import numpy as np

from plait.client.messages import ColumnBatch, Message
from plait.errors import CorruptDataError
from plait.fastlane.errors import FastLaneClosedError, InvalidSubjectError
from plait.fastlane.interface import BatchCallback, FastLane, Subscription
from plait.fastlane.logsource import Columns, EmbeddedLogSource, LogSource, PartitionLog
from plait.protocol.records import ColumnBatch as DecodedColumns
from plait.protocol.records import decode_columns, headers_at, warm_decoder

if TYPE_CHECKING:
    from plait.client.connect import EmbeddedClient

TopicPartition = tuple[str, int]
Start = Literal["earliest", "latest"] | Mapping[TopicPartition, int]


@dataclass
class LowLatencyStats:
    """What each path contributed; counts of events unless named ``*_messages``.
    ``gap_fills`` and ``fallback_reads`` count log reads that returned or skipped
    something, by why the log was read."""

    lane_events: int = 0
    log_events: int = 0
    lane_messages: int = 0
    below_expected_messages: int = 0
    trimmed_messages: int = 0
    overflow_messages: int = 0
    corrupt_messages: int = 0
    gap_fills: int = 0
    fallback_reads: int = 0
    end_markers: int = 0


@dataclass(eq=False)
class _LaneMsg:
    base: int
    last: int
    data: bytes
    cols: DecodedColumns | None = None
    headers: list[tuple[tuple[str, bytes | None], ...]] | None = None


@dataclass(eq=False)
class _PartState:
    tp: TopicPartition
    log: PartitionLog
    next: int
    pending: list[_LaneMsg] = field(default_factory=list)  # sorted by base
    behind_since: float | None = None
    silent: bool = False  # lane judged silent: read the log until it speaks again
    lane_lost: bool = False  # the lane dropped data (overflow, corrupt): read the log until it fills
    sub: Subscription | None = None
    lane_end: int = -1  # the log end the latest end marker announced
    lane_end_at: float | None = None  # when the last marker came (monotonic)


class LowLatencyConsumer:
    """Read ``partitions`` of a log through ``fastlane`` (see module docs).

    ``log``: a :class:`LogSource`, or an EmbeddedClient (its segment log). The source
    belongs to the consumer from now on: ``close()`` closes it.
    ``start``: "earliest", "latest", or a mapping of partition to offset (partitions
    missing from it start at the latest offset). An offset outside the stored range is
    clamped into it.
    """

    def __init__(
        self,
        log: LogSource | EmbeddedClient,
        partitions: Iterable[TopicPartition],
        fastlane: FastLane,
        *,
        start: Start = "latest",
        fallback_after: float = 0.05,
        lane_end_ttl: float = 1.0,
        max_buffer_bytes: int = 32 << 20,
        max_poll_records: int = 10_000,
        fetch_max_bytes: int = 4 << 20,
    ) -> None:
        if isinstance(start, str) and start not in ("earliest", "latest"):
            raise ValueError(f"start must be 'earliest', 'latest' or a mapping, not {start!r}")
        self._source: LogSource = (
            log if isinstance(log, LogSource)
            else EmbeddedLogSource(log.log, fetch_max_bytes=fetch_max_bytes)
        )
        self._lane = fastlane
        self._fallback_after = fallback_after
        self._lane_end_ttl = lane_end_ttl
        self._max_buffer = max_buffer_bytes
        self._max_records = max_poll_records
        self.stats = LowLatencyStats()
        self._wake = threading.Event()
        self._inbox: deque[tuple[_PartState, _LaneMsg]] = deque()
        self._inbox_lock = threading.Lock()
        self._buffered = 0  # bytes of lane data in the inbox and in pending lists
        self._rr = 0
        self._closed = False
        self._states: dict[TopicPartition, _PartState] = {}
        warm_decoder()  # not on the first lane message: see its docstring
        try:
            for tp in dict.fromkeys(partitions):
                self._open(tp, start)
        except BaseException:
            self.close()
            raise

    def _open(self, tp: TopicPartition, start: Start) -> None:
        # Listen to the log and subscribe before reading the start offset: anything
        # appended in between then arrives on the lane or is read from the log.
        st = _PartState(tp, self._source.open(tp[0], tp[1], self._wake.set), 0)
        self._states[tp] = st
        try:
            st.sub = self._lane.subscribe(tp[0], tp[1], self._lane_callback(st))
        except InvalidSubjectError:
            st.sub = None  # no subject for this name: log only
        lo, hi = st.log.bounds()
        if isinstance(start, str):
            st.next = lo if start == "earliest" else hi
        else:
            st.next = min(max(start.get(tp, hi), lo), hi)

    @property
    def log_source(self) -> LogSource:
        """Where this consumer reads the log (its stats, for a remote source)."""
        return self._source

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
                if st.lane_end_at is not None and now - st.lane_end_at < self._lane_end_ttl:
                    wait = min(wait, st.lane_end_at + self._lane_end_ttl - now)  # it goes stale
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
        now = time.monotonic()
        for st, msg in items:
            st.silent = False  # the lane speaks for this partition again
            if msg.last == msg.base - 1 and not msg.data:  # an end marker
                self.stats.end_markers += 1
                st.lane_end = msg.base  # the latest, not the highest: a topic re-created
                # under its name starts again from 0 (a late marker only delays a fill)
                st.lane_end_at = now
                continue
            st.lane_end_at = None  # data after the marker: its end is out of date
            self.stats.lane_messages += 1
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
                reason = self._log_wanted(st)
                if reason is None:
                    st.log.rest()  # the lane serves: a remote source stops fetching
                    return None
                st.behind_since = None
                before = st.next
                batch = self._from_log(st, budget, reason)
                if batch is None and st.next == before:
                    return None
            if batch is not None:
                return batch

    def _log_wanted(self, st: _PartState) -> Literal["gap", "fallback"] | None:
        """Why the log must be read now (a gap; the lane down, lossy or silent), or
        None to wait for the lane."""
        end = st.log.known_end()
        lane_up = st.sub is not None and self._lane.connected
        # The latest lane event was an end marker, recent, on a lane that is up and has
        # lost nothing since: the log ends where it says (all of it was sent before it).
        marked = end is None and lane_up and not st.lane_lost \
            and st.lane_end_at is not None \
            and time.monotonic() - st.lane_end_at < self._lane_end_ttl
        if marked:
            end = st.lane_end
        if end is not None and end <= st.next:
            st.behind_since = None
            return None
        if st.pending or marked:
            return "gap"  # lane data waits above the expected offset, or never came
        if st.lane_lost or st.silent or not lane_up:
            return "fallback"
        # Behind the log (or, where the log end is unknown, just waiting): the lane's
        # message is probably in flight. Past fallback_after the lane counts as silent.
        now = time.monotonic()
        if st.behind_since is None:
            st.behind_since = now
        if now - st.behind_since < self._fallback_after:
            return None
        st.silent = True  # until the lane delivers for this partition again
        return "fallback"

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
            if cols.records_with_headers:
                msg.headers = headers_at(msg.data, cols.offsets.tolist())
            if msg.base < st.next:
                self.stats.trimmed_messages += 1
        batch = _slice(st.tp, msg.cols, st.next, budget, msg.headers)
        if batch is None or batch.next_offset > msg.last:
            self._discard(st.pending.pop(0))
        if batch is None:
            st.next = msg.last + 1  # only control records at or past the expected offset
            return None
        st.next = batch.next_offset
        st.behind_since = None
        self.stats.lane_events += len(batch)
        return batch

    def _from_log(self, st: _PartState, budget: int,
                  reason: Literal["gap", "fallback"]) -> ColumnBatch | None:
        got = st.log.read(st.next)
        if got is None:
            return None  # a remote source is fetching; it wakes us when data is here
        batch = (_slice(st.tp, got.columns, st.next, budget, got.headers)
                 if got.columns is not None else None)
        if batch is None:
            # No event in [next, end): control records, a compaction gap, retention.
            if got.end <= st.next:
                return None
            st.next = got.end
        else:
            st.next = batch.next_offset
            self.stats.log_events += len(batch)
        if reason == "gap":
            self.stats.gap_fills += 1
        else:
            self.stats.fallback_reads += 1
        st.lane_lost = False  # the log has filled in for what the lane dropped
        return batch

    # -- lifetime ------------------------------------------------------------------

    def close(self) -> None:
        """Unsubscribe from the lane (which stays open: it is not ours); close the log
        source (an embedded one leaves the log itself open)."""
        if self._closed:
            return
        self._closed = True
        try:
            for st in self._states.values():
                if st.sub is not None:
                    st.sub.unsubscribe()
                st.log.close()
                st.pending.clear()
        finally:
            self._source.close()
            with self._inbox_lock:
                self._inbox.clear()
                self._buffered = 0

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def poll_as_member(
    current_reader: Callable[[], LowLatencyConsumer | None],
    idle: Callable[[float], None],
    positions: dict[TopicPartition, int],
    timeout: float,
    max_records: int | None,
) -> list[ColumnBatch]:
    """One poll of a group member that reads through a two-path reader (the embedded and
    the kafka:// consumers with ``low_latency=True``). ``current_reader`` adopts any
    rebalance and returns the reader of the owned partitions (None when none are owned,
    then ``idle(seconds)`` waits a little before asking again); the reader's positions
    are copied into ``positions``, which the member commits."""
    deadline = time.monotonic() + max(0.0, timeout)
    reader = current_reader()
    while reader is None:
        left = deadline - time.monotonic()
        if left <= 0:
            return []
        idle(min(0.05, left))
        reader = current_reader()
    batches = reader.poll_batch(max(0.0, deadline - time.monotonic()), max_records)
    positions.update(reader.positions())
    return batches


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


def _slice(tp: TopicPartition, cols: Columns, start: int, limit: int,
           headers: list[tuple[tuple[str, bytes | None], ...]] | None = None) -> ColumnBatch | None:
    """The events of ``cols`` at offsets >= ``start``, at most ``limit``; None if none.
    ``headers`` (per row of ``cols``, or None when no event has any) are sliced alike."""
    offsets = np.asarray(cols.offsets)
    lo = int(np.searchsorted(offsets, start, side="left"))
    hi = min(len(offsets), lo + limit)
    if lo >= hi:
        return None
    return ColumnBatch(
        tp[0], tp[1], offsets[lo:hi], np.asarray(cols.timestamps)[lo:hi],
        cols.keys.slice(lo, hi - lo), cols.values.slice(lo, hi - lo),
        None if headers is None else headers[lo:hi],
    )

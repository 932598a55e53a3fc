"""The embedded consumer: group membership, ordered polling, fenced commits.

Contract:
- Within a partition, events are returned in offset order, each once per position:
  ``poll`` advances the position past what it returns, ``seek`` moves it.
- ``commit`` stores the current positions (the next offset to read) of the owned
  partitions in one metadata-store transaction, fenced by the member's generation:
  a member that has not yet adopted a newer generation gets FencedCommitError and
  nothing is written.
- After a rebalance a newly owned partition resumes at the group's committed
  offset, or at ``auto_offset_reset`` ("earliest" or "latest") when none exists.
- Group members may live in other processes sharing the metadata store (SQLite file
  or etcd): each holds a lease of ``session_timeout_s``; a member that stops
  heart-beating is removed after it and the group rebalances (plait.groups.membership).
  ``member_id`` makes membership static: a restart replaces its old incarnation at once.
- ``low_latency=True`` (with ``plait.connect(..., fastlane=...)``) reads the owned
  partitions through the two-path consumer (plait.fastlane.consumer): events as soon as
  the lane pushes them, the log filling any gap, the same order and exactly-once
  positions; membership, rebalancing and fenced commits stay as above.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Literal, Self

import numpy as np

from plait.client.errors import ClientClosedError, ClientError, NotAssignedError
from plait.client.messages import ColumnBatch, Message
from plait.log.errors import OffsetOutOfRangeError, PartitionOutOfRangeError
from plait.protocol.batch_header import iter_batches
from plait.protocol.records import decode_columns, headers_at

if TYPE_CHECKING:
    from plait.client.connect import EmbeddedClient
    from plait.client.coordinator import GroupCoordinator
    from plait.fastlane.consumer import LowLatencyConsumer, LowLatencyStats
    from plait.log import Partition

TopicPartition = tuple[str, int]
RebalanceCallback = Callable[[list[TopicPartition]], None]


class Consumer:
    """Read events from an embedded client, alone or as a member of a group."""

    def __init__(
        self,
        client: EmbeddedClient,
        *,
        group: str | None = None,
        auto_offset_reset: Literal["earliest", "latest"] = "latest",
        from_beginning: bool = False,
        max_poll_records: int = 10_000,
        fetch_max_bytes: int = 4 << 20,
        on_assign: RebalanceCallback | None = None,
        on_revoke: RebalanceCallback | None = None,
        session_timeout_s: float | None = None,
        member_id: str | None = None,
        low_latency: bool = False,
    ) -> None:
        if auto_offset_reset not in ("earliest", "latest"):
            raise ValueError(f"auto_offset_reset must be 'earliest' or 'latest', not {auto_offset_reset!r}")
        if low_latency and client.fastlane is None:
            raise ClientError(
                "low_latency=True needs plait.connect(..., fastlane='inproc' or 'nats://...')"
            )
        self._low_latency = low_latency
        self._lane_reader: LowLatencyConsumer | None = None
        self._client = client
        self._log = client.log
        self.group = group
        self._reset = "earliest" if from_beginning else auto_offset_reset
        self._max_records = max_poll_records
        self._fetch_max_bytes = fetch_max_bytes
        self._on_assign = on_assign
        self._on_revoke = on_revoke
        self._coordinator: GroupCoordinator | None = (
            client.coordinators.get(group, session_timeout_s=session_timeout_s)
            if group is not None
            else None
        )
        self._static_id = member_id
        self._member_id: str | None = None
        self._generation = -1
        self._topics: list[str] = []
        self._positions: dict[TopicPartition, int] = {}
        self._partitions: dict[TopicPartition, Partition] = {}
        self._rr = 0
        self._wakeup = threading.Event()
        self._closed = False

    # Membership -----------------------------------------------------------------------
    def subscribe(self, topics: Iterable[str]) -> None:
        """Follow ``topics``: with a group, as one member of it; without, every partition."""
        self._check_open()
        topics = list(topics)
        for t in topics:
            self._log.describe(t)  # UnknownTopicError now, not at the first poll
        self._topics = topics
        if self._coordinator is None:
            self._set_assignment(
                [(t, p) for t in topics for p in range(self._log.describe(t).partitions)]
            )
        elif self._member_id is None:
            self._member_id = self._coordinator.join(topics, self._static_id)
            self._adopt_generation()
        else:
            self._coordinator.update(self._member_id, topics)
            self._adopt_generation()

    def assign(self, partitions: Iterable[TopicPartition]) -> None:
        """Own exactly ``partitions``, outside any group rebalancing."""
        self._check_open()
        parts = list(partitions)
        for topic, p in parts:
            n = self._log.describe(topic).partitions
            if not 0 <= p < n:
                raise PartitionOutOfRangeError(topic, p, n)
        self._set_assignment(parts)

    def assignment(self) -> list[TopicPartition]:
        self._maybe_rebalance()
        return sorted(self._positions)

    @property
    def generation(self) -> int:
        return self._generation

    def _maybe_rebalance(self) -> None:
        if (
            self._coordinator is not None
            and self._member_id is not None
            and self._coordinator.generation != self._generation
        ):
            self._adopt_generation()

    def _adopt_generation(self) -> None:
        assert self._coordinator is not None and self._member_id is not None
        generation, parts = self._coordinator.current(self._member_id)
        self._generation = generation
        self._set_assignment(parts)

    def _set_assignment(self, parts: list[TopicPartition]) -> None:
        old = set(self._positions)
        new = set(parts)
        revoked = sorted(old - new)
        if revoked and self._on_revoke:
            self._on_revoke(revoked)
        for tp in revoked:
            self._positions.pop(tp, None)
            part = self._partitions.pop(tp)
            part.remove_listener(self._on_append)
        added = sorted(new - old)
        committed = (
            self._coordinator.store.fetch_offsets(self.group, added)  # type: ignore[arg-type]
            if self._coordinator is not None and added
            else {}
        )
        for tp in added:
            part = self._log.partition(*tp)
            self._partitions[tp] = part
            part.add_listener(self._on_append)
            if tp in committed:
                start = max(committed[tp][0], part.log_start_offset)
            elif self._reset == "earliest":
                start = part.log_start_offset
            else:
                start = part.log_end_offset
            self._positions[tp] = start
        if self._low_latency and (revoked or added):
            self._restart_lane_reader()
        if added and self._on_assign:
            self._on_assign(added)
        self._wakeup.set()

    def _restart_lane_reader(self) -> None:
        """A two-path reader over the owned partitions, from their positions (it cannot
        change partitions or positions in place, so an assignment or a seek makes a new
        one; what the old one had read is in ``_positions`` already)."""
        from plait.fastlane.consumer import LowLatencyConsumer

        if self._lane_reader is not None:
            self._lane_reader.close()
            self._lane_reader = None
        if self._positions:
            assert self._client.fastlane is not None
            self._lane_reader = LowLatencyConsumer(
                self._client, list(self._positions), self._client.fastlane,
                start=dict(self._positions), max_poll_records=self._max_records,
                fetch_max_bytes=self._fetch_max_bytes,
            )

    @property
    def lane_stats(self) -> LowLatencyStats | None:
        """What the fast lane and the log each delivered (``low_latency=True`` only)."""
        return None if self._lane_reader is None else self._lane_reader.stats

    def _on_append(self, *_: object) -> None:
        self._wakeup.set()

    # Reading --------------------------------------------------------------------------
    def poll_batch(self, timeout: float = 1.0, max_records: int | None = None) -> list[ColumnBatch]:
        """Up to ``max_records`` events as columnar batches, waiting up to ``timeout`` s.

        Returns ``[]`` on timeout. Each batch holds consecutive events of one partition.
        """
        self._check_open()
        limit = max_records or self._max_records
        if self._low_latency:
            return self._poll_lane(timeout, limit)
        deadline = time.monotonic() + max(0.0, timeout)
        while True:
            self._wakeup.clear()
            self._maybe_rebalance()
            batches = self._fetch(limit)
            if batches:
                return batches
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return []
            self._wakeup.wait(remaining)

    def _poll_lane(self, timeout: float, limit: int) -> list[ColumnBatch]:
        from plait.fastlane.consumer import poll_as_member

        def current_reader() -> LowLatencyConsumer | None:
            self._maybe_rebalance()
            return self._lane_reader

        def idle(seconds: float) -> None:
            self._wakeup.clear()
            self._wakeup.wait(seconds)

        return poll_as_member(current_reader, idle, self._positions, timeout, limit)

    def poll(self, timeout: float = 1.0, max_records: int | None = None) -> list[Message]:
        """Like poll_batch, but one Message per event."""
        out: list[Message] = []
        for batch in self.poll_batch(timeout, max_records):
            out.extend(batch.messages())
        return out

    def _fetch(self, limit: int) -> list[ColumnBatch]:
        tps = list(self._positions)
        if not tps:
            return []
        out: list[ColumnBatch] = []
        budget = limit
        n = len(tps)
        for i in range(n):
            if budget <= 0:
                break
            tp = tps[(self._rr + i) % n]
            batch = self._read_partition(tp, budget)
            if batch is not None:
                out.append(batch)
                budget -= len(batch)
        self._rr = (self._rr + 1) % n
        return out

    def _read_partition(self, tp: TopicPartition, limit: int) -> ColumnBatch | None:
        part = self._partitions[tp]
        position = self._positions[tp]
        if position >= part.log_end_offset:
            return None
        try:
            data = part.read(position, self._fetch_max_bytes)
        except OffsetOutOfRangeError:
            # Retention removed what we were about to read: resume at the log start,
            # as Kafka's auto.offset.reset=earliest does; nothing stored is skipped.
            self._positions[tp] = part.log_start_offset
            return None
        if not data:
            return None
        cols = decode_columns(data)
        offsets = np.asarray(cols.offsets)
        lo = int(np.searchsorted(offsets, position, side="left"))
        hi = min(len(offsets), lo + limit)
        if lo >= hi:
            # Only control records (transaction markers) or a compaction gap at or past
            # our position: step past the stored batches by their headers, which still
            # count the offsets their skipped records occupy.
            ends = [h.next_offset for _, h in iter_batches(data)]
            self._positions[tp] = max([position, *ends])
            return None
        headers = None
        if cols.records_with_headers:
            headers = headers_at(data, offsets[lo:hi].tolist())
        batch = ColumnBatch(
            tp[0],
            tp[1],
            offsets[lo:hi],
            np.asarray(cols.timestamps)[lo:hi],
            cols.keys.slice(lo, hi - lo),
            cols.values.slice(lo, hi - lo),
            headers,
        )
        self._positions[tp] = int(offsets[hi - 1]) + 1
        return batch

    # Positions ------------------------------------------------------------------------
    def position(self, topic: str, partition: int) -> int:
        return self._positions[self._owned(topic, partition)]

    def seek(self, topic: str, partition: int, offset: int) -> None:
        """Read ``topic[partition]`` from ``offset`` next (clamped to the log's range)."""
        self._seek_many({(topic, partition): offset})

    def seek_to_beginning(self, partitions: Iterable[TopicPartition] | None = None) -> None:
        chosen = list(partitions) if partitions is not None else list(self._positions)
        self._seek_many({tp: self._partitions[self._owned(*tp)].log_start_offset for tp in chosen})

    def seek_to_end(self, partitions: Iterable[TopicPartition] | None = None) -> None:
        chosen = list(partitions) if partitions is not None else list(self._positions)
        self._seek_many({tp: self._partitions[self._owned(*tp)].log_end_offset for tp in chosen})

    def _seek_many(self, offsets: dict[TopicPartition, int]) -> None:
        """Move positions (clamped to each log's range); a low-latency reader is rebuilt
        once for all of them."""
        for (topic, partition), offset in offsets.items():
            tp = self._owned(topic, partition)
            part = self._partitions[tp]
            self._positions[tp] = min(max(offset, part.log_start_offset), part.log_end_offset)
        if self._low_latency and offsets:
            self._restart_lane_reader()

    def committed(self, topic: str, partition: int) -> int | None:
        if self._coordinator is None:
            return None
        found = self._coordinator.store.fetch_offsets(self.group, [(topic, partition)])  # type: ignore[arg-type]
        return found[(topic, partition)][0] if found else None

    def commit(self, offsets: dict[TopicPartition, int] | None = None) -> None:
        """Commit positions (default: every owned partition's) fenced by this member's generation."""
        self._check_open()
        if self._coordinator is None or self.group is None:
            raise ClientError("commit needs a consumer created with group=...")
        chosen = dict(self._positions) if offsets is None else dict(offsets)
        self._coordinator.store.commit_offsets(
            self.group, self._generation, {tp: (off, "") for tp, off in chosen.items()}
        )

    def _owned(self, topic: str, partition: int) -> TopicPartition:
        tp = (topic, partition)
        if tp not in self._positions:
            raise NotAssignedError(topic, partition)
        return tp

    # Lifecycle ------------------------------------------------------------------------
    def close(self) -> None:
        """Leave the group (its other members rebalance) and stop listening."""
        if self._closed:
            return
        self._closed = True
        if self._lane_reader is not None:
            self._lane_reader.close()
            self._lane_reader = None
        for part in self._partitions.values():
            part.remove_listener(self._on_append)
        if self._coordinator is not None and self._member_id is not None:
            self._coordinator.leave(self._member_id)

    def _check_open(self) -> None:
        if self._closed:
            raise ClientClosedError("consumer is closed")

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

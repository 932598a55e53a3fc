"""Enrich from a topic: a reference table that follows a topic as a changelog, the way a
Kafka Streams KTable follows a compacted topic. Lookups are ReferenceTable's own.

Contract:

- Each record's value is decoded under a declared schema (JSON or msgpack, the pipeline's
  reference decode); the table key is the value's ``key`` column. The last record of a
  key wins, in offset order within a partition. Records of one table key should share a
  partition (produce them with the table key as the Kafka key); across partitions the
  order is the order they were polled in.
- A record whose value is null (a tombstone) deletes the entry whose key is the record's
  Kafka key, read as UTF-8 text and cast to the key column's type (the raw bytes for a
  binary key).
- A record that does not decode, whose key field is missing or null, or a tombstone with
  no key or one that does not cast, leaves the table as it was; it is counted in
  ``rejected`` and handed to ``on_dead`` as a DeadLetter of stage ``enrich-table`` (with
  its partition, offset and raw value; the reason names the topic). It never raises.
- Opening reads every partition from its log start, as no consumer group, up to the log
  end offsets seen at open: the first lookup already sees the whole topic as it was then.
- :meth:`maybe_reload` (the enrich step calls it before each batch) polls without
  waiting, at most once every ``refresh_s``, and swaps in a new snapshot only when the
  table changed; a batch sees one snapshot throughout (ReferenceTable's contract).
- A refresh that changes the table costs one pass over its keys (against a hash of the
  changed keys only) and one copy of the table: ~30 ms for 1M rows here, so ``refresh_s``
  bounds that cost under a steady trickle of changes.
- Partitions added to the topic after open are not followed. With a ``kafka://`` client,
  how far a partition was read is known from the records returned: a topic whose tail is
  transaction markers (Kafka transactions; plait serve has none) fails the open after
  ``open_timeout_s`` with EnrichError rather than hanging.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from plait.errors import PlaitError
from plait.log.errors import UnknownTopicError
from plait.process.cpu.decode import decode_records
from plait.process.deadletter import DeadLetter, DeadLetterHandler
from plait.process.enrich import ReferenceTable
from plait.process.errors import EnrichError, SchemaError, UnknownReferenceTopicError
from plait.process.schema import Schema

if TYPE_CHECKING:
    from plait.client.messages import ColumnBatch

STAGE = "enrich-table"
# A refresh takes at most this many records, so one call cannot hold a batch up for long
# behind a producer that writes faster than the table folds; the rest comes next time.
MAX_REFRESH_RECORDS = 200_000
# During open, fold what was read every this many records, so memory holds the table
# plus one slice of the topic, not the whole topic decoded.
OPEN_FOLD_RECORDS = 1_000_000


class _Consumer(Protocol):
    def poll_batch(self, timeout: float = ..., max_records: int | None = ...) -> list[ColumnBatch]: ...

    def close(self) -> None: ...


class TopicClient(Protocol):
    """What the table needs of a client: the embedded one and the Kafka one both fit."""

    def describe_topic(self, name: str) -> Any: ...

    def consumer(self, topics: list[str] | None = None, **options: Any) -> Any: ...


@dataclass
class _Changes:
    """One polled batch, parsed: upserted rows and tombstoned keys, each with its place
    (``seq``) in the order the records were polled."""

    rows: pa.RecordBatch
    row_seq: np.ndarray
    dead_keys: pa.Array
    dead_seq: np.ndarray


class TopicReferenceTable(ReferenceTable):
    """A reference table keyed by ``key`` that follows ``topic`` (see the module contract).

    ``client``: ``plait.connect(...)``'s client, embedded or ``kafka://``. ``schema``: the
    value's fields (as for ``Pipeline.decode``); ``columns``: the value columns to add to
    enriched batches (default: all but the key). Raises UnknownReferenceTopicError when the
    topic does not exist, EnrichError when the key is not in the schema or the topic cannot
    be read to its end within ``open_timeout_s`` of no progress. Close it (or use ``with``)
    to release its consumer; lookups keep working on the last snapshot after close.
    """

    def __init__(
        self,
        client: TopicClient,
        topic: str,
        key: str,
        schema: Schema | Mapping[str, str] | pa.Schema,
        *,
        format: str = "json",
        columns: list[str] | None = None,
        refresh_s: float = 0.2,
        on_dead: DeadLetterHandler | None = None,
        open_timeout_s: float = 30.0,
    ) -> None:
        if format not in ("json", "msgpack"):
            raise SchemaError(f"enrich topic {topic!r}: expected format 'json' or 'msgpack', got {format!r}")
        if not refresh_s >= 0:
            raise EnrichError(f"enrich topic {topic!r}: expected refresh_s >= 0, got {refresh_s}")
        self.topic = topic
        self.schema = Schema.of(schema)
        self.format = format
        self.refresh_s = refresh_s
        self.on_dead = on_dead
        self.rejected = 0  # records skipped from the table (each also went to on_dead)
        self._poll_lock = threading.Lock()
        self._last_poll = -math.inf
        self._consumer: _Consumer | None = None
        super().__init__(self.schema.arrow().empty_table(), key, columns=columns)
        try:
            parts = client.describe_topic(topic).partitions
            self._consumer = client.consumer([topic], from_beginning=True)
        except UnknownTopicError as exc:
            raise UnknownReferenceTopicError(topic) from exc
        try:
            self._open(parts, open_timeout_s)
        except BaseException:
            self.close()
            raise

    def _where(self) -> str:
        return f"topic {self.topic!r}"

    # -- reading ---------------------------------------------------------------------
    def _open(self, parts: Sequence[Any], timeout: float) -> None:
        """Read up to the end offsets seen at open, folding as it goes."""
        assert self._consumer is not None
        ends = {p.partition: p.log_end_offset for p in parts}
        reached = {p.partition: p.log_start_offset for p in parts}
        changes: list[_Changes] = []
        pending = 0
        deadline = time.monotonic() + timeout
        while any(self._position(p, reached[p]) < end for p, end in ends.items()):
            got = self._poll(0.1)
            if got:
                deadline = time.monotonic() + timeout
            elif time.monotonic() > deadline:
                behind = {p: (self._position(p, reached[p]), e) for p, e in ends.items()}
                raise EnrichError(
                    f"reference {self._where()}: expected to read each partition to its end "
                    f"(partition: (position, end) {behind}), no records for {timeout} s"
                )
            for batch in got:
                reached[batch.partition] = max(reached[batch.partition], batch.next_offset)
                changes.append(self._parse(batch, pending))
                pending += len(batch)
            if pending >= OPEN_FOLD_RECORDS:
                self._fold(changes)
                changes, pending = [], 0
        self._fold(changes)
        self._last_poll = time.monotonic()

    def _position(self, partition: int, reached: int) -> int:
        """How far a partition has been read: the consumer's own position where it has one
        (the embedded consumer steps over offsets that hold no record), else past the last
        record returned."""
        position = getattr(self._consumer, "position", None)
        if position is None:
            return reached
        return max(reached, int(position(self.topic, partition)))

    def _poll(self, timeout: float) -> list[ColumnBatch]:
        assert self._consumer is not None
        try:
            return self._consumer.poll_batch(timeout=timeout)
        except PlaitError as exc:
            raise EnrichError(f"reference {self._where()}: cannot read: {exc}") from exc

    def maybe_reload(self) -> bool:
        """Take what arrived since the last look, at most once every ``refresh_s`` and
        without waiting; True when a new snapshot is in place. Another thread already
        polling makes this call return False at once (the batch keeps the current table)."""
        if self._consumer is None or time.monotonic() - self._last_poll < self.refresh_s:
            return False
        if not self._poll_lock.acquire(blocking=False):
            return False
        try:
            return self._refresh()
        finally:
            self._poll_lock.release()

    def reload(self) -> None:
        """Take what arrived since the last look now, whatever ``refresh_s`` says."""
        with self._poll_lock:
            self._refresh()

    def _refresh(self) -> bool:
        if self._consumer is None:
            return False
        self._last_poll = time.monotonic()
        changes: list[_Changes] = []
        taken = 0
        try:
            while taken < MAX_REFRESH_RECORDS:
                got = self._poll(0.0)
                if not got:
                    break
                for batch in got:
                    changes.append(self._parse(batch, taken))
                    taken += len(batch)
        finally:  # what was polled is folded even when a later poll fails: never lost
            changed = self._fold(changes)
        return changed

    # -- parsing ---------------------------------------------------------------------
    def _parse(self, batch: ColumnBatch, base: int) -> _Changes:
        """Upserts and tombstones of one polled batch; bad records reported (in offset
        order), left out."""
        values = batch.values
        tomb = values.is_null().to_numpy(zero_copy_only=False)
        live = np.flatnonzero(~tomb)
        raw = (values.filter(pa.array(~tomb)) if tomb.any() else values).to_pylist()
        res = decode_records(raw, self.schema, self.format)
        bad = [(int(live[i]), reason) for i, reason in res.errors]
        rows, at = res.batch, live[res.good]
        keys = rows.column(self.key)
        if keys.null_count:
            missing = keys.is_null().to_numpy(zero_copy_only=False)
            bad += [(int(at[j]), f"record has no key field {self.key!r} (missing or null)")
                    for j in np.flatnonzero(missing)]
            rows, at = rows.filter(pa.array(~missing)), at[~missing]
        rows = rows.set_column(rows.schema.get_field_index(self.key), self.key,
                               _normal(rows.column(self.key)))
        rows = rows.select(self._snap.table.column_names)
        dead_at = np.flatnonzero(tomb)
        dead_keys, ok = self._tombstone_keys(batch, dead_at, bad)
        for pos, reason in sorted(bad):
            self._reject(batch, pos, reason)
        return _Changes(rows, base + at, dead_keys, base + dead_at[ok])

    def _tombstone_keys(
        self, batch: ColumnBatch, at: np.ndarray, bad: list[tuple[int, str]]
    ) -> tuple[pa.Array, np.ndarray]:
        """The table keys the tombstones at ``at`` delete, and which of them had a usable
        Kafka key (a vectorized cast, one record at a time only when some do not cast);
        the others are added to ``bad``."""
        ktype = self.schema.arrow().field(self.key).type
        if len(at) == 0:
            return pa.array([], type=ktype), np.zeros(0, dtype=bool)
        raw = batch.keys.take(pa.array(at))
        if raw.null_count == 0:
            try:
                text = raw.cast(pa.binary()) if pa.types.is_binary(ktype) else raw.cast(pa.string())
                return _normal(pc.cast(text, ktype)), np.ones(len(at), dtype=bool)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                pass  # some key does not cast: find which, one by one
        good: list[Any] = []
        ok = np.zeros(len(at), dtype=bool)
        for i, k in enumerate(raw.to_pylist()):
            try:
                if k is None:
                    raise ValueError("a tombstone needs a Kafka key")
                one = pa.array([k if pa.types.is_binary(ktype) else k.decode("utf-8")])
                good.append(pc.cast(one, ktype)[0].as_py())
                ok[i] = True
            except (ValueError, pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                why = exc if k is None else f"key {k!r} is not a {ktype} key: {exc}"
                bad.append((int(at[i]), f"tombstone skipped: {why}"))
        return _normal(pa.array(good, type=ktype)), ok

    def _reject(self, batch: ColumnBatch, pos: int, reason: str) -> None:
        self.rejected += 1
        if self.on_dead is not None:
            self.on_dead(DeadLetter(
                STAGE, pos, f"reference {self._where()}: {reason}", int(batch.offsets[pos]),
                batch.values[pos].as_py(), batch.partition,
            ))

    # -- folding ---------------------------------------------------------------------
    def _fold(self, changes: list[_Changes]) -> bool:
        """Apply ``changes`` (in ``seq`` order, the last per key winning) to the current
        table; swap in a new snapshot only when some row was added, changed or deleted.
        Kept rows keep their place, changed rows are replaced in place, new keys come last.

        Cost: one pass over the table's keys against a hash of the changed keys only (not
        a hash of the table), then one copy of the table (a ``take``)."""
        changes = [c for c in changes if c.rows.num_rows or len(c.dead_keys)]
        if not changes:
            return False
        snap = self._snap
        table = snap.table
        try:
            ups = pa.Table.from_batches([c.rows for c in changes], schema=table.schema)
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise EnrichError(f"reference {self._where()}: the table's columns changed: {exc}") from exc
        up_keys = ups.column(self.key).combine_chunks()
        keys = pa.concat_arrays([up_keys, *[c.dead_keys for c in changes]])
        seq = np.concatenate([*[c.row_seq for c in changes], *[c.dead_seq for c in changes]])
        row = np.concatenate([np.arange(len(up_keys)), np.full(len(keys) - len(up_keys), -1)])
        # the last event of each key: the first one met walking the events backwards
        order = np.argsort(seq, kind="stable")
        ids = pc.dictionary_encode(keys.take(pa.array(order))).indices.to_numpy(zero_copy_only=False)
        _, first_from_end = np.unique(ids[::-1], return_index=True)
        winners = order[len(order) - 1 - first_from_end]
        win_row = row[winners]  # the winner's row in ``ups``, -1 for a tombstone
        hit = _index(snap.keys, keys.take(pa.array(winners)))  # per table row: its winner
        at = np.flatnonzero(hit >= 0)
        by = hit[at]
        upsert = win_row[by] >= 0
        matched = np.zeros(len(winners), dtype=bool)
        matched[by] = True
        added = win_row[~matched & (win_row >= 0)]
        same = upsert.all() and not len(added)
        if same and table.take(pa.array(at)).equals(ups.take(pa.array(win_row[by]))):
            return False  # every record restated what the table holds
        n = table.num_rows
        pick = np.arange(n)
        pick[at[upsert]] = n + win_row[by[upsert]]
        keep = np.ones(n, dtype=bool)
        keep[at[~upsert]] = False
        pick = np.concatenate([pick[keep], n + added])
        merged = pa.concat_tables([table, ups]).take(pa.array(pick))
        with self._lock:
            self._snap = self._build(merged, None, known_unique=True)
        return True

    # -- lifecycle -------------------------------------------------------------------
    def close(self) -> None:
        """Release the consumer; the table stops following the topic (idempotent)."""
        with self._poll_lock:
            consumer, self._consumer = self._consumer, None
            if consumer is not None:
                consumer.close()


def _normal(keys: pa.Array | pa.ChunkedArray) -> pa.Array:
    """Keys with -0.0 made 0.0 (the lookup treats them as one key, so the table does)."""
    if isinstance(keys, pa.ChunkedArray):
        keys = keys.combine_chunks()
    return pc.add(keys, 0.0) if pa.types.is_floating(keys.type) else keys


def _index(probe: pa.Array, keys: pa.Array) -> np.ndarray:
    """Row of each probe key in ``keys``, -1 where it has none. Both come with -0.0 made
    0.0 already: the snapshot's keys by ReferenceTable._build, changes by _parse."""
    found = pc.index_in(probe, value_set=keys)
    return np.asarray(pc.fill_null(found, -1).to_numpy(zero_copy_only=False), dtype=np.int64)

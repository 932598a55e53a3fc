"""An exactly-once pipeline step: read a topic, transform, write a topic, commit offsets.

Promise: after a crash at any point and a restart, every input event is reflected in
the output exactly once, in input order per partition, provided the function is
deterministic (the same input gives the same outputs) and the step is the only writer
of its sink topic.

Scheme (outputs keyed by input offsets, as DESIGN.md says):

1. Input partition p is written to sink partition p, so one partition's outputs have
   one writer and one order.
2. Every output record carries a ``plait.src`` header: the input offset it reflects
   ("every input up to and including this offset is written"). The outputs of one
   input event are always inside one RecordBatch, and a RecordBatch is appended or
   truncated whole by log recovery, so the sink's last record names an input whose
   outputs are all there.
3. When the step gains partition p it reads the sink's last record, H, and resumes at
   max(committed offset, H + 1): inputs already written are skipped, not re-written.
   Inputs after H that gave no output are simply recomputed (and again give none).
4. Input offsets are committed after the outputs are appended, once per poll for every
   partition read (one metadata transaction), fenced by the member's generation. A crash
   between append and commit is repaired by step 3; a crash before the append loses
   nothing, since the commit has not moved.
5. Zombies: outputs are appended as an idempotent producer whose epoch is the group
   generation in which the partition was gained. The log rejects an older epoch once
   the new owner wrote (ProducerFencedError), and the old owner's offset commits are
   fenced by generation. The residual window is a zombie append between the new
   owner's tail read and its first append; it needs a member that keeps processing
   after it adopted a newer generation's revocation or after its lease expired, which
   plait's consumer never does, since it drops revoked partitions at its next poll.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Self

import numpy as np
import pyarrow as pa

from plait.client.messages import ColumnBatch, Message
from plait.functions.errors import (
    ForeignOutputError,
    OutputTooLargeError,
    StepConfigError,
)
from plait.meta.interface import Compare, Put
from plait.protocol.records import encode_batch, iter_records

if TYPE_CHECKING:
    from plait.client.connect import EmbeddedClient
    from plait.log import Partition

SRC_HEADER = "plait.src"
EPOCHS_PER_ERA = 32767  # producer epochs are int16; past that a new producer id is used
_RECORD_OVERHEAD = 64 + len(SRC_HEADER) + 20  # varints, attributes, the header: generous
_BATCH_OVERHEAD = 61

EventFn = Callable[[Message], "bytes | None | Sequence[bytes]"]
BatchFn = Callable[[ColumnBatch], "Sequence[bytes | None] | pa.Array"]
RecordTuple = tuple[bytes | None, bytes | None, int, list[tuple[str, bytes | None]]]


def last_reflected(partition: Partition, max_bytes: int) -> int:
    """The input offset named by the sink partition's last record; -1 when it is empty."""
    end = partition.log_end_offset
    if end <= partition.log_start_offset:
        return -1
    last = None
    for record in iter_records(partition.read(end - 1, max_bytes)):
        last = record
    if last is None:
        raise ForeignOutputError(partition.topic, partition.index, end - 1)
    for key, value in last.headers:
        if key == SRC_HEADER and value is not None:
            return int(value)
    raise ForeignOutputError(partition.topic, partition.index, last.offset)


@dataclass
class _SinkWriter:
    """The idempotent producer state for one sink partition during one ownership."""

    partition: Partition
    producer_id: int
    epoch: int
    sequence: int = 0


class Step:
    """Run ``fn`` (per event) or ``batch_fn`` (per columnar batch) from ``source`` to ``sink``.

    ``fn`` returns an output value, None (no output) or a sequence of values; outputs
    keep the input's key and timestamp. ``batch_fn`` returns one value per output for
    a whole batch (any count). Members of the group ``step.<name>`` share the input
    partitions; ``member_id`` makes a worker's membership static across restarts.
    """

    def __init__(
        self,
        client: EmbeddedClient,
        name: str,
        source: str,
        sink: str,
        fn: EventFn | None = None,
        *,
        batch_fn: BatchFn | None = None,
        member_id: str | None = None,
        session_timeout_s: float | None = None,
        max_records: int = 1000,
        auto_offset_reset: Literal["earliest", "latest"] = "earliest",
    ) -> None:
        if (fn is None) == (batch_fn is None):
            raise StepConfigError(f"step {name!r}: expected exactly one of fn= or batch_fn=")
        src_parts = client.log.describe(source).partitions
        sink_parts = client.log.describe(sink).partitions
        if sink_parts < src_parts:
            raise StepConfigError(
                f"step {name!r}: sink {sink!r} has {sink_parts} partitions, expected at least "
                f"the {src_parts} of source {source!r} (input partition p writes sink partition p)"
            )
        self.name = name
        self.source = source
        self.sink = sink
        self._client = client
        self._fn = fn
        self._batch_fn = batch_fn
        self._limit = client.log_config.max_batch_bytes
        self._writers: dict[int, _SinkWriter] = {}
        self._producer_ids: dict[int, int] = {}
        self.consumer = client.consumer(
            group=f"step.{name}",
            auto_offset_reset=auto_offset_reset,
            max_poll_records=max_records,
            member_id=member_id,
            session_timeout_s=session_timeout_s,
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
        )
        self.consumer.subscribe([source])

    # Ownership --------------------------------------------------------------------------
    def _on_assign(self, parts: list[tuple[str, int]]) -> None:
        generation = self.consumer.generation
        for topic, p in parts:
            writer = _SinkWriter(
                self._client.log.partition(self.sink, p),
                self._producer_id(generation // EPOCHS_PER_ERA),
                generation % EPOCHS_PER_ERA,
            )
            self._writers[p] = writer
            resume = last_reflected(writer.partition, self._limit) + 1
            if resume > self.consumer.position(topic, p):
                self.consumer.seek(topic, p, resume)

    def _on_revoke(self, parts: list[tuple[str, int]]) -> None:
        for _, p in parts:
            self._writers.pop(p, None)

    def _producer_id(self, era: int) -> int:
        """One producer id per step and era, agreed by every worker through the store."""
        found = self._producer_ids.get(era)
        if found is not None:
            return found
        meta = self._client.meta
        key = f"/plait/functions/{self.name}/producer/{era}".encode()
        fresh = self._client.log.allocate_producer_id()
        meta.txn([Compare.absent(key)], [Put(key, str(fresh).encode())])
        kv = meta.get(key)
        assert kv is not None  # we or a peer just created it; keys here are never deleted
        self._producer_ids[era] = int(kv.value)
        return self._producer_ids[era]

    # Processing -------------------------------------------------------------------------
    def run_once(self, timeout: float = 1.0) -> int:
        """Process what one poll returns; returns how many input events it covered."""
        batches = self.consumer.poll_batch(timeout)
        done = 0
        for batch in batches:
            writer = self._writers[batch.partition]
            if self._fn is not None:
                self._append(writer, self._event_outputs(batch))
            else:
                self._append(writer, self._batch_outputs(batch))
            done += len(batch)
        if batches:
            self.consumer.commit({(b.topic, b.partition): b.next_offset for b in batches})
        return done

    def run(self, stop: threading.Event | None = None, idle_exit_s: float | None = None) -> int:
        """Loop until ``stop`` is set or nothing arrived for ``idle_exit_s``; returns events done."""
        total = 0
        idle_since = time.monotonic()
        while stop is None or not stop.is_set():
            n = self.run_once(0.2)
            total += n
            now = time.monotonic()
            if n:
                idle_since = now
            elif idle_exit_s is not None and now - idle_since >= idle_exit_s:
                break
        return total

    def _event_outputs(self, batch: ColumnBatch) -> list[list[RecordTuple]]:
        """Outputs grouped by input event (a group is never split across record batches)."""
        assert self._fn is not None
        groups: list[list[RecordTuple]] = []
        for m in batch.messages():
            out = self._fn(m)
            if out is None:
                continue
            values = [out] if isinstance(out, (bytes, bytearray, memoryview)) else list(out)
            if not values:
                continue
            header: list[tuple[str, bytes | None]] = [(SRC_HEADER, b"%d" % m.offset)]
            groups.append([(m.key, bytes(v), m.timestamp, header) for v in values])
        return groups

    def _batch_outputs(self, batch: ColumnBatch) -> list[list[RecordTuple]]:
        """One group for the whole batch, tagged with its last offset; halves the batch
        until its outputs fit one record batch (the function is deterministic)."""
        assert self._batch_fn is not None
        raw = self._batch_fn(batch)
        values = raw.to_pylist() if isinstance(raw, (pa.Array, pa.ChunkedArray)) else list(raw)
        if not values:
            return []
        header: list[tuple[str, bytes | None]] = [(SRC_HEADER, b"%d" % int(batch.offsets[-1]))]
        ts = int(batch.timestamps[-1])
        group: list[RecordTuple] = [(None, v, ts, header) for v in values]
        if _size(group) + _BATCH_OVERHEAD <= self._limit:
            return [group]
        if len(batch) == 1:
            raise OutputTooLargeError(
                batch.topic, batch.partition, int(batch.offsets[0]), _size(group), self._limit
            )
        half = len(batch) // 2
        return self._batch_outputs(_slice(batch, 0, half)) + self._batch_outputs(
            _slice(batch, half, len(batch))
        )

    def _append(self, writer: _SinkWriter, groups: list[list[RecordTuple]]) -> None:
        """Append every group in one log append, cut into record batches at group bounds."""
        if not groups:
            return
        chunks: list[list[RecordTuple]] = [[]]
        size = _BATCH_OVERHEAD
        for group in groups:
            gsize = _size(group)
            if gsize + _BATCH_OVERHEAD > self._limit:
                src = int(group[0][3][0][1] or b"-1")
                raise OutputTooLargeError(self.source, writer.partition.index, src, gsize, self._limit)
            if chunks[-1] and size + gsize > self._limit:
                chunks.append([])
                size = _BATCH_OVERHEAD
            chunks[-1].extend(group)
            size += gsize
        encoded = []
        seq = writer.sequence
        for chunk in chunks:
            encoded.append(
                encode_batch(
                    chunk,
                    producer_id=writer.producer_id,
                    producer_epoch=writer.epoch,
                    base_sequence=seq,
                )
            )
            seq = (seq + len(chunk)) % 2**31
        writer.partition.append(b"".join(encoded))
        writer.sequence = seq

    def close(self) -> None:
        """Leave the group (the other workers take the partitions over)."""
        self.consumer.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _size(group: list[RecordTuple]) -> int:
    return sum(len(r[0] or b"") + len(r[1] or b"") + _RECORD_OVERHEAD for r in group)


def _slice(batch: ColumnBatch, a: int, b: int) -> ColumnBatch:
    return ColumnBatch(
        batch.topic,
        batch.partition,
        np.asarray(batch.offsets[a:b]),
        np.asarray(batch.timestamps[a:b]),
        batch.keys.slice(a, b - a),
        batch.values.slice(a, b - a),
    )

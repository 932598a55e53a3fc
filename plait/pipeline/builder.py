"""The user-facing pipeline: a chain of operators over Arrow record batches.

    pipeline(source).decode({"amount": "float", ...})
        .filter("amount > 100 and country in ('DE', 'FR')")
        .enrich("users.csv", on="user_id")
        .match(["fraud", "chargeback"], field="note")
        .to(sink)
        .run()

Contract: batches flow through the steps in source order and rows keep their order inside
a batch; every input row ends in exactly one place: an output batch, a filter's "no", or a
dead letter (with stage, position, input offset and reason). Builder methods add a step
and return the same pipeline. A pipeline runs once over its source (window state lives in
it); build a new one to run again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import (
    Any,
    TypeAlias,
)

import numpy as np
import pyarrow as pa

from plait.pipeline.steps import (
    OFFSET,
    PARTITION,
    Context,
    Decode,
    Decrypt,
    Enrich,
    Filter,
    Map,
    Match,
    Project,
    RawBatch,
    Step,
    Window,
)
from plait.process.deadletter import DeadLetter, DeadLetterHandler
from plait.process.decrypt import KeyRing
from plait.process.engine import EngineSelector
from plait.process.enrich import ReferenceTable
from plait.process.errors import SchemaError
from plait.process.match import PatternSet
from plait.process.schema import Schema
from plait.process.session import SessionSpec
from plait.process.sinks import CallbackSink, Sink
from plait.process.window import WindowSpec

SourceItem: TypeAlias = pa.RecordBatch | Sequence[bytes] | RawBatch


@dataclass
class RunStats:
    batches_in: int = 0
    rows_in: int = 0
    rows_out: int = 0
    dead_letters: int = 0


class Pipeline:
    def __init__(
        self,
        source: Iterable[SourceItem] | None = None,
        *,
        engine: str | EngineSelector = "auto",
        dead_letters: DeadLetterHandler | None = None,
    ) -> None:
        self.source = source
        self.steps: list[Step] = []
        self.sinks: list[Sink] = []
        self.dead_letters: list[DeadLetter] = []
        selector = engine if isinstance(engine, EngineSelector) else EngineSelector(engine)
        self._ctx = Context(selector, dead_letters or self.dead_letters.append)
        self._own_dead_handler = dead_letters is not None
        self._next_offset = 0
        self._chain: tuple[Any, tuple[int, ...], Any] | None = None  # see _device_chain

    def pending_offsets(self) -> dict[int | None, int]:
        """Per input partition, the first input offset some sink still holds in memory
        (a Parquet sink rolling larger files): a runner commits no offset past it."""
        out: dict[int | None, int] = {}
        for sink in self.sinks:
            pending = getattr(sink, "pending_offsets", None)
            if callable(pending):
                for part, off in pending().items():
                    out[part] = min(off, out.get(part, off))
        return out

    def send_dead_letters_to(self, handler: DeadLetterHandler) -> bool:
        """Where dead letters go when the pipeline was built without a handler (what a
        runner such as ``plait run`` sets, so they are not only kept in memory). Returns
        False, changing nothing, when the builder gave its own handler."""
        if self._own_dead_handler:
            return False
        self._ctx.on_dead = handler
        return True

    # -- building ------------------------------------------------------------------------
    def decode(
        self, schema: Schema | Mapping[str, str] | pa.Schema, *, format: str = "json"
    ) -> Pipeline:
        """JSON documents or msgpack maps -> typed columns; misfits become dead letters."""
        if format not in ("json", "msgpack"):
            raise SchemaError(
                f"decode: expected format 'json' or 'msgpack', got {format!r}"
            )
        return self._add(Decode(Schema.of(schema), format))

    def filter(self, expr: str) -> Pipeline:
        """Keep rows where ``expr`` is true (null counts as false)."""
        return self._add(Filter(expr))

    def project(self, *columns: str, **computed: str) -> Pipeline:
        """Select columns, then add computed ones: ``project("a", total="amount * 2")``;
        rename with ``new="old"``."""
        return self._add(Project([(c, c) for c in columns] + list(computed.items())))

    def map(
        self,
        fn: Callable[..., Any],
        *,
        inputs: list[str] | None = None,
        output: str | None = None,
    ) -> Pipeline:
        """A vectorized function over the batch, or over ``inputs`` columns into ``output``."""
        if (inputs is None) != (output is None):
            raise SchemaError("map: expected both inputs and output, or neither")
        return self._add(Map(fn, inputs, output))

    def enrich(
        self,
        table: ReferenceTable | str | Path | pa.Table,
        on: str,
        *,
        key: str | None = None,
        columns: list[str] | None = None,
    ) -> Pipeline:
        """Left lookup of ``on`` in a reference table (file reloaded when it changes)."""
        ref = (
            table
            if isinstance(table, ReferenceTable)
            else ReferenceTable(table, key or on, columns=columns)
        )
        return self._add(Enrich(ref, on))

    def match(
        self,
        patterns: Sequence[str | bytes],
        field: str,
        *,
        output: str = "match",
        caseless: bool = False,
        names: bool = False,
    ) -> Pipeline:
        """Which literal patterns occur in ``field``: ``<output>_ids``, ``<output>_any``."""
        return self._add(
            Match(PatternSet.of(patterns, caseless=caseless), field, output, names)
        )

    def decrypt(
        self,
        field: str,
        key_id: str,
        keys: KeyRing | Mapping[str, bytes | str] | str | Path,
        *,
        output: str | None = None,
        aad: str | None = None,
        as_string: bool = False,
    ) -> Pipeline:
        """AES-GCM per record (layout in plait.process.decrypt); failures are dead letters."""
        return self._add(
            Decrypt(field, key_id, KeyRing.of(keys), output, aad, as_string)
        )

    def window(
        self,
        size: int,
        time: str,
        *,
        slide: int | None = None,
        lateness: int = 0,
        key: str | None = None,
        value: str | None = None,
        quantiles: Sequence[float] = (),
        alpha: float = 0.01,
    ) -> Pipeline:
        """Tumbling (or sliding) event-time windows; emits rows of aggregates per window."""
        return self._add(
            Window(
                WindowSpec(
                    size, time, slide, lateness, key, value, tuple(quantiles), alpha
                )
            )
        )

    def session_window(
        self,
        gap: int,
        time: str,
        *,
        lateness: int = 0,
        key: str | None = None,
        value: str | None = None,
        quantiles: Sequence[float] = (),
        alpha: float = 0.01,
    ) -> Pipeline:
        """Session windows: per key, records closer than ``gap`` in event time form one
        session; emits a row of aggregates per session once the watermark passes it."""
        return self._add(
            Window(SessionSpec(gap, time, lateness, key, value, tuple(quantiles), alpha))
        )

    def to(self, sink: Sink | Callable[[pa.RecordBatch], Any]) -> Pipeline:
        """Send output batches to ``sink`` (a Sink or a callable)."""
        self.sinks.append(sink if isinstance(sink, Sink) else CallbackSink(sink))
        return self

    def _add(self, step: Step) -> Pipeline:
        self.steps.append(step)
        return self

    # -- running -------------------------------------------------------------------------
    def process(self, item: SourceItem) -> list[pa.RecordBatch]:
        """Run one input batch through every step; returns the output batches (also sent to
        the sinks). Undecoded input gets offsets continuing from the previous batch unless
        it is a RecordBatch with an ``_offset`` column or a RawBatch."""
        batch: Any = self._normalize(item)
        partition = batch.partition if isinstance(batch, RawBatch) else None
        self._ctx.partition = partition
        outs = self._run_from(0, batch)
        if partition is not None:
            outs = [_with_partition(b, partition) for b in outs]
        self._deliver(outs)
        return outs

    def flush(self) -> list[pa.RecordBatch]:
        """End of input: let stateful steps (windows) emit what they hold."""
        outs: list[pa.RecordBatch] = []
        self._ctx.partition = None  # what windows hold spans partitions
        for i, step in enumerate(self.steps):
            tail = step.flush(self._ctx)
            if tail is not None and tail.num_rows:
                outs.extend(self._run_from(i + 1, tail))
        self._deliver(outs)
        return outs

    def __iter__(self) -> Iterator[pa.RecordBatch]:
        if self.source is None:
            raise SchemaError("pipeline: expected a source to iterate, got None")
        for item in self.source:
            yield from self.process(item)
        yield from self.flush()

    def run(self) -> RunStats:
        """Drain the source into the sinks; returns counts."""
        stats = RunStats()
        if self.source is None:
            raise SchemaError("pipeline: expected a source to run, got None")
        for item in self.source:
            stats.batches_in += 1
            stats.rows_in += _rows(item)
            stats.rows_out += sum(b.num_rows for b in self.process(item))
        stats.rows_out += sum(b.num_rows for b in self.flush())
        for sink in self.sinks:
            close = getattr(sink, "close", None)
            if callable(close):
                close()
        stats.dead_letters = self._ctx.dead_count
        return stats

    def _run_from(self, start: int, batch: Any) -> list[pa.RecordBatch]:
        if start == 0 and isinstance(batch, RawBatch):
            done, batch = self._device_chain(batch)
            if batch is None:
                return []
            start = done
        steps = self.steps
        i = start
        while i < len(steps):
            step = steps[i]
            if isinstance(batch, RawBatch) and not isinstance(step, Decode):
                raise SchemaError(
                    f"{step.name}: records were never decoded; add .decode(schema) first"
                )
            nxt = steps[i + 1] if i + 1 < len(steps) else None
            if isinstance(step, Decode) and isinstance(nxt, Filter):
                batch, filtered = step.apply_filtered(batch, self._ctx, nxt)
                i += 2 if filtered else 1
            else:
                batch = step.apply(batch, self._ctx)
                i += 1
            if batch is None:
                return []
        if isinstance(batch, RawBatch):
            raise SchemaError(
                "pipeline: records were never decoded; add .decode(schema)"
            )
        return [batch] if batch.num_rows else []

    def _device_chain(self, raw: RawBatch) -> tuple[int, Any]:
        """Run the leading decode -> filter / enrich / match steps as one device chain when
        the engine picked for this batch's decode is a GPU (see plait.process.gpu.chain);
        returns (steps done, their output). (0, raw) when the chain does not apply."""
        if not self.steps or not isinstance(self.steps[0], Decode) or len(raw.values) == 0:
            return 0, raw
        engine = self._ctx.engines.pick("decode", len(raw.values))
        chain_for = getattr(engine, "chain_for", None)
        if chain_for is None or not bool(np.all(np.diff(np.asarray(raw.offsets)) > 0)):
            return 0, raw
        planned = self._chain
        if planned is None or planned[0] is not engine or planned[1] != tuple(map(id, self.steps)):
            # planned once per engine and step list (steps can still be added after a batch)
            planned = self._chain = (engine, tuple(map(id, self.steps)), chain_for(self.steps))
        chain = planned[2]
        if chain.length < 2:  # decode alone: the engine's own decode does as well
            return 0, raw
        return chain.length, chain.run(raw, self._ctx)

    def _deliver(self, outs: list[pa.RecordBatch]) -> None:
        for b in outs:
            for sink in self.sinks:
                sink.write(b)

    def _normalize(self, item: SourceItem) -> Any:
        if isinstance(item, RawBatch):
            self._next_offset = (
                int(item.offsets[-1]) + 1 if len(item.offsets) else self._next_offset
            )
            return item
        if isinstance(item, pa.RecordBatch):
            if OFFSET not in item.schema.names:
                offs = np.arange(
                    self._next_offset, self._next_offset + item.num_rows, dtype=np.int64
                )
                item = item.append_column(OFFSET, pa.array(offs))
            if item.num_rows:
                self._next_offset = (
                    int(item.column(OFFSET)[item.num_rows - 1].as_py()) + 1
                )
            if self.steps and isinstance(self.steps[0], Decode):
                if "value" not in item.schema.names:
                    raise SchemaError(
                        f"decode: expected a 'value' column, columns are {item.schema.names}"
                    )
                vals = [
                    v.encode("utf-8") if isinstance(v, str) else v
                    for v in item.column("value").to_pylist()
                ]
                return RawBatch(
                    vals,
                    item.column(OFFSET).to_numpy(zero_copy_only=False),
                    _one_partition(item),
                )
            return item
        values = list(item)
        offs = np.arange(
            self._next_offset, self._next_offset + len(values), dtype=np.int64
        )
        self._next_offset += len(values)
        return RawBatch(values, offs)


def _with_partition(batch: pa.RecordBatch, partition: int) -> pa.RecordBatch:
    """Rows that carry input offsets get their input partition beside them: an offset
    names an event only together with its partition (what the Parquet sink keys on)."""
    if OFFSET not in batch.schema.names or PARTITION in batch.schema.names:
        return batch
    return batch.append_column(
        PARTITION, pa.array(np.full(batch.num_rows, partition, dtype=np.int32))
    )


def _one_partition(item: pa.RecordBatch) -> int | None:
    """The input partition of a batch to decode, from its ``_partition`` column."""
    idx = item.schema.get_field_index(PARTITION)
    if idx < 0 or item.num_rows == 0:
        return None
    parts = item.column(idx)
    if parts.null_count or len(parts.unique()) != 1:
        raise SchemaError(
            f"decode: expected one input partition per batch in {PARTITION!r}, got {parts.unique().to_pylist()}"
        )
    return int(parts[0].as_py())


def _rows(item: SourceItem) -> int:
    if isinstance(item, pa.RecordBatch):
        return item.num_rows
    if isinstance(item, RawBatch):
        return len(item.values)
    return len(item)


def pipeline(
    source: Iterable[SourceItem] | None = None,
    *,
    engine: str | EngineSelector = "auto",
    dead_letters: DeadLetterHandler | None = None,
) -> Pipeline:
    """Start a pipeline over ``source``: an iterable of Arrow record batches, of lists of raw
    records (bytes), or of RawBatch. ``engine``: "auto", "cpu" or "gpu" (GpuUnavailableError
    when no GPU). Dead letters go to ``dead_letters`` or collect in ``.dead_letters``, in
    memory: give a handler to a pipeline that runs without end (``plait run`` does)."""
    return Pipeline(source, engine=engine, dead_letters=dead_letters)

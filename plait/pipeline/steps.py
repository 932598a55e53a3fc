"""The operators a Pipeline chains. Each step takes a batch and returns a batch (or None
when nothing is left to pass on), reporting rejected rows through the Context.

Every step keeps row order and keeps the ``_offset`` column (each row's input offset),
which dead letters and the exactly-once Parquet sink rely on. A batch read from a topic
is one partition's events; the pipeline adds that partition as ``_partition`` to what
it hands the sinks, since offsets are only unique within a partition.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from plait.process.cpu.expr_compile import CompiledExpr, compile_expr
from plait.process.deadletter import DeadLetter, DeadLetterHandler
from plait.process.decrypt import KeyRing
from plait.process.engine import EngineSelector
from plait.process.enrich import ReferenceTable
from plait.process.errors import SchemaError
from plait.process.match import MatchResult, PatternSet
from plait.process.schema import Schema
from plait.process.session import SessionSpec, SessionWindowOperator
from plait.process.window import WindowOperator, WindowSpec

OFFSET = "_offset"
PARTITION = "_partition"


@dataclass
class RawBatch:
    """Undecoded records and their input offsets (what a source yields before decode).

    ``partition``: the input partition the records come from, when the source is a topic.
    """

    values: Sequence[bytes]
    offsets: np.ndarray
    partition: int | None = None


@dataclass
class Context:
    engines: EngineSelector
    on_dead: DeadLetterHandler
    dead_count: int = 0
    partition: int | None = None  # the input partition of the batch being processed

    def reject(
        self,
        stage: str,
        batch: pa.RecordBatch | RawBatch,
        rows: Sequence[tuple[int, str]],
    ) -> None:
        """Report rows of ``batch`` (position, reason) as dead letters, in position order."""
        for pos, reason in rows:
            if isinstance(batch, RawBatch):
                offset: int | None = int(batch.offsets[pos])
                value: Any = batch.values[pos]
            else:
                offset = _offset_at(batch, pos)
                value = batch.slice(pos, 1).to_pylist()[0]
            self.dead_count += 1
            self.on_dead(DeadLetter(stage, pos, reason, offset, value, self.partition))


def _offset_at(batch: pa.RecordBatch, pos: int) -> int | None:
    idx = batch.schema.get_field_index(OFFSET)
    return None if idx < 0 else batch.column(idx)[pos].as_py()


class Step:
    name = "step"

    def apply(self, batch: Any, ctx: Context) -> pa.RecordBatch | None:
        raise NotImplementedError

    def flush(self, ctx: Context) -> pa.RecordBatch | None:
        return None


class _ExprCache:
    """Compiles an expression once per input schema (schemas rarely change)."""

    def __init__(self, text: str, want: str | None) -> None:
        self.text, self.want = text, want
        self._by_schema: dict[pa.Schema, CompiledExpr] = {}

    def get(self, schema: pa.Schema) -> CompiledExpr:
        ce = self._by_schema.get(schema)
        if ce is None:
            ce = self._by_schema[schema] = compile_expr(
                self.text, schema, want=self.want
            )
        return ce


@dataclass
class Decode(Step):
    schema: Schema
    format: str = "json"
    name = "decode"

    def __post_init__(self) -> None:
        self._checked: set[str] = set()  # filter texts known to compile on this output

    def apply(self, batch: Any, ctx: Context) -> pa.RecordBatch | None:
        if not isinstance(batch, RawBatch):
            raise SchemaError(
                f"decode: expected undecoded records, got a decoded batch with {batch.schema.names}"
            )
        res = ctx.engines.pick("decode", len(batch.values)).decode(
            batch.values, self.schema, self.format
        )
        return self._with_offsets(batch, res, ctx)

    def apply_filtered(
        self, batch: Any, ctx: Context, flt: Filter
    ) -> tuple[pa.RecordBatch | None, bool]:
        """Decode, and apply the next step, filter ``flt``, in the same pass where the
        engine can (then True: the filter is done). Why: rows the filter drops are then
        never built as Arrow columns, which is most of a small batch's cost."""
        if not isinstance(batch, RawBatch):
            return self.apply(batch, ctx), False
        engine = ctx.engines.pick("decode", len(batch.values))
        decode_where = getattr(engine, "decode_where", None)
        if decode_where is None:
            return self.apply(batch, ctx), False
        if flt.text not in self._checked:  # the filter's own errors first, as it would raise
            flt.expression(self.schema.arrow().append(pa.field(OFFSET, pa.int64())))
            self._checked.add(flt.text)
        res, filtered = decode_where(batch.values, self.schema, self.format, flt.text)
        return self._with_offsets(batch, res, ctx), filtered

    def _with_offsets(self, batch: RawBatch, res: Any, ctx: Context) -> pa.RecordBatch:
        if res.errors:
            ctx.reject(self.name, batch, res.errors)
        offs = pa.array(batch.offsets[res.good], type=pa.int64())
        return res.batch.append_column(OFFSET, offs)


@dataclass
class Filter(Step):
    text: str
    name = "filter"

    def __post_init__(self) -> None:
        self._cache = _ExprCache(self.text, "bool")

    def expression(self, schema: pa.Schema) -> CompiledExpr:
        """The filter compiled for batches of ``schema`` (raises its syntax or type error)."""
        return self._cache.get(schema)

    def apply(self, batch: pa.RecordBatch, ctx: Context) -> pa.RecordBatch | None:
        expr = self._cache.get(batch.schema)
        mask = ctx.engines.pick("filter", batch.num_rows).evaluate(expr, batch)
        return batch.filter(mask, null_selection_behavior="drop")


@dataclass
class Project(Step):
    """Output columns in the given order: a plain name keeps a column, ``new=expr`` computes
    (or renames: ``new="old"``). ``_offset`` and ``_partition`` are kept when present."""

    columns: list[tuple[str, str]]
    name = "project"

    def __post_init__(self) -> None:
        self._caches = [(out, _ExprCache(text, None)) for out, text in self.columns]

    def apply(self, batch: pa.RecordBatch, ctx: Context) -> pa.RecordBatch | None:
        arrays, names = [], []
        for out, cache in self._caches:
            if cache.text in batch.schema.names:  # plain column: keep its exact type
                arrays.append(batch.column(cache.text))
            else:
                arrays.append(
                    ctx.engines.pick("filter", batch.num_rows).evaluate(
                        cache.get(batch.schema), batch
                    )
                )
            names.append(out)
        for kept in (OFFSET, PARTITION):
            if kept in batch.schema.names and kept not in names:
                arrays.append(batch.column(kept))
                names.append(kept)
        return pa.RecordBatch.from_arrays(arrays, names=names)


@dataclass
class Map(Step):
    """A vectorized user function: ``fn(batch) -> batch``, or with ``inputs``,
    ``fn(*arrays) -> array`` stored as column ``output``. It must keep row count and order."""

    fn: Callable[..., Any]
    inputs: list[str] | None = None
    output: str | None = None
    name = "map"

    def apply(self, batch: pa.RecordBatch, ctx: Context) -> pa.RecordBatch | None:
        if self.inputs is None:
            out = self.fn(batch)
            if not isinstance(out, pa.RecordBatch) or out.num_rows != batch.num_rows:
                raise SchemaError(
                    f"map: expected a RecordBatch of {batch.num_rows} rows from {self.fn!r}, got {out!r:.80}"
                )
            for kept in (OFFSET, PARTITION):
                if kept in batch.schema.names and kept not in out.schema.names:
                    out = out.append_column(kept, batch.column(kept))
            return out
        assert self.output is not None
        cols = [batch.column(c) for c in self.inputs]
        arr = self.fn(*cols)
        if not isinstance(arr, (pa.Array, pa.ChunkedArray)):
            arr = pa.array(arr)
        if len(arr) != batch.num_rows:
            raise SchemaError(
                f"map: {self.output!r} expected {batch.num_rows} values, got {len(arr)}"
            )
        idx = batch.schema.get_field_index(self.output)
        if idx >= 0:
            return batch.set_column(idx, self.output, arr)
        return batch.append_column(self.output, arr)


@dataclass
class Enrich(Step):
    table: ReferenceTable
    on: str
    name = "enrich"

    def apply(self, batch: pa.RecordBatch, ctx: Context) -> pa.RecordBatch | None:
        self.table.maybe_reload()
        return self.table.lookup(batch, self.on)


@dataclass
class Match(Step):
    """Adds ``<output>_ids`` (list<int32> pattern ids), ``<output>_any`` (bool) and, with
    ``names``, ``<output>_names`` (list<string>)."""

    patterns: PatternSet
    field: str
    output: str = "match"
    names: bool = False
    name = "match"

    def apply(self, batch: pa.RecordBatch, ctx: Context) -> pa.RecordBatch | None:
        idx = batch.schema.get_field_index(self.field)
        if idx < 0:
            raise SchemaError(
                f"match: expected field {self.field!r}, columns are {batch.schema.names}"
            )
        res = ctx.engines.pick("match", batch.num_rows).match(
            batch.column(idx), self.patterns
        )
        return self.attach(batch, res)

    def attach(self, batch: pa.RecordBatch, res: MatchResult) -> pa.RecordBatch:
        """Append the result columns (both engines' batches end here)."""
        batch = batch.append_column(f"{self.output}_ids", res.ids).append_column(
            f"{self.output}_any", res.any
        )
        if self.names:
            names = pa.array(self.patterns.names, type=pa.string())
            flat = names.take(res.ids.values)
            batch = batch.append_column(
                f"{self.output}_names", pa.ListArray.from_arrays(res.ids.offsets, flat)
            )
        return batch


@dataclass
class Decrypt(Step):
    field: str
    key_id: str
    ring: KeyRing
    output: str | None = None
    aad: str | None = None
    as_string: bool = False
    name = "decrypt"

    def apply(self, batch: pa.RecordBatch, ctx: Context) -> pa.RecordBatch | None:
        for col in (self.field, self.key_id, *([self.aad] if self.aad else [])):
            if col not in batch.schema.names:
                raise SchemaError(
                    f"decrypt: expected column {col!r}, columns are {batch.schema.names}"
                )
        aad = batch.column(self.aad) if self.aad else None
        res = ctx.engines.pick("decrypt", batch.num_rows).decrypt(
            batch.column(self.field), batch.column(self.key_id), self.ring, aad
        )
        plain: pa.Array = res.plaintext
        errors = list(res.errors)
        if self.as_string:
            texts = []
            for i, v in enumerate(plain.to_pylist()):
                try:
                    texts.append(None if v is None else v.decode("utf-8"))
                except UnicodeDecodeError as exc:
                    texts.append(None)
                    errors.append((i, f"plaintext is not UTF-8: {exc}"))
            plain = pa.array(texts, type=pa.string())
        out_name = self.output or self.field
        idx = batch.schema.get_field_index(out_name)
        out = (
            batch.set_column(idx, out_name, plain)
            if idx >= 0
            else batch.append_column(out_name, plain)
        )
        if not errors:
            return out
        errors.sort()
        ctx.reject(self.name, batch, errors)
        keep = np.ones(batch.num_rows, dtype=bool)
        keep[[p for p, _ in errors]] = False
        return out.filter(pa.array(keep))


@dataclass
class Window(Step):
    spec: WindowSpec | SessionSpec
    name = "window"
    op: WindowOperator | SessionWindowOperator = field(init=False)

    def __post_init__(self) -> None:
        self.op = (
            SessionWindowOperator(self.spec)
            if isinstance(self.spec, SessionSpec)
            else WindowOperator(self.spec)
        )

    def apply(self, batch: pa.RecordBatch, ctx: Context) -> pa.RecordBatch | None:
        out, late = self.op.process(batch)
        if late:
            ctx.reject(self.name, batch, late)
        return out

    def flush(self, ctx: Context) -> pa.RecordBatch | None:
        return self.op.flush()


def nonempty(batch: pa.RecordBatch | None) -> bool:
    return batch is not None and batch.num_rows > 0


__all__ = [
    "OFFSET",
    "PARTITION",
    "Context",
    "Decode",
    "Decrypt",
    "Enrich",
    "Filter",
    "Map",
    "Match",
    "Project",
    "RawBatch",
    "Step",
    "Window",
]

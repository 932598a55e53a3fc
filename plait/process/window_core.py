"""What every event-time window kind shares: the watermark and late records, per-row keys
and values, the aggregate of one window, and the output rows.

Kept apart from the window kinds (``window.py``: tumbling and sliding; ``session.py``:
session windows) so that the late rule and the output schema are one piece of code.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from plait.errors import ConfigError
from plait.process.errors import SchemaError
from plait.process.sketch import LogSketch, add_grouped

_NO_TIME = np.iinfo(np.int64).min


@dataclass
class Admitted:
    """A batch after the late rule: event times, which rows count, and the late ones."""

    ts: np.ndarray  # int64 event times (0 where null)
    keep: np.ndarray  # bool: rows that enter windows
    late: list[tuple[int, str]]  # (position, reason), in position order
    max_seen: int | None  # the largest event time seen, this batch included


def admit(batch: pa.RecordBatch, time: str, lateness: int, max_seen: int | None) -> Admitted:
    """Apply the late rule in input order: a record whose event time is below the
    watermark *before it* (largest event time so far minus ``lateness``), or is null,
    is late. Why in input order: then the outcome does not depend on batch boundaries."""
    ts_col = column(batch, time)
    if pa.types.is_timestamp(ts_col.type):
        ts_col = pc.cast(ts_col, pa.int64())
    elif not pa.types.is_integer(ts_col.type):
        raise SchemaError(
            f"window: expected integer or timestamp event time in {time!r}, got {ts_col.type}"
        )
    ts = pc.fill_null(pc.cast(ts_col, pa.int64()), 0).to_numpy()
    ts_valid = ts_col.is_valid().to_numpy(zero_copy_only=False)
    masked = np.where(ts_valid, ts, _NO_TIME)
    start_max = _NO_TIME if max_seen is None else max_seen
    run = np.maximum.accumulate(np.concatenate([[start_max], masked]))[:-1]
    is_late = ts_valid & (run != _NO_TIME) & (ts < run - lateness)
    late = [(i, f"event time field {time!r} is null") for i in np.nonzero(~ts_valid)[0].tolist()]
    for i in np.nonzero(is_late)[0].tolist():
        late.append((i, (
            f"late event: event time {int(ts[i])} is before watermark {int(run[i]) - lateness} "
            f"(max event time {int(run[i])} minus allowed lateness {lateness})"
        )))
    late.sort()
    keep = ts_valid & ~is_late
    if keep.any():
        top = int(masked.max())
        max_seen = top if max_seen is None else max(max_seen, top)
    return Admitted(ts, keep, late, max_seen)


def check_spec(kind: str, lateness: int, quantiles: Sequence[float]) -> None:
    """The checks every window spec shares (``kind`` names it in the message)."""
    if lateness < 0:
        raise ConfigError(f"{kind}: expected lateness >= 0, got {lateness}")
    for q in quantiles:
        if not 0.0 <= q <= 1.0:
            raise ConfigError(f"{kind}: expected quantiles in [0, 1], got {q}")


class WatermarkOperator:
    """The part of a window operator that is the same for every kind: admit a batch under
    the late rule, add what counts, emit what the watermark closed. A kind provides
    ``spec`` (with ``time`` and ``lateness``), ``max_seen``, ``_add`` and ``_emit``."""

    spec: Any
    max_seen: int | None

    @property
    def watermark(self) -> int | None:
        return None if self.max_seen is None else self.max_seen - self.spec.lateness

    def process(
        self, batch: pa.RecordBatch
    ) -> tuple[pa.RecordBatch | None, list[tuple[int, str]]]:
        """Add a batch; return the windows the watermark closed, and late records."""
        adm = admit(batch, self.spec.time, self.spec.lateness, self.max_seen)
        if adm.keep.any():
            self._add(batch, adm.ts, adm.keep)
        self.max_seen = adm.max_seen
        mark = self.watermark
        if mark is None:
            return None, adm.late
        limit: int = mark
        return self._emit(lambda end: end <= limit), adm.late

    def flush(self) -> pa.RecordBatch | None:
        """Emit every open window (end of input)."""
        return self._emit(lambda end: True)

    def _add(self, batch: pa.RecordBatch, ts: np.ndarray, keep: np.ndarray) -> None:
        raise NotImplementedError

    def _emit(self, closed: Callable[[int], bool]) -> pa.RecordBatch | None:
        raise NotImplementedError


@dataclass
class Rows:
    """The admitted rows' keys (dictionary-encoded) and values, ready to aggregate."""

    kidx: np.ndarray  # int64 index into kvals per row
    kvals: list[Any]
    key_type: pa.DataType | None  # None: no key column
    vals: np.ndarray  # float64 values (0 where invalid)
    vvalid: np.ndarray  # bool: value is present and not NaN
    ivals: np.ndarray | None  # exact int64 values for an integer column
    value_type: pa.DataType | None  # None: no value column


def gather(batch: pa.RecordBatch, rows: np.ndarray, key: str | None, value: str | None) -> Rows:
    n = len(rows)
    take = pa.array(rows)
    if key is not None:
        kcol = column(batch, key)
        enc = pc.dictionary_encode(kcol.take(take), null_encoding="encode")
        kidx = enc.indices.to_numpy(zero_copy_only=False).astype(np.int64)
        kvals, key_type = enc.dictionary.to_pylist(), kcol.type
    else:
        kidx, kvals, key_type = np.zeros(n, dtype=np.int64), [None], None
    if value is None:
        return Rows(kidx, kvals, key_type, np.zeros(n), np.zeros(n, dtype=bool), None, None)
    vcol = column(batch, value).take(take)
    if not (pa.types.is_integer(vcol.type) or pa.types.is_floating(vcol.type)):
        raise SchemaError(f"window: expected a numeric value column {value!r}, got {vcol.type}")
    exact = pa.types.is_integer(vcol.type)
    fv = pc.cast(vcol, pa.float64())
    vals = pc.fill_null(fv, 0.0).to_numpy()
    vvalid = fv.is_valid().to_numpy(zero_copy_only=False) & ~np.isnan(vals)
    ivals = pc.fill_null(pc.cast(vcol, pa.int64()), 0).to_numpy() if exact else None
    return Rows(kidx, kvals, key_type, vals, vvalid, ivals, pa.int64() if exact else pa.float64())


@dataclass
class Agg:
    """The aggregate of one window: count of records, and over the non-null, non-NaN
    values their sum (an exact int for integer columns), min, max and a quantile sketch."""

    count: int = 0
    n_values: int = 0
    total: float = 0
    lo: Any = None
    hi: Any = None
    sketch: LogSketch | None = None

    def add_group(self, count: int, n_values: int, total: Any, lo: Any, hi: Any) -> None:
        """Add one group's figures (see :func:`groups`)."""
        self.count += count
        if n_values:
            self.n_values += n_values
            self.total += total
            self._bound(lo, hi)

    def merge(self, other: Agg) -> None:
        self.count += other.count
        self.n_values += other.n_values
        self.total += other.total
        if other.n_values:
            self._bound(other.lo, other.hi)
        if self.sketch is not None and other.sketch is not None:
            self.sketch.merge(other.sketch)

    def _bound(self, lo: Any, hi: Any) -> None:
        self.lo = lo if self.lo is None else min(self.lo, lo)
        self.hi = hi if self.hi is None else max(self.hi, hi)


@dataclass
class Figures:
    """Per-group figures as arrays: count of records, and over the valid values their
    count, total, min and max (``lo``/``hi`` hold a sentinel where there is no value;
    ``n_values`` says which). Integer columns keep int64 totals."""

    count: np.ndarray
    n_values: np.ndarray
    total: np.ndarray
    lo: np.ndarray
    hi: np.ndarray

    @staticmethod
    def concat(parts: Sequence[Figures]) -> Figures:
        return Figures(*(np.concatenate([getattr(f, n) for f in parts]) for n in _FIGURES))

    def take(self, at: np.ndarray) -> Figures:
        return Figures(*(getattr(self, n)[at] for n in _FIGURES))

    def reduce(self, starts: np.ndarray) -> Figures:
        """Fold runs of groups into one, each run beginning at an index in ``starts``."""
        return Figures(
            np.add.reduceat(self.count, starts),
            np.add.reduceat(self.n_values, starts),
            np.add.reduceat(self.total, starts),
            np.minimum.reduceat(self.lo, starts),
            np.maximum.reduceat(self.hi, starts),
        )

    def astype_of(self, other: Figures) -> Figures:
        """These figures with totals and bounds as floats where ``other`` has floats
        (a value column that changed from integers to floats between batches)."""
        if self.total.dtype == other.total.dtype or self.total.dtype == np.float64:
            return self
        big, small = _sentinels(np.dtype(np.float64))
        none = self.n_values == 0
        return Figures(
            self.count, self.n_values, self.total.astype(np.float64),
            np.where(none, big, self.lo.astype(np.float64)),
            np.where(none, small, self.hi.astype(np.float64)),
        )

    def rows(self) -> list[tuple[int, int, Any, Any, Any]]:
        """(count, n_values, total, lo, hi) per group, as Python values."""
        return list(zip(*(getattr(self, n).tolist() for n in _FIGURES)))


_FIGURES = ("count", "n_values", "total", "lo", "hi")


def group_figures(rows: Rows, order: np.ndarray, bounds: np.ndarray) -> Figures:
    """Per group of ``order`` (rows sorted by group, group ``i`` is
    ``order[bounds[i]:bounds[i + 1]]``), with NumPy's segmented reductions. Why: one call
    per figure for the whole batch, where a call per group made a 64k batch of 10k keys
    take ~1 s."""
    starts = bounds[:-1]
    count = np.diff(bounds).astype(np.int64)
    if rows.value_type is None or not len(order):
        zero = np.zeros(len(count), dtype=np.int64)
        return Figures(count, zero, zero, zero, zero)
    valid = rows.vvalid[order]
    src = (rows.ivals if rows.ivals is not None else rows.vals)[order]
    big, small = _sentinels(src.dtype)
    return Figures(
        count,
        np.add.reduceat(valid.astype(np.int64), starts),
        np.add.reduceat(np.where(valid, src, 0), starts),
        np.minimum.reduceat(np.where(valid, src, big), starts),
        np.maximum.reduceat(np.where(valid, src, small), starts),
    )


def groups(rows: Rows, order: np.ndarray, bounds: np.ndarray) -> list[tuple[int, int, Any, Any, Any]]:
    """:func:`group_figures` as Python values per group."""
    return group_figures(rows, order, bounds).rows()


def _sentinels(dtype: np.dtype) -> tuple[Any, Any]:
    """What an invalid value stands in as, so it never wins a min or max."""
    if np.issubdtype(dtype, np.integer):
        return np.iinfo(np.int64).max, np.iinfo(np.int64).min
    return np.inf, -np.inf


def sketch_groups(rows: Rows, order: np.ndarray, bounds: np.ndarray, sketches: list[LogSketch]) -> None:
    """Add each group's valid values (as in :func:`groups`) to its sketch, ``sketches[i]``
    for group ``i``, in one vectorized pass."""
    valid = rows.vvalid[order]
    group = np.repeat(np.arange(len(bounds) - 1), np.diff(bounds))[valid]
    add_grouped(sketches, group, rows.vals[order][valid])


class Shape(Protocol):
    """What decides a window kind's output columns (its spec has these)."""

    @property
    def key(self) -> str | None: ...

    @property
    def value(self) -> str | None: ...

    @property
    def quantiles(self) -> tuple[float, ...]: ...


def output(
    done: list[tuple[int, int, Any, Agg]],
    shape: Shape,
    key_type: pa.DataType,
    value_type: pa.DataType,
) -> pa.RecordBatch | None:
    """Rows of closed windows ``(end, start, key, agg)``, ordered by (end, start, key)."""
    if not done:
        return None
    dtype = np.int64 if pa.types.is_integer(value_type) else np.float64
    big, small = _sentinels(np.dtype(dtype))
    aggs = [d[3] for d in done]
    figs = Figures(
        np.array([a.count for a in aggs], dtype=np.int64),
        np.array([a.n_values for a in aggs], dtype=np.int64),
        np.array([a.total if a.n_values else 0 for a in aggs], dtype=dtype),
        np.array([a.lo if a.n_values else big for a in aggs], dtype=dtype),
        np.array([a.hi if a.n_values else small for a in aggs], dtype=dtype),
    )
    return output_columns(
        np.array([d[0] for d in done], dtype=np.int64),
        np.array([d[1] for d in done], dtype=np.int64),
        [d[2] for d in done],
        figs,
        [a.sketch for a in aggs] if shape.quantiles else None,
        shape, key_type, value_type,
    )


def output_columns(
    ends: np.ndarray,
    starts: np.ndarray,
    keys: list[Any],
    figs: Figures,
    sketches: Sequence[LogSketch | None] | None,
    shape: Shape,
    key_type: pa.DataType,
    value_type: pa.DataType,
) -> pa.RecordBatch | None:
    """Rows of closed windows from columns, ordered by (end, start, key)."""
    if not len(ends):
        return None
    key, value, quantiles = shape.key, shape.value, shape.quantiles
    cols: dict[str, pa.Array] = {}
    if key is not None:
        cols[key] = pa.array(keys, type=key_type)
    cols["window_start"] = pa.array(starts, type=pa.int64())
    cols["window_end"] = pa.array(ends, type=pa.int64())
    cols["count"] = pa.array(figs.count, type=pa.int64())
    if value is not None:
        none = figs.n_values == 0
        cols["sum"] = pa.array(figs.total, mask=none).cast(value_type)
        cols["min"] = pa.array(figs.lo, mask=none).cast(value_type)
        cols["max"] = pa.array(figs.hi, mask=none).cast(value_type)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = figs.total / np.maximum(figs.n_values, 1)
        cols["mean"] = pa.array(mean.astype(np.float64), mask=none)
        for q in quantiles:
            est = [
                sk.quantile(q) if sk is not None and has else None
                for sk, has in zip(sketches or [None] * len(ends), (~none).tolist())
            ]
            cols[f"q{q:g}"] = pa.array(est, type=pa.float64())
    batch = pa.RecordBatch.from_arrays(list(cols.values()), names=list(cols))
    order = [("window_end", "ascending"), ("window_start", "ascending")]
    if key is not None:
        order.append((key, "ascending"))
    try:  # a null key first, as _sort_key orders them
        at = _sort_indices(batch, order)
    except pa.ArrowNotImplementedError:  # a key type Arrow cannot sort: Python can
        ranked = sorted(
            range(len(ends)), key=lambda i: (int(ends[i]), int(starts[i]), _sort_key(keys[i]))
        )
        at = pa.array(ranked, type=pa.int64())
    return batch.take(at)


def _sort_indices(batch: pa.RecordBatch, order: list[tuple[str, str]]) -> pa.Array:
    """Sort with nulls first: per key where Arrow takes it that way (25 and later),
    else with the older all-keys option."""
    try:
        return pc.sort_indices(batch, sort_keys=[(n, d, "at_start") for n, d in order])
    except (TypeError, ValueError):
        return pc.sort_indices(batch, sort_keys=order, null_placement="at_start")


def column(batch: pa.RecordBatch, name: str) -> pa.Array:
    idx = batch.schema.get_field_index(name)
    if idx < 0:
        raise SchemaError(f"window: expected column {name!r}, columns are {batch.schema.names}")
    return batch.column(idx)


def _sort_key(key: Any) -> tuple[int, Any]:
    return (0, 0) if key is None else (1, key)

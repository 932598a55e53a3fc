"""Event-time windows (tumbling and sliding) with a watermark, per key.

Contract:

* Watermark = the largest event time seen so far minus ``lateness``. Records are taken in
  input order; a record whose event time is below the watermark *before it* is late and is
  reported (position, reason), never counted; so is a record with a null event time.
* A record belongs to every window ``[start, start + size)`` with ``start`` a multiple of
  ``slide`` that contains its event time (tumbling: ``slide == size``).
* A window is emitted once, when the watermark reaches its end, with: key, window_start,
  window_end, count (records), and over the non-null, non-NaN values of ``value``: sum,
  min, max, mean and the requested quantiles (a LogSketch: within ``alpha`` relative).
  Emitted rows are ordered by (window_end, window_start, key). :meth:`flush` emits the rest.
* Because late records never enter a window, the output does not depend on how the input
  was cut into batches (float sums aside, which may differ in the last bits).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from plait.errors import ConfigError
from plait.process.errors import SchemaError
from plait.process.sketch import LogSketch


@dataclass(frozen=True)
class WindowSpec:
    size: int  # window length, in event-time units (milliseconds by convention)
    time: str  # event-time column: integer or timestamp
    slide: int | None = None  # None: tumbling
    lateness: int = 0
    key: str | None = None
    value: str | None = None
    quantiles: tuple[float, ...] = ()
    alpha: float = 0.01

    def __post_init__(self) -> None:
        slide = self.size if self.slide is None else self.slide
        if self.size <= 0 or slide <= 0 or self.size % slide:
            raise ConfigError(
                f"window: expected size > 0 and slide > 0 dividing size, got size={self.size} slide={slide}"
            )
        if self.lateness < 0:
            raise ConfigError(f"window: expected lateness >= 0, got {self.lateness}")
        for q in self.quantiles:
            if not 0.0 <= q <= 1.0:
                raise ConfigError(f"window: expected quantiles in [0, 1], got {q}")


@dataclass
class _Agg:
    count: int = 0
    n_values: int = 0
    total: float = 0  # stays an exact int for integer columns
    lo: Any = None
    hi: Any = None
    sketch: LogSketch | None = None


@dataclass
class WindowOperator:
    spec: WindowSpec
    max_seen: int | None = None
    _state: dict[tuple[Any, int], _Agg] = field(default_factory=dict)
    _key_type: pa.DataType = field(default_factory=pa.null)
    _value_type: pa.DataType = field(default_factory=pa.float64)

    @property
    def watermark(self) -> int | None:
        return None if self.max_seen is None else self.max_seen - self.spec.lateness

    def process(
        self, batch: pa.RecordBatch
    ) -> tuple[pa.RecordBatch | None, list[tuple[int, str]]]:
        """Add a batch; return the windows the watermark closed, and late records."""
        spec = self.spec
        ts_col = _column(batch, spec.time)
        if pa.types.is_timestamp(ts_col.type):
            ts_col = pc.cast(ts_col, pa.int64())
        elif not pa.types.is_integer(ts_col.type):
            raise SchemaError(
                f"window: expected integer or timestamp event time in {spec.time!r}, got {ts_col.type}"
            )
        ts = pc.fill_null(pc.cast(ts_col, pa.int64()), 0).to_numpy()
        ts_valid = ts_col.is_valid().to_numpy(zero_copy_only=False)
        late: list[tuple[int, str]] = []
        # Running max of event time *before* each record, from the carried max_seen.
        masked = np.where(ts_valid, ts, np.iinfo(np.int64).min)
        start_max = np.iinfo(np.int64).min if self.max_seen is None else self.max_seen
        run = np.maximum.accumulate(np.concatenate([[start_max], masked]))[:-1]
        have_wm = run != np.iinfo(np.int64).min
        is_late = ts_valid & have_wm & (ts < run - spec.lateness)
        for i in np.nonzero(~ts_valid)[0].tolist():
            late.append((i, f"event time field {spec.time!r} is null"))
        for i in np.nonzero(is_late)[0].tolist():
            wm = int(run[i]) - spec.lateness
            reason = (
                f"late event: event time {int(ts[i])} is before watermark {wm} "
                f"(max event time {int(run[i])} minus allowed lateness {spec.lateness})"
            )
            late.append((i, reason))
        late.sort()
        keep = ts_valid & ~is_late
        if keep.any():
            self._add(batch, ts, keep)
            top = int(masked.max())
            self.max_seen = top if self.max_seen is None else max(self.max_seen, top)
        mark = self.watermark
        if mark is None:
            return None, late
        limit: int = mark
        return self._emit(lambda end: end <= limit), late

    def flush(self) -> pa.RecordBatch | None:
        """Emit every open window (end of input)."""
        return self._emit(lambda end: True)

    def _add(self, batch: pa.RecordBatch, ts: np.ndarray, keep: np.ndarray) -> None:
        spec = self.spec
        slide = spec.slide or spec.size
        rows = np.nonzero(keep)[0]
        t = ts[rows]
        if spec.key is not None:
            kcol = _column(batch, spec.key)
            self._key_type = kcol.type
            enc = pc.dictionary_encode(
                kcol.take(pa.array(rows)), null_encoding="encode"
            )
            kidx = enc.indices.to_numpy(zero_copy_only=False).astype(np.int64)
            kvals = enc.dictionary.to_pylist()
        else:
            kidx = np.zeros(len(rows), dtype=np.int64)
            kvals = [None]
        if spec.value is not None:
            vcol = _column(batch, spec.value).take(pa.array(rows))
            if not (pa.types.is_integer(vcol.type) or pa.types.is_floating(vcol.type)):
                raise SchemaError(
                    f"window: expected a numeric value column {spec.value!r}, got {vcol.type}"
                )
            self._value_type = (
                pa.int64() if pa.types.is_integer(vcol.type) else pa.float64()
            )
            fv = pc.cast(vcol, pa.float64())
            vvalid = fv.is_valid().to_numpy(zero_copy_only=False)
            vals = pc.fill_null(fv, 0.0).to_numpy()
            vvalid &= ~np.isnan(vals)
            ivals = (
                pc.fill_null(pc.cast(vcol, pa.int64()), 0).to_numpy()
                if self._value_type == pa.int64()
                else None
            )
        else:
            vvalid = np.zeros(len(rows), dtype=bool)
            vals = np.zeros(len(rows))
            ivals = None
        last = (t // slide) * slide
        for k in range(spec.size // slide):
            start = last - k * slide
            order = np.lexsort((start, kidx))
            s_k, s_start = kidx[order], start[order]
            cut = np.nonzero((np.diff(s_k) != 0) | (np.diff(s_start) != 0))[0] + 1
            bounds = np.concatenate([[0], cut, [len(order)]])
            for a, b in zip(bounds[:-1].tolist(), bounds[1:].tolist()):
                sel = order[a:b]
                wkey = (kvals[int(s_k[a])], int(s_start[a]))
                agg = self._state.get(wkey)
                if agg is None:
                    agg = self._state[wkey] = _Agg(
                        sketch=LogSketch(spec.alpha) if spec.quantiles else None
                    )
                agg.count += b - a
                ok = sel[vvalid[sel]]
                if ok.size:
                    v = vals[ok]
                    src = ivals[ok] if ivals is not None else v
                    agg.n_values += int(ok.size)
                    agg.total += int(src.sum()) if ivals is not None else float(v.sum())
                    lo, hi = src.min().item(), src.max().item()
                    agg.lo = lo if agg.lo is None else min(agg.lo, lo)
                    agg.hi = hi if agg.hi is None else max(agg.hi, hi)
                    if agg.sketch is not None:
                        agg.sketch.add_many(v)

    def _emit(self, closed: Any) -> pa.RecordBatch | None:
        spec = self.spec
        done = [
            (start + spec.size, start, key)
            for (key, start) in self._state
            if closed(start + spec.size)
        ]
        if not done:
            return None
        done.sort(key=lambda d: (d[0], d[1], _sort_key(d[2])))
        cols: dict[str, list[Any]] = {"window_start": [], "window_end": [], "count": []}
        if spec.key is not None:
            cols = {spec.key: [], **cols}
        for name in ("sum", "min", "max", "mean"):
            if spec.value is not None:
                cols[name] = []
        qnames = [f"q{q:g}" for q in spec.quantiles] if spec.value is not None else []
        for qn in qnames:
            cols[qn] = []
        for end, start, key in done:
            agg = self._state.pop((key, start))
            if spec.key is not None:
                cols[spec.key].append(key)
            cols["window_start"].append(start)
            cols["window_end"].append(end)
            cols["count"].append(agg.count)
            if spec.value is not None:
                has = agg.n_values > 0
                cols["sum"].append(agg.total if has else None)
                cols["min"].append(agg.lo)
                cols["max"].append(agg.hi)
                cols["mean"].append(agg.total / agg.n_values if has else None)
                for q, qn in zip(spec.quantiles, qnames):
                    cols[qn].append(
                        agg.sketch.quantile(q)
                        if agg.sketch is not None and has
                        else None
                    )
        types = {
            "window_start": pa.int64(),
            "window_end": pa.int64(),
            "count": pa.int64(),
            "sum": self._value_type,
            "min": self._value_type,
            "max": self._value_type,
            "mean": pa.float64(),
        }
        if spec.key is not None:
            types[spec.key] = self._key_type
        arrays = [pa.array(v, type=types.get(k, pa.float64())) for k, v in cols.items()]
        return pa.RecordBatch.from_arrays(arrays, names=list(cols))


def _column(batch: pa.RecordBatch, name: str) -> pa.Array:
    idx = batch.schema.get_field_index(name)
    if idx < 0:
        raise SchemaError(
            f"window: expected column {name!r}, columns are {batch.schema.names}"
        )
    return batch.column(idx)


def _sort_key(key: Any) -> tuple[int, Any]:
    return (0, 0) if key is None else (1, key)

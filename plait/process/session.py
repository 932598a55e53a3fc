"""Session windows by event time, per key: activity separated by a gap of inactivity.

Contract (the late rule, columns and order are those of ``window.py``):

* A record at event time ``t`` covers ``[t, t + gap)``. A key's records whose intervals
  overlap, directly or through others, form one session: ``window_start`` is its first
  event time and ``window_end`` its last event time plus ``gap``. Records of one key at
  ``t1 <= t2`` share a session when ``t2 - t1 < gap`` (or a chain of such steps links them).
* A session is emitted once, when the watermark reaches its end. A record admitted later
  has ``t >= watermark >= end``, so it cannot touch an emitted session: sessions are never
  re-opened, and the output does not depend on how the input was cut into batches.
* Records come in any order within the allowed lateness: an out-of-order record can
  extend a session backwards or join two open sessions into one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from plait.errors import ConfigError
from plait.process.sketch import LogSketch
from plait.process.window_core import (
    Agg,
    WatermarkOperator,
    check_spec,
    gather,
    groups,
    output,
    sketch_groups,
)


@dataclass(frozen=True)
class SessionSpec:
    gap: int  # inactivity that ends a session, in event-time units
    time: str  # event-time column: integer or timestamp
    lateness: int = 0
    key: str | None = None
    value: str | None = None
    quantiles: tuple[float, ...] = ()
    alpha: float = 0.01

    def __post_init__(self) -> None:
        if self.gap <= 0:
            raise ConfigError(f"session window: expected gap > 0, got {self.gap}")
        check_spec("session window", self.lateness, self.quantiles)


@dataclass
class _Session:
    first: int  # earliest event time
    last: int  # latest event time
    agg: Agg


@dataclass
class SessionWindowOperator(WatermarkOperator):
    spec: SessionSpec
    max_seen: int | None = None
    # open sessions per key, ordered by start; any two are more than ``gap`` apart
    _open: dict[Any, list[_Session]] = field(default_factory=dict)
    _key_type: pa.DataType = field(default_factory=pa.null)
    _value_type: pa.DataType = field(default_factory=pa.float64)

    def _add(self, batch: pa.RecordBatch, ts: np.ndarray, keep: np.ndarray) -> None:
        spec = self.spec
        idx = np.nonzero(keep)[0]
        rows = gather(batch, idx, spec.key, spec.value)
        self._key_type = rows.key_type or self._key_type
        self._value_type = rows.value_type or self._value_type
        t = ts[idx]
        # the batch's own runs first (sorted by key, then time; a step of gap or more
        # starts a new run), so the Python work below is per run, not per record
        order = np.lexsort((t, rows.kidx))
        s_k, s_t = rows.kidx[order], t[order]
        cut = np.nonzero((np.diff(s_k) != 0) | (np.diff(s_t) >= spec.gap))[0] + 1
        bounds = np.concatenate([[0], cut, [len(order)]])
        firsts, lasts = bounds[:-1], bounds[1:] - 1
        runs = []
        for k, first, last, stats in zip(
            s_k[firsts].tolist(), s_t[firsts].tolist(), s_t[lasts].tolist(),
            groups(rows, order, bounds),
        ):
            run = _Session(first, last, self._new_agg())
            run.agg.add_group(*stats)
            runs.append((rows.kvals[k], run))
        if spec.quantiles:  # the runs' own values, before merging moves their aggregates
            sketches = [run.agg.sketch for _, run in runs if run.agg.sketch is not None]
            sketch_groups(rows, order, bounds, sketches)
        for key, run in runs:
            self._merge(key, run)

    def _new_agg(self) -> Agg:
        return Agg(sketch=LogSketch(self.spec.alpha) if self.spec.quantiles else None)

    def _merge(self, key: Any, run: _Session) -> None:
        """Put ``run`` among the key's open sessions, fusing every one it overlaps."""
        gap = self.spec.gap
        sessions = self._open.setdefault(key, [])
        kept: list[_Session] = []
        for s in sessions:
            if s.first < run.last + gap and run.first < s.last + gap:
                run.first, run.last = min(run.first, s.first), max(run.last, s.last)
                s.agg.merge(run.agg)  # the older aggregate absorbs the newer
                run.agg = s.agg
            else:
                kept.append(s)
        kept.append(run)
        kept.sort(key=lambda s: s.first)
        self._open[key] = kept

    def _emit(self, closed: Callable[[int], bool]) -> pa.RecordBatch | None:
        gap = self.spec.gap
        done: list[tuple[int, int, Any, Agg]] = []
        for key in list(self._open):
            still = []
            for s in self._open[key]:
                if closed(s.last + gap):
                    done.append((s.last + gap, s.first, key, s.agg))
                else:
                    still.append(s)
            if still:
                self._open[key] = still
            else:
                del self._open[key]
        spec = self.spec
        return output(
            done, key=spec.key, key_type=self._key_type, value=spec.value,
            value_type=self._value_type, quantiles=spec.quantiles,
        )


__all__ = ["SessionSpec", "SessionWindowOperator"]

"""Event-time windows (tumbling and sliding) with a watermark, per key (session windows:
``session.py``; what both share: ``window_core.py``).

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
        check_spec("window", self.lateness, self.quantiles)


@dataclass
class WindowOperator(WatermarkOperator):
    spec: WindowSpec
    max_seen: int | None = None
    _state: dict[tuple[Any, int], Agg] = field(default_factory=dict)
    _key_type: pa.DataType = field(default_factory=pa.null)
    _value_type: pa.DataType = field(default_factory=pa.float64)

    def _add(self, batch: pa.RecordBatch, ts: np.ndarray, keep: np.ndarray) -> None:
        spec = self.spec
        slide = spec.slide or spec.size
        idx = np.nonzero(keep)[0]
        rows = gather(batch, idx, spec.key, spec.value)
        self._key_type = rows.key_type or self._key_type
        self._value_type = rows.value_type or self._value_type
        last = (ts[idx] // slide) * slide
        for k in range(spec.size // slide):
            start = last - k * slide
            order = np.lexsort((start, rows.kidx))
            s_k, s_start = rows.kidx[order], start[order]
            cut = np.nonzero((np.diff(s_k) != 0) | (np.diff(s_start) != 0))[0] + 1
            bounds = np.concatenate([[0], cut, [len(order)]])
            firsts = bounds[:-1]
            keys = [rows.kvals[k] for k in s_k[firsts].tolist()]
            touched: list[LogSketch] = []  # per group, when quantiles are asked for
            for key, start, stats in zip(keys, s_start[firsts].tolist(), groups(rows, order, bounds)):
                agg = self._state.get((key, start))
                if agg is None:
                    agg = self._state[(key, start)] = Agg(
                        sketch=LogSketch(spec.alpha) if spec.quantiles else None
                    )
                agg.add_group(*stats)
                if agg.sketch is not None:
                    touched.append(agg.sketch)
            if spec.quantiles:
                sketch_groups(rows, order, bounds, touched)

    def _emit(self, closed: Callable[[int], bool]) -> pa.RecordBatch | None:
        spec = self.spec
        done = [
            (start + spec.size, start, key, agg)
            for (key, start), agg in self._state.items()
            if closed(start + spec.size)
        ]
        for _end, start, key, _agg in done:
            del self._state[(key, start)]
        return output(done, spec, self._key_type, self._value_type)

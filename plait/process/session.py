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
* An integer value column's sums are kept as int64 (past 2**63 they wrap, where the
  tumbling and sliding windows' Python ints do not).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from plait.errors import ConfigError
from plait.process.sketch import LogSketch
from plait.process.window_core import (
    Figures,
    WatermarkOperator,
    check_spec,
    gather,
    group_figures,
    output_columns,
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
class SessionWindowOperator(WatermarkOperator):
    """Open sessions are columns (key id, first, last, figures, sketches), merged with a
    batch's runs by one sort: the Python work per batch is per distinct key and per
    merged sketch, not per session."""

    spec: SessionSpec
    max_seen: int | None = None
    _key_ids: dict[Any, int] = field(default_factory=dict)
    _keys: list[Any] = field(default_factory=list)
    _kid: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    _first: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    _last: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    _figs: Figures | None = None
    _sketches: list[LogSketch | None] = field(default_factory=list)
    _key_type: pa.DataType = field(default_factory=pa.null)
    _value_type: pa.DataType = field(default_factory=pa.float64)

    def _add(self, batch: pa.RecordBatch, ts: np.ndarray, keep: np.ndarray) -> None:
        spec = self.spec
        idx = np.nonzero(keep)[0]
        rows = gather(batch, idx, spec.key, spec.value)
        self._key_type = rows.key_type or self._key_type
        self._value_type = rows.value_type or self._value_type
        ids = np.array([self._key_id(k) for k in rows.kvals], dtype=np.int64)[rows.kidx]
        t = ts[idx]
        # the batch's own runs: sorted by key, then time; a step of gap or more ends one
        order = np.lexsort((t, ids))
        s_k, s_t = ids[order], t[order]
        cut = np.nonzero((np.diff(s_k) != 0) | (np.diff(s_t) >= spec.gap))[0] + 1
        bounds = np.concatenate([[0], cut, [len(order)]])
        figs = group_figures(rows, order, bounds)
        sketches: list[LogSketch | None] = [None] * (len(bounds) - 1)
        if spec.quantiles:
            fresh = [LogSketch(spec.alpha) for _ in sketches]
            sketch_groups(rows, order, bounds, fresh)
            sketches = list(fresh)
        self._merge(s_k[bounds[:-1]], s_t[bounds[:-1]], s_t[bounds[1:] - 1], figs, sketches)

    def _key_id(self, key: Any) -> int:
        found = self._key_ids.get(key)
        if found is None:
            found = self._key_ids[key] = len(self._keys)
            self._keys.append(key)
        return found

    def _merge(
        self, kid: np.ndarray, first: np.ndarray, last: np.ndarray, figs: Figures,
        sketches: list[LogSketch | None],
    ) -> None:
        """Fuse the runs into the open sessions: sorted by (key, first), an interval
        starts a new session unless it begins before the end (last + gap) of one it
        follows in its key."""
        if self._figs is not None:
            figs = Figures.concat([self._figs.astype_of(figs), figs.astype_of(self._figs)])
            kid = np.concatenate([self._kid, kid])
            first = np.concatenate([self._first, first])
            last = np.concatenate([self._last, last])
            sketches = self._sketches + sketches
        order = np.lexsort((first, kid))
        kid, first, last, figs = kid[order], first[order], last[order], figs.take(order)
        sketches = [sketches[i] for i in order.tolist()]
        starts = _session_starts(kid, first, last + self.spec.gap)
        self._kid, self._first = kid[starts], first[starts]
        self._last = np.maximum.reduceat(last, starts)
        self._figs = figs.reduce(starts)
        self._sketches = _merge_sketches(sketches, starts)

    def _emit(self, closed: Callable[[Any], Any]) -> pa.RecordBatch | None:
        if self._figs is None or not len(self._kid):
            return None
        ends = self._last + self.spec.gap
        done = np.broadcast_to(np.asarray(closed(ends)), ends.shape)
        if not done.any():
            return None
        at, still = np.flatnonzero(done), np.flatnonzero(~done)
        out = output_columns(
            ends[at], self._first[at], [self._keys[k] for k in self._kid[at].tolist()],
            self._figs.take(at), [self._sketches[i] for i in at.tolist()],
            self.spec, self._key_type, self._value_type,
        )
        self._kid, self._first, self._last = self._kid[still], self._first[still], self._last[still]
        self._figs = self._figs.take(still)
        self._sketches = [self._sketches[i] for i in still.tolist()]
        return out


def _session_starts(kid: np.ndarray, first: np.ndarray, end: np.ndarray) -> np.ndarray:
    """Where each merged session begins in intervals sorted by (key, first): a new key,
    or a first at or past every earlier end of its key (a segmented running max)."""
    n = len(kid)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    seg = np.concatenate([[0], np.cumsum(kid[1:] != kid[:-1])])
    base = int(first.min())
    span = int(end.max()) - base + 1
    if int(seg[-1]) + 1 <= (2**62) // span:  # segment offsets fit in int64
        shift = seg * span - base
        reach = np.maximum.accumulate(end + shift)
        new = np.ones(n, dtype=bool)
        new[1:] = (seg[1:] != seg[:-1]) | (first[1:] + shift[1:] >= reach[:-1])
        return np.flatnonzero(new)
    starts, far = [0], int(end[0])  # event times too far apart for the offsets
    for i in range(1, n):
        if kid[i] != kid[i - 1] or int(first[i]) >= far:
            starts.append(i)
            far = int(end[i])
        else:
            far = max(far, int(end[i]))
    return np.array(starts, dtype=np.int64)


def _merge_sketches(sketches: list[LogSketch | None], starts: np.ndarray) -> list[LogSketch | None]:
    """One sketch per merged session: the first member's, with the others merged in."""
    bounds = starts.tolist() + [len(sketches)]
    out = []
    for a, b in itertools.pairwise(bounds):
        head = sketches[a]
        if head is not None:
            for other in sketches[a + 1 : b]:
                if other is not None:
                    head.merge(other)
        out.append(head)
    return out


__all__ = ["SessionSpec", "SessionWindowOperator"]

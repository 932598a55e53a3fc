"""A log-bucket quantile sketch (DDSketch-style), mergeable and deterministic.

Guarantee: for relative accuracy ``alpha``, ``quantile(q)`` returns a value within
``alpha * |x|`` of ``x``, the exact lower quantile (the element of rank ``floor(q*(n-1))``
in sorted order). Why: values map to buckets ``(gamma^(i-1), gamma^i]`` with
``gamma = (1+alpha)/(1-alpha)``, bucket order follows value order, so the rank-k element's
bucket is found exactly, and the bucket's representative ``2*gamma^i/(gamma+1)`` is within
``alpha`` of every value in it. Negative values use a mirrored store; zero is exact.
Memory grows with log(max/min) / log(gamma), not with the number of values.
"""

from __future__ import annotations

import math

import numpy as np


class LogSketch:
    def __init__(self, alpha: float = 0.01) -> None:
        if not 0.0 < alpha < 1.0:
            raise ValueError(f"alpha: expected 0 < alpha < 1, got {alpha}")
        self.alpha = alpha
        self.gamma = (1 + alpha) / (1 - alpha)
        self._log_gamma = math.log(self.gamma)
        self.pos: dict[int, int] = {}
        self.neg: dict[int, int] = {}
        self.zeros = 0
        self.count = 0

    def add_many(self, values: np.ndarray) -> None:
        """Add finite float values (callers drop nulls and NaN first)."""
        v = np.asarray(values, dtype=np.float64)
        if v.size == 0:
            return
        self.count += int(v.size)
        self.zeros += int(np.count_nonzero(v == 0))
        for store, part in ((self.pos, v[v > 0]), (self.neg, -v[v < 0])):
            if part.size:
                keys, counts = np.unique(self.bucket_of(part), return_counts=True)
                for k, c in zip(keys.tolist(), counts.tolist()):
                    store[k] = store.get(k, 0) + c

    def bucket_of(self, magnitudes: np.ndarray) -> np.ndarray:
        """Bucket indices of positive magnitudes (the ``pos``/``neg`` store keys)."""
        return np.ceil(np.log(magnitudes) / self._log_gamma).astype(np.int64)

    def merge(self, other: LogSketch) -> None:
        if other.alpha != self.alpha:
            raise ValueError(f"merge: expected alpha {self.alpha}, got {other.alpha}")
        for mine, theirs in ((self.pos, other.pos), (self.neg, other.neg)):
            for k, c in theirs.items():
                mine[k] = mine.get(k, 0) + c
        self.zeros += other.zeros
        self.count += other.count

    def _value(self, index: int) -> float:
        return 2.0 * math.exp(index * self._log_gamma) / (self.gamma + 1.0)

    def quantile(self, q: float) -> float | None:
        """Estimate of the lower q-quantile, or None when empty."""
        if self.count == 0:
            return None
        if not 0.0 <= q <= 1.0:
            raise ValueError(f"quantile: expected 0 <= q <= 1, got {q}")
        rank = math.floor(q * (self.count - 1))
        seen = 0
        for k in sorted(self.neg, reverse=True):  # most negative first
            seen += self.neg[k]
            if seen > rank:
                return -self._value(k)
        seen += self.zeros
        if seen > rank:
            return 0.0
        for k in sorted(self.pos):
            seen += self.pos[k]
            if seen > rank:
                return self._value(k)
        return self._value(max(self.pos))  # unreachable unless counts are inconsistent


def add_grouped(sketches: list[LogSketch], group: np.ndarray, values: np.ndarray) -> None:
    """Add ``values[i]`` to ``sketches[group[i]]`` for every i (finite floats; sketches of
    one ``alpha``). Why: one vectorized bucketing for a whole batch and one dict update
    per distinct (sketch, bucket), where an ``add_many`` per small group cost ~40 µs."""
    if not len(values) or not sketches:
        return
    first = sketches[0]
    n = len(sketches)
    for count, sk in zip(np.bincount(group, minlength=n).tolist(), sketches):
        sk.count += count
    for zeros, sk in zip(np.bincount(group[values == 0], minlength=n).tolist(), sketches):
        sk.zeros += zeros
    for negative, pick in ((False, values > 0), (True, values < 0)):
        if not pick.any():
            continue
        idx = first.bucket_of(np.abs(values[pick]))
        lo = int(idx.min())
        span = int(idx.max()) - lo + 1
        pairs, counts = np.unique(group[pick] * span + (idx - lo), return_counts=True)
        for pair, c in zip(pairs.tolist(), counts.tolist()):
            g, bucket = divmod(pair, span)
            store = sketches[g].neg if negative else sketches[g].pos
            store[bucket + lo] = store.get(bucket + lo, 0) + c

"""numba kernels that turn pattern hits into the match result's buffers in one call each.

Why compiled: the same steps in NumPy (unique, bincount, cumsum, searchsorted, masks) were
a dozen calls, which cost more than Hyperscan's scan on a small batch (~25 µs against ~5 µs
for 218 records here).
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def records_of_hits(
    ends: np.ndarray,
    pids: np.ndarray,
    offsets: np.ndarray,
    valid: np.ndarray,
    lengths: np.ndarray,
) -> np.ndarray:
    """The record of each hit (-1 to drop it), for a scan over the records' concatenated
    bytes: hit k ends at byte ``ends[k]`` (absolute, exclusive) and is pattern ``pids[k]``
    of ``lengths[pids[k]]`` bytes. A hit that starts in an earlier record spans two and is
    dropped, as is one in a null record (``valid`` empty: none is null)."""
    n = offsets.shape[0] - 1
    rec = np.empty(ends.shape[0], dtype=np.int64)
    for k in range(ends.shape[0]):
        end = ends[k]
        lo, hi = 0, n  # the last record whose start is below end
        while lo < hi:
            mid = (lo + hi + 1) >> 1
            if offsets[mid] < end:
                lo = mid
            else:
                hi = mid - 1
        r = lo
        ok = offsets[r] < end <= offsets[r + 1] and end - lengths[pids[k]] >= offsets[r]
        if ok and valid.shape[0]:
            ok = valid[r]
        rec[k] = r if ok else -1
    return rec


@njit(cache=True, nogil=True)
def hit_lists(
    rec: np.ndarray, pid: np.ndarray, n: int, n_patterns: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(Arrow list offsets, n + 1 int32; the sorted unique pattern ids of each record,
    int32; the any-hit bits, Arrow bit-packed) of (record, pattern) hit pairs in any order
    and with repeats; pairs whose record is negative are ignored.

    A counting sort by record, then each record's few ids sorted in place: no general
    sort, whose compiled code took ~1.5 s to build on first use."""
    counts = np.zeros(n + 1, dtype=np.int64)
    for k in range(rec.shape[0]):
        if rec[k] >= 0:
            counts[rec[k] + 1] += 1
    for r in range(n):
        counts[r + 1] += counts[r]
    slots = counts[:n].copy()
    grouped = np.empty(counts[n], dtype=np.int32)
    for k in range(rec.shape[0]):
        if rec[k] >= 0:
            grouped[slots[rec[k]]] = pid[k]
            slots[rec[k]] += 1
    offsets = np.zeros(n + 1, dtype=np.int32)
    ids = np.empty(counts[n], dtype=np.int32)
    bits = np.zeros((n + 7) // 8, dtype=np.uint8)
    u = 0
    for r in range(n):
        lo, hi = counts[r], counts[r + 1]
        for a in range(lo + 1, hi):  # insertion sort: a record has few hits
            v = grouped[a]
            b = a - 1
            while b >= lo and grouped[b] > v:
                grouped[b + 1] = grouped[b]
                b -= 1
            grouped[b + 1] = v
        for a in range(lo, hi):
            if a == lo or grouped[a] != grouped[a - 1]:
                ids[u] = grouped[a]
                u += 1
        if hi > lo:
            bits[r >> 3] |= 1 << (r & 7)
        offsets[r + 1] = u
    return offsets, ids[:u], bits

"""numba kernel for the enrich step's integer-key lookup: every probe's row in one call.

Why compiled: the NumPy version (searchsorted, clamp, compare, where, a null mask) was
eight calls and a conversion, most of the enrich step's time on a small batch.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def sorted_positions(
    sorted_keys: np.ndarray,
    order: np.ndarray,
    probe: np.ndarray,
    bitmap: np.ndarray,
    bit_offset: int,
) -> tuple[np.ndarray, np.ndarray, int]:
    """(row of each probe key in the table or 0, Arrow validity bits of that result, how
    many have no row). ``order[i]`` is the row of ``sorted_keys[i]``; ``bitmap`` is the
    probe's Arrow validity bitmap starting at bit ``bit_offset`` (empty: no nulls), and a
    null probe has no row."""
    n = probe.shape[0]
    nk = sorted_keys.shape[0]
    pos = np.zeros(n, dtype=np.int64)
    bits = np.zeros((n + 7) // 8, dtype=np.uint8)
    missing = 0
    for i in range(n):
        if bitmap.shape[0]:
            b = bit_offset + i
            if not (bitmap[b >> 3] >> (b & 7)) & 1:
                missing += 1
                continue
        x = probe[i]
        lo, hi = 0, nk
        while lo < hi:
            mid = (lo + hi) >> 1
            if sorted_keys[mid] < x:
                lo = mid + 1
            else:
                hi = mid
        if lo < nk and sorted_keys[lo] == x:
            pos[i] = order[lo]
            bits[i >> 3] |= 1 << (i & 7)
        else:
            missing += 1
    return pos, bits, missing

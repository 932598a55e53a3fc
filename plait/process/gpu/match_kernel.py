"""Multi-pattern literal match on the device: one thread per record.

Why a naive scan per thread: records are short (hundreds of bytes) and pattern sets small,
so each thread's work is small and branch-light while thousands of records run side by
side; each thread writes only its own record's bit words, so there are no atomics and the
result is deterministic. (Hyperscan's automata are the CPU engine's tool; a GPU needs
parallelism across records more than cleverness within one.)

Also used by the device filter for ``contains`` / ``startswith`` / ``endswith`` with one
pattern and an anchor.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import cuda

from plait.process.gpu.device import Backend, grid

ANYWHERE = 0
PREFIX = 1
SUFFIX = 2


@cuda.jit(device=True)
def _fold(c: int, caseless: int) -> int:
    if caseless and 65 <= c <= 90:
        return c + 32
    return c


@cuda.jit(device=True)
def _equal_at(data: Any, i: int, pats: Any, ps: int, pl: int, caseless: int) -> bool:
    for j in range(pl):
        if _fold(data[i + j], caseless) != _fold(pats[ps + j], caseless):
            return False
    return True


@cuda.jit
def match_literals(data: Any, offsets: Any, valid: Any, pats: Any, pat_off: Any,
                   caseless: int, anchor: int, hits: Any) -> None:
    """hits[r, p >> 5] bit (p & 31) set when pattern p occurs in record r (where the
    anchor allows). ``hits`` is zeroed by the caller; null records stay all zero."""
    r: int = cuda.grid(1)  # type: ignore[call-arg]
    n = offsets.shape[0] - 1
    if r >= n or not valid[r]:
        return
    s = offsets[r]
    e = offsets[r + 1]
    for p in range(pat_off.shape[0] - 1):
        ps = pat_off[p]
        pl = pat_off[p + 1] - ps
        found = False
        if anchor == PREFIX:
            found = s + pl <= e and _equal_at(data, s, pats, ps, pl, caseless)
        elif anchor == SUFFIX:
            found = s + pl <= e and _equal_at(data, e - pl, pats, ps, pl, caseless)
        else:
            i = s
            while not found and i + pl <= e:
                found = _equal_at(data, i, pats, ps, pl, caseless)
                i += 1
        if found:
            hits[r, p >> 5] |= np.uint32(1) << np.uint32(p & 31)


def pattern_arrays(patterns: tuple[bytes, ...]) -> tuple[np.ndarray, np.ndarray]:
    """(all pattern bytes back to back, int64 boundaries) for the kernel."""
    pats = np.frombuffer(b"".join(patterns) or b"\0", dtype=np.uint8)
    off = np.zeros(len(patterns) + 1, dtype=np.int64)
    np.cumsum([len(p) for p in patterns], out=off[1:])
    return pats, off


def match_device(backend: Backend, data: Any, offsets: Any, valid: Any,
                 patterns: tuple[bytes, ...], caseless: bool,
                 anchor: int = ANYWHERE) -> Any:
    """Device (n, words) uint32 hit bits of ``patterns`` in the records ``data[offsets[i]:
    offsets[i+1]]`` (device arrays; ``valid`` uint8, 0 for null records)."""
    n = int(offsets.shape[0]) - 1
    words = max(1, (len(patterns) + 31) // 32)
    hits = backend.zeros((max(n, 1), words), np.uint32)
    if n > 0:
        pats, pat_off = pattern_arrays(patterns)
        blocks, threads = grid(n)
        match_literals[blocks, threads](
            data, offsets, valid, backend.to_device(pats), backend.to_device(pat_off),
            1 if caseless else 0, anchor, hits,
        )
    return hits[:n]


def hit_pairs(hits: np.ndarray, n_patterns: int) -> tuple[np.ndarray, np.ndarray]:
    """(record index, pattern id) of every set bit of a host copy of ``hits``."""
    n, words = hits.shape
    bits = np.unpackbits(
        np.ascontiguousarray(hits).view(np.uint8).reshape(n, words * 4), axis=1,
        bitorder="little",
    )[:, :n_patterns]
    rec, pid = np.nonzero(bits)
    return rec.astype(np.int64), pid.astype(np.int32)

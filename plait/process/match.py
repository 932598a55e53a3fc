"""Multi-pattern match: the engine-neutral part (pattern set, result layout).

A record's result is the sorted set of ids (positions in the pattern list) of the literal
patterns that occur in it as substrings, plus an any-hit flag. A null record matches
nothing (empty list, false). Matching is on bytes (UTF-8 for strings); ``caseless`` folds
ASCII letters only, as Hyperscan does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from plait.process.errors import ProcessError
from plait.protocol.records import binary_parts


@dataclass(frozen=True)
class PatternSet:
    """Literal patterns; a pattern's id is its index. Empty patterns are rejected."""

    patterns: tuple[bytes, ...]
    caseless: bool = False

    @classmethod
    def of(
        cls, patterns: Sequence[str | bytes], *, caseless: bool = False
    ) -> PatternSet:
        if not patterns:
            raise ProcessError("match: expected at least one pattern, got none")
        out = []
        for i, p in enumerate(patterns):
            b = p.encode("utf-8") if isinstance(p, str) else bytes(p)
            if not b:
                raise ProcessError(
                    f"match: pattern {i} is empty; expected a non-empty literal"
                )
            out.append(b)
        return cls(tuple(out), caseless)

    @property
    def names(self) -> list[str]:
        return [p.decode("utf-8", "backslashreplace") for p in self.patterns]


@dataclass(frozen=True)
class MatchResult:
    ids: pa.ListArray  # list<int32>, sorted, unique per record
    any: pa.BooleanArray


def build_result(
    n: int, rec: np.ndarray, pid: np.ndarray, n_patterns: int
) -> MatchResult:
    """Turn (record index, pattern id) hit pairs, any order and with repeats, into the
    result layout. Both engines end here, so their outputs are identical by construction."""
    offsets = np.zeros(n + 1, dtype=np.int32)
    if len(rec):
        key = np.unique(rec.astype(np.int64) * n_patterns + pid.astype(np.int64))
        pid_u = (key % n_patterns).astype(np.int32)
        counts = np.bincount(key // n_patterns, minlength=n)
        np.cumsum(counts, out=offsets[1:])
        hit = counts > 0
    else:  # the common case on a stream: no hit in the batch
        pid_u = np.zeros(0, dtype=np.int32)
        hit = np.zeros(n, dtype=bool)
    ids = pa.ListArray.from_arrays(pa.array(offsets), pa.array(pid_u))
    return MatchResult(ids, pa.array(hit))


def string_buffers(
    values: pa.Array | pa.ChunkedArray, what: str = "match"
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(int64 offsets of length n+1, data bytes, validity bool mask) of a string/binary
    array, without copying the data (large types and slices handled; offsets checked
    against the data by :func:`plait.protocol.records.binary_parts`)."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    t = values.type
    if not (
        pa.types.is_string(t)
        or pa.types.is_binary(t)
        or pa.types.is_large_string(t)
        or pa.types.is_large_binary(t)
    ):
        raise ProcessError(f"{what}: expected a string or binary field, got {t}")
    data, offsets, valid = binary_parts(values, what)
    if not len(valid):  # binary_parts leaves it empty when nothing is null
        valid = np.ones(len(values), dtype=bool)
    return offsets, data, valid

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

from plait.process.cpu._match_numba import hit_lists
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
    result layout (pairs with a negative record are ignored). Both engines end here, so
    their outputs are identical by construction."""
    offsets, ids, bits = hit_lists(
        np.ascontiguousarray(rec, dtype=np.int64), np.ascontiguousarray(pid, dtype=np.int32),
        n, n_patterns,
    )  # fmt: skip
    values = pa.Array.from_buffers(pa.int32(), len(ids), [None, pa.py_buffer(ids)])
    lists = pa.Array.from_buffers(
        pa.list_(pa.int32()), n, [None, pa.py_buffer(offsets)], children=[values]
    )
    hit = pa.Array.from_buffers(pa.bool_(), n, [None, pa.py_buffer(bits)])
    return MatchResult(lists, hit)


def string_buffers(
    values: pa.Array | pa.ChunkedArray, what: str = "match", *, dense_valid: bool = True
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(int64 offsets of length n+1, data bytes, validity bool mask) of a string/binary
    array, without copying the data (large types and slices handled; offsets checked
    against the data by :func:`plait.protocol.records.binary_parts`). Without
    ``dense_valid`` the mask is empty when nothing is null."""
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
    if dense_valid and not len(valid):  # binary_parts leaves it empty when nothing is null
        valid = np.ones(len(values), dtype=bool)
    return offsets, data, valid

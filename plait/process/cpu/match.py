"""CPU match on Hyperscan (block mode, literal patterns).

Why one scan per batch: calling Hyperscan once per record costs a Python round trip each;
instead the batch's contiguous Arrow data buffer is scanned once, and each hit (pattern
id, end offset) is mapped back to its record by binary search over the offsets. A literal
has a fixed length, so a hit whose start falls before its record's first byte spans two
records and is discarded.
"""

from __future__ import annotations

import threading
from typing import Any

import hyperscan
import numpy as np
import pyarrow as pa

from plait.process.cpu._match_numba import records_of_hits
from plait.process.match import MatchResult, PatternSet, build_result, string_buffers

_lock = threading.Lock()
_db_cache: dict[PatternSet, Any] = {}
_lengths: dict[PatternSet, np.ndarray] = {}


def _pattern_lengths(ps: PatternSet) -> np.ndarray:
    lengths = _lengths.get(ps)
    if lengths is None:
        lengths = _lengths[ps] = np.array([len(p) for p in ps.patterns], dtype=np.int64)
    return lengths


def _database(ps: PatternSet) -> Any:
    with _lock:
        db = _db_cache.get(ps)
        if db is None:
            db = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
            flag = hyperscan.HS_FLAG_CASELESS if ps.caseless else 0
            db.compile(
                expressions=list(ps.patterns),
                ids=list(range(len(ps.patterns))),
                elements=len(ps.patterns),
                flags=[flag] * len(ps.patterns),
                literal=True,
            )
            _db_cache[ps] = db
        return db


def match_cpu(values: pa.Array, ps: PatternSet) -> MatchResult:
    """Which patterns of ``ps`` occur in each record of ``values`` (see plait.process.match)."""
    n = len(values)
    offsets, data, valid = string_buffers(values, dense_valid=False)
    hits_id: list[int] = []
    hits_to: list[int] = []
    if n and offsets[-1] > offsets[0]:
        base = int(offsets[0])

        def on_match(pid: int, _from: int, to: int, _flags: int, _ctx: Any) -> None:
            hits_id.append(pid)
            hits_to.append(to + base)

        _database(ps).scan(data[base : int(offsets[-1])], match_event_handler=on_match)
    pid = np.array(hits_id, dtype=np.int32)
    rec = records_of_hits(
        np.array(hits_to, dtype=np.int64), pid, offsets, valid, _pattern_lengths(ps)
    )
    return build_result(n, rec, pid, len(ps.patterns))

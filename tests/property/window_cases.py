"""Inputs both window property tests draw: (event time, key, value) records as batches."""

from __future__ import annotations

import itertools
import math
from typing import Any

import pyarrow as pa
from hypothesis import strategies as st


def events(max_time: int) -> st.SearchStrategy[list[tuple[Any, Any, Any]]]:
    """Up to 40 records with null or small event times, three keys (one null), null or
    small int values: collisions, ties and lateness are common."""
    return st.lists(
        st.tuples(
            st.none() | st.integers(0, max_time),
            st.sampled_from(["a", "b", None]),
            st.none() | st.integers(-50, 50),
        ),
        max_size=40,
    )


def as_batch(part: list[tuple[Any, Any, Any]]) -> pa.RecordBatch:
    return pa.record_batch(
        {
            "ts": pa.array([e[0] for e in part], pa.int64()),
            "k": pa.array([e[1] for e in part], pa.string()),
            "v": pa.array([e[2] for e in part], pa.int64()),
        }
    )


def emission_order(r: dict[str, Any]) -> tuple[Any, ...]:
    """Rows come out by (window end, window start, key), a null key first."""
    return (r["window_end"], r["window_start"], (0, "") if r["k"] is None else (1, r["k"]))


QUANTILES = (0.0, 0.5, 1.0)


def admitted(
    evs: list[tuple[Any, Any, Any]], lateness: int
) -> tuple[list[tuple[int, Any, Any]], list[int]]:
    """The late rule one record at a time: (ts, key, value) of the records that count,
    and the positions of the late ones (null event time, or below the watermark)."""
    max_seen = None
    kept, late = [], []
    for i, (ts, key, val) in enumerate(evs):
        if ts is None or (max_seen is not None and ts < max_seen - lateness):
            late.append(i)
            continue
        max_seen = ts if max_seen is None else max(max_seen, ts)
        kept.append((ts, key, val))
    return kept, late


def expected_row(key: Any, start: int, end: int, vals: list[Any]) -> dict[str, Any]:
    """A window's row computed plainly, with its sorted values under ``_vals``."""
    nn = [v for v in vals if v is not None]
    return {
        "k": key,
        "window_start": start,
        "window_end": end,
        "count": len(vals),
        "sum": sum(nn) if nn else None,
        "min": min(nn) if nn else None,
        "max": max(nn) if nn else None,
        "mean": sum(nn) / len(nn) if nn else None,
        "_vals": sorted(nn),
    }


def run_in_batches(op: Any, evs: list[Any], cuts: list[int]) -> tuple[list[dict[str, Any]], list[int]]:
    """Feed ``evs`` cut at ``cuts``, then flush: every row emitted, and the late positions.
    Also checks that nothing is emitted before the watermark reaches its end."""
    bounds = sorted({0, len(evs), *[min(c, len(evs)) for c in cuts]})
    got: list[dict[str, Any]] = []
    late: list[int] = []
    for a, b in itertools.pairwise(bounds):
        out, lt = op.process(as_batch(evs[a:b]))
        late.extend(a + p for p, _ in lt)
        if out is not None:
            rows = out.to_pylist()
            assert op.watermark is not None and all(r["window_end"] <= op.watermark for r in rows)
            got.extend(rows)
    tail = op.flush()
    if tail is not None:
        got.extend(tail.to_pylist())
    return got, late


def assert_rows_match(got: list[dict[str, Any]], exp: list[dict[str, Any]]) -> None:
    """Row for row: exact aggregates, quantiles within the sketch's 1% relative bound."""
    assert len(got) == len(exp)
    for g, e in zip(got, exp):
        vals = e.pop("_vals")
        for q in QUANTILES:
            est = g.pop(f"q{q:g}")
            if not vals:
                assert est is None
                continue
            exact = vals[math.floor(q * (len(vals) - 1))]
            assert abs(est - exact) <= 0.01 * abs(exact) * (1 + 1e-9)
        assert g == e

"""Windows against a per-record simulation: lateness, tumbling and sliding assignment,
aggregates, emission order, independence from batch boundaries, sketch error bound."""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np
import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from plait.process.sketch import LogSketch
from plait.process.window import WindowOperator, WindowSpec

events = st.lists(
    st.tuples(
        st.none() | st.integers(0, 60),
        st.sampled_from(["a", "b", None]),
        st.none() | st.integers(-50, 50),
    ),
    max_size=40,
)


def reference(
    evs: list[tuple[Any, Any, Any]], size: int, slide: int, lateness: int
) -> tuple[list[dict[str, Any]], list[int]]:
    max_seen = None
    late = []
    wins: dict[tuple[Any, int], list[Any]] = {}
    for i, (ts, key, val) in enumerate(evs):
        if ts is None or (max_seen is not None and ts < max_seen - lateness):
            late.append(i)
            continue
        max_seen = ts if max_seen is None else max(max_seen, ts)
        start = (ts // slide) * slide
        while start > ts - size:
            wins.setdefault((key, start), []).append(val)
            start -= slide
    rows = []
    for (key, start), vals in wins.items():
        nn = [v for v in vals if v is not None]
        rows.append(
            {
                "k": key,
                "window_start": start,
                "window_end": start + size,
                "count": len(vals),
                "sum": sum(nn) if nn else None,
                "min": min(nn) if nn else None,
                "max": max(nn) if nn else None,
                "mean": sum(nn) / len(nn) if nn else None,
                "_vals": sorted(nn),
            }
        )
    rows.sort(
        key=lambda r: (
            r["window_end"],
            r["window_start"],
            (0, "") if r["k"] is None else (1, r["k"]),
        )
    )
    return rows, late


@settings(max_examples=150, deadline=None)
@given(
    evs=events,
    size=st.sampled_from([5, 10, 20]),
    ratio=st.sampled_from([1, 2, 5]),
    lateness=st.integers(0, 15),
    cuts=st.lists(st.integers(0, 40), max_size=4),
)
def test_window_equals_reference(
    evs: list[Any], size: int, ratio: int, lateness: int, cuts: list[int]
) -> None:
    slide = size // ratio if size % ratio == 0 else size
    op = WindowOperator(
        WindowSpec(
            size=size,
            time="ts",
            slide=slide,
            lateness=lateness,
            key="k",
            value="v",
            quantiles=(0.0, 0.5, 1.0),
        )
    )
    bounds = sorted({0, len(evs), *[min(c, len(evs)) for c in cuts]})
    got: list[dict[str, Any]] = []
    late: list[int] = []
    for a, b in itertools.pairwise(bounds):
        part = evs[a:b]
        batch = pa.record_batch(
            {
                "ts": pa.array([e[0] for e in part], pa.int64()),
                "k": pa.array([e[1] for e in part], pa.string()),
                "v": pa.array([e[2] for e in part], pa.int64()),
            }
        )
        out, lt = op.process(batch)
        late.extend(a + p for p, _ in lt)
        if out is not None:
            got.extend(out.to_pylist())
    tail = op.flush()
    if tail is not None:
        got.extend(tail.to_pylist())
    exp, exp_late = reference(evs, size, slide, lateness)
    assert late == exp_late
    assert len(got) == len(exp)
    for g, e in zip(got, exp):
        vals = e.pop("_vals")
        for q in (0.0, 0.5, 1.0):
            est = g.pop(f"q{q:g}")
            if not vals:
                assert est is None
                continue
            exact = vals[math.floor(q * (len(vals) - 1))]
            assert abs(est - exact) <= 0.01 * abs(exact) * (1 + 1e-9)
        assert g == e


@settings(max_examples=100, deadline=None)
@given(
    values=st.lists(st.floats(-1e9, 1e9, allow_nan=False), min_size=1, max_size=200),
    q=st.floats(0, 1),
    alpha=st.sampled_from([0.001, 0.01, 0.05]),
    split=st.integers(0, 200),
)
def test_sketch_relative_error_bound_and_merge(
    values: list[float], q: float, alpha: float, split: int
) -> None:
    a, b = LogSketch(alpha), LogSketch(alpha)
    a.add_many(np.array(values[:split]))
    b.add_many(np.array(values[split:]))
    a.merge(b)
    exact = sorted(values)[math.floor(q * (len(values) - 1))]
    est = a.quantile(q)
    assert est is not None
    assert abs(est - exact) <= alpha * abs(exact) * (1 + 1e-9)

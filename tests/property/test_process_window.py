"""Windows against a per-record simulation: lateness, tumbling and sliding assignment,
aggregates, emission order, independence from batch boundaries, sketch error bound."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from window_cases import (
    QUANTILES,
    admitted,
    assert_rows_match,
    emission_order,
    events,
    expected_row,
    run_in_batches,
)

from plait.process.sketch import LogSketch
from plait.process.window import WindowOperator, WindowSpec


def reference(
    evs: list[tuple[Any, Any, Any]], size: int, slide: int, lateness: int
) -> tuple[list[dict[str, Any]], list[int]]:
    kept, late = admitted(evs, lateness)
    wins: dict[tuple[Any, int], list[Any]] = {}
    for ts, key, val in kept:
        start = (ts // slide) * slide
        while start > ts - size:
            wins.setdefault((key, start), []).append(val)
            start -= slide
    rows = [expected_row(key, start, start + size, vals) for (key, start), vals in wins.items()]
    rows.sort(key=emission_order)
    return rows, late


@settings(max_examples=150, deadline=None)
@given(
    evs=events(60),
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
        WindowSpec(size=size, time="ts", slide=slide, lateness=lateness, key="k", value="v",
                   quantiles=QUANTILES)
    )
    got, late = run_in_batches(op, evs, cuts)
    exp, exp_late = reference(evs, size, slide, lateness)
    assert late == exp_late
    assert sorted(got, key=emission_order) == got
    assert_rows_match(got, exp)


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

"""Session windows against a per-record simulation: lateness, merging (out of order
records that extend or join sessions), aggregates, emission order and timing, and
independence from batch boundaries."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
import window_cases as wc
from hypothesis import given, settings
from hypothesis import strategies as st

from plait.errors import ConfigError
from plait.process.session import SessionSpec, SessionWindowOperator


def reference(
    evs: list[tuple[Any, Any, Any]], gap: int, lateness: int
) -> tuple[list[dict[str, Any]], list[int]]:
    """Sessions as the connected groups of each key's admitted event times (sorted, a
    step below ``gap`` joins)."""
    kept, late = wc.admitted(evs, lateness)
    by_key: dict[Any, list[tuple[int, Any]]] = {}
    for ts, key, val in kept:
        by_key.setdefault(key, []).append((ts, val))
    rows = []
    for key, items in by_key.items():
        items.sort(key=lambda x: x[0])
        groups: list[list[tuple[int, Any]]] = [[items[0]]]
        for prev, cur in itertools.pairwise(items):
            if cur[0] - prev[0] < gap:
                groups[-1].append(cur)
            else:
                groups.append([cur])
        rows += [wc.expected_row(key, g[0][0], g[-1][0] + gap, [v for _, v in g]) for g in groups]
    rows.sort(key=wc.emission_order)
    return rows, late


@settings(max_examples=200, deadline=None)
@given(
    evs=wc.events(80),
    gap=st.sampled_from([1, 3, 7, 20]),
    lateness=st.integers(0, 30),
    cuts=st.lists(st.integers(0, 40), max_size=4),
)
def test_sessions_equal_reference(
    evs: list[Any], gap: int, lateness: int, cuts: list[int]
) -> None:
    op = SessionWindowOperator(
        SessionSpec(gap=gap, time="ts", lateness=lateness, key="k", value="v", quantiles=wc.QUANTILES)
    )
    got, late = wc.run_in_batches(op, evs, cuts)
    exp, exp_late = reference(evs, gap, lateness)
    assert late == exp_late
    # emissions come in (end, start, key) order across batches too: what stays open
    # after an emission ends past that watermark, and so does any later session
    assert sorted(got, key=wc.emission_order) == got
    wc.assert_rows_match(got, exp)


def test_out_of_order_record_joins_two_sessions() -> None:
    op = SessionWindowOperator(SessionSpec(gap=15, time="ts", lateness=100, key="k"))
    out, late = op.process(wc.as_batch([(0, "a", 1), (25, "a", 2)]))
    assert out is None and not late
    out, _ = op.process(wc.as_batch([(12, "a", 3)]))  # 12 is < 15 from both 0 and 25
    assert out is None
    tail = op.flush()
    assert tail is not None
    assert tail.select(["k", "window_start", "window_end", "count"]).to_pylist() == [
        {"k": "a", "window_start": 0, "window_end": 40, "count": 3}
    ]


def test_watermark_closes_sessions_and_later_records_start_new_ones() -> None:
    op = SessionWindowOperator(SessionSpec(gap=5, time="ts", key="k", value="v"))
    out, _ = op.process(wc.as_batch([(1, "a", 10), (3, "a", 20), (4, "b", 7)]))
    assert out is None  # watermark 4: no session has ended yet
    out, _ = op.process(wc.as_batch([(8, "a", 1)]))  # watermark 8: a's 1..3 ended at 8
    assert out is not None
    assert out.to_pylist() == [
        {"k": "a", "window_start": 1, "window_end": 8, "count": 2,
         "sum": 30, "min": 10, "max": 20, "mean": 15.0},
    ]
    tail = op.flush()
    assert tail is not None
    assert [(r["k"], r["window_start"], r["window_end"]) for r in tail.to_pylist()] == [
        ("b", 4, 9), ("a", 8, 13)
    ]


def test_bad_specs_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="gap > 0"):
        SessionSpec(gap=0, time="ts")
    with pytest.raises(ConfigError, match="lateness >= 0"):
        SessionSpec(gap=1, time="ts", lateness=-1)


@settings(max_examples=50, deadline=None)
@given(
    times=st.lists(st.sampled_from([0, 3, 5, 2**40, 2**40 + 5, 2**61, 2**61 + 4]), min_size=1, max_size=12),
    keys=st.lists(st.sampled_from(["a", "b"]), min_size=12, max_size=12),
)
def test_event_times_too_far_apart_for_the_vectorized_merge(times: list[int], keys: list[str]) -> None:
    """Times spanning most of int64 take the merge's one-by-one path; same sessions."""
    evs = [(t, k, 1) for t, k in zip(times, keys)]
    op = SessionWindowOperator(SessionSpec(gap=5, time="ts", lateness=2**62, key="k", value="v"))
    got, late = wc.run_in_batches(op, evs, [len(evs) // 2])
    exp, exp_late = reference(evs, 5, 2**62)
    assert late == exp_late == []
    for row in exp:
        row.pop("_vals")
    assert got == exp

"""Session windows against a per-record simulation: lateness, merging (out of order
records that extend or join sessions), aggregates, emission order and timing, and
independence from batch boundaries."""

from __future__ import annotations

import itertools
import math
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from plait.errors import ConfigError
from plait.process.session import SessionSpec, SessionWindowOperator

events = st.lists(
    st.tuples(
        st.none() | st.integers(0, 80),
        st.sampled_from(["a", "b", None]),
        st.none() | st.integers(-50, 50),
    ),
    max_size=40,
)


def reference(
    evs: list[tuple[Any, Any, Any]], gap: int, lateness: int
) -> tuple[list[dict[str, Any]], list[int]]:
    """One record at a time: the late rule, then sessions as the connected groups of
    each key's admitted event times (sorted, a step below ``gap`` joins)."""
    max_seen = None
    late = []
    by_key: dict[Any, list[tuple[int, Any]]] = {}
    for i, (ts, key, val) in enumerate(evs):
        if ts is None or (max_seen is not None and ts < max_seen - lateness):
            late.append(i)
            continue
        max_seen = ts if max_seen is None else max(max_seen, ts)
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
        for g in groups:
            nn = [v for _, v in g if v is not None]
            rows.append(
                {
                    "k": key,
                    "window_start": g[0][0],
                    "window_end": g[-1][0] + gap,
                    "count": len(g),
                    "sum": sum(nn) if nn else None,
                    "min": min(nn) if nn else None,
                    "max": max(nn) if nn else None,
                    "mean": sum(nn) / len(nn) if nn else None,
                    "_vals": sorted(nn),
                }
            )
    rows.sort(
        key=lambda r: (r["window_end"], r["window_start"], (0, "") if r["k"] is None else (1, r["k"]))
    )
    return rows, late


def as_batch(part: list[tuple[Any, Any, Any]]) -> pa.RecordBatch:
    return pa.record_batch(
        {
            "ts": pa.array([e[0] for e in part], pa.int64()),
            "k": pa.array([e[1] for e in part], pa.string()),
            "v": pa.array([e[2] for e in part], pa.int64()),
        }
    )


@settings(max_examples=200, deadline=None)
@given(
    evs=events,
    gap=st.sampled_from([1, 3, 7, 20]),
    lateness=st.integers(0, 30),
    cuts=st.lists(st.integers(0, 40), max_size=4),
)
def test_sessions_equal_reference(
    evs: list[Any], gap: int, lateness: int, cuts: list[int]
) -> None:
    op = SessionWindowOperator(
        SessionSpec(gap=gap, time="ts", lateness=lateness, key="k", value="v",
                    quantiles=(0.0, 0.5, 1.0))
    )
    bounds = sorted({0, len(evs), *[min(c, len(evs)) for c in cuts]})
    got: list[dict[str, Any]] = []
    late: list[int] = []
    for a, b in itertools.pairwise(bounds):
        out, lt = op.process(as_batch(evs[a:b]))
        late.extend(a + p for p, _ in lt)
        mark = op.watermark
        if out is not None:
            rows = out.to_pylist()
            # emitted only once the watermark reached the session's end
            assert mark is not None and all(r["window_end"] <= mark for r in rows)
            got.extend(rows)
    tail = op.flush()
    if tail is not None:
        got.extend(tail.to_pylist())
    exp, exp_late = reference(evs, gap, lateness)
    assert late == exp_late
    # emissions come in (end, start, key) order across batches too: what stays open
    # after an emission ends past that watermark, and so does any later session
    assert sorted(got, key=_order) == got
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


def _order(r: dict[str, Any]) -> tuple[Any, ...]:
    return (r["window_end"], r["window_start"], (0, "") if r["k"] is None else (1, r["k"]))


def test_out_of_order_record_joins_two_sessions() -> None:
    op = SessionWindowOperator(SessionSpec(gap=15, time="ts", lateness=100, key="k"))
    out, late = op.process(as_batch([(0, "a", 1), (25, "a", 2)]))
    assert out is None and not late
    out, _ = op.process(as_batch([(12, "a", 3)]))  # 12 is < 15 from both 0 and 25
    assert out is None
    tail = op.flush()
    assert tail is not None
    assert tail.select(["k", "window_start", "window_end", "count"]).to_pylist() == [
        {"k": "a", "window_start": 0, "window_end": 40, "count": 3}
    ]


def test_watermark_closes_sessions_and_later_records_start_new_ones() -> None:
    op = SessionWindowOperator(SessionSpec(gap=5, time="ts", key="k", value="v"))
    out, _ = op.process(as_batch([(1, "a", 10), (3, "a", 20), (4, "b", 7)]))
    assert out is None  # watermark 4: no session has ended yet
    out, _ = op.process(as_batch([(8, "a", 1)]))  # watermark 8: a's 1..3 ended at 8
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

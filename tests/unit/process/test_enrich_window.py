"""Enrich reload (mtime and on demand, atomic swap, failed reload keeps the old table);
window unit cases."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from plait.errors import ConfigError
from plait.process.enrich import ReferenceTable
from plait.process.errors import EnrichError, SchemaError
from plait.process.window import WindowOperator, WindowSpec


def _write_csv(path: Path, rows: list[tuple[int, str]], mtime_ns: int) -> None:
    path.write_text("user_id,segment\n" + "".join(f"{u},{s}\n" for u, s in rows))
    os.utime(path, ns=(mtime_ns, mtime_ns))


def test_reload_on_mtime_change_and_on_demand(tmp_path: Path) -> None:
    csv = tmp_path / "users.csv"
    _write_csv(csv, [(1, "gold"), (2, "silver")], 1_000_000_000)
    ref = ReferenceTable(csv, "user_id")
    batch = pa.record_batch({"user_id": pa.array([1, 2, 3], pa.int64())})
    assert ref.lookup(batch, "user_id").column("segment").to_pylist() == [
        "gold",
        "silver",
        None,
    ]
    assert ref.maybe_reload() is False
    _write_csv(csv, [(1, "bronze"), (3, "new")], 2_000_000_000)
    assert ref.maybe_reload() is True
    assert ref.lookup(batch, "user_id").column("segment").to_pylist() == [
        "bronze",
        None,
        "new",
    ]
    # same mtime, new content: only an explicit reload sees it
    _write_csv(csv, [(2, "x")], 2_000_000_000)
    assert ref.maybe_reload() is False
    ref.reload()
    assert ref.lookup(batch, "user_id").column("segment").to_pylist() == [
        None,
        "x",
        None,
    ]


def test_failed_reload_keeps_previous_table(tmp_path: Path) -> None:
    csv = tmp_path / "users.csv"
    _write_csv(csv, [(1, "gold")], 1_000_000_000)
    ref = ReferenceTable(csv, "user_id")
    _write_csv(csv, [(1, "a"), (1, "b")], 3_000_000_000)  # duplicate key
    with pytest.raises(EnrichError, match="expected unique non-null keys"):
        ref.maybe_reload()
    assert ref.table.column("segment").to_pylist() == ["gold"]


def test_swap_is_atomic_under_concurrent_lookups() -> None:
    n = 2000
    ref = ReferenceTable(pa.table({"k": list(range(n)), "v": ["old"] * n}), "k")
    batch = pa.record_batch({"k": pa.array(range(n), pa.int64())})
    stop = threading.Event()
    mixed: list[set[str]] = []

    def reader() -> None:
        while not stop.is_set():
            vals = set(ref.lookup(batch, "k").column("v").to_pylist())
            if len(vals) != 1:
                mixed.append(vals)

    t = threading.Thread(target=reader)
    t.start()
    for i in range(50):
        ref.replace(pa.table({"k": list(range(n)), "v": [f"gen{i}"] * n}))
    stop.set()
    t.join()
    assert mixed == []


def test_parquet_reference_and_errors(tmp_path: Path) -> None:
    p = tmp_path / "ref.parquet"
    pq.write_table(
        pa.table({"code": ["DE", "FR"], "name": ["Germany", "France"], "x": [1, 2]}), p
    )
    ref = ReferenceTable(p, "code", columns=["name"])
    out = ref.lookup(pa.record_batch({"country": ["FR", "US"]}), "country")
    assert out.to_pylist() == [
        {"country": "FR", "name": "France"},
        {"country": "US", "name": None},
    ]
    with pytest.raises(EnrichError, match="expected key column 'nope'"):
        ReferenceTable(p, "nope")
    with pytest.raises(EnrichError, match="readable CSV or Parquet"):
        ReferenceTable(tmp_path / "missing.csv", "k")
    with pytest.raises(SchemaError, match="already exists"):
        ref.lookup(pa.record_batch({"country": ["FR"], "name": ["dup"]}), "country")


def test_sliding_window_and_flush() -> None:
    op = WindowOperator(WindowSpec(size=10, slide=5, time="ts", value="v"))
    out, late = op.process(pa.record_batch({"ts": [1, 6, 12], "v": [1, 2, 4]}))
    assert late == []
    # watermark 12 (no lateness): windows ending at 5 and 10 closed
    assert out is not None and out.to_pylist() == [
        {
            "window_start": -5,
            "window_end": 5,
            "count": 1,
            "sum": 1,
            "min": 1,
            "max": 1,
            "mean": 1.0,
        },
        {
            "window_start": 0,
            "window_end": 10,
            "count": 2,
            "sum": 3,
            "min": 1,
            "max": 2,
            "mean": 1.5,
        },
    ]
    tail = op.flush()
    assert tail is not None and [
        (r["window_start"], r["count"], r["sum"]) for r in tail.to_pylist()
    ] == [(5, 2, 6), (10, 1, 4)]
    assert op.flush() is None


def test_window_config_errors() -> None:
    with pytest.raises(ConfigError, match="slide > 0 dividing size"):
        WindowSpec(size=10, slide=3, time="ts")
    op = WindowOperator(WindowSpec(size=10, time="ts"))
    with pytest.raises(SchemaError, match="integer or timestamp"):
        op.process(pa.record_batch({"ts": ["a"]}))


def test_a_minus_zero_float_key_finds_the_zero_key() -> None:
    # Arrow's index_in hashes float bits, where -0.0 and 0.0 differ; as keys they are equal.
    ref = ReferenceTable(pa.table({"k": pa.array([0.0, 1.5]), "v": ["zero", "one and a half"]}), "k")
    batch = pa.record_batch({"k": pa.array([-0.0, 0.0, 1.5, 2.0, None])})
    assert ref.lookup(batch, "k").column("v").to_pylist() == [
        "zero", "zero", "one and a half", None, None
    ]

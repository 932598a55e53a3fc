"""The GPU engine's match and filter on numba's CUDA simulator equal the CPU engine.

Same kernels and host code as on a GPU, NumPy arrays instead of CuPy ones; a GPU run of
tests/gpu repeats these comparisons on the device."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from plait.process.cpu.expr_compile import compile_expr
from plait.process.engine import CPU
from plait.process.errors import EvaluationError
from plait.process.expr import render
from plait.process.gpu.columns import upload_column
from plait.process.gpu.expr_device import DeviceExpr, DeviceUnsupported
from plait.process.match import PatternSet

try:  # run from the repository root...
    from tests.property.test_process_filter import SCHEMA, expr, rows_strategy
except ImportError:  # ...or with tests/ itself on sys.path (pytest's rootdir import)
    from property.test_process_filter import SCHEMA, expr, rows_strategy  # type: ignore[no-redef]

try:
    from tests.gpu_sim.engines import engine_under_test, on_simulator
except ImportError:
    from gpu_sim.engines import engine_under_test, on_simulator  # type: ignore[no-redef]

pytestmark = pytest.mark.gpu_sim
GPU = engine_under_test()


def _same_match(values: pa.Array, ps: PatternSet) -> None:
    a, b = CPU.match(values, ps), GPU.match(values, ps)
    assert a.ids.equals(b.ids), (values, ps)
    assert a.any.equals(b.any)


def test_match_equals_cpu_on_random_inputs() -> None:
    rnd = random.Random(3)
    alphabet = "abcAB é"
    scale = 1 if on_simulator() else 8  # the simulator runs each CUDA thread in Python
    for _ in range(6 * scale):
        texts = [
            None if rnd.random() < 0.1
            else "".join(rnd.choice(alphabet) for _ in range(rnd.randrange(20 * scale)))
            for _ in range(rnd.randrange(1, 40 * scale))
        ]
        pats = ["".join(rnd.choice(alphabet) for _ in range(rnd.randrange(1, 4)))
                for _ in range(rnd.randrange(1, 40 + 30 * (scale > 1)))]
        arr = pa.array(texts)
        for caseless in (False, True):
            ps = PatternSet.of(pats, caseless=caseless)
            _same_match(arr, ps)
            _same_match(arr.slice(rnd.randrange(len(texts))), ps)
            _same_match(arr.cast(pa.binary()), ps)


def test_match_edge_cases() -> None:
    _same_match(pa.array([], pa.string()), PatternSet.of(["a"]))
    _same_match(pa.array(["", None, ""]), PatternSet.of(["a"]))
    _same_match(pa.array(["ab", "cd"]), PatternSet.of(["bc"]))  # no hit across records
    _same_match(pa.array(["x" * 40] * 3), PatternSet.of([f"p{i}" for i in range(33)] + ["x"]))


@settings(max_examples=120, deadline=None)
@given(tree=expr("bool"), rows=rows_strategy)
def test_filter_equals_cpu(tree: Any, rows: list[dict[str, Any]]) -> None:
    text = render(tree)
    batch = pa.RecordBatch.from_pylist(rows, schema=SCHEMA)
    compiled = compile_expr(text, SCHEMA, want="bool")
    try:
        want = compiled(batch)
    except EvaluationError:
        with pytest.raises(EvaluationError):
            GPU.evaluate(compiled, batch)
        return
    got = GPU.evaluate(compiled, batch)
    assert got.equals(want), f"{text}: gpu {got.to_pylist()} cpu {want.to_pylist()}"


@settings(max_examples=120, deadline=None)
@given(tree=st.sampled_from(["int", "float"]).flatmap(lambda t: expr(t)), rows=rows_strategy)
def test_numeric_expressions_equal_cpu(tree: Any, rows: list[dict[str, Any]]) -> None:
    text = render(tree)
    batch = pa.RecordBatch.from_pylist(rows, schema=SCHEMA)
    compiled = compile_expr(text, SCHEMA)
    dexpr = DeviceExpr(text, {f.name: k for f, k in zip(SCHEMA, ["int", "int", "float", "string", "string", "bool"])}, GPU.backend)
    cols = {c: upload_column(GPU.backend, batch.column(c)) for c in dexpr.columns}
    try:
        want = compiled(batch).to_pylist()
    except EvaluationError:
        with pytest.raises(EvaluationError):
            dexpr(cols, batch.num_rows)
        return
    out = dexpr(cols, batch.num_rows)
    data = np.asarray(out.data).tolist()
    valid = [True] * len(data) if out.valid is None else np.asarray(out.valid).tolist()
    got = [d if v else None for d, v in zip(data, valid)]
    for g, w in zip(got, want):
        if isinstance(w, float) and isinstance(g, float) and np.isnan(w):
            assert np.isnan(g), text
        else:
            assert g == w, f"{text}: gpu {got} cpu {want}"


def test_string_ordering_has_no_device_form() -> None:
    with pytest.raises(DeviceUnsupported):
        DeviceExpr("s1 < 'b'", {"s1": "string"}, GPU.backend)
    batch = pa.RecordBatch.from_pylist([{"s1": "a"}, {"s1": "c"}, {"s1": None}])
    compiled = compile_expr("s1 < 'b'", batch.schema, want="bool")
    assert GPU.evaluate(compiled, batch).equals(compiled(batch))  # ran on the CPU


def test_process_bench_runs_the_gpu_engine() -> None:
    """The benchmark's GPU path (per operator, the pipeline's device chain, and filter +
    enrich + match on the device) runs; without this a slip there would first show on a
    GPU machine."""
    from plait.bench.process_bench import bench_engine
    from plait.process import bench_data

    events = bench_data.make_events(64, seed=3)
    got = bench_engine(GPU, events)
    assert set(got) == {"decode", "filter", "enrich", "match", "end_to_end",
                        "filter_enrich_match_on_device"}
    assert all(v > 0 for v in got.values())

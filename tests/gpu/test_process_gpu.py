"""GPU engine conformance: every operator gives exactly the CPU engine's output on the
same inputs, on batches larger than the simulator could run. Runs only where CuPy sees a
CUDA device; tests/gpu_sim holds the per-operator comparisons (on the device too when
NUMBA_ENABLE_CUDASIM=0)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from plait.pipeline import pipeline
from plait.process import bench_data
from plait.process.cpu.expr_compile import compile_expr
from plait.process.decrypt import KeyRing, encrypt_value
from plait.process.engine import CPU, calibrate
from plait.process.gpu import gpu_status, load_gpu_engine

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not gpu_status()[0], reason=f"no GPU: {gpu_status()[1]}"),
]


def test_decode_filter_decrypt_equal_cpu() -> None:
    gpu = load_gpu_engine()
    events = bench_data.make_events(5000) + [b"bad", b'{"amount": "x"}']
    a, b = (
        CPU.decode(events, bench_data.SCHEMA, "json"),
        gpu.decode(events, bench_data.SCHEMA, "json"),
    )
    assert (
        a.batch.equals(b.batch)
        and a.good.tolist() == b.good.tolist()
        and a.errors == b.errors
    )
    expr = compile_expr(bench_data.FILTER, a.batch.schema, want="bool")
    assert CPU.evaluate(expr, a.batch).equals(gpu.evaluate(expr, a.batch))
    key = bytes(range(32))
    vals = pa.array([encrypt_value(key, e) for e in events[:100]] + [b"x" * 40])
    kids = pa.array(["k"] * 101)
    ring = KeyRing({"k": key})
    c, g = CPU.decrypt(vals, kids, ring, None), gpu.decrypt(vals, kids, ring, None)
    assert c.plaintext.equals(g.plaintext) and c.errors == g.errors


def test_pipeline_gpu_equals_cpu() -> None:
    events = bench_data.make_events(20000)

    def build(engine: str) -> list[dict[str, object]]:
        p = (
            pipeline([events[:7000], events[7000:]], engine=engine)
            .decode(bench_data.SCHEMA)
            .filter(bench_data.FILTER)
            .enrich(bench_data.users_table(), on="user_id")
            .match(bench_data.PATTERNS, field="note")
        )
        return [r for b in p for r in b.to_pylist()]

    assert build("gpu") == build("cpu")


def test_calibration_reports_thresholds() -> None:
    cross = calibrate(load_gpu_engine(), sizes=(1024, 16384), repeat=1)
    assert set(cross.thresholds) == {"decode", "match", "decrypt", "filter"}
    assert cross.device


def test_large_upload_goes_through_the_pinned_stages_intact() -> None:
    """Uploads over one staging chunk are split over the two pinned buffers; every byte
    must land where it belongs, odd sizes and dtypes included."""
    backend = load_gpu_engine().backend
    rng = np.random.default_rng(1)
    for n_bytes in (backend.CHUNK - 1, backend.CHUNK * 3 + 5):
        host = rng.integers(0, 256, n_bytes, dtype=np.uint8)
        assert np.array_equal(backend.to_host(backend.to_device(host)), host)
    wide = rng.standard_normal((3_000_001,))
    assert np.array_equal(backend.to_host(backend.to_device(wide)), wide)

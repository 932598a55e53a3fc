"""Upload overlapped with decode: records sent in chunks, each chunk's rows scanned as it
lands, give exactly the cells of one upload and one scan."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from plait.process import bench_data
from plait.process.gpu.json_decode import (
    _row_chunks,
    scan_device,
    upload_and_scan,
    upload_records,
)

try:
    from tests.gpu_sim.engines import backend_under_test
except ImportError:
    from gpu_sim.engines import backend_under_test  # type: ignore[no-redef]

pytestmark = pytest.mark.gpu_sim


def test_row_chunks_cover_every_row_once() -> None:
    offsets = np.array([0, 5, 5, 30, 31, 100, 101], dtype=np.int64)
    for size in (1, 10, 50, 1000):
        chunks = _row_chunks(offsets, size)
        rows = [r for a, b in chunks for r in range(a, b)]
        assert rows == list(range(6))
        assert all(b > a for a, b in chunks)
    assert _row_chunks(np.zeros(1, np.int64), 10) == []


@pytest.mark.parametrize("chunk_bytes", [150, 1000, 1 << 20])
def test_chunked_upload_and_scan_equals_one_scan(chunk_bytes: int) -> None:
    backend = backend_under_test()
    events = bench_data.make_events(40, seed=11)
    events[3] = b'{"event_id": "wrong type"}'  # a flagged record inside a chunk
    values = pa.array(events + [None], type=pa.binary()).slice(1)
    whole = scan_device(backend, *upload_records(backend, values), bench_data.SCHEMA)
    parts = upload_and_scan(backend, values, bench_data.SCHEMA, chunk_bytes=chunk_bytes)
    flags = backend.to_host(whole.flags)
    assert flags.tolist() == backend.to_host(parts.flags).tolist()
    assert flags.sum() == 2  # the wrong type and the null record
    ok = flags == 0
    for name in ("valid", "ivals", "fvals", "bvals"):
        a, b = backend.to_host(getattr(whole, name)), backend.to_host(getattr(parts, name))
        assert np.array_equal(a[:, ok], b[:, ok]), name
    assert np.array_equal(backend.to_host(whole.str_offs), backend.to_host(parts.str_offs))
    assert np.array_equal(backend.to_host(whole.str_data), backend.to_host(parts.str_data))

"""Row selection on the device: gather the rows a filter kept before they travel back, so
only surviving rows cross to the host."""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import cuda

from plait.process.gpu.device import Backend, DeviceStrings, grid
from plait.process.gpu.expr_device import DVal


@cuda.jit
def _gather_bytes(data: Any, offsets: Any, rows: Any, out_offsets: Any, out: Any) -> None:
    """Row k of the output is row rows[k] of the input; one thread per output row."""
    k: int = cuda.grid(1)  # type: ignore[call-arg]
    if k >= rows.shape[0]:
        return
    r = rows[k]
    s = offsets[r]
    d = out_offsets[k]
    for j in range(offsets[r + 1] - s):
        out[d + j] = data[s + j]


def take_strings(backend: Backend, s: DeviceStrings, rows: Any) -> DeviceStrings:
    """The rows ``rows`` (device int64 indices) of a device string column."""
    xp = backend.xp
    m = int(rows.shape[0])
    lengths = (s.offsets[1:] - s.offsets[:-1])[rows]
    out_offsets = xp.zeros(m + 1, dtype=np.int64)
    if m:
        xp.cumsum(lengths, out=out_offsets[1:])
    total = int(out_offsets[-1]) if m else 0
    out = backend.empty(max(total, 1), np.uint8)
    if m:
        blocks, threads = grid(m)
        _gather_bytes[blocks, threads](s.data, s.offsets, rows, out_offsets, out)
    return DeviceStrings(out, out_offsets, s.valid[rows])


def take_value(backend: Backend, v: DVal, rows: Any) -> DVal:
    """The rows ``rows`` of a device value of any kind."""
    valid = None if v.valid is None else v.valid[rows]
    if isinstance(v.data, DeviceStrings):
        return DVal(v.kind, take_strings(backend, v.data, rows), valid)
    return DVal(v.kind, v.data[rows], valid)

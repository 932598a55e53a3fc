"""Arrow columns to device values and back (the only place the GPU engine crosses between
host memory and the device, apart from the kernels' own uploads)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from plait.process.cpu.expr_compile import lang_type
from plait.process.gpu.device import Backend, DeviceStrings, upload_strings
from plait.process.gpu.expr_device import DVal

_NUMPY = {"int": (pa.int64(), np.int64), "float": (pa.float64(), np.float64)}


def upload_column(backend: Backend, arr: pa.Array | pa.ChunkedArray) -> DVal:
    """One Arrow column as a device value of its expression-language kind."""
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    kind = lang_type(arr.type)
    if kind is None:
        raise TypeError(f"column type {arr.type} has no device form")
    valid = None
    if arr.null_count:
        valid = backend.to_device(arr.is_valid().to_numpy(zero_copy_only=False))
    if kind == "string":
        return DVal(kind, upload_strings(backend, arr), valid)
    if kind == "bool":
        host = arr.fill_null(False).to_numpy(zero_copy_only=False).astype(np.bool_)
        return DVal(kind, backend.to_device(host), valid)
    target, dtype = _NUMPY[kind]
    if arr.type != target:
        arr = pc.cast(arr, target)
    host = arr.fill_null(0).to_numpy(zero_copy_only=False).astype(dtype, copy=False)
    return DVal(kind, backend.to_device(host), valid)


def download_bool(backend: Backend, v: DVal) -> pa.Array:
    """A device bool value as a pa.bool_() array with its nulls."""
    data = backend.to_host(v.data).astype(np.bool_)
    if v.valid is None:
        return pa.array(data, type=pa.bool_())
    valid = backend.to_host(v.valid).astype(np.bool_)
    return pa.array(data, type=pa.bool_(), mask=~valid)


def column_kinds(schema: pa.Schema) -> dict[str, str]:
    """Expression-language kind of every column that has one."""
    out = {}
    for f in schema:
        kind = lang_type(f.type)
        if kind is not None:
            out[f.name] = kind
    return out



def download_value(backend: Backend, v: DVal, arrow_type: pa.DataType) -> pa.Array:
    """A device value as an Arrow array of ``arrow_type`` (nulls where ``valid`` is 0)."""
    valid = None if v.valid is None else backend.to_host(v.valid).astype(np.bool_)
    if isinstance(v.data, DeviceStrings):
        offsets = backend.to_host(v.data.offsets)
        n = len(offsets) - 1
        data = backend.to_host(v.data.data)[: int(offsets[-1]) if n >= 0 else 0]
        large = pa.types.is_large_string(arrow_type) or pa.types.is_large_binary(arrow_type)
        if not large and int(offsets[-1]) >= 2**31:
            raise OverflowError("string column past 2 GiB needs a large_string type")
        offs = offsets.astype(np.int64 if large else np.int32)
        bitmap = None
        nulls = 0
        if valid is not None and not valid.all():
            bitmap = pa.py_buffer(np.packbits(valid, bitorder="little"))
            nulls = int(n - np.count_nonzero(valid))
        return pa.Array.from_buffers(
            arrow_type, n, [bitmap, pa.py_buffer(offs), pa.py_buffer(data)], null_count=nulls
        )
    host = backend.to_host(v.data)
    mask = None if valid is None or valid.all() else ~valid
    return pa.array(host, type=arrow_type, mask=mask)

"""Fast JSON decode: numba kernels over a whole batch, the exact per-record path for the rest.

Contract: :func:`decode_json_fast` returns exactly what the per-record reference
(``decode._per_record``, msgspec's typed decoder) returns for the same input: the same rows
in input order, the same values (float bits included), the same dead-letter positions and
reasons. The kernels in :mod:`plait.process.cpu._json_numba` decode every record they can
prove exact and flag the others; flagged records go through the reference one by one and
are merged back in input order. A batch of clean events creates no Python object per
record: the kernels read each ``bytes`` record in place (see :func:`bytes_layout`).

Large batches are split into row ranges decoded on threads (the kernels release the GIL).
"""

from __future__ import annotations

import ctypes
import functools
import itertools
import math
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
import pyarrow as pa

from plait.process.cpu import _json_numba as K
from plait.process.schema import Schema

if TYPE_CHECKING:
    from plait.process.cpu.decode import DecodeResult

_KIND = {"int": K.K_INT, "float": K.K_FLOAT, "bool": K.K_BOOL, "string": K.K_STRING}
MAX_FIELDS = 63  # duplicate detection keeps one bit per declared field in an int64
MIN_ROWS_PER_THREAD = 16_384  # below this, thread hand-off costs more than it saves
_I32_MAX = 2**31 - 1

Decoded = tuple[pa.RecordBatch, np.ndarray, list[tuple[int, str]]]

_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


@functools.cache
def _threads() -> int:
    return max(1, min(8, os.cpu_count() or 1))


def _run(tasks: list[Callable[[], object]]) -> list[object]:
    """Run ``tasks`` on the shared pool (inline when there is only one)."""
    global _pool
    if len(tasks) == 1:
        return [tasks[0]()]
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(_threads(), thread_name_prefix="plait-json")
    return [f.result() for f in [_pool.submit(t) for t in tasks]]


def _ranges(n: int) -> list[tuple[int, int]]:
    parts = max(1, min(_threads(), n // MIN_ROWS_PER_THREAD))
    bounds = [n * k // parts for k in range(parts + 1)]
    return list(itertools.pairwise(bounds))


class Plan:
    """Per-schema constant inputs of the kernels (cached: schemas are few and frozen)."""

    def __init__(self, schema: Schema) -> None:
        encoded = [n.encode("utf-8") for n in schema.names]
        self.names = np.frombuffer(b"".join(encoded) or b"\0", dtype=np.uint8)
        self.name_offs = np.cumsum([0] + [len(b) for b in encoded], dtype=np.int64)
        # one masked word per name for the kernel's fast key compare (see K.scan)
        self.name_words = np.zeros(len(encoded), dtype=np.uint64)
        self.name_masks = np.zeros(len(encoded), dtype=np.uint64)
        for j, b in enumerate(encoded):
            plain = all(c >= 0x20 and c not in b'"\\' for c in b)
            if plain and len(b) <= 8:
                self.name_words[j] = int.from_bytes(b, "little")
                self.name_masks[j] = (1 << (8 * len(b))) - 1
            else:
                self.name_words[j] = 1  # never equals a word masked with 0
        self.kinds = np.array([_KIND[k] for _, k in schema.fields], dtype=np.int64)
        counts = dict.fromkeys(_KIND.values(), 0)
        slots = []
        for k in self.kinds:
            slots.append(counts[int(k)])
            counts[int(k)] += 1
        self.slots = np.array(slots, dtype=np.int64)
        self.string_fields = np.flatnonzero(self.kinds == K.K_STRING).astype(np.int64)
        self.counts = counts
        self.arrow = schema.arrow()


_PLANS: dict[Schema, Plan] = {}


def supported(schema: Schema) -> bool:
    """Whether the kernels can decode ``schema`` (binary fields and very wide schemas cannot)."""
    return len(schema.fields) <= MAX_FIELDS and all(
        k in _KIND for _, k in schema.fields
    )


@dataclass
class Cells:
    """The kernels' view of one batch: the records (kept alive here) and the cells."""

    records: tuple[bytes, ...]  # holds a reference to each record while kernels run
    flags: np.ndarray
    n_flagged: int
    ivals: np.ndarray
    fvals: np.ndarray
    bvals: np.ndarray
    valid: np.ndarray
    s_start: np.ndarray
    s_len: np.ndarray
    ranges: list[tuple[int, int]]
    numbers_to_arrow: bool = True  # ivals and fvals are not scratch memory


def scan_cells(
    values: Sequence[bytes], plan: Plan, layout: Layout, *, numbers_to_arrow: bool = True
) -> Cells:
    """Scan ``values`` into cells. With ``numbers_to_arrow`` the int and float cells are
    fresh memory that Arrow columns can wrap (:func:`finish` does); without, they are
    scratch too, for a caller that copies out the rows it keeps (decode_where)."""
    n = len(values)
    records = tuple(values)  # private and immutable, whatever the caller does meanwhile
    objs_addr = id(records) + layout.tuple_items
    kernel_layout = (layout.bytes_type, layout.payload)
    c = plan.counts
    if numbers_to_arrow:
        ivals = _empty((c[K.K_INT], n), np.int64)
        fvals = _empty((c[K.K_FLOAT], n), np.float64)
    else:
        ivals, fvals = _scratch_cells(plan, n, "numbers")
    flags, bvals, valid, s_start, s_len = _scratch_cells(plan, n, "cells")
    sc = Cells(records, flags, 0, ivals, fvals, bvals, valid, s_start, s_len, _ranges(n),
               numbers_to_arrow)

    def task(lo: int, hi: int) -> Callable[[], object]:
        return lambda: K.scan(
            objs_addr, kernel_layout, lo, hi, plan.names, plan.name_offs, plan.name_words,
            plan.name_masks, plan.kinds, plan.slots, ivals, fvals, bvals, valid, s_start,
            s_len, flags,
        )  # fmt: skip

    if len(sc.ranges) == 1:
        sc.n_flagged = int(task(0, n)())  # type: ignore[call-overload]
    else:
        sc.n_flagged = sum(int(x) for x in _run([task(lo, hi) for lo, hi in sc.ranges]))  # type: ignore[call-overload]
    return sc


def plan_for(schema: Schema) -> Plan:
    plan = _PLANS.get(schema)
    if plan is None:
        plan = _PLANS[schema] = Plan(schema)
    return plan


def flagged_positions(values: Sequence[bytes], schema: Schema) -> list[int] | None:
    """Positions of the records the kernels hand to the per-record path (None: the whole
    batch would take it). For tests and diagnostics: a batch whose clean records show up
    here decodes correctly but slowly."""
    layout = bytes_layout()
    if not values or layout is None or not supported(schema):
        return None
    return np.flatnonzero(scan_cells(values, plan_for(schema), layout).flags).tolist()


def decode_json_fast(
    values: Sequence[bytes],
    schema: Schema,
    per_record: Callable[[Sequence[bytes], Schema, str], DecodeResult],
) -> Decoded | None:
    """Decode JSON ``values`` under ``schema``: (rows in input order, their input indices,
    (position, reason) of each dead letter); None when this path cannot take the batch
    (unsupported schema, a string column past 2 GiB) and the caller must use ``per_record``.
    """
    layout = bytes_layout()
    if not values or layout is None or not supported(schema):
        return None
    plan = plan_for(schema)
    return finish(values, schema, plan, layout, scan_cells(values, plan, layout), per_record)


def finish(
    values: Sequence[bytes],
    schema: Schema,
    plan: Plan,
    layout: Layout,
    sc: Cells,
    per_record: Callable[[Sequence[bytes], Schema, str], DecodeResult],
) -> Decoded | None:
    """Every row of a scanned batch as Arrow columns (see :func:`decode_json_fast`)."""
    n = len(values)
    if not sc.numbers_to_arrow:  # the columns will wrap them: out of scratch memory
        sc.ivals = _copy_to_pool(sc.ivals)
        sc.fvals = _copy_to_pool(sc.fvals)
        sc.numbers_to_arrow = True
    strings = _strings(sc, plan, layout)
    if strings is None:
        return None
    batch = batch_from_cells(
        plan, sc.ivals, sc.fvals, sc.bvals, sc.valid, sc.flags, sc.n_flagged > 0,
        strings[0], strings[1],
    )  # fmt: skip
    if not sc.n_flagged:
        return batch, np.arange(n, dtype=np.int64), []
    return merge_flagged(values, schema, batch, sc.flags, per_record)


def batch_from_cells(
    plan: Plan,
    ivals: np.ndarray,
    fvals: np.ndarray,
    bvals: np.ndarray,
    valid: np.ndarray,
    flags: np.ndarray,
    any_flagged: bool,
    str_offsets: np.ndarray,
    str_data: Sequence[np.ndarray],
) -> pa.RecordBatch:
    """Arrow columns of the decoded cells (the layout of ``K.scan``); flagged rows are null.

    Shared by this module and the GPU decoder (plait.process.gpu.json_decode), which
    produce the same cells. ``str_offsets[k]`` (int32, n + 1) and ``str_data[k]`` are
    string column k's Arrow offsets and bytes.
    """
    n = len(flags)
    columns: list[pa.Array] = []
    for j, (field, kind) in enumerate(zip(plan.arrow, plan.kinds)):
        slot = int(plan.slots[j])
        ok = valid[j]
        if any_flagged:  # flagged rows are replaced in merge_flagged: keep them null
            ok = ok & (flags == 0)
        n_valid = int(np.count_nonzero(ok))
        bitmap = (
            None if n_valid == n else pa.py_buffer(np.packbits(ok, bitorder="little"))
        )
        if kind == K.K_STRING:
            bufs = [
                bitmap,
                pa.py_buffer(str_offsets[slot]),
                pa.py_buffer(str_data[slot]),
            ]
        elif kind == K.K_BOOL:
            bits = np.packbits(bvals[slot] & ok, bitorder="little")
            bufs = [bitmap, pa.py_buffer(bits)]
        else:
            vals = ivals[slot] if kind == K.K_INT else fvals[slot]
            if n_valid != n:
                vals = np.where(ok, vals, 0)  # defined bytes under nulls
            bufs = [bitmap, pa.py_buffer(vals)]
        columns.append(
            pa.Array.from_buffers(field.type, n, bufs, null_count=n - n_valid)
        )
    return pa.RecordBatch.from_arrays(columns, schema=plan.arrow)


class Layout(NamedTuple):
    """Where CPython keeps what the kernels read (see :func:`bytes_layout`)."""

    bytes_type: int  # address of the ``bytes`` type object
    payload: int  # offset of a ``bytes`` object's payload
    tuple_items: int  # offset of a ``tuple``'s first item pointer


_LAYOUT: list[Layout | None] = []


def bytes_layout() -> Layout | None:
    """How this interpreter lays out ``bytes`` and ``tuple`` objects, or None when it is
    not as the kernels read them (then the per-record path decodes everything).

    Why read objects in place: copying a batch into one buffer was the largest single cost
    of the decode (a fresh 200 MB for a 1M-event batch, page faults included). The kernels
    walk a tuple of the records (its item pointers inline) and read CPython's
    PyBytesObject: ob_type at +8, ob_size at +16, the NUL-terminated payload at a fixed
    offset. Checked once, on probes, against the buffer protocol, ``len`` and ``id``.
    """
    if not _LAYOUT:
        _LAYOUT.append(_probe_layout())
    return _LAYOUT[0]


def _probe_layout() -> Layout | None:
    probes = (b"", b"x", b"plait" * 100, bytes(range(256)) * 4000)
    offsets = set()
    for b in probes:
        addr = id(b)
        if ctypes.c_void_p.from_address(addr + 8).value != id(bytes):
            return None
        if ctypes.c_ssize_t.from_address(addr + 16).value != len(b):
            return None
        if b:
            offsets.add(np.frombuffer(b, dtype=np.uint8).ctypes.data - addr)
    if len(offsets) != 1:
        return None
    payload = offsets.pop()
    if any(
        ctypes.c_char.from_address(id(b) + payload + len(b)).value != b"\0"
        for b in probes
    ):
        return None
    items = 24  # PyTupleObject: ob_refcnt, ob_type, ob_size, then the item pointers
    if any(
        ctypes.c_void_p.from_address(id(probes) + items + 8 * k).value != id(b)
        for k, b in enumerate(probes)
    ):
        return None
    return Layout(id(bytes), payload, items)


class _ScratchCache(threading.local):
    def __init__(self) -> None:
        self.buffers: dict[str, np.ndarray] = {}
        # the last batch shape's cell arrays, per group (views of ``buffers``): a stream's
        # batches often have one size, and making the views costs ~2 µs each
        self.cells: dict[str, tuple[tuple[int, int], tuple[np.ndarray, ...]]] = {}


_SCRATCH = _ScratchCache()


def _scratch(name: str, shape: tuple[int, ...], dtype: type) -> np.ndarray:
    """A per-thread working array that outlives the call, for cells no result points into.

    Why keep it: on a busy host, memory freed and asked for again can come back cold and
    cost ~3 ms/MB in page faults; scratch memory kept in use stays warm. The price is
    ~34 bytes per row of the largest batch a thread decoded (4 string fields, 8 fields).
    """
    size = math.prod(shape) * np.dtype(dtype).itemsize
    buf = _SCRATCH.buffers.get(name)
    if buf is None or buf.nbytes < size:
        buf = _SCRATCH.buffers[name] = _empty((max(size, 1),), np.uint8)
    return buf[:size].view(dtype).reshape(shape)


def _scratch_cells(plan: Plan, n: int, group: str) -> tuple[np.ndarray, ...]:
    """Scratch cell arrays for ``n`` rows of ``plan``: "cells" (flags, bools, validity,
    string starts and lengths) or "numbers" (ints, floats)."""
    key = (id(plan), n)
    last = _SCRATCH.cells.get(group)
    if last is not None and last[0] == key:
        return last[1]
    c = plan.counts
    arrays: tuple[np.ndarray, ...]
    if group == "numbers":
        arrays = (
            _scratch("ivals", (c[K.K_INT], n), np.int64),
            _scratch("fvals", (c[K.K_FLOAT], n), np.float64),
        )
    else:
        arrays = (
            _scratch("flags", (n,), np.uint8),
            _scratch("bvals", (c[K.K_BOOL], n), np.uint8),
            _scratch("valid", (len(plan.kinds), n), np.uint8),
            _scratch("s_start", (c[K.K_STRING], n), np.int32),
            _scratch("s_len", (c[K.K_STRING], n), np.int32),
        )
    _SCRATCH.cells[group] = (key, arrays)
    return arrays


def _copy_to_pool(a: np.ndarray) -> np.ndarray:
    out = _empty(a.shape, a.dtype.type)
    out[...] = a
    return out


def _empty(shape: tuple[int, ...], dtype: type) -> np.ndarray:
    """An uninitialised array in Arrow's memory pool.

    Why not ``np.empty``: large numpy allocations are fresh mmaps each time, and their
    first-touch page faults cost as much as the decode of a 1M-event batch; Arrow's pool
    hands back memory it already faulted in for an earlier batch.
    """
    size = math.prod(shape) * np.dtype(dtype).itemsize
    buf = pa.allocate_buffer(max(size, 1))
    return np.frombuffer(buf, dtype=dtype, count=math.prod(shape)).reshape(shape)


def _strings(
    sc: Cells, plan: Plan, layout: Layout
) -> tuple[np.ndarray, list[np.ndarray]] | None:
    """Arrow offsets (int32, one row per string column) and bytes of the string columns;
    None when a column passes 2 GiB (int32 offsets)."""
    n = len(sc.flags)
    fields = plan.string_fields
    if not len(fields):
        return np.zeros((0, n + 1), np.int32), []

    def totals(lo: int, hi: int) -> Callable[[], object]:
        return lambda: K.string_totals(sc.s_len, sc.valid, sc.flags, fields, lo, hi)

    per_range = np.array(_run([totals(lo, hi) for lo, hi in sc.ranges]), dtype=np.int64)
    ends = np.cumsum(per_range, axis=0)  # row r: bytes of ranges 0..r, per column
    if ends[-1].max() > _I32_MAX:
        return None
    bases = np.vstack([np.zeros((1, len(fields)), np.int64), ends[:-1]])
    offs = _empty((len(fields), n + 1), np.int32)
    outs = [_empty((int(size),), np.uint8) for size in ends[-1]]
    addrs = np.array([o.ctypes.data for o in outs], dtype=np.int64)
    objs = id(sc.records) + layout.tuple_items
    payload = layout.payload

    def fill(r: int, lo: int, hi: int) -> Callable[[], object]:
        return lambda: K.string_fill(
            objs, payload, sc.s_start, sc.s_len, sc.valid, sc.flags, fields, lo, hi,
            bases[r], offs, addrs,
        )  # fmt: skip

    _run([fill(r, lo, hi) for r, (lo, hi) in enumerate(sc.ranges)])
    return offs, outs


def merge_flagged(
    values: Sequence[bytes],
    schema: Schema,
    fast: pa.RecordBatch,
    flags: np.ndarray,
    per_record: Callable[[Sequence[bytes], Schema, str], DecodeResult],
) -> Decoded:
    """Re-decode the flagged records with the reference and splice them back in order."""
    n = len(values)
    flagged = np.flatnonzero(flags)
    slow = per_record([values[int(i)] for i in flagged], schema, "json")
    slow_good = flagged[slow.good]
    errors = [(int(flagged[p]), reason) for p, reason in slow.errors]
    # Row r of the output comes from the fast batch (index r) or the slow batch (n + k).
    source = np.arange(n, dtype=np.int64)
    source[slow_good] = n + np.arange(len(slow_good), dtype=np.int64)
    keep = np.ones(n, dtype=bool)
    keep[flagged] = False
    keep[slow_good] = True
    good = np.flatnonzero(keep).astype(np.int64)
    both = pa.concat_batches([fast, slow.batch]) if len(slow_good) else fast
    return both.take(pa.array(source[good])), good, errors
